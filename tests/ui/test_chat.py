"""The chat page in headless Chromium against a real host."""

import json
import re

from playwright.sync_api import expect


def new_session(page):
    before = page.locator("#sessions li").count()
    previous = page.evaluate("() => window.agenthost.current?.id ?? null")
    page.click("#new-session")
    # A create with no warm desktop left boots one; on 2 busy cores (the
    # host, Chromium, the pool refilling) that can take several seconds.
    expect(page.locator("#sessions li")).to_have_count(before + 1, timeout=30_000)
    # Open means loaded and streaming: the page has the session and its
    # socket has delivered the snapshot.
    page.wait_for_function(
        "prev => window.agenthost.current && window.agenthost.current.id !== prev && window.agenthost.stream",
        arg=previous,
    )
    expect(page.locator("#banner")).to_be_hidden()
    expect(page.locator("#input")).to_be_enabled()
    expect(page.locator("#status")).to_have_text("idle")


def send(page, text):
    page.fill("#input", text)
    page.press("#input", "Enter")


def wait_idle_after(page, count):
    """Waits until the chat holds more than `count` stored events and the
    run they started has ended: a stored `idle` after them (the status
    badge alone still reads `idle` in the moment before the run starts)."""
    page.wait_for_function(
        """n => [...document.querySelectorAll('#messages [data-kind="state_changed"]')]
            .some(e => Number(e.dataset.seq) > n && e.textContent.startsWith('Ready'))""",
        arg=count,
        timeout=60_000,
    )
    expect(page.locator("#status")).to_have_text("idle")


def seqs(page):
    """Sequence numbers of the stored events the chat shows (a tool step
    shows its call and its result), in page order."""
    return page.eval_on_selector_all(
        "#messages [data-seq]",
        """els => els.flatMap(e => [Number(e.dataset.seq)]
            .concat(e.dataset.resultSeq ? [Number(e.dataset.resultSeq)] : []))""",
    )


def test_a_message_runs_tool_steps_with_screenshots(page):
    new_session(page)
    send(page, "run `echo hello-ui` then take a screenshot")
    expect(page.locator('.step[data-tool="bash"] .step-result')).to_contain_text("hello-ui", timeout=60_000)
    thumb = page.locator('.step[data-tool="computer"] img.thumb')
    expect(thumb).to_be_visible(timeout=60_000)
    page.wait_for_function("img => img.naturalWidth > 0", arg=thumb.element_handle())
    expect(page.locator('#messages [data-kind="assistant_message"]').last).to_contain_text("Done")
    # The thumbnail opens full size, and the dialog closes with the keyboard.
    thumb.click()
    expect(page.locator("#image-dialog")).to_be_visible()
    page.wait_for_function("() => document.getElementById('image-full').naturalWidth > 0")
    page.keyboard.press("Escape")
    expect(page.locator("#image-dialog")).to_be_hidden()
    # The session got its title from the message.
    expect(page.locator("#session-title")).to_contain_text("run `echo hello-ui`")


def test_the_first_screenshot_shows_the_panel(page):
    new_session(page)
    send(page, "take a screenshot")
    thumb = page.locator('.step[data-tool="computer"] img.thumb').first
    expect(thumb).to_be_visible(timeout=60_000)
    page.wait_for_function("img => img.naturalWidth > 0", arg=thumb.element_handle())
    # Distinct colours in a band of rows of the stored screenshot.
    bands = page.evaluate(
        """img => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d');
            g.drawImage(img, 0, 0);
            const colours = (y0, y1) => {
                const d = g.getImageData(0, y0, c.width, y1 - y0).data;
                const seen = new Set();
                for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
                return seen.size;
            };
            return {top: colours(0, 100), panel: colours(c.height - 34, c.height - 2)};
        }""",
        thumb.element_handle(),
    )
    # A plain background above, not one flat colour overall: the panel's
    # launchers and clock along the bottom.
    assert bands["top"] == 1, bands
    assert bands["panel"] > 20, bands


