//! The `switchyard` crate's tests, one binary: the CLI and `switchyard serve` as processes (the binary at
//! [`BIN`]), end to end with the real encoder, stand-in upstreams, a real PostgreSQL and a real Redis
//! (`switchyard_testkit`). Tests of the library crates alone live in those crates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anthropic_sdk;
mod billing;
mod cli_embed;
mod conversations;
mod dashboard;
mod feedback_loop;
mod keys;
mod online;
mod openai_sdk;
mod postgres;
mod profile_launch;
mod profiles;
mod replicas;
mod serve_process;
mod tenancy;
mod train_route;

/// The `switchyard` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
