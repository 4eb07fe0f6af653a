//! The only file that knows pyo3: turns the plain Rust results into Python
//! values and `CoreError`s into the exceptions `batchgrpc.errors` defines.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use serde_json::Value;

use crate::bulk;
use crate::error::{CoreError, ErrorKind};
use crate::events::{self, hex_id, Chunk, EventName, JobSpec, Pipeline};
use crate::formats::{self, Format, ReadLimits, Resume};
use crate::ingest;
use crate::limits;
use crate::profiles;
use crate::rules::RuleSpec;
use crate::track;

// The exception classes live in Python, next to the rest of the hierarchy,
// so the error interceptor maps them like any other domain error.
pyo3::import_exception!(batchgrpc.errors, PayloadTooLarge);
pyo3::import_exception!(batchgrpc.errors, TooManyItems);
pyo3::import_exception!(batchgrpc.errors, NoCommands);
pyo3::import_exception!(batchgrpc.errors, DataFileError);
pyo3::import_exception!(batchgrpc.errors, InvalidJobSpec);
pyo3::import_exception!(batchgrpc.errors, MalformedRequest);

impl From<CoreError> for PyErr {
    // Exhaustive on purpose: a new ErrorKind does not compile until it is mapped.
    fn from(err: CoreError) -> PyErr {
        let message = err.to_string();
        let field = err.field().to_owned();
        match err.kind() {
            ErrorKind::PayloadTooLarge { .. } => PayloadTooLarge::new_err((message, field)),
            ErrorKind::TooManyItems { .. } => TooManyItems::new_err((message, field)),
            ErrorKind::NoCommands => NoCommands::new_err((message, field)),
            ErrorKind::DataFile { reason, offset, .. } => {
                DataFileError::new_err((message, reason.code(), *offset))
            }
            ErrorKind::InvalidJobSpec { .. } => InvalidJobSpec::new_err((message, field)),
            ErrorKind::MalformedRequest(_) => MalformedRequest::new_err(message),
        }
    }
}

