//! The exporter's settings, from OpenTelemetry's standard environment
//! variables, so an operator configures Agent Host as any other service:
//!
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended). Neither set:
//!   traces are off.
//! - `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`: `key=value,...`, values
//!   percent-encoded; for a collector's credentials, so never logged.
//! - `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: only `http/protobuf`.
//! - `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`: milliseconds, default 10000.
//! - `OTEL_SERVICE_NAME` (default `agenthost`), `OTEL_RESOURCE_ATTRIBUTES`.
//! - `OTEL_BSP_SCHEDULE_DELAY` (ms, 5000), `OTEL_BSP_MAX_QUEUE_SIZE` (2048),
//!   `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512).
//! - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: off.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::span::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is `{value}`: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    /// The value is left out: a header may hold a credential.
    #[error("{0} has an entry that is not `key=value` with a valid header name and value")]
    BadHeader(&'static str),
}

#[derive(Clone)]
pub struct OtlpConfig {
    /// The full URL spans are POSTed to.
    pub endpoint: String,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub resource: Vec<(String, Value)>,
    pub schedule_delay: Duration,
    pub max_queue: usize,
    pub max_batch: usize,
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field(
                "headers",
                &format!("{} (values hidden)", self.headers.len()),
            )
            .field("timeout", &self.timeout)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl OtlpConfig {
    /// The settings from the process environment; `None` when traces are off.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings from `var` (the environment, or a test's map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
        {
            return Ok(None);
        }
        let (endpoint_name, endpoint) = match (
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            set("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim().to_string()),
            (None, Some(base)) => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/v1/traces", base.trim().trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        match reqwest::Url::parse(&endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(ConfigError::Invalid {
                    name: endpoint_name,
                    value: endpoint,
                    why: "an http:// or https:// URL is needed",
                })
            }
        }

        let either = |traces: &'static str, general: &'static str| {
            set(traces)
                .map(|v| (traces, v))
                .or_else(|| set(general).map(|v| (general, v)))
        };
        if let Some((name, protocol)) = either(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ) {
            if protocol.trim() != "http/protobuf" {
                return Err(ConfigError::Invalid {
                    name,
                    value: protocol,
                    why: "Agent Host exports over http/protobuf only",
                });
            }
        }
        let headers = match either(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ) {
            Some((name, list)) => parse_headers(&list).ok_or(ConfigError::BadHeader(name))?,
            None => HeaderMap::new(),
        };
        let timeout = match either(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ) {
            Some((name, v)) => Duration::from_millis(positive(name, &v)?),
            None => Duration::from_secs(10),
        };
        let number = |name: &'static str, default: u64| match set(name) {
            Some(v) => positive(name, &v),
            None => Ok(default),
        };
        let schedule_delay = Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?);
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?.min(1 << 20) as usize;
        let max_batch =
            number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?.min(max_queue as u64) as usize;

        let mut resource = vec![(
            "service.name".to_string(),
            Value::String(set("OTEL_SERVICE_NAME").unwrap_or_else(|| "agenthost".into())),
        )];
        resource.push((
            "service.version".into(),
            Value::String(env!("CARGO_PKG_VERSION").into()),
        ));
        if let Some(list) = set("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in list.split(',').filter_map(|kv| kv.split_once('=')) {
                let (k, v) = (k.trim(), percent_decode(v.trim()));
                // OTEL_SERVICE_NAME wins over a service.name given here.
                if k.is_empty() || (k == "service.name" && set("OTEL_SERVICE_NAME").is_some()) {
                    continue;
                }
                match resource.iter_mut().find(|(key, _)| key == k) {
                    Some(slot) => slot.1 = Value::String(v),
                    None => resource.push((k.to_string(), Value::String(v))),
                }
            }
        }
        Ok(Some(Self {
            endpoint,
            headers,
            timeout,
            resource,
            schedule_delay,
            max_queue,
            max_batch,
        }))
    }
}

fn positive(name: &'static str, value: &str) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            why: "a whole number above zero is needed",
        }),
    }
}

/// `key=value,key2=value2` with percent-encoded values (the spec's form).
fn parse_headers(list: &str) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
        let (k, v) = entry.split_once('=')?;
        let name = HeaderName::from_bytes(k.trim().as_bytes()).ok()?;
        let mut value = HeaderValue::from_str(&percent_decode(v.trim())).ok()?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Some(headers)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&b| (b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert!(config(&[]).unwrap().is_none());
        assert!(config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])
            .unwrap()
            .is_none());
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")];
        assert!(config(&on).unwrap().is_some());
        let off = [on[0], ("OTEL_SDK_DISABLED", "true")];
        assert!(config(&off).unwrap().is_none());
        let off = [on[0], ("OTEL_TRACES_EXPORTER", "none")];
        assert!(config(&off).unwrap().is_none());
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is_the_base_gets_the_path() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://c:4318/v1/traces");
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t/custom"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "https://t/custom");
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        let e = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")]).unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{e}");
        let e = config(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(e.to_string().contains("http/protobuf only"), "{e}");
        let e = config(&[base, ("OTEL_BSP_SCHEDULE_DELAY", "soon")]).unwrap_err();
        assert!(e.to_string().contains("OTEL_BSP_SCHEDULE_DELAY"), "{e}");
        // A bad header is named, its value never shown.
        let e = config(&[base, ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=s3cret")]).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn headers_are_decoded_and_hidden_from_debug() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20s3cret,x-team=a",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.headers["authorization"], "Bearer s3cret");
        assert_eq!(c.headers["x-team"], "a");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn the_resource_names_the_service() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,service.instance.id=host-a,deployment.environment=prod",
            ),
            ("OTEL_SERVICE_NAME", "agents"),
        ])
        .unwrap()
        .unwrap();
        let get = |k: &str| {
            c.resource
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("service.name"), Some(Value::String("agents".into())));
        assert_eq!(
            get("service.instance.id"),
            Some(Value::String("host-a".into()))
        );
        assert_eq!(
            get("deployment.environment"),
            Some(Value::String("prod".into()))
        );
    }
}
