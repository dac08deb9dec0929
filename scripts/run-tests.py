#!/usr/bin/env python3
"""Runs the workspace's compiled test binaries side by side.

`cargo test` runs one test binary after another, and ours spend part of
their time waiting on Docker, PostgreSQL and child processes, which other
binaries can use. This runs up to --jobs binaries at once (each still runs its
own tests on its own threads), longest first, each with its log in
LOG_DIR/tests/NAME.log. A binary's result is printed as it ends; a failed
one's whole log is printed. Exits non-zero if any binary failed.

The binaries come from the JSON messages of
`cargo test --no-run --message-format=json-render-diagnostics`, so a new
test target is run without being listed here. A binary in SUITES holds one
suite per top-level module (tests/e2e.rs): each suite is a job of its own,
the binary run with `--exact` and the suite's tests. Doc tests run through
`cargo test --doc` as one more job, and --command adds others (the page's
and the MCP tests).

Jobs do not share state: each test host has its own sandbox owner (Docker
network and firewall chains named after the binary, or the suite given in
AGENTHOST_TEST_GROUP), its own data directory, and on PostgreSQL its own
database.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Binaries run as one job per top-level module.
SUITES = {"agenthost-tests/e2e"}

# The jobs that took longest in earlier runs start first, so the last to
# finish is not a long one started late. Others follow in name order.
LONGEST_FIRST = [
    "agenthost/cli",
    "agenthost-tests/e2e::fleet",
    "agenthost-tests/e2e::hardening",
    "agenthost-tests/e2e::server",
    "page",
    "agenthost-tests/e2e::plugin_components",
    "agenthost-tests/e2e::sandbox",
    "agenthost-tests/e2e::llm_providers",
    "agenthost-tests/e2e::approvals",
    "agenthost-tests/e2e::plugin_runtime",
    "mcp",
]


def binaries(messages: Path):
    """(name, working directory, executable) of every compiled test binary."""
    seen = set()
    for line in messages.read_text().splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        target = msg["target"]
        package_dir = Path(msg["manifest_path"]).parent
        package = package_name(package_dir)
        kind = target["kind"][0]
        name = f"{package}/{target['name']}" if kind == "test" else f"{package}/{kind}:{target['name']}"
        if name not in seen:
            seen.add(name)
            yield name, package_dir, msg["executable"]


def suites(name: str, cwd: Path, exe: str):
    """One job per top-level module of a SUITES binary: (name, cwd, command, env)."""
    listed = subprocess.run([exe, "--list", "--format", "terse"], cwd=cwd, capture_output=True, text=True)
    if listed.returncode != 0:
        sys.exit(f"cannot list the tests of {name} ({exe}):\n{listed.stdout}{listed.stderr}")
    listing = listed.stdout
    tests = {}
    for line in listing.splitlines():
        if line.endswith(": test"):
            test = line[: -len(": test")]
            tests.setdefault(test.split("::", 1)[0], []).append(test)
    for module, names in sorted(tests.items()):
        yield f"{name}::{module}", cwd, [exe, "--exact", *names], {"AGENTHOST_TEST_GROUP": module}


def package_name(package_dir: Path) -> str:
    for line in (package_dir / "Cargo.toml").read_text().splitlines():
        if line.startswith("name = "):
            return line.split("=", 1)[1].strip().strip('"')
    return package_dir.name


def order(jobs):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(jobs, key=lambda j: (rank.get(j[0], len(rank)), j[0]))


def summary_line(log: Path) -> str:
    """libtest's `test result:` line, or pytest's `N passed in S` line."""
    lines = [l.strip() for l in log.read_text(errors="replace").splitlines()]
    results = [l for l in lines if l.startswith("test result:") or re.match(r"^=*\s*\d+ passed", l)]
    return results[-1] if results else "(no result line)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("messages", type=Path, help="cargo's JSON messages from `cargo test --no-run`")
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--log-dir", type=Path, required=True)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--command", nargs=2, action="append", default=[], metavar=("NAME", "COMMAND"),
                    help="one more job: a shell-quoted command run in the workspace")
    args = ap.parse_args()

    logs = args.log_dir / "tests"
    logs.mkdir(parents=True, exist_ok=True)
    jobs = []
    for name, cwd, exe in binaries(args.messages):
        if name in SUITES:
            jobs += suites(name, cwd, exe)
        else:
            jobs.append((name, cwd, [exe], {}))
    if not jobs:
        print("no test binaries in the cargo messages", file=sys.stderr)
        return 1
    jobs.append(("doc tests", args.workspace, ["cargo", "test", "--workspace", "--locked", "--doc"], {}))
    jobs += [(name, args.workspace, shlex.split(cmd), {}) for name, cmd in args.command]
    jobs = order(jobs)

    # One compiled-component cache for every job: the test hosts, the
    # `agenthost` processes the tests start and the Python suites' hosts.
    # A 12 MB JavaScript or Python component then compiles once per run
    # (about 20 s of CPU in a debug build) rather than once per data
    # directory.
    os.environ.setdefault("AGENTHOST_CACHE_DIR", str(Path(tempfile.gettempdir()) / "agenthost-test-compiled-cache"))

    t0 = time.monotonic()
    pending = list(jobs)
    running = {}  # Popen -> (name, log path, start)
    done = []  # (name, seconds, ok)
    while pending or running:
        while pending and len(running) < args.jobs:
            name, cwd, cmd, env = pending.pop(0)
            log = logs / (name.replace("/", "--").replace(":", "-").replace(" ", "-") + ".log")
            out = open(log, "wb")
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **env})
            out.close()
            running[proc] = (name, log, time.monotonic())
        pid, status = os.wait()
        proc = next((p for p in running if p.pid == pid), None)
        if proc is None:
            continue
        proc.returncode = os.waitstatus_to_exitcode(status)
        name, log, start = running.pop(proc)
        secs = time.monotonic() - start
        ok = proc.returncode == 0
        done.append((name, secs, ok))
        if ok:
            print(f"  ok      {name} ({secs:.0f} s): {summary_line(log)}", flush=True)
        else:
            print(f"  FAILED  {name} ({secs:.0f} s, exit {proc.returncode}), its log ({log}):", flush=True)
            sys.stdout.write(log.read_text(errors="replace"))
            print(f"  ^^^^^^  end of {name}'s log", flush=True)

    wall = time.monotonic() - t0
    busy = sum(s for _, s, _ in done)
    failed = [n for n, _, ok in done if not ok]
    print(f"  {len(done)} test jobs in {wall:.0f} s (their own times, side by side, add up to {busy:.0f} s)")
    if failed:
        print(f"  failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