/// Adds the line number to a file error's message (the error path reads the
/// file again, so the hot path never counts lines).
fn with_line(err: CoreError, path: &std::path::Path) -> CoreError {
    match err.kind() {
        ErrorKind::DataFile {
            reason,
            message,
            offset,
        } => match formats::line_of(path, *offset) {
            Ok(line) => CoreError::new(ErrorKind::DataFile {
                reason: *reason,
                message: format!("{message} (line {line}, byte {offset})"),
                offset: *offset,
            }),
            Err(_) => err,
        },
        _ => err,
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

fn hex_string(id: u128) -> String {
    // Hex digits are ASCII.
    String::from_utf8_lossy(&hex_id(id)).into_owned()
}

/// The event id of `source` with `parts` (`events::event_id`), 32 hex digits.
#[pyfunction]
#[allow(clippy::needless_pass_by_value)] // owned as pyo3 extracts it
fn event_id(source: &str, parts: Vec<String>) -> String {
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    hex_string(events::event_id(source, &parts))
}

/// The event ids of `source` with each of `keys`: one call for a request's
/// events.
#[pyfunction]
#[allow(clippy::needless_pass_by_value)] // owned as pyo3 extracts it
fn event_ids(source: &str, keys: Vec<Vec<String>>) -> Vec<String> {
    keys.iter()
        .map(|parts| {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            hex_string(events::event_id(source, &parts))
        })
        .collect()
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

/// One tracking command, checked and normalized by the core.
#[pyclass(module = "batchgrpc._core", frozen, get_all)]
struct TrackCommand {
    /// Route name.
    name: String,
    /// The command's `command_id`, when sent.
    command_id: Option<String>,
    /// `(field, message)` per problem, in upstream's words; empty when valid.
    errors: Vec<(String, String)>,
    /// The usable customer ids, by id name.
    customer_ids: HashMap<String, String>,
    /// The properties as JSON object text.
    properties: String,
    /// `update_timestamp` or `timestamp` in Unix seconds, when sent.
    time: Option<f64>,
    /// The event type of `customers/events`.
    event_type: String,
}

/// A tracking request decoded and checked by the core: the fields the
/// servicer needs and each command, so Python never decodes its Structs.
#[pyclass(module = "batchgrpc._core", frozen, get_all)]
struct TrackBatch {
    /// The request's `project_token`.
    project_token: String,
    /// The request's `request_id`, empty when not sent.
    request_id: String,
    /// The commands, checked and normalized, in order.
    commands: Vec<Py<TrackCommand>>,
    /// What makes two requests the same request, for `request_id`: a hash
    /// of what the core decoded, every object's keys sorted, so the same
    /// request in another wire order (a `Struct` is a map) is the same.
    fingerprint: Py<PyBytes>,
}

fn track_batch(py: Python<'_>, batch: track::Batch<track::Prepared>) -> PyResult<TrackBatch> {
    let commands = batch
        .commands
        .into_iter()
        .map(|p| {
            Py::new(
                py,
                TrackCommand {
                    name: p.name,
                    command_id: p.command_id,
                    errors: p.errors.into_iter().map(|e| (e.field, e.message)).collect(),
                    customer_ids: p.customer_ids.into_iter().collect(),
                    properties: p.properties,
                    time: p.time,
                    event_type: p.event_type,
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(TrackBatch {
        project_token: batch.project_token,
        request_id: batch.request_id,
        commands,
        fingerprint: PyBytes::new(py, &batch.fingerprint).unbind(),
    })
}

/// Checks a serialized `batchgrpc.track.v2.BatchRequest` with Bloomreach's
/// rules and normalizes each command: ids, times in seconds, properties as
/// JSON text. A batch that fails as a whole raises.
#[pyfunction]
fn prepare_track_batch(py: Python<'_>, request: &[u8], now: f64) -> PyResult<TrackBatch> {
    // `bytes` are immutable and held by the caller: read in place, without
    // the interpreter and without a copy of a request of up to 40 MB.
    let prepared = py.detach(move || track::prepare_batch(request, now))?;
    track_batch(py, prepared)
}

/// Checks a serialized `UpdateCustomerPropertiesRequest` (`kind`
/// "customers") or `AddEventRequest` ("customers/events") as the command it
/// stands for: a batch of one.
#[pyfunction]
fn prepare_track_command(
    py: Python<'_>,
    kind: &str,
    request: &[u8],
    now: f64,
) -> PyResult<TrackBatch> {
    let kind = match kind {
        "customers" => track::Single::Customers,
        "customers/events" => track::Single::Event,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "kind must be \"customers\" or \"customers/events\", not {other:?}"
            )))
        }
    };
    let prepared = py.detach(move || track::prepare_single(kind, request, now))?;
    track_batch(py, prepared)
}

/// What Klaviyo's rules found in a bulk-create request.
#[pyclass(module = "batchgrpc._core", frozen, get_all)]
struct BulkValidation {
    /// `(pointer, reason, message)` per violation; empty when valid.
    violations: Vec<(String, &'static str, String)>,
    /// The violations fail the request even with `partial_success`: a value
    /// nests past what the core decodes, so the request must never reach
    /// Python's protobuf decoder.
    fails_whole: bool,
    /// The request's `request_id` (empty when none).
    request_id: String,
    /// The request's `partial_success`.
    partial_success: bool,
    /// Per item, its number of events.
    item_events: Vec<usize>,
}

/// Validates a serialized `batchgrpc.events.v1.CreateEventBulkCreateJobRequest`
/// with Klaviyo's rules: every violation as `(pointer, reason, message)`.
/// `now` is Unix seconds, for the time window, and `earliest` the earliest
/// event time the request's revision takes.
#[pyfunction]
fn validate_bulk_request(
    py: Python<'_>,
    request: &[u8],
    now: f64,
    earliest: f64,
) -> PyResult<BulkValidation> {
    let validation = py.detach(move || bulk::validate_bulk(request, now, earliest))?;
    Ok(BulkValidation {
        violations: validation
            .violations
            .into_iter()
            .map(|v| (v.pointer, v.reason, v.message))
            .collect(),
        fails_whole: validation.fails_whole,
        request_id: validation.request_id,
        partial_success: validation.partial_success,
        item_events: validation.item_events,
    })
}

/// A stored bulk request in the store's layout (`bulk::bulk_rows`).
#[pyclass(module = "batchgrpc._core", frozen, get_all)]
struct BulkRows {
    /// JSON array of the kept items' profile updates (`profiles::Update`).
    profiles: Py<PyBytes>,
    /// Per kept item, its index in the request.
    items: Vec<usize>,
    /// JSON array of the kept events (`ingest::write_event`).
    events: Py<PyBytes>,
    /// Per kept item, its number of kept events.
    event_counts: Vec<usize>,
}

/// The profile updates and events of a bulk request the core validated,
/// leaving out the `rejected` items (`(item, None)`) and events.
#[pyfunction]
fn bulk_rows(
    py: Python<'_>,
    request: &[u8],
    job_id: &str,
    rejected: Vec<(usize, Option<usize>)>,
    now: f64,
) -> PyResult<BulkRows> {
    let rejected: HashSet<(usize, Option<usize>)> = rejected.into_iter().collect();
    let rows = py.detach(|| bulk::bulk_rows(request, job_id, &rejected, now))?;
    Ok(BulkRows {
        profiles: PyBytes::new(py, &rows.profiles).unbind(),
        items: rows.items,
        events: PyBytes::new(py, &rows.events).unbind(),
        event_counts: rows.event_counts,
    })
}

/// Event rows as the parameter tuples of the store's insert: `(id_high,
/// id_low, account, source, job_id, row_number, event_name, event_time,
/// profile_id, identity, data, value, value_currency, unique_id,
/// dedup_key, backfill, metric_service)`.
///
/// Tuples for `executemany`: measured through the server, they went in
/// faster than one `json_each` statement over a buffer of them
/// (38,000-42,000 against 30,000 durable events/s), as `->>` renders and
/// parses each row's JSON again.
fn event_row_list<'py>(
    py: Python<'py>,
    account: &str,
    out: &[ingest::Row],
) -> PyResult<Bound<'py, PyList>> {
    let account = PyString::new(py, account);
    let rows = PyList::empty(py);
    for row in out {
        let fields: [Bound<'_, PyAny>; 17] = [
            row.id.0.into_pyobject(py)?.into_any(),
            row.id.1.into_pyobject(py)?.into_any(),
            account.clone().into_any(),
            PyString::new(py, &row.source).into_any(),
            PyString::new(py, &row.job_id).into_any(),
            row.row_number.into_pyobject(py)?.into_any(),
            PyString::new(py, &row.event_name).into_any(),
            row.event_time.into_pyobject(py)?.into_any(),
            PyString::new(py, &row.profile_id).into_any(),
            PyString::new(py, &row.identity).into_any(),
            PyString::new(py, &row.data).into_any(),
            row.value.into_pyobject(py)?.into_any(),
            PyString::new(py, &row.value_currency).into_any(),
            PyString::new(py, &row.unique_id).into_any(),
            PyString::new(py, &row.dedup_key).into_any(),
            row.backfill.into_pyobject(py)?.to_owned().into_any(),
            PyString::new(py, &row.metric_service).into_any(),
        ];
        let tuple = PyTuple::new(py, fields)?;
        rows.append(tuple)?;
    }
    Ok(rows)
}

/// A request's profile updates, parsed once (`profiles::parse_updates`):
/// what the store reads for them, then what `plan_ingest` plans.
#[pyclass(module = "batchgrpc._core", frozen)]
struct ProfileUpdates {
    parsed: profiles::Updates,
    /// JSON array of `[kind, value]`: every identifier they name, once.
    #[pyo3(get)]
    pairs: Py<PyBytes>,
    /// JSON array of every profile id they name, once.
    #[pyo3(get)]
    named: Py<PyBytes>,
}

/// Parses a JSON array of profile updates (`profiles::Update`).
#[pyfunction]
fn profile_updates(py: Python<'_>, updates: &[u8]) -> PyResult<ProfileUpdates> {
    let parsed = py
        .detach(|| profiles::parse_updates(updates))
        .map_err(PyValueError::new_err)?;
    let json = |v: Value| serde_json::to_vec(&v).map_err(|e| PyValueError::new_err(e.to_string()));
    let pairs = json(Value::from(
        parsed
            .pairs
            .iter()
            .map(|(k, v)| Value::from(vec![k.as_str(), v.as_str()]))
            .collect::<Vec<_>>(),
    ))?;
    let named = json(Value::from(parsed.named.clone()))?;
    Ok(ProfileUpdates {
        parsed,
        pairs: PyBytes::new(py, &pairs).unbind(),
        named: PyBytes::new(py, &named).unbind(),
    })
}

/// A request's writes in the store's row layout (`profiles::Plan::rows`
/// and `ingest::event_rows`): each list holds the parameter tuples of one
/// statement.
#[pyclass(module = "batchgrpc._core", frozen, get_all)]
struct IngestPlan {
    /// `(id, account, attributes, attribute_time, customer_ids,
    /// merged_into, created_time, updated_time)` per created profile, in age order.
    created: Py<PyList>,
    /// `(attributes, attribute_time, customer_ids, merged_into,
    /// updated_time, id)` per stored profile the request touched.
    updated: Py<PyList>,
    /// `(live, merged)` per stored profile merged: what it had follows it.
    moved: Py<PyList>,
    /// `(account, kind, value, profile_id)` per identifier to (re)assign.
    identifiers: Py<PyList>,
    /// `(account, kind, value, profile_id)` per stored identifier to remove
    /// (a secondary address unappended).
    removed: Py<PyList>,
    /// Per item, the profile it applied to, or None (its id alone names
    /// no profile).
    applied: Vec<Option<String>>,
    /// The event rows (`event_row_list`), each event once: a bulk event
    /// that repeats an earlier one of the request is counted, not written.
    rows: Py<PyList>,
    /// JSON array of `[row, item, profile_id, event_name, dedup_key]`: the
    /// rows the store may hold already (a bulk event of a profile that
    /// existed before the request), for its one look-up.
    lookups: Py<PyBytes>,
    /// Per item, its events that repeat an earlier one of the request.
    repeats: Vec<u64>,
}

type StoredRow = (i64, String, String, String, String);

fn snapshot(
    identifiers: Vec<(String, String, String)>,
    resolved: Vec<(String, String)>,
    profiles: Vec<StoredRow>,
) -> Result<profiles::Snapshot, String> {
    let mut stored = HashMap::with_capacity(profiles.len());
    for (seq, id, attributes, times, customer_ids) in profiles {
        let state = profiles::State::parse(&attributes, &times, &customer_ids)?;
        stored.insert(id, profiles::Stored { seq, state });
    }
    Ok(profiles::Snapshot {
        identifiers: identifiers
            .into_iter()
            .map(|(kind, value, id)| ((kind, value), id))
            .collect(),
        resolved: resolved.into_iter().collect(),
        profiles: stored,
    })
}

/// Plans a request's profiles over what the store read for them
/// (`profiles::plan`), then gives its events their ids and rows.
///
/// `identifiers` is `(kind, value, profile_id)` per stored identifier the
/// updates name, `resolved` `(named, live)` per profile id they name that
/// exists, `profiles` `(seq, id, attributes, attribute_time,
/// customer_ids)` per live profile those lead to.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // one call per request: the whole snapshot
fn plan_ingest(
    py: Python<'_>,
    updates: &Bound<'_, ProfileUpdates>,
    identifiers: Vec<(String, String, String)>,
    resolved: Vec<(String, String)>,
    profiles: Vec<StoredRow>,
    events: &[u8],
    account: &str,
    now: f64,
) -> PyResult<IngestPlan> {
    let parsed = &updates.get().parsed.updates;
    let (rows, events) = py
        .detach(|| {
            let snapshot = snapshot(identifiers, resolved, profiles)?;
            let plan = profiles::plan(&snapshot, parsed, now, &mut profiles::new_profile_id);
            let events = ingest::event_rows(events, account, &plan.targets)?;
            let applied: Vec<Option<String>> = plan
                .targets
                .iter()
                .map(|t| t.as_ref().map(|t| t.profile_id.clone()))
                .collect();
            Ok::<_, String>(((plan.rows(), applied), events))
        })
        .map_err(PyValueError::new_err)?;
    let ((profile_rows, applied), events) = (rows, events);
    let created = profile_rows
        .created
        .into_iter()
        .map(|(id, a, t, c, into)| (id, account, a, t, c, into, now, now));
    let touched = profile_rows
        .updated
        .into_iter()
        .map(|(a, t, c, into, id)| (a, t, c, into, now, id));
    let assigned = profile_rows
        .identifiers
        .into_iter()
        .map(|(kind, value, id)| (account, kind, value, id));
    let removed = profile_rows
        .removed
        .into_iter()
        .map(|(kind, value, id)| (account, kind, value, id));
    Ok(IngestPlan {
        created: PyList::new(py, created)?.unbind(),
        updated: PyList::new(py, touched)?.unbind(),
        moved: PyList::new(py, profile_rows.moved)?.unbind(),
        identifiers: PyList::new(py, assigned)?.unbind(),
        removed: PyList::new(py, removed)?.unbind(),
        applied,
        rows: event_row_list(py, account, &events.rows)?.unbind(),
        lookups: PyBytes::new(py, &events.lookups).unbind(),
        repeats: events.repeats,
    })
}

fn rule_spec(rule: &Bound<'_, PyDict>) -> PyResult<RuleSpec> {
    fn get<'py, T: FromPyObjectOwned<'py>>(
        d: &Bound<'py, PyDict>,
        key: &str,
    ) -> PyResult<Option<T>> {
        d.get_item(key)?
            .map(|v| v.extract::<T>().map_err(Into::into))
            .transpose()
    }
    Ok(RuleSpec {
        kind: get(rule, "type")?.unwrap_or_default(),
        name: get(rule, "name")?.unwrap_or_default(),
        name_pattern: get(rule, "name_pattern")?.unwrap_or_default(),
        validation_policy: get(rule, "validation_policy")?.unwrap_or_default(),
        prefix: get(rule, "prefix")?.unwrap_or_default(),
        value_type: get(rule, "value_type")?.unwrap_or_default(),
        pattern: get(rule, "pattern")?.unwrap_or_default(),
        max_length: get(rule, "max_length")?.unwrap_or_default(),
        allowed_values: get(rule, "allowed_values")?.unwrap_or_default(),
    })
}

/// Reads a data file a chunk at a time, turning rows into events. Iterate it:
/// each step releases the interpreter while it reads `chunk_rows` rows.
#[pyclass(module = "batchgrpc._core")]
struct RowReader {
    // A Mutex so the class is Sync; iteration takes the pipeline out while
    // the interpreter is released, then puts it back.
    pipeline: Mutex<Option<Pipeline>>,
    /// The buffers of the last chunk Python let go of, to fill again: a
    /// chunk's buffers are megabytes, and fresh ones cost page faults.
    spare: Arc<Mutex<Option<Chunk>>>,
    path: PathBuf,
    job_id: Py<PyString>,
    chunk_rows: usize,
}

/// What one chunk of rows produced. The events are kept as Rust built them;
/// `encoded` hands them to a store in one buffer, `events` as tuples.
#[pyclass(module = "batchgrpc._core", frozen)]
struct RowChunk {
    chunk: Chunk,
    spare: Arc<Mutex<Option<Chunk>>>,
    job_id: Py<PyString>,
    /// Rows read, good and failed.
    #[pyo3(get)]
    rows: u64,
    /// Rows that became events.
    #[pyo3(get)]
    good: u64,
    /// Rows that failed.
    #[pyo3(get)]
    failed: u64,
    /// `(row_number, byte_offset, column, reason, message)`, in row order
    #[pyo3(get)]
    issues: Py<PyList>,
    /// Checkpoint: byte offset just past the chunk's last row.
    #[pyo3(get)]
    next_offset: u64,
    /// Checkpoint: number of the chunk's last row.
    #[pyo3(get)]
    last_row: u64,
    /// True when the file has no more rows.
    #[pyo3(get)]
    done: bool,
}

#[pymethods]
impl RowChunk {
    /// The events as one JSON array of `[event_id, row_number, event_name,
    /// identity, data]`: what a store inserts in one statement.
    #[getter]
    fn encoded<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.chunk.encoded)
    }

    /// The number of events.
    #[getter]
    fn event_count(&self) -> usize {
        self.chunk.events.len()
    }

    /// The events as `(event_id, job_id, row_number, event_name, identity,
    /// data)` tuples, data as JSON bytes; built on each access.
    #[getter]
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let chunk = &self.chunk;
        let job_id = self.job_id.bind(py);
        // The job's names are the same Python string for every event.
        let job_name = PyString::new(py, &chunk.job_event_name);
        let default_name = PyString::new(py, &chunk.default_event_name);
        let mut items = Vec::with_capacity(chunk.events.len());
        for event in &chunk.events {
            let id = hex_id(event.id);
            let name = match event.name {
                EventName::Job => job_name.clone(),
                EventName::Default => default_name.clone(),
                EventName::Row(start, end) => PyString::new(py, chunk.text((start, end))),
            };
            items.push(PyTuple::new(
                py,
                [
                    PyString::new(py, std::str::from_utf8(&id).unwrap_or_default()).into_any(),
                    job_id.clone().into_any(),
                    event.row.into_pyobject(py)?.into_any(),
                    name.into_any(),
                    PyString::new(py, chunk.text(event.identity)).into_any(),
                    PyBytes::new(py, &chunk.encoded[event.data.0..event.data.1]).into_any(),
                ],
            )?);
        }
        PyList::new(py, items)
    }
}

