"""Agent Host exec service: shell commands and file access inside the sandbox.

The host reaches it over a port published on 127.0.0.1 only. Each connection
carries one JSON request line and gets one JSON response line. Every request
must carry the per-sandbox secret the host set in AGENTHOST_EXEC_SECRET.

One op keeps its connection: `spawn` starts a long-lived process (an MCP
server speaking stdio) and, after its reply line, the connection is the
process's stdin and stdout until either side closes; closing it kills the
process group.

It exists because `docker exec` costs tens of milliseconds per call; this
answers a `true` in a few. Output is bounded (excess is drained and counted,
never buffered) and every command has a timeout that kills its process group.
"""

import base64
import hmac
import json
import os
import select
import signal
import socket
import socketserver
import subprocess
import threading
import time

SECRET = os.environ.pop("AGENTHOST_EXEC_SECRET", "").encode()
ROOTS = [os.path.realpath(p) for p in os.environ.get("AGENTHOST_FILE_ROOTS", "/home/agent:/tmp").split(":") if p]
MAX_OUTPUT = 1 << 20
MAX_FILE = 64 << 20
DEFAULT_TIMEOUT_MS = 120_000
MAX_TIMEOUT_MS = 600_000


class Refused(Exception):
    """A request the caller must fix: reported as kind `invalid`."""


def allowed(path, must_exist=True):
    if not isinstance(path, str) or not path.startswith("/"):
        raise Refused(f"`{path}` is not an absolute path")
    real = os.path.realpath(path)
    if not any(real == r or real.startswith(r + "/") for r in ROOTS):
        shown = path if real == path else f"{path} (resolves to {real})"
        raise Refused(f"{shown} is outside the allowed folders: {', '.join(ROOTS)}")
    if must_exist and not os.path.lexists(real):
        raise FileNotFoundError(f"{path} does not exist")
    return real


def drain(stream, sink, budget):
    """Reads everything, keeps at most budget[0] bytes, counts the rest."""
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return
        keep = chunk[: max(0, budget[0])]
        sink.append(keep)
        budget[0] -= len(chunk)


