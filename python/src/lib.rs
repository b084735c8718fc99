//! `spycloud_relay` for Python: the relay's SpyCloud client (rate limit, retries, catalog
//! cache, pages, deadlines) and its renderings, over the `spycloud-relay` crate's public API.
//!
//! - [`Client`]: one [`Relay`] over SpyCloud and the tokio runtime that drives it, one per
//!   client; `lookup` and `health` release the GIL while they wait on SpyCloud, so several
//!   Python threads can share one client;
//! - [`render`]: the mapping alone, over records and catalogs a tool already fetched;
//! - the exception classes, one per kind of the crate's typed [`Error`], each with the
//!   contract's `code` and `message`.
//!
//! Values cross the boundary as JSON: what Python hands in is read through `json.dumps` (its
//! recursion limit, no NaN, only JSON types) and serde_json (its own depth limit), so no input
//! can overflow the stack here; what goes back is built by `pythonize`.

use std::num::NonZeroU32;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::{Map, Value, json};

use relay::adapters::{RetryPolicy, SpyCloudSettings};
use relay::domain::{
    ApiKey, BreachRecord, Catalog, Credentials, EntitiesLimit, Findings, Lookup, MappingOptions,
    ModuleSettings, Observable, ObservableFindings, ObservableType, PasswordPolicy, RawRecord, Tlp,
};
use relay::{Error, Relay, RelaySettings};

create_exception!(
    spycloud_relay,
    SpyCloudRelayError,
    PyException,
    "A lookup or health check failed. `code` is the contract's SecureX code, `message` its message."
);
create_exception!(
    spycloud_relay,
    AuthorizationError,
    SpyCloudRelayError,
    "SpyCloud refused the API key (401, 403, or its key is not valid)."
);
create_exception!(
    spycloud_relay,
    IpNotAllowedError,
    AuthorizationError,
    "SpyCloud does not take calls from this machine's IP address for the key."
);
create_exception!(
    spycloud_relay,
    RateLimitedError,
    SpyCloudRelayError,
    "SpyCloud's rate limit, after the retries: worth trying again later."
);
create_exception!(
    spycloud_relay,
    QuotaUsedUpError,
    SpyCloudRelayError,
    "The API key's monthly quota is used up: retrying will not help before it renews."
);
create_exception!(
    spycloud_relay,
    NotFoundError,
    SpyCloudRelayError,
    "SpyCloud answered 404."
);
create_exception!(
    spycloud_relay,
    UpstreamError,
    SpyCloudRelayError,
    "SpyCloud failed otherwise: a 500, another status, TLS, a timeout, no connection, an unreadable answer."
);
create_exception!(
    spycloud_relay,
    DeadlineError,
    SpyCloudRelayError,
    "The client's deadline passed before SpyCloud answered everything."
);
create_exception!(
    spycloud_relay,
    InvalidInputError,
    SpyCloudRelayError,
    "What was asked is not what the relay takes (values it cannot type or that are not valid for their type, too many values, unreadable records)."
);

create_exception!(
    spycloud_relay,
    SpyCloudRelayWarning,
    PyUserWarning,
    "Something a STIX bundle cannot say (it has no error object): a value not looked up, records skipped, more records than read."
);

/// Values looked up in one call at most (the relay's `max_lookups`): more is refused whole.
const MAX_VALUES: usize = RelaySettings::DEFAULT_MAX_LOOKUPS;
/// The bounds of the command line's settings, for the same settings here.
const MAX_RPS: u32 = 10_000;
const MAX_RECORDS: u64 = 1_000_000;
const MAX_LIMIT: u64 = 1_000_000;
const MAX_RETRIES: u32 = 10;
/// Seconds a timeout or deadline may be at most (a day).
const MAX_SECONDS: f64 = 86_400.0;

/// The exception of a typed error, with its `code` and `message` attributes.
fn exception(py: Python<'_>, error: &Error) -> PyErr {
    let message = error.message();
    let raised = match error {
        Error::IpNotAllowed => IpNotAllowedError::new_err(message.clone()),
        Error::Authorization { .. } | Error::InvalidApiKey => {
            AuthorizationError::new_err(message.clone())
        }
        Error::RateLimited => RateLimitedError::new_err(message.clone()),
        Error::QuotaUsedUp => QuotaUsedUpError::new_err(message.clone()),
        Error::NotFound => NotFoundError::new_err(message.clone()),
        Error::Upstream(_) => UpstreamError::new_err(message.clone()),
        Error::Deadline { .. } => DeadlineError::new_err(message.clone()),
        Error::InvalidInput { .. } => InvalidInputError::new_err(message.clone()),
        _ => SpyCloudRelayError::new_err(message.clone()),
    };
    with_code(py, raised, error.code(), &message)
}

