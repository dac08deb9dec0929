"""A stand-in OTLP/HTTP trace collector for the tests.

Each export is decoded with the official OpenTelemetry protobuf bindings
(the `opentelemetry-proto` package, generated from the OTLP .proto files)
and refused with 400 if they cannot read it or it carries fields they do
not know, so a wrong field number or wire type fails the test. Every span
received is printed as one JSON line on stdout, before the export is
answered; a refused export is printed as {"error": ...}. The raw bodies
are kept in DIR for the test to search.

Usage: otlp_collector.py DIR    (prints "listening http://127.0.0.1:PORT")
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

OUT = Path(sys.argv[1])
MAX_BODY = 16 << 20


def unknown_fields(message, path="request"):
    """Paths of messages holding fields the bindings do not know."""
    found = [path] if len(UnknownFieldSet(message)) else []
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:  # protobuf before 6
            repeated = field.label == field.LABEL_REPEATED
        items = value if repeated else [value]
        for i, item in enumerate(items):
            found += unknown_fields(item, f"{path}.{field.name}[{i}]")
    return found


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def emit(record):
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    exports = 0

    def refuse(self, why):
        emit({"error": why})
        self.send_response(400)
        self.end_headers()

    def do_POST(self):
        if self.path != "/v1/traces":
            return self.refuse(f"POST to {self.path}, not /v1/traces")
        if self.headers.get("content-type") != "application/x-protobuf":
            return self.refuse(f"content-type {self.headers.get('content-type')}")
        length = int(self.headers.get("content-length", "0"))
        if length > MAX_BODY:
            return self.refuse(f"{length} bytes")
        body = self.rfile.read(length)
        Handler.exports += 1
        (OUT / f"export-{Handler.exports}.bin").write_bytes(body)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as e:
            return self.refuse(f"not an ExportTraceServiceRequest: {e}")
        unknown = unknown_fields(request)
        if unknown:
            return self.refuse(f"unknown fields in {unknown}")
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    emit({
                        "authorization": self.headers.get("authorization"),
                        "resource": resource,
                        "scope": ss.scope.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": span.kind,
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "events": [
                            {"name": e.name, "attributes": attributes(e.attributes)}
                            for e in span.events
                        ],
                        "status": {"code": span.status.code, "message": span.status.message},
                    })
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
