//! switchyard's shared vocabulary, used by training, benchmarking and serving alike.
//!
//! This crate owns the model [`Catalog`] (prices, endpoints; validated at load), labelled-log rows and their
//! streaming reader ([`LabelledRow`], [`read_logs`]). It knows nothing of HTTP, training loops or the encoder.

mod catalog;
mod logs;
mod row;

pub use catalog::{Catalog, CatalogError, ModelCard};
pub use logs::{read_logs, LogError, LogReader, ReadSummary, RowError};
pub use row::{Evidence, LabelledRow, Outcome, Preference, Split, Winner};
