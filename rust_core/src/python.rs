//! The only file that knows pyo3: turns the plain Rust results into Python
//! values and `CoreError`s into the exceptions `batchgrpc.errors` defines.

use pyo3::prelude::*;

use crate::error::{CoreError, ErrorKind};
use crate::limits;

// The exception classes live in Python, next to the rest of the hierarchy,
// so the error interceptor maps them like any other domain error.
pyo3::import_exception!(batchgrpc.errors, PayloadTooLarge);
pyo3::import_exception!(batchgrpc.errors, TooManyItems);
pyo3::import_exception!(batchgrpc.errors, NoCommands);

impl From<CoreError> for PyErr {
    // Exhaustive on purpose: a new ErrorKind does not compile until it is mapped.
    fn from(err: CoreError) -> PyErr {
        let args = (err.to_string(), err.field());
        match err.kind() {
            ErrorKind::PayloadTooLarge { .. } => PayloadTooLarge::new_err(args),
            ErrorKind::TooManyItems { .. } => TooManyItems::new_err(args),
            ErrorKind::NoCommands => NoCommands::new_err(args),
        }
    }
}

/// Checks a bulk-create request's serialized size and event count.
///
/// These checks are O(1), so they keep the interpreter: releasing it would
/// cost more than the work.
#[pyfunction]
fn check_bulk_request(request_bytes: u64, event_count: u64) -> PyResult<()> {
    Ok(limits::check_bulk_request(request_bytes, event_count)?)
}

/// Checks a tracking batch; returns per command `None` or its error text.
#[pyfunction]
fn check_track_batch(
    py: Python<'_>,
    request_bytes: u64,
    command_bytes: Vec<u64>,
) -> PyResult<Vec<Option<&'static str>>> {
    // Owned input, so the interpreter can go while the sizes are checked.
    Ok(py.detach(move || limits::check_track_batch(request_bytes, &command_bytes))?)
}

/// batchgrpc's Rust core.
#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_bulk_request, m)?)?;
    m.add_function(wrap_pyfunction!(check_track_batch, m)?)?;
    m.add(
        "BULK_EVENTS_MAX_REQUEST_BYTES",
        limits::BULK_EVENTS_MAX_REQUEST_BYTES,
    )?;
    m.add("BULK_EVENTS_MAX_EVENTS", limits::BULK_EVENTS_MAX_EVENTS)?;
    m.add("TRACK_MAX_COMMANDS", limits::TRACK_MAX_COMMANDS)?;
    m.add("TRACK_MAX_COMMAND_BYTES", limits::TRACK_MAX_COMMAND_BYTES)?;
    m.add(
        "TRACK_MAX_PROPERTY_VALUE_BYTES",
        limits::TRACK_MAX_PROPERTY_VALUE_BYTES,
    )?;
    m.add("TRACK_MAX_REQUEST_BYTES", limits::TRACK_MAX_REQUEST_BYTES)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