impl Drop for RowChunk {
    fn drop(&mut self) {
        let chunk = std::mem::take(&mut self.chunk);
        *lock(&self.spare) = Some(chunk);
    }
}

/// Locks a mutex whose holder cannot leave it half changed (each holder
/// takes the value out or puts one in), so a poisoned lock is still good.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[pymethods]
impl RowReader {
    /// Column names seen so far (the header for CSV and PSV).
    #[getter]
    fn columns(&self) -> Vec<String> {
        lock(&self.pipeline)
            .as_ref()
            .map(|p| p.names().to_vec())
            .unwrap_or_default()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<RowChunk>> {
        let Some(mut pipeline) = lock(&self.pipeline).take() else {
            return Ok(None);
        };
        let max_rows = self.chunk_rows;
        let mut chunk = lock(&self.spare).take().unwrap_or_default();
        let (pipeline, chunk, result) = py.detach(move || {
            let result = pipeline.next_chunk_into(&mut chunk, max_rows);
            (pipeline, chunk, result)
        });
        result.map_err(|e| with_line(e, &self.path))?;
        if chunk.rows == 0 && chunk.done {
            return Ok(None);
        }
        *lock(&self.pipeline) = Some(pipeline);
        let issues = PyList::empty(py);
        for issue in &chunk.issues {
            issues.append((
                issue.row,
                issue.offset,
                issue.column.as_str(),
                issue.reason,
                issue.message.as_str(),
            ))?;
        }
        Ok(Some(RowChunk {
            rows: chunk.rows,
            good: chunk.good,
            failed: chunk.failed,
            issues: issues.unbind(),
            next_offset: chunk.next_offset,
            last_row: chunk.last_row,
            done: chunk.done,
            job_id: self.job_id.clone_ref(py),
            chunk,
            spare: Arc::clone(&self.spare),
        }))
    }
}

/// A batch job's rules and event settings, compiled once: a job keeps it
/// from its creation until it has read its file, and `open_rows` takes it
/// without compiling anything again.
#[pyclass(module = "batchgrpc._core", name = "JobSpec", frozen)]
struct CompiledSpec {
    spec: Arc<JobSpec>,
}

#[pymethods]
impl CompiledSpec {
    /// Compiles and checks the rules and settings with the interpreter
    /// released (a job's patterns take up to tens of milliseconds).
    #[new]
    #[pyo3(signature = (
        *, event_name = String::new(), default_event_name = String::new(),
        event_columns = Vec::new(), event_data = HashMap::new(), columns = Vec::new(),
    ))]
    #[allow(clippy::needless_pass_by_value)] // owned as pyo3 extracts them
    fn new(
        py: Python<'_>,
        event_name: String,
        default_event_name: String,
        event_columns: Vec<String>,
        event_data: HashMap<String, String>,
        columns: Vec<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let rules = columns
            .iter()
            .map(rule_spec)
            .collect::<PyResult<Vec<_>>>()?;
        let spec = py.detach(move || {
            JobSpec::build(
                String::new(),
                event_name,
                default_event_name,
                event_columns,
                event_data.into_iter().collect(),
                &rules,
            )
        })?;
        Ok(Self {
            spec: Arc::new(spec),
        })
    }

    /// Heap bytes of the compiled patterns.
    #[getter]
    fn pattern_bytes(&self) -> usize {
        self.spec.pattern_bytes()
    }
}

