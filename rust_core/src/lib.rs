//! The hot path of batchgrpc, in plain Rust.
//!
//! Everything here runs under `cargo test` without Python; `python.rs` (behind
//! the `python` feature that maturin turns on) is the only file that knows
//! pyo3 and turns these results into Python values and exceptions.

pub mod bulk;
pub mod error;
pub mod events;
pub mod formats;
pub mod ingest;
pub mod limits;
pub mod profiles;
pub mod rules;
pub mod track;
mod wire;

#[cfg(feature = "python")]
mod python;

pub use error::{Api, CoreError, ErrorKind, FileReason};