/// `raised` with its `code` and `message` attributes set.
fn with_code(py: Python<'_>, raised: PyErr, code: &str, message: &str) -> PyErr {
    let value = raised.value(py);
    if let Err(failed) = value
        .setattr("code", code)
        .and_then(|()| value.setattr("message", message))
    {
        return failed;
    }
    raised
}

/// An [`InvalidInputError`] (code `invalid argument`) saying `message`.
fn invalid_input(py: Python<'_>, message: &str) -> PyErr {
    with_code(
        py,
        InvalidInputError::new_err(message.to_owned()),
        "invalid argument",
        message,
    )
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// SecureX's CTIM envelope, as the relay's observe route answers.
    Ctim,
    /// What SpyCloud said, per observable: records, catalogs, warnings.
    Findings,
    /// A STIX 2.1 bundle; the warnings as Python warnings ([`SpyCloudRelayWarning`]).
    Stix,
}

impl Format {
    fn parse(name: &str) -> PyResult<Self> {
        match name {
            "ctim" => Ok(Self::Ctim),
            "findings" => Ok(Self::Findings),
            "stix" => Ok(Self::Stix),
            other => Err(PyValueError::new_err(format!(
                "format must be \"ctim\", \"stix\" or \"findings\", not {:?}",
                cut(other)
            ))),
        }
    }
}

/// At most 100 characters of `text`, for messages that repeat what was given.
fn cut(text: &str) -> String {
    text.chars().take(100).collect()
}

fn password_policy(name: &str) -> PyResult<PasswordPolicy> {
    match name {
        "plaintext" => Ok(PasswordPolicy::Plaintext),
        "masked" => Ok(PasswordPolicy::Masked),
        "omitted" => Ok(PasswordPolicy::Omitted),
        other => Err(PyValueError::new_err(format!(
            "passwords must be \"plaintext\", \"masked\" or \"omitted\", not {:?}",
            cut(other)
        ))),
    }
}

fn tlp(name: &str) -> PyResult<Tlp> {
    Tlp::of(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "tlp must be \"white\", \"green\", \"amber\" or \"red\", not {:?}",
            cut(name)
        ))
    })
}

/// `value` as a whole number from `min` to `max`, else a `ValueError` naming `name`.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> PyResult<T> {
    if value < min || value > max {
        return Err(PyValueError::new_err(format!(
            "{name} must be from {min} to {max}, not {value}"
        )));
    }
    Ok(value)
}

/// `seconds` as a duration above 0 and at most a day, else a `ValueError` naming `name`.
fn seconds(name: &str, seconds: f64) -> PyResult<Duration> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a number of seconds above 0 and at most {MAX_SECONDS}, not {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A Python value read as JSON: `json.dumps` refuses what JSON cannot hold (and recursion
/// past Python's limit), serde_json what nests too deep for it.
fn json_of(py: Python<'_>, what: &str, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    let dumps = py.import("json")?.getattr("dumps")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("allow_nan", false)?;
    let text = match dumps.call((value,), Some(&kwargs)) {
        Ok(text) => text.extract::<String>()?,
        Err(error) => {
            return Err(PyTypeError::new_err(format!(
                "{what} must be JSON data (dicts, lists, strings, numbers, booleans, None): {}",
                error.value(py)
            )));
        }
    };
    serde_json::from_str(&text)
        .map_err(|error| PyValueError::new_err(format!("{what} cannot be read: {error}")))
}

/// A JSON value as Python dicts, lists and scalars.
fn python_of<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, value).map_err(PyErr::from)
}

/// The module settings a lookup asks SpyCloud for, checked as the relay checks a module
/// instance's: a setting not of its form is a `ValueError` here, not a warning.
fn module_settings(
    severity: Option<&Bound<'_, PyAny>>,
    since_days: Option<u64>,
) -> PyResult<ModuleSettings> {
    let mut claims = Map::new();
    if let Some(severity) = severity {
        let codes = if let Ok(text) = severity.extract::<String>() {
            Value::String(text)
        } else if let Ok(code) = severity.extract::<u32>() {
            Value::String(code.to_string())
        } else if let Ok(codes) = severity.extract::<Vec<u32>>() {
            let codes: Vec<String> = codes.iter().map(ToString::to_string).collect();
            Value::String(codes.join(","))
        } else {
            return Err(PyTypeError::new_err(
                "severity must be a severity code, a list of codes or a text like \"20,25\"",
            ));
        };
        claims.insert("SEVERITY".to_owned(), codes);
    }
    if let Some(days) = since_days {
        claims.insert("SINCE_DAYS".to_owned(), json!(days));
    }
    let settings = ModuleSettings::from_claims(&claims);
    if let Some(warning) = settings.warnings().first() {
        return Err(PyValueError::new_err(warning.message.clone()));
    }
    Ok(settings)
}