/// Opens a data file for a batch job: reads the header, checks it against the
/// rules, and returns an iterator of chunks.
#[pyfunction]
#[pyo3(signature = (
    path, format, *, job_id, spec = None,
    chunk_rows = 10_000, resume_offset = 0, resume_row = 0,
    max_field_bytes = 1_048_576, max_row_bytes = 1_048_576, max_fields = 10_000, max_depth = 10,
))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // keyword-only arguments of one Python call, owned as pyo3 extracts them
fn open_rows(
    py: Python<'_>,
    path: PathBuf,
    format: &str,
    job_id: Bound<'_, PyString>,
    spec: Option<PyRef<'_, CompiledSpec>>,
    chunk_rows: usize,
    resume_offset: u64,
    resume_row: u64,
    max_field_bytes: usize,
    max_row_bytes: usize,
    max_fields: usize,
    max_depth: usize,
) -> PyResult<RowReader> {
    let Some(format) = Format::from_name(format) else {
        return Err(CoreError::new(ErrorKind::InvalidJobSpec {
            field: "format".into(),
            message: format!("format must be CSV, PSV, JSON or JSONL, not {format:?}"),
        })
        .into());
    };
    // A copy that shares the compiled patterns (each gets its own search
    // caches), with the job's id.
    let spec = JobSpec {
        job_id: job_id.to_str()?.to_owned(),
        ..spec.map(|s| JobSpec::clone(&s.spec)).unwrap_or_default()
    };
    let limits = ReadLimits {
        max_field_bytes,
        max_row_bytes,
        max_fields,
        max_depth,
    };
    let resume = Resume {
        offset: resume_offset,
        row: resume_row,
    };
    let chunk_rows = chunk_rows.max(1);
    let file_path = path.clone();
    let pipeline = py.detach(move || -> PyResult<Pipeline> {
        let file = std::fs::File::open(&file_path)?;
        let fixed = matches!(format, Format::Csv | Format::Psv);
        let source =
            formats::open(format, file, limits, resume).map_err(|e| with_line(e, &file_path))?;
        // Parse on a second thread while this one checks and encodes.
        let source = Box::new(formats::prefetch::Prefetch::new(source));
        Ok(
            Pipeline::new(source, spec, fixed, resume_offset, resume_row)
                .map_err(|e| with_line(e, &file_path))?,
        )
    })?;
    Ok(RowReader {
        pipeline: Mutex::new(Some(pipeline)),
        spare: Arc::default(),
        path,
        job_id: job_id.unbind(),
        chunk_rows,
    })
}

