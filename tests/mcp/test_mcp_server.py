"""Agent Host as an MCP server, driven by the official Python MCP SDK over
Streamable HTTP (both the initialize handshake and the stateless 2026-07-28
protocol) and through `agenthost mcp stdio`."""

import asyncio
import base64
import os
import re
import time

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import BIN

PNG = b"\x89PNG\r\n\x1a\n"


def connect(host, user, mode="legacy", session=None):
    """An SDK client on /mcp as `user`; `session` names an existing one."""
    headers = {"Authorization": f"Bearer {host.tokens[user]}"}
    if session:
        headers["Agenthost-Session"] = session
    http = httpx2.AsyncClient(headers=headers, timeout=120)
    return Client(streamable_http_client(host.mcp, http_client=http), mode=mode)


def session_of(client):
    """The Agent Host session a handshake connection drives (the server
    says so in its instructions)."""
    match = re.search(r"drives session (ses_\w+)", client.instructions or "")
    assert match, client.instructions
    return match.group(1)


def text_of(result):
    return "".join(block.text for block in result.content if block.type == "text")


def leaves(error):
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def wait_for(condition, what, timeout=30):
    """Polls the REST API until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_token_is_required_and_the_metadata_says_how(host):
    res = httpx2.post(host.mcp, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert res.status_code == 401
    challenge = res.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
    metadata_url = re.search(r'resource_metadata="([^"]+)"', challenge).group(1)
    metadata = httpx2.get(metadata_url).json()
    assert metadata["resource"] == host.mcp
    assert metadata["bearer_methods_supported"] == ["header"]
    assert res.json()["error"]["code"] == "unauthorized"

    wrong = httpx2.post(host.mcp, headers={"Authorization": "Bearer not-a-token"}, json={})
    assert wrong.status_code == 401

    # The SDK client cannot connect either.
    async def refused():
        http = httpx2.AsyncClient(timeout=30)
        async with Client(streamable_http_client(host.mcp, http_client=http), mode="legacy") as c:
            await c.list_tools()

    with pytest.raises(BaseException) as caught:
        asyncio.run(refused())
    assert any(isinstance(e, MCPError) for e in leaves(caught.value)), caught.value


def test_a_new_connection_drives_a_new_session_with_its_tools(host):
    async def drive():
        async with connect(host, "ada") as c:
            session = session_of(c)
            tools = {t.name: t for t in (await c.list_tools()).tools}
            # The session's tools with their schemas: first-party and third-party.
            assert {"computer", "bash", "str_replace_based_edit_tool", "convert_case"} <= set(tools)
            assert tools["bash"].input_schema["type"] == "object"
            assert "command" in tools["bash"].input_schema["properties"]

            echoed = await c.call_tool("bash", {"command": "echo hello from mcp"})
            assert not echoed.is_error
            assert text_of(echoed) == "hello from mcp\n"

            shot = await c.call_tool("computer", {"action": "screenshot"})
            assert not shot.is_error
            images = [b for b in shot.content if b.type == "image"]
            assert len(images) == 1 and images[0].mime_type == "image/png"
            assert base64.b64decode(images[0].data).startswith(PNG)

            cased = await c.call_tool("convert_case", {"text": "Agent Host", "to": "snake"})
            assert text_of(cased) == "agent_host", text_of(cased)

            # A tool error is a result the client's model reads, not a failure.
            bad = await c.call_tool("bash", {})
            assert bad.is_error and "invalid input" in text_of(bad)
            unknown = await c.call_tool("no_such_tool", {})
            assert unknown.is_error and "no tool named" in text_of(unknown)

            # The screenshot is a resource of the session.
            resources = (await c.list_resources()).resources
            uris = [r.uri for r in resources if str(r.uri).startswith(f"agenthost://sessions/{session}/images/")]
            assert uris, resources
            read = await c.read_resource(uris[0])
            assert base64.b64decode(read.contents[0].blob).startswith(PNG)
            return session

    session = asyncio.run(drive())

    # Every call is stored in the session, as the page shows it.
    events = host.events("ada", session)
    calls = [e["payload"]["name"] for e in events if e["kind"] == "tool_call"]
    assert calls == ["bash", "computer", "convert_case", "bash", "no_such_tool"]
    assert all(e["payload"]["via"] == "mcp" for e in events if e["kind"] == "tool_call")
    results = [e for e in events if e["kind"] == "tool_result"]
    assert results[0]["payload"]["content"] == [{"type": "text", "text": "hello from mcp\n"}]
    assert results[1]["payload"]["content"][0]["type"] == "image"
    assert [r["payload"]["is_error"] for r in results] == [False, False, False, True, True]


def test_two_clients_drive_two_isolated_sessions(host):
    async def drive():
        async with connect(host, "ada") as a, connect(host, "bob") as b:
            sa, sb = session_of(a), session_of(b)
            assert sa != sb
            await a.call_tool("bash", {"command": "echo ada-was-here > ~/mark"})
            seen_by_b = await b.call_tool("bash", {"command": "cat ~/mark 2>&1 || true"})
            assert "ada-was-here" not in text_of(seen_by_b)
            seen_by_a = await a.call_tool("bash", {"command": "cat ~/mark"})
            assert text_of(seen_by_a) == "ada-was-here\n"
            return sa

    session_a = asyncio.run(drive())

    # Bob cannot drive (or read) Ada's session by naming it.
    async def intrude():
        async with connect(host, "bob", mode="legacy", session=session_a) as c:
            await c.call_tool("bash", {"command": "echo intruder"})

    with pytest.raises(BaseException) as caught:
        asyncio.run(intrude())
    assert any("no such session" in str(e) for e in leaves(caught.value)), caught.value
    assert all("intruder" not in str(e["payload"]) for e in host.events("ada", session_a))


def test_a_stateless_client_names_its_session(host):
    with host.api("ada") as api:
        created = api.post("/api/v1/sessions", json={"title": "named"})
        assert created.status_code == 201, created.text
        session = created.json()["id"]

    async def drive(named):
        async with connect(host, "ada", mode="auto", session=named) as c:
            assert c.protocol_version == "2026-07-28"
            tools = (await c.list_tools()).tools
            assert any(t.name == "bash" for t in tools)
            return await c.call_tool("bash", {"command": "echo stateless"})

    assert text_of(asyncio.run(drive(session))) == "stateless\n"
    assert any(e["kind"] == "tool_result" for e in host.events("ada", session))

    # Without the header there is no connection to hang a session on.
    with pytest.raises(BaseException) as caught:
        asyncio.run(drive(None))
    assert any("Agenthost-Session" in str(e) for e in leaves(caught.value)), caught.value


def test_long_calls_report_progress_and_cancelling_stops_them(host):
    async def drive():
        async with connect(host, "ada") as c:
            session = session_of(c)
            progress = []

            async def on_progress(value, total, message):
                progress.append((value, message))

            slow = await c.call_tool("bash", {"command": "sleep 2.5; echo done"}, progress_callback=on_progress)
            assert text_of(slow) == "done\n"
            assert progress and "`bash` running" in progress[0][1]

            started = asyncio.Event()

            async def on_start(value, total, message):
                started.set()

            call = asyncio.create_task(
                c.call_tool("bash", {"command": "sleep 60; echo never"}, progress_callback=on_start)
            )
            await asyncio.wait_for(started.wait(), 30)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            # The session takes the next call at once.
            after = await c.call_tool("bash", {"command": "echo next"})
            assert text_of(after) == "next\n"
            # And the cancelled command was stopped in the sandbox, not left
            # to run: the exec service kills it when the host hangs up.
            deadline = time.monotonic() + 10
            while True:
                left = await c.call_tool("bash", {"command": "pgrep -fc '[s]leep 60' || true"})
                if text_of(left).strip() == "0":
                    break
                assert time.monotonic() < deadline, "the cancelled command still runs"
                await asyncio.sleep(0.2)
            return session

    session = asyncio.run(drive())

    def cancelled_result():
        results = [e for e in host.events("ada", session) if e["kind"] == "tool_result"]
        return [r for r in results if r["payload"]["content"][0].get("text") == "cancelled by the client"]

    cancelled = wait_for(cancelled_result, "the cancelled call's result")
    assert cancelled[0]["payload"]["is_error"] is True
    outputs = [str(e["payload"]["content"]) for e in host.events("ada", session) if e["kind"] == "tool_result"]
    assert all("never" not in o for o in outputs), outputs


def test_mcp_stdio_bridges_a_subprocess_client(host):
    async def drive(mode):
        params = StdioServerParameters(
            command=str(BIN),
            args=["mcp", "stdio", "--new", "--server", host.url],
            env={"AGENTHOST_TOKEN": host.tokens["bob"], "PATH": os.environ["PATH"]},
        )
        async with Client(params, mode=mode) as c:
            tools = (await c.list_tools()).tools
            assert any(t.name == "computer" for t in tools)
            shot = await c.call_tool("computer", {"action": "screenshot"})
            assert any(b.type == "image" for b in shot.content)
            return await c.call_tool("bash", {"command": "echo over stdio"})

    for mode in ("legacy", "auto"):
        result = asyncio.run(drive(mode))
        assert text_of(result) == "over stdio\n", mode

    # The bridge made bob's sessions, titled so on the page.
    with host.api("bob") as api:
        titles = [s["title"] for s in api.get("/api/v1/sessions").json()["sessions"]]
    assert titles.count("MCP (stdio)") >= 2