/// The observables of `values` (a text, or a list of texts and `{"type", "value"}` dicts),
/// typed by `types` or by their form as the command line types them.
fn observables(
    py: Python<'_>,
    values: &Bound<'_, PyAny>,
    types: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Observable>> {
    let one = values.is_instance_of::<PyString>() || values.is_instance_of::<PyDict>();
    let items: Vec<Bound<'_, PyAny>> = if one {
        vec![values.clone()]
    } else {
        let mut items = Vec::new();
        let iter = values.try_iter().map_err(|_| {
            PyTypeError::new_err(
                "values must be a text, a {\"type\", \"value\"} dict or a list of them",
            )
        })?;
        for item in iter {
            items.push(item?);
            if items.len() > MAX_VALUES {
                return Err(invalid_input(
                    py,
                    &format!("At most {MAX_VALUES} values are looked up per call; split them."),
                ));
            }
        }
        items
    };
    let kinds: Vec<Option<String>> = match types {
        None => vec![None; items.len()],
        Some(types) if types.is_instance_of::<PyString>() => {
            vec![Some(types.extract::<String>()?); items.len()]
        }
        Some(types) => {
            let types: Vec<String> = types.extract().map_err(|_| {
                PyTypeError::new_err("types must be a type name or a list of one per value")
            })?;
            if types.len() != items.len() {
                return Err(PyValueError::new_err(format!(
                    "types names {} types for {} values",
                    types.len(),
                    items.len()
                )));
            }
            types.into_iter().map(Some).collect()
        }
    };
    let names = ObservableType::ALL.map(ObservableType::name).join(", ");
    let mut problems = Vec::new();
    let mut found = Vec::with_capacity(items.len());
    for (item, kind) in items.iter().zip(kinds) {
        let (value, kind) = if let Ok(dict) = item.cast::<PyDict>() {
            let field = |name: &str| -> PyResult<String> {
                match dict.get_item(name)? {
                    Some(field) => field.extract::<String>().map_err(|_| {
                        PyTypeError::new_err(format!("an observable's \"{name}\" must be a text"))
                    }),
                    None => Err(PyTypeError::new_err(format!(
                        "an observable dict needs \"type\" and \"value\"; this one has no \"{name}\""
                    ))),
                }
            };
            (field("value")?, Some(field("type")?))
        } else if let Ok(value) = item.extract::<String>() {
            (value, kind)
        } else {
            return Err(PyTypeError::new_err(format!(
                "each value must be a text or a {{\"type\", \"value\"}} dict, not {}",
                item.get_type().name()?
            )));
        };
        let kind = match kind {
            Some(name) => match ObservableType::of(&name) {
                Some(kind) => kind,
                None => {
                    problems.push(format!(
                        "{} is not a type the relay looks up ({names})",
                        cut(&name)
                    ));
                    continue;
                }
            },
            None => match ObservableType::by_form(&value) {
                Some(kind) => kind,
                None => {
                    problems.push(format!(
                        "cannot tell what {} is: give its type with types= ({names})",
                        cut(&value)
                    ));
                    continue;
                }
            },
        };
        match Lookup::parse(kind, &value) {
            Ok(_) => found.push(Observable::new(kind.name(), &value)),
            Err(invalid) => problems.push(invalid.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(invalid_input(py, &problems.join("\n")));
    }
    if found.is_empty() {
        return Err(invalid_input(py, "No values to look up."));
    }
    Ok(found)
}

/// One record as the `findings` format gives it: its typed fields, then the others in
/// SpyCloud's order, secrets as `policy` says.
fn record_value(record: &BreachRecord, policy: PasswordPolicy) -> Value {
    let mut fields = Map::new();
    fields.insert("document_id".into(), json!(record.document_id));
    fields.insert("source_id".into(), json!(record.source_id.map(|id| id.0)));
    fields.insert(
        "spycloud_publish_date".into(),
        json!(record.published.to_string()),
    );
    fields.insert("severity".into(), json!(record.severity));
    fields.insert("sighting".into(), json!(record.sighting_count));
    fields.insert(
        "infected_machine_id".into(),
        json!(record.infected_machine_id),
    );
    for (name, value) in &record.data {
        if let Some(value) = policy.apply(name, value.clone()) {
            fields.insert(name.clone(), value);
        }
    }
    Value::Object(fields)
}

/// Findings as the `findings` format gives them.
fn findings_value(findings: &Findings, policy: PasswordPolicy) -> Value {
    let observables: Vec<Value> = findings
        .observables
        .iter()
        .map(|found| {
            json!({
                "observable": found.observable,
                "records": found.records.iter().map(|r| record_value(r, policy)).collect::<Vec<_>>(),
                "catalogs": found.catalogs,
                "warnings": found.warnings,
            })
        })
        .collect();
    json!({"observables": observables, "warnings": findings.warnings})
}

/// `findings` in `format`, or the exception of their fatal error.
fn rendered<'py>(
    py: Python<'py>,
    findings: Findings,
    format: Format,
    options: &MappingOptions,
) -> PyResult<Bound<'py, PyAny>> {
    let findings = findings
        .into_result()
        .map_err(|error| exception(py, &error))?;
    let value = match format {
        Format::Ctim => findings
            .to_ctim(options)
            .into_response()
            .map_err(|error| PyValueError::new_err(error.to_string()))?,
        Format::Findings => findings_value(&findings, options.passwords),
        Format::Stix => {
            // What the bundle cannot say, as the `lookup` command writes it on stderr.
            for warning in findings.all_warnings() {
                PyErr::warn(
                    py,
                    py.get_type::<SpyCloudRelayWarning>().as_any(),
                    &std::ffi::CString::new(warning.message.replace('\0', " "))?,
                    1,
                )?;
            }
            findings.to_stix(options)
        }
    };
    python_of(py, &value)
}