/// batchgrpc's Rust core.
#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bulk_rows, m)?)?;
    m.add_function(wrap_pyfunction!(profile_updates, m)?)?;
    m.add_function(wrap_pyfunction!(plan_ingest, m)?)?;
    m.add_function(wrap_pyfunction!(check_bulk_request, m)?)?;
    m.add_function(wrap_pyfunction!(check_track_batch, m)?)?;
    m.add_function(wrap_pyfunction!(event_id, m)?)?;
    m.add_function(wrap_pyfunction!(event_ids, m)?)?;
    m.add_function(wrap_pyfunction!(open_rows, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_track_batch, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_track_command, m)?)?;
    m.add_function(wrap_pyfunction!(validate_bulk_request, m)?)?;
    m.add_class::<CompiledSpec>()?;
    m.add_class::<RowReader>()?;
    m.add_class::<RowChunk>()?;
    m.add_class::<TrackCommand>()?;
    m.add_class::<TrackBatch>()?;
    m.add_class::<BulkValidation>()?;
    m.add_class::<BulkRows>()?;
    m.add_class::<ProfileUpdates>()?;
    m.add_class::<IngestPlan>()?;
    m.add(
        "BULK_EVENTS_MAX_REQUEST_BYTES",
        limits::BULK_EVENTS_MAX_REQUEST_BYTES,
    )?;
    m.add("BULK_EVENTS_MAX_EVENTS", limits::BULK_EVENTS_MAX_EVENTS)?;
    m.add("PATTERN_SIZE_LIMIT", crate::rules::PATTERN_SIZE_LIMIT)?;
    m.add("JOB_PATTERN_BUDGET", crate::rules::JOB_PATTERN_BUDGET)?;
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
