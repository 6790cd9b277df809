//! The routing core: where a request goes, from plain values (a [`query::Query`] and the prompt's embedding)
//! to a decision ([`stages::Decided`]). It owns the stages of a decision (experiment arm, the request's knobs,
//! rules, the key's models, capabilities, the learned policy, pins, exploration), the routers in service and
//! their hot reload, rules and experiments, and conversations' session pins. It speaks no HTTP: its errors are
//! [`RouteError`], which the HTTP edge maps to a status. The one piece that reads the server's state is
//! [`service`], which embeds the prompt and counts the decision in the metrics.

mod error;
pub(crate) mod experiment;
pub(crate) mod knobs;
pub(crate) mod query;
pub(crate) mod replicated;
pub(crate) mod routers;
pub(crate) mod rules;
pub(crate) mod service;
pub(crate) mod sessions;
pub(crate) mod stages;

pub use error::RouteError;
