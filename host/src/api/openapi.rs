//! The OpenAPI document. The paths are written by hand in `openapi.json`;
//! the event schemas are generated from the Rust types that write and read
//! events ([`crate::event`]), so the document cannot drift from them.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use crate::event::{EventBody, Source};

const PATHS: &str = include_str!("openapi.json");

/// The served document, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| build().to_string())
}

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

fn build() -> Value {
    // A test parses this file, so a broken edit fails the suite rather
    // than a running host.
    let mut doc: Value = serde_json::from_str(PATHS).unwrap_or_else(|_| json!({}));
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "#/components/schemas/".into())
        .into_generator();
    let variants: Vec<Value> = EventBody::payload_schemas(&mut generator)
        .into_iter()
        .map(|(kind, payload)| {
            json!({
                "title": kind,
                "type": "object",
                "required": ["kind", "payload"],
                "properties": {"kind": {"const": kind}, "payload": payload},
            })
        })
        .collect();
    let source = generator.subschema_for::<Source>();
    let mut schemas = serde_json::Map::new();
    for (name, schema) in generator.take_definitions(true) {
        schemas.insert(name, schema);
    }
    schemas.insert(
        "EventKind".into(),
        json!({
            "type": "string",
            "enum": EventBody::KINDS,
            "description": "The kinds this host writes. A newer host may write others: \
                clients show or skip a kind they do not know, never fail on it.",
        }),
    );
    schemas.insert(
        "Event".into(),
        json!({
            "type": "object",
            "description": "One thing that happened in a session. Stored events carry a \
                gapless `seq` from 1; `assistant_delta` frames are only streamed live \
                (no `id`, `seq` or `ts`), and the whole text is then stored once as \
                `assistant_message`. Every `tool_call` gets exactly one `tool_result` \
                with its `id` as `tool_use_id`.",
            "required": ["kind", "session_id", "source", "payload"],
            "properties": {
                "id": {"type": "string"},
                "seq": {"type": "integer", "minimum": 1},
                "session_id": {"type": "string"},
                "kind": {"$ref": "#/components/schemas/EventKind"},
                "source": source,
                "ts": {"type": "integer", "description": "milliseconds since the Unix epoch"},
            },
            "oneOf": variants,
        }),
    );
    if let Some(existing) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        existing.extend(schemas);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_paths_parse_and_every_reference_resolves() {
        let _: Value = serde_json::from_str(PATHS).expect("openapi.json is valid JSON");
        let doc: Value = serde_json::from_str(document()).unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "unresolved {r}");
        }
    }

    #[test]
    fn every_event_kind_has_a_payload_schema() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        let variants = doc["components"]["schemas"]["Event"]["oneOf"]
            .as_array()
            .unwrap();
        let kinds: Vec<&str> = variants
            .iter()
            .map(|v| v["properties"]["kind"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, EventBody::KINDS);
        let tool_result = &doc["components"]["schemas"]["ToolResult"];
        assert!(tool_result["required"]
            .as_array()
            .unwrap()
            .contains(&json!("tool_use_id")));
    }

    /// Every route the server answers is in the document with its
    /// methods, and the document lists no route the server lacks. axum
    /// cannot list a router's routes, so they are read from the sources
    /// that declare them (one `.route(path, methods)` per path).
    #[test]
    fn the_document_lists_exactly_the_routes_the_server_has() {
        // Every file of this module, so a new router cannot be missed.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let sources: Vec<(&str, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "rs"))
            .map(|path| {
                let root = path.file_name().is_some_and(|n| n == "mod.rs");
                let prefix = if root { "" } else { "/api/v1" };
                (prefix, std::fs::read_to_string(path).unwrap())
            })
            .collect();
        let mut served = std::collections::BTreeSet::new();
        for (prefix, source) in &sources {
            for call in source.split(".route(").skip(1) {
                let Some((path, rest)) = call
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|c| c.split_once('"'))
                else {
                    continue;
                };
                if !path.starts_with('/') {
                    continue;
                }
                let methods = &rest[..rest.find(")\n").unwrap_or(rest.len())];
                // mod.rs declares the root routes and, inside `api`, the
                // ones nested under /api/v1; the page's own `/` is not API.
                let prefix = match path {
                    "/" => continue,
                    "/healthz" | "/readyz" | "/metrics" => "",
                    _ if prefix.is_empty() => "/api/v1",
                    _ => *prefix,
                };
                for method in ["get", "post", "put", "patch", "delete"] {
                    if methods.contains(&format!("{method}(")) {
                        served.insert((format!("{prefix}{path}"), method.to_string()));
                    }
                }
            }
        }
        let doc: Value = serde_json::from_str(document()).unwrap();
        let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
        assert!(
            served.len() > 30,
            "the route scan found {} routes",
            served.len()
        );
    }

    /// The chat page renders every event kind the document lists, and
    /// handles no kind the document does not know.
    #[test]
    fn the_page_and_the_document_agree_on_event_kinds() {
        let page = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/src/app.js"));
        let start = page
            .find("function handleFrame")
            .expect("app.js has handleFrame");
        let body = &page[start..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        let handled: Vec<&str> = body
            .split("case \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let doc: Value = serde_json::from_str(document()).unwrap();
        let kinds = |schema: &str, pointer: &str| -> Vec<String> {
            doc["components"]["schemas"][schema]
                .pointer(pointer)
                .and_then(Value::as_array)
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect()
        };
        let events = kinds("EventKind", "/enum");
        let frames = kinds("LiveFrame", "/properties/kind/enum");
        for kind in &events {
            assert!(
                handled.contains(&kind.as_str()),
                "the page ignores `{kind}`"
            );
        }
        for kind in &handled {
            assert!(
                events.iter().chain(&frames).any(|k| k == kind),
                "the page handles `{kind}`, which the document does not list"
            );
        }
    }

    fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
