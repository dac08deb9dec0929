//! The OTLP trace export request in protobuf's wire format, written by hand:
//! six small messages do not justify a protobuf code generator in the
//! build. Field numbers are those of `opentelemetry/proto/trace/v1/
//! trace.proto`, `common/v1/common.proto`, `resource/v1/resource.proto` and
//! `collector/trace/v1/trace_service.proto`; the tests decode what this
//! writes with the official Python bindings of those files.
//!
//! Fields holding their default value are left out, as protobuf does.

use super::span::{FinishedSpan, SpanKind, Value};

/// protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// `ExportTraceServiceRequest` with one `ResourceSpans` holding one
/// `ScopeSpans`: the resource is this process, the scope this crate.
pub fn export_request(resource: &[(String, Value)], spans: &[FinishedSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + 128);
    message(&mut out, 1, |rs| {
        // ResourceSpans.resource
        message(rs, 1, |r| {
            for (k, v) in resource {
                key_value(r, 1, k, v);
            }
        });
        // ResourceSpans.scope_spans
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                string(scope, 1, env!("CARGO_PKG_NAME"));
                string(scope, 2, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                message(ss, 2, |s| write_span(s, span));
            }
        });
    });
    out
}

fn write_span(out: &mut Vec<u8>, span: &FinishedSpan) {
    bytes(out, 1, &span.trace_id.to_be_bytes());
    bytes(out, 2, &span.span_id.to_be_bytes());
    if let Some(parent) = span.parent_span_id {
        bytes(out, 4, &parent.to_be_bytes());
    }
    string(out, 5, &span.name);
    varint_field(out, 6, span_kind(span.kind));
    fixed64(out, 7, span.start_unix_nanos);
    fixed64(out, 8, span.end_unix_nanos);
    for (k, v) in &span.attributes {
        key_value(out, 9, k, v);
    }
    if span.dropped_attributes > 0 {
        varint_field(out, 10, u64::from(span.dropped_attributes));
    }
    for event in &span.events {
        message(out, 11, |e| {
            fixed64(e, 1, event.unix_nanos);
            string(e, 2, &event.name);
            for (k, v) in &event.attributes {
                key_value(e, 3, k, v);
            }
            if event.dropped_attributes > 0 {
                varint_field(e, 4, u64::from(event.dropped_attributes));
            }
        });
    }
    if span.dropped_events > 0 {
        varint_field(out, 12, u64::from(span.dropped_events));
    }
    if let Some(error) = &span.error {
        // Status { message = 2; code = 3 } with STATUS_CODE_ERROR = 2.
        message(out, 15, |s| {
            string(s, 2, error);
            varint_field(s, 3, 2);
        });
    }
}

fn span_kind(kind: SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
    }
}

/// `KeyValue { key = 1; value = 2 (AnyValue) }`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    message(out, field, |kv| {
        string(kv, 1, key);
        // AnyValue is a oneof: the chosen member is written even when it
        // holds its type's default, or the value would read back as unset.
        message(kv, 2, |any| match value {
            Value::String(s) => {
                tag(any, 1, LEN);
                varint(any, s.len() as u64);
                any.extend_from_slice(s.as_bytes());
            }
            Value::Bool(b) => {
                tag(any, 2, VARINT);
                varint(any, u64::from(*b));
            }
            Value::Int(i) => {
                tag(any, 3, VARINT);
                // int64 is written as its two's complement, ten bytes if negative.
                varint(any, *i as u64);
            }
            Value::Double(d) => {
                tag(any, 4, FIXED64);
                any.extend_from_slice(&d.to_le_bytes());
            }
        });
    });
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, VARINT);
        varint(out, v);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        tag(out, field, LEN);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

/// A nested message: written to a scratch buffer first, because its length
/// prefix comes before it.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    tag(out, field, LEN);
    varint(out, inner.len() as u64);
    out.extend_from_slice(&inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        varint(&mut out, -1i64 as u64);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn a_string_field_is_tag_length_bytes() {
        let mut out = Vec::new();
        string(&mut out, 5, "hi");
        assert_eq!(out, [(5 << 3) | 2, 2, b'h', b'i']);
    }

    #[test]
    fn defaults_are_left_out_but_a_chosen_oneof_member_is_kept() {
        let mut out = Vec::new();
        varint_field(&mut out, 6, 0);
        fixed64(&mut out, 7, 0);
        string(&mut out, 5, "");
        assert!(out.is_empty());
        let mut out = Vec::new();
        key_value(&mut out, 9, "ok", &Value::Bool(false));
        // KeyValue{ key "ok", value AnyValue{ bool_value: false } }
        assert_eq!(out, [(9 << 3) | 2, 8, 10, 2, b'o', b'k', 18, 2, 16, 0]);
    }
}
