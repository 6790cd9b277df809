//! The gateway: from a decision's ranking to an upstream's answer. It owns the candidates a request may go
//! to, the deployments of each catalog model and their weighted order, upstream health (failures in a row,
//! cooldowns, latency), the upstream call itself (deadlines, what counts as the upstream's failure), the
//! attempt loop with its fallbacks, the SSE tap on streams, and what an answer is charged. It knows nothing of
//! how a model was chosen; its errors are [`GatewayError`], which the HTTP edge maps to a status.

pub(crate) mod attempts;
pub(crate) mod billing;
pub(crate) mod candidates;
pub(crate) mod deployment;
pub(crate) mod deployments;
mod error;
pub(crate) mod health;
pub(crate) mod replicated;
pub(crate) mod sse;
pub(crate) mod upstream;
pub(crate) mod usage;

pub use error::GatewayError;
