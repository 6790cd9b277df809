//! switchyard-encoder's tests, one binary: the real all-MiniLM-L6-v2 encoder against an independent
//! reference (`tests/fixtures/`), batching, truncation, and the fast forward pass against candle's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod encoder;
mod int8;