def hung_up(conn):
    """Whether the host closed its end of the connection (it sends nothing
    after its request line, so a readable socket means end of stream)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def run(req):
    command = req.get("command") or ""
    if not command.strip():
        raise Refused("the command is empty")
    timeout_ms = min(int(req.get("timeout_ms") or DEFAULT_TIMEOUT_MS), MAX_TIMEOUT_MS)
    max_output = min(int(req.get("max_output") or MAX_OUTPUT), MAX_OUTPUT)
    cwd = req.get("cwd") or os.environ.get("HOME", "/")
    if not os.path.isdir(cwd):
        raise Refused(f"working directory {cwd} does not exist")
    env = dict(os.environ)
    env.update({k: v for k, v in req.get("env") or []})
    proc = subprocess.Popen(
        ["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    budget = [max_output]
    out, err = [], []
    readers = [threading.Thread(target=drain, args=(s, sink, budget), daemon=True)
               for s, sink in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    timed_out = False
    conn = req.get("_conn")
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            # Out of time, or the host hung up (the call was cancelled):
            # either way nobody will read the output, so the command stops.
            gone = conn is not None and hung_up(conn)
            if gone or time.monotonic() >= deadline:
                timed_out = not gone
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
    for r in readers:
        r.join(timeout=2)
    code = proc.returncode
    return {
        "stdout": b"".join(out).decode("utf-8", "replace"),
        "stderr": b"".join(err).decode("utf-8", "replace"),
        "exit_code": code if code is not None and code >= 0 else None,
        "truncated": budget[0] < 0,
        "timed_out": timed_out,
    }


def entry(path, name):
    st = os.lstat(path)
    if os.path.islink(path):
        kind = "symlink"
    elif os.path.isdir(path):
        kind = "directory"
    elif os.path.isfile(path):
        kind = "file"
    else:
        kind = "other"
    return {"name": name, "kind": kind, "size": st.st_size}


def read(req):
    real = allowed(req.get("path"))
    if os.path.isdir(real):
        raise Refused(f"{req['path']} is a directory")
    size = os.path.getsize(real)
    if size > MAX_FILE:
        raise Refused(f"{req['path']} is {size} bytes, over the {MAX_FILE}-byte read limit")
    with open(real, "rb") as f:
        return {"content": base64.b64encode(f.read()).decode()}


def write(req):
    path = req.get("path")
    allowed(os.path.dirname(path) if isinstance(path, str) else path, must_exist=False)
    real = allowed(path, must_exist=False)
    data = base64.b64decode(req.get("content") or "")
    if len(data) > MAX_FILE:
        raise Refused(f"{len(data)} bytes is over the {MAX_FILE}-byte write limit")
    os.makedirs(os.path.dirname(real), exist_ok=True)
    tmp = f"{real}.agenthost-tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, real)
    return {}


def list_dir(req):
    real = allowed(req.get("path"))
    if not os.path.isdir(real):
        raise Refused(f"{req['path']} is not a directory")
    return {"entries": [entry(os.path.join(real, n), n) for n in sorted(os.listdir(real))]}


def stat(req):
    path = req.get("path")
    real = allowed(path, must_exist=False)
    if not os.path.lexists(real):
        return {"entry": None}
    return {"entry": entry(real, os.path.basename(real.rstrip("/")) or "/")}


def start(req):
    """Starts a process for `spawn`: argv as given, stdin and stdout piped,
    stderr to a log file in /tmp (bounded by the tmpfs)."""
    argv = req.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise Refused("argv must be a non-empty list of strings")
    cwd = req.get("cwd") or os.environ.get("HOME", "/")
    if not os.path.isdir(cwd):
        raise Refused(f"working directory {cwd} does not exist")
    env = dict(os.environ)
    env.update({k: v for k, v in req.get("env") or []})
    name = "".join(c for c in str(req.get("name") or "process") if c.isalnum() or c in "-_")[:64]
    log = open(f"/tmp/agenthost-{name}.log", "ab")
    try:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log, start_new_session=True, bufsize=0,
        )
    finally:
        log.close()


def pipe(sock_file, proc):
    """Copies the connection to the process's stdin and its stdout back,
    until one side ends; then the process group is killed."""
    def inbound():
        try:
            while True:
                chunk = sock_file.read1(65536) if hasattr(sock_file, "read1") else sock_file.read(65536)
                if not chunk:
                    break
                proc.stdin.write(chunk)
        except OSError:
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    return threading.Thread(target=inbound, daemon=True)


OPS = {"ping": lambda req: {"pong": time.time()}, "run": run, "read": read, "write": write,
       "list": list_dir, "stat": stat}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(96 << 20)
        try:
            req = json.loads(line)
            if not SECRET or not hmac.compare_digest(str(req.get("secret", "")).encode(), SECRET):
                resp = {"error": {"kind": "unauthorized", "message": "wrong exec secret"}}
            elif req.get("op") == "spawn":
                proc = start(req)
                self.wfile.write(json.dumps({"ok": {"pid": proc.pid}}).encode() + b"\n")
                self.wfile.flush()
                inbound = pipe(self.rfile, proc)
                inbound.start()
                try:
                    while True:
                        chunk = proc.stdout.read(65536)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass
                finally:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
                    # Ends the inbound copy's read (which holds the reader's
                    # lock, so closing the reader alone would wait forever)
                    # and tells the host the process is gone.
                    try:
                        self.request.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            else:
                op = OPS.get(req.get("op"))
                if op is None:
                    raise Refused(f"unknown op {req.get('op')!r}")
                req["_conn"] = self.request
                resp = {"ok": op(req)}
        except Refused as e:
            resp = {"error": {"kind": "invalid", "message": str(e)}}
        except FileNotFoundError as e:
            resp = {"error": {"kind": "failed", "message": str(e)}}
        except Exception as e:  # reported to the caller; the service stays up
            resp = {"error": {"kind": "failed", "message": f"{type(e).__name__}: {e}"}}
        self.wfile.write(json.dumps(resp).encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    with Server(("0.0.0.0", 7000), Handler) as server:
        server.serve_forever()