def test_the_live_view_shows_the_desktop(page):
    new_session(page)
    expect(page.locator("#desktop-state")).to_have_text("live", timeout=60_000)
    canvas = page.locator("#screen canvas")
    expect(canvas).to_be_visible()
    # The agent opens a terminal; the live view shows it: real pixels, not
    # the blank (one-colour) canvas of a view that shows nothing.
    send(page, "run `nohup xterm -geometry 80x24+40+40 >/dev/null 2>&1 &`")
    expect(page.locator("#status")).to_have_text("idle", timeout=60_000)
    page.wait_for_function(
        """() => {
            const c = document.querySelector('#screen canvas');
            if (!c || c.width < 100) return false;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const colours = new Set();
            let lit = 0, samples = 0;
            for (let i = 0; i < d.length; i += 4 * 53) {
                colours.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]);
                samples++;
                if (d[i] + d[i+1] + d[i+2] > 600) lit++;
            }
            return colours.size >= 2 && lit / samples > 0.05;
        }""",
        timeout=30_000,
    )
    # Taking over lets input through and tells the chat; handing back too.
    page.click("#takeover")
    expect(page.locator("#takeover")).to_have_attribute("aria-pressed", "true")
    expect(page.locator('#messages [data-kind="control_changed"]')).to_contain_text("You took over")
    assert page.evaluate("() => window.agenthost.rfb.viewOnly") is False
    page.click("#takeover")
    expect(page.locator("#takeover")).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("() => window.agenthost.rfb.viewOnly") is True


def test_reload_and_reconnect_keep_every_event_exactly_once(page):
    new_session(page)
    send(page, "run `echo one`")
    wait_idle_after(page, 0)
    before = seqs(page)
    assert before == list(range(1, len(before) + 1)), before

    shown = page.locator("#messages [data-seq]").count()
    page.reload()
    page.wait_for_function("n => document.querySelectorAll('#messages [data-seq]').length >= n", arg=shown)
    assert seqs(page) == before

    # A dropped socket shows a banner, reconnects with its cursor, and
    # nothing is shown twice.
    page.evaluate("() => window.agenthost.stream.drop()")
    expect(page.locator("#banner")).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden(timeout=30_000)
    send(page, "run `echo two`")
    wait_idle_after(page, len(before))
    after = seqs(page)
    assert after == list(range(1, len(after) + 1)), after
    expect(page.locator('.step[data-tool="bash"] .step-result').last).to_contain_text("two")


def test_a_finished_session_takes_a_follow_up(page):
    new_session(page)
    send(page, "done")
    expect(page.locator("#status")).to_have_text("finished", timeout=60_000)
    # The composer stays open and says what a message does now.
    expect(page.locator("#input")).to_be_enabled()
    expect(page.locator("#input")).to_have_attribute("placeholder", re.compile("follow-up"))
    send(page, "run `echo follow-up-ran`")
    expect(page.locator('.step[data-tool="bash"] .step-result').last).to_contain_text(
        "follow-up-ran", timeout=60_000
    )
    expect(page.locator("#status")).to_have_text("idle", timeout=60_000)
    # The follow-up brought a desktop back to the live view.
    expect(page.locator("#desktop-state")).to_have_text("live", timeout=60_000)


def test_icons_are_drawn_not_font_glyphs(page):
    new_session(page)
    row = page.locator("#sessions li.selected")
    for name in ["pencil", "trash"]:
        svg = row.locator(f'svg[data-icon="{name}"]')
        expect(svg).to_be_visible()
        box = svg.bounding_box()
        assert box and box["width"] >= 12 and box["height"] >= 12, (name, box)
    # No button's label is a pictograph a font may lack.
    labels = page.eval_on_selector_all("button", "bs => bs.map(b => b.textContent)")
    assert not [l for l in labels if re.search(r"[\u2190-\u2bff\U0001F000-\U0001FAFF]", l)], labels


def test_the_html_export_opens_offline_with_its_screenshots(page, tmp_path):
    new_session(page)
    send(page, "run `echo exported-text` then take a screenshot")
    expect(page.locator('.step[data-tool="computer"] img.thumb')).to_be_visible(timeout=60_000)
    expect(page.locator("#status")).to_have_text("idle", timeout=60_000)
    with page.expect_download() as info:
        page.select_option("#export", "html")
    path = tmp_path / "session.html"
    info.value.save_as(path)
    # A fresh page with no network at all: everything is in the file.
    offline = page.context.browser.new_context()
    offline.set_offline(True)
    view = offline.new_page()
    view.goto(path.as_uri())
    expect(view.locator("body")).to_contain_text("exported-text")
    shot = view.locator("img.shot").first
    expect(shot).to_be_visible()
    view.wait_for_function("img => img.complete && img.naturalWidth >= 1000", arg=shot.element_handle())
    assert view.locator("script").count() == 0
    offline.close()


