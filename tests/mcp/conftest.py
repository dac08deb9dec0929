"""Fixtures for the MCP tests: a real host (the `agenthost` binary, real
Docker sandboxes, SQLite) with the first-party tools and a third-party one
installed, and tokens for two users. The MCP client is the official Python
SDK (`mcp` from PyPI), installed by scripts/setup.sh."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = Path(os.environ.get("AGENTHOST_BIN", TARGET / "debug" / "agenthost"))
DIST = Path(os.environ.get("AGENTHOST_PLUGINS_DIR", ROOT / "dist" / "plugins"))


class Host:
    def __init__(self, process, url, data_dir, tokens):
        self.process, self.url, self.data_dir, self.tokens = process, url, data_dir, tokens

    @property
    def mcp(self):
        return f"{self.url}/mcp"

    def api(self, user):
        """An HTTP client for the REST API as `user`."""
        return httpx2.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=120)

    def events(self, user, session_id):
        with self.api(user) as api:
            res = api.get(f"/api/v1/sessions/{session_id}/events")
            res.raise_for_status()
            return res.json()["events"]


def run(data_dir, *args):
    out = subprocess.run([str(BIN), "--data-dir", str(data_dir), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def host():
    assert BIN.is_file(), f"{BIN} is missing: run `cargo build -p agenthost` (scripts/test.sh does)"
    data_dir = Path(tempfile.mkdtemp(prefix="agenthost-mcp-"))
    run(data_dir, "plugin", "install", str(DIST / "computer.wasm"), "--grant", "computer")
    run(data_dir, "plugin", "install", str(DIST / "bash.wasm"), "--grant", "shell")
    run(data_dir, "plugin", "install", str(DIST / "editor.wasm"), "--grant", "files")
    run(data_dir, "plugin", "install", str(DIST / "convert-case.wasm"))
    run(data_dir, "plugin", "install", str(DIST / "scripted-policy.wasm"))
    tokens = {user: run(data_dir, "token", "create", "--user", user).strip() for user in ("ada", "bob")}
    process = subprocess.Popen(
        [
            str(BIN), "--data-dir", str(data_dir), "serve",
            "--listen", "127.0.0.1:0",
            "--sandbox-owner", "mcp-test",
            "--default-policy", "scripted-policy",
            "--warm", "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"http://(\S+)", line)
    assert match, f"the host did not start: {line!r}"
    yield Host(process, f"http://{match.group(1)}", data_dir, tokens)
    process.terminate()
    process.wait(timeout=30)
    shutil.rmtree(data_dir, ignore_errors=True)
