//! switchyard-store's tests, one binary: the decision log in a real PostgreSQL (`switchyard_testkit::pg`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod postgres;
