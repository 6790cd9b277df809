//! switchyard-server's tests, one binary: the axum app driven in-process (`switchyard_server::app`) with the
//! bundled default router and the real encoder, against stand-in upstreams, a real PostgreSQL and a real Redis
//! (`switchyard_testkit`). Tests that run the `switchyard` binary are in the `switchyard` crate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anthropic;
mod billing;
mod cache;
mod conversations;
mod dashboard;
mod experiments;
mod explore;
mod gateway;
mod keys;
mod log_responses;
mod postgres;
mod replicas;
mod replicas_online;
mod server;
mod steering;
mod supervision;
mod tenancy;
mod tenancy_feedback;
mod tls;
mod upstreams;
