"""Ask before acting, in the page: the operator's rule (`echo ask-*`
commands) and the session's own switch make a bash call wait for the
person, who approves or denies it in the page or over the API; a reload in
the middle loses nothing, and an unanswered request times out."""

import json
import urllib.request

from playwright.sync_api import expect

from test_chat import new_session, send

WAITING = ".approval.waiting"


def approve_over_api(host, session_id, tool_use_id):
    request = urllib.request.Request(
        f"{host.url}/api/v1/sessions/{session_id}/approvals/{tool_use_id}",
        data=json.dumps({"approve": True, "note": "approved from a script"}).encode(),
        headers={"authorization": f"Bearer {host.token}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 202


def test_approve_in_the_page_after_a_reload_in_the_middle(page):
    new_session(page)
    send(page, "run `echo ask-ui-approve`")
    card = page.locator(WAITING)
    expect(card).to_be_visible(timeout=60_000)
    expect(card).to_contain_text("^echo ask-")
    expect(page.locator('.step[data-tool="bash"] .step-result')).to_have_text("waiting for approval…")

    # The request is stored: a reload shows it waiting, once.
    page.reload()
    expect(page.locator(WAITING)).to_have_count(1, timeout=30_000)
    page.locator(f"{WAITING} button.approve").click()
    expect(page.locator('.step[data-tool="bash"] .step-result')).to_contain_text("ask-ui-approve", timeout=60_000)
    expect(page.locator('.approval[data-outcome="approved"]')).to_have_count(1)
    expect(page.locator(".approval button")).to_have_count(0)
    expect(page.locator("#status")).to_have_text("idle", timeout=60_000)


def test_deny_with_a_note_under_ask_before_acting(page):
    new_session(page)
    # No operator rule matches this command: the session's switch asks.
    page.check("#ask-first")
    expect(page.locator('#messages [data-kind="settings_changed"]')).to_contain_text("Ask before acting is on")
    send(page, "run `echo never-runs`")
    expect(page.locator(WAITING)).to_contain_text("ask before acting is on", timeout=60_000)
    page.fill(f"{WAITING} .approval-note", "not without a dry run")
    page.locator(f"{WAITING} button.deny").click()
    expect(page.locator(".approval-outcome.denied")).to_contain_text("not without a dry run", timeout=30_000)
    # The policy got the denial with the note as the step's error.
    expect(page.locator('#messages [data-kind="assistant_message"]').last).to_contain_text(
        "the person denied this call: not without a dry run", timeout=60_000
    )
    expect(page.locator('.step[data-tool="bash"] .step-result')).not_to_contain_text("never-runs")
    # The switch survives a reload.
    page.reload()
    expect(page.locator("#ask-first")).to_be_checked(timeout=30_000)


def test_an_answer_over_the_api_shows_in_the_open_page(page, host):
    new_session(page)
    send(page, "run `echo ask-ui-api`")
    expect(page.locator(WAITING)).to_be_visible(timeout=60_000)
    session_id = page.evaluate("() => window.agenthost.current.id")
    tool_use_id = page.locator(WAITING).get_attribute("data-tool-use-id")
    approve_over_api(host, session_id, tool_use_id)
    expect(page.locator(".approval-outcome.approved")).to_contain_text("approved from a script", timeout=30_000)
    expect(page.locator('.step[data-tool="bash"] .step-result')).to_contain_text("ask-ui-api", timeout=60_000)


def test_an_unanswered_request_times_out_in_the_page(hasty_page):
    page = hasty_page
    new_session(page)
    send(page, "run `echo ask-ui-timeout`")
    expect(page.locator(WAITING)).to_be_visible(timeout=60_000)
    page.reload()
    expect(page.locator(".approval-outcome.timed_out")).to_contain_text("nobody answered", timeout=60_000)
    expect(page.locator(".approval button")).to_have_count(0)
    expect(page.locator('.step[data-tool="bash"] .step-result')).to_contain_text("not run", timeout=30_000)
