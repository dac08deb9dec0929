"""A session's desktop recording, switched on in the page: when the run
ends the chat offers the video, and Chromium plays it as WebM."""

from playwright.sync_api import expect

from test_chat import new_session, send


def test_a_recorded_run_plays_as_webm_in_the_page(page):
    new_session(page)
    page.check("#record")
    expect(page.locator('#messages [data-kind="settings_changed"]')).to_contain_text("recording is on")
    send(page, "type recorded-run then take a screenshot")
    offer = page.locator('#messages [data-kind="recording_saved"]')
    expect(offer).to_contain_text("Recording of this run", timeout=60_000)
    offer.locator("button.play").click()
    video = offer.locator("video")
    expect(video).to_be_visible()
    # Chromium decoded its header: a WebM of the desktop's size that plays.
    page.wait_for_function(
        "v => v.readyState >= 1 && v.videoWidth === 1280 && v.videoHeight === 800 && v.duration > 0",
        arg=video.element_handle(),
        timeout=30_000,
    )
    assert page.evaluate("v => v.canPlayType('video/webm; codecs=\"vp8\"')", video.element_handle()) != ""
    # It plays: the clock moves.
    page.evaluate("v => { v.muted = true; return v.play(); }", video.element_handle())
    page.wait_for_function("v => v.currentTime > 0", arg=video.element_handle(), timeout=30_000)
    # Switched off, the next run is not recorded.
    page.uncheck("#record")
    expect(page.locator('#messages [data-kind="settings_changed"]').last).to_contain_text("recording is off")