/// A SpyCloud client: the relay's real pipeline (rate limit per key, retries, the catalog
/// cache, every page, the deadline) with one API key.
///
/// Each client owns one tokio runtime (two worker threads) and its connection pool, rate
/// limiter and catalog cache: make one per API key and share it between threads; `lookup` and
/// `health` release the GIL while they wait.
#[pyclass(frozen, module = "spycloud_relay")]
struct Client {
    runtime: tokio::runtime::Runtime,
    relay: Relay,
    credentials: Credentials,
    api_url: String,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        api_key, *, api_url = "https://api.spycloud.io/enterprise-v2", max_rps = 10,
        timeout = 10.0, retries = 2, passwords = "plaintext", max_records = 10_000,
        severity = None, since_days = None, deadline = 25.0, tlp = "amber"
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        api_key: &str,
        api_url: &str,
        max_rps: u32,
        timeout: f64,
        retries: u32,
        passwords: &str,
        max_records: u64,
        severity: Option<&Bound<'_, PyAny>>,
        since_days: Option<u64>,
        deadline: f64,
        tlp: &str,
    ) -> PyResult<Self> {
        let api_key = ApiKey::parse(api_key)
            .map_err(|error| PyValueError::new_err(format!("api_key is not usable: {error}")))?;
        let max_rps = NonZeroU32::new(within("max_rps", max_rps, 1, MAX_RPS)?)
            .ok_or_else(|| PyValueError::new_err("max_rps must be above 0"))?;
        let spycloud = SpyCloudSettings {
            base_url: api_url.to_owned(),
            timeout: seconds("timeout", timeout)?,
            max_rps,
            retry: RetryPolicy {
                max_retries: within("retries", retries, 0, MAX_RETRIES)?,
                ..RetryPolicy::default()
            },
        };
        let deadline = seconds("deadline", deadline)?;
        let settings = RelaySettings {
            mapping: MappingOptions {
                passwords: password_policy(passwords)?,
                tlp: self::tlp(tlp)?,
                ..MappingOptions::default()
            },
            max_records: within("max_records", max_records, 1, MAX_RECORDS)?,
            deadline,
            ..RelaySettings::default()
        };
        let credentials = Credentials {
            api_key,
            entities_limit: EntitiesLimit::default(),
            settings: module_settings(severity, since_days)?,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("spycloud-relay")
            .enable_all()
            .build()
            .map_err(|error| {
                PyValueError::new_err(format!("cannot start the client's runtime: {error}"))
            })?;
        // The HTTP clients are made inside the runtime they will run on.
        let _entered = runtime.enter();
        let built = Relay::builder()
            .spycloud(spycloud)
            .settings(settings)
            .build()
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        drop(_entered);
        Ok(Self {
            runtime,
            relay: built,
            credentials,
            api_url: api_url.to_owned(),
        })
    }

    /// Looks `values` up at SpyCloud and renders what it holds.
    #[pyo3(signature = (values, *, types = None, limit = 100, format = "ctim"))]
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
        types: Option<&Bound<'py, PyAny>>,
        limit: u64,
        format: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let format = Format::parse(format)?;
        let limit = within("limit", limit, 1, MAX_LIMIT)?;
        let entities_limit = usize::try_from(limit)
            .ok()
            .and_then(EntitiesLimit::new)
            .ok_or_else(|| PyValueError::new_err("limit must be above 0"))?;
        let observables = observables(py, values, types)?;
        let credentials = Credentials {
            entities_limit,
            ..self.credentials.clone()
        };
        let findings = py.detach(|| {
            self.runtime
                .block_on(self.relay.lookup(&credentials, &observables))
        });
        rendered(py, findings, format, &self.relay.mapping(&credentials))
    }

    /// One authenticated call to SpyCloud: `None`, or the exception of what failed.
    fn health(&self, py: Python<'_>) -> PyResult<()> {
        let outcome = py.detach(|| self.runtime.block_on(self.relay.health(&self.credentials)));
        outcome.map_err(|error| exception(py, &error))
    }

    fn __repr__(&self) -> String {
        format!("spycloud_relay.Client(api_url={:?})", self.api_url)
    }
}

