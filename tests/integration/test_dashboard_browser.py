"""The operator dashboard in headless Chromium (Debian's package) against a live worker (issue 8)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.support.worker import TopicReader, WorkerProcess, make_key, produce, write_policy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.kafka, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} missing: install Debian's chromium (make browser / apt-get install chromium)"),
]

TOKEN = "ops-dashboard-token-0123456789"

POLICY = """
[defaults]
idle = "1h"
absolute = "12h"

[[rules]]
name = "admins"
roles = ["admin"]
idle = "30m"

[ids]
revoke = ["critical", "high"]
step_up = ["medium"]
lookback = "10m"
"""


async def test_dashboard_shows_decisions_opens_a_timeline_and_revokes_by_hand(kafka_bootstrap, tmp_path):
    from playwright.async_api import async_playwright

    from streams.config import Settings
    from streams.topics import create_topics

    prefix = f"t{uuid.uuid4().hex[:8]}."
    await create_topics(Settings.load({"LAPSE_BOOTSTRAP": kafka_bootstrap, "LAPSE_TOPIC_PREFIX": prefix}))
    policy = write_policy(tmp_path / "policy.toml", POLICY)
    worker = WorkerProcess(kafka_bootstrap, prefix, f"{prefix}app", policy, make_key(tmp_path), tmp_path,
                           extra_env={"LAPSE_ADMIN_TOKEN": TOKEN}).start()
    tag = uuid.uuid4().hex[:5]
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    try:
        await worker.wait_ready()
        now = time.time()
        async with TopicReader(kafka_bootstrap, prefix + "revocations") as rev, \
                TopicReader(kafka_bootstrap, prefix + "audit") as aud, async_playwright() as pw:
            await produce(kafka_bootstrap, prefix, [
                ("identity", {"type": "login", "ts": now, "user": alice, "session": f"{alice}-web", "ip": "10.7.0.5",
                              "roles": ["admin"], "app": "console", "channel": "web"}),
                ("activity", {"type": "activity", "ts": now + 0.2, "user": alice, "session": f"{alice}-web",
                              "ip": "10.7.0.5", "action": "GET", "resource": "/admin/users"}),
                ("identity", {"type": "login", "ts": now, "user": bob, "session": f"{bob}-mob", "ip": "10.7.0.9",
                              "roles": ["staff"], "app": "mail", "channel": "mobile"}),
            ])
            await aud.wait_for(lambda vs: sum(v.get("kind") == "session_start" and v["user"] in (alice, bob)
                                              for v in vs) == 2, 30)

            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"http://127.0.0.1:{worker.web_port}/dashboard")

            # 1. the page asks for the token; a wrong one is refused, the right one opens the dashboard
            await page.fill("#token", "definitely-not-the-token")
            await page.click("#save-token")
            await page.wait_for_selector("#login-err:has-text('unauthorized')", timeout=10_000)
            await page.fill("#token", TOKEN)
            await page.fill("#operator", "ann")
            await page.click("#save-token")
            await page.wait_for_selector("#app:not(.hidden)", timeout=10_000)
            await page.wait_for_function("document.getElementById('live-count').textContent === '2'", timeout=15_000)
            assert "admins" in await page.inner_text("#by-rule")
            version = await page.inner_text("#policy-version")
            assert len(version) == 12

            # 2. an IDS alert on alice's IP: the decision appears in the feed
            await produce(kafka_bootstrap, prefix, [("ids-alerts", {
                "type": "alert", "ts": time.time(), "severity": "critical", "signature": "ET TROJAN beacon",
                "src_ip": "10.7.0.5", "dest_ip": "203.0.113.80"})])
            row = page.locator(f"#feed tr.decision[data-session='{alice}-web']")
            await row.wait_for(timeout=90_000)
            text = await row.inner_text()
            assert "ids_alert" in text and "ET TROJAN beacon" in text

            # 3. clicking it opens alice's timeline: sessions, decisions, events and audit, a score plot
            await row.click()
            await page.wait_for_selector(f"#tl-title:has-text('{alice}')", timeout=15_000)
            await page.wait_for_selector("#tl-events td:has-text('event:login')", timeout=15_000)
            assert "ids_alert" in await page.inner_text("#tl-decisions")
            events = await page.inner_text("#tl-events")
            assert "audit:session_end" in events and "event:activity" in events
            assert await page.locator("#plot path, #plot circle").count() >= 3

            # 4. search bob's session, revoke it by hand (two clicks: arm, confirm)
            await page.fill("#search", f"{bob}-mob")
            await page.select_option("#search-kind", "session")
            await page.click("#search-go")
            await page.wait_for_selector(f"#tl-title:has-text('{bob}-mob')", timeout=15_000)
            button = page.locator(f"button.revoke[data-session='{bob}-mob']")
            await page.fill("#revoke-note", "suspicious mail forwarding rule")
            await button.click()
            await page.wait_for_selector(f"button.revoke[data-session='{bob}-mob']:has-text('Confirm')")
            await button.click()
            await page.wait_for_selector("#revoke-msg:has-text('accepted')", timeout=15_000)

            await rev.wait_for(lambda vs: any(v["decision"]["session"] == f"{bob}-mob" for v in vs), 30)
            [d] = [v["decision"] for v in rev.values() if v["decision"]["session"] == f"{bob}-mob"]
            assert (d["reason"], d["evidence"]["operator"], d["evidence"]["note"]) == (
                "manual", "ann", "suspicious mail forwarding rule")
            # the timeline refreshes itself and shows the session ended by hand
            await page.wait_for_selector("#tl-sessions td:has-text('ended: manual')", timeout=15_000)
            await page.wait_for_selector(f"#feed tr.decision[data-session='{bob}-mob']", timeout=15_000)

            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            assert shot.stat().st_size > 10_000
            assert errors == [], errors
            await browser.close()
    finally:
        worker.stop()