def test_the_policy_picker_switches_the_policy(page):
    new_session(page)
    page.select_option("#policy-picker", "anthropic-policy")
    expect(page.locator('#messages [data-kind="policy_switched"]')).to_contain_text(
        "from scripted-policy to anthropic-policy"
    )
    # The new policy answers, streamed from the (local) Anthropic server.
    send(page, "hello")
    expect(page.locator('#messages [data-kind="assistant_message"]').last).to_have_text(
        "Hello from a streamed reply.", timeout=60_000
    )
    # The provider reported 10 input and 7 output tokens; at the list
    # price of the default model that is $0.000135.
    expect(page.locator("#usage")).to_have_text("10 in / 7 out tokens · ≈ $0.00014")


def test_a_prompt_injected_form_is_inert(page, host):
    new_session(page)
    page.select_option("#policy-picker", "anthropic-policy")
    expect(page.locator('#messages [data-kind="policy_switched"]')).to_be_visible()
    send(page, "inject a form")
    reply = page.locator('#messages [data-kind="assistant_message"]').last
    expect(reply).to_contain_text("Please sign in again", timeout=60_000)
    # The text survives; nothing that could pose as a form or restyle the page.
    for tag in ["form", "input", "button", "style"]:
        assert reply.locator(tag).count() == 0, tag
    assert reply.locator("[style]").count() == 0
    assert reply.locator(".toast").count() == 0
    expect(page.locator("#messages")).to_be_visible()
    # And the browser would refuse to submit a form anyway.
    import urllib.request

    csp = urllib.request.urlopen(host.url + "/").headers["content-security-policy"]
    assert "form-action 'none'" in csp, csp


def test_an_api_error_appears_as_a_message(page):
    new_session(page)
    page.fill("#input", "x" * (70 << 10))
    page.click("#send")
    toast = page.locator(".toast").last
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("message_too_large")
    assert page.locator("#messages [data-seq]").count() == 0


def test_plugins_view_and_a_narrow_window(page):
    page.click("#show-plugins")
    row = page.locator('#plugins-list tr[data-plugin="bash"]')
    expect(row).to_contain_text("shell")
    page.keyboard.press("Escape")
    page.set_viewport_size({"width": 600, "height": 900})
    expect(page.locator("#toggle-sidebar")).to_be_visible()
    expect(page.locator(".sidebar")).to_be_hidden()
    page.click("#toggle-sidebar")
    expect(page.locator(".sidebar")).to_be_visible()


def test_a_session_driven_over_mcp_shows_live_on_the_page(page, host):
    """An MCP client (the official Python SDK) drives the open session; the
    page shows its calls as they happen, marked as the client's."""
    import asyncio
    import threading

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    new_session(page)
    session = page.evaluate("() => window.agenthost.current.id")
    outcome = {}

    async def drive():
        headers = {"Authorization": f"Bearer {host.token}", "Agenthost-Session": session}
        http = httpx2.AsyncClient(headers=headers, timeout=120)
        async with Client(streamable_http_client(f"{host.url}/mcp", http_client=http), mode="legacy") as c:
            result = await c.call_tool("bash", {"command": "echo driven-over-mcp"})
            outcome["text"] = "".join(b.text for b in result.content if b.type == "text")

    # The SDK runs its own event loop, beside Playwright's.
    worker = threading.Thread(target=lambda: asyncio.run(drive()))
    worker.start()
    step = page.locator('.step[data-tool="bash"][data-via="mcp"]')
    expect(step.locator(".step-result")).to_contain_text("driven-over-mcp", timeout=60_000)
    expect(step.locator(".via")).to_have_text("via MCP")
    worker.join(timeout=60)
    assert outcome.get("text") == "driven-over-mcp\n", outcome