/// The mapping alone, without a call to SpyCloud: `records` (SpyCloud's breach records of
/// `observable`) and `catalogs` (SpyCloud's breach catalogs they name) rendered in `format`.
#[pyfunction]
#[pyo3(signature = (
    records, catalogs, observable, *, format = "ctim", passwords = "plaintext", tlp = "amber"
))]
fn render<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    catalogs: &Bound<'py, PyAny>,
    observable: &Bound<'py, PyAny>,
    format: &str,
    passwords: &str,
    tlp: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let format = Format::parse(format)?;
    let options = MappingOptions {
        passwords: password_policy(passwords)?,
        tlp: self::tlp(tlp)?,
        ..MappingOptions::default()
    };
    let observable = match observables(py, observable, None)?.as_slice() {
        [one] => one.clone(),
        _ => return Err(invalid_input(py, "render takes one observable.")),
    };
    let Value::Array(raw) = json_of(py, "records", records)? else {
        return Err(PyTypeError::new_err(
            "records must be a list of SpyCloud records",
        ));
    };
    let mut breaches = Vec::with_capacity(raw.len());
    for (at, record) in raw.into_iter().enumerate() {
        let record: RawRecord = serde_json::from_value(record).map_err(|error| {
            invalid_input(
                py,
                &format!("records[{at}] is not a SpyCloud record: {error}"),
            )
        })?;
        let breach = BreachRecord::try_from(record)
            .map_err(|why| invalid_input(py, &format!("records[{at}]: {why}")))?;
        breaches.push(breach);
    }
    // Newest first, as the relay orders what it reads.
    breaches.sort_by_key(|breach| std::cmp::Reverse(breach.published));
    let catalogs: Vec<Catalog> = serde_json::from_value(json_of(py, "catalogs", catalogs)?)
        .map_err(|error| {
            invalid_input(
                py,
                &format!("catalogs must be a list of SpyCloud catalogs: {error}"),
            )
        })?;
    let findings = Findings {
        observables: vec![ObservableFindings {
            observable,
            records: breaches,
            catalogs,
            warnings: Vec::new(),
        }],
        ..Findings::default()
    };
    rendered(py, findings, format, &options)
}

/// The Python module `spycloud_relay`.
#[pymodule]
fn spycloud_relay(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Client>()?;
    m.add_function(wrap_pyfunction!(render, m)?)?;
    m.add("SpyCloudRelayError", py.get_type::<SpyCloudRelayError>())?;
    m.add("AuthorizationError", py.get_type::<AuthorizationError>())?;
    m.add("IpNotAllowedError", py.get_type::<IpNotAllowedError>())?;
    m.add("RateLimitedError", py.get_type::<RateLimitedError>())?;
    m.add("QuotaUsedUpError", py.get_type::<QuotaUsedUpError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("UpstreamError", py.get_type::<UpstreamError>())?;
    m.add("DeadlineError", py.get_type::<DeadlineError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add(
        "SpyCloudRelayWarning",
        py.get_type::<SpyCloudRelayWarning>(),
    )?;
    Ok(())
}
