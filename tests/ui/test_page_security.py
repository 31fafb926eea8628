"""The cost page against an attacker's flow file and against other web pages: names,
models and errors are shown as text (never run), the server is read-only and answers
only its own host name. On a real dev server and a real headless Chromium."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from playwright.async_api import expect
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError

import baton_temporal as baton
from baton_temporal.workflow._details import escape_cell

from .conftest import md_cells, screenshot_path
from .ui_steps import ATTACK, EVIL_STEP, STEPS, Forged, boom, evil

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EVIL_MODEL = "<svg/onload=window.__pwned=4>"


async def test_attacker_text_is_shown_never_run(
    client, task_queue, baton_worker, ledger, page_server, browser
) -> None:
    workflow_id = f"xss-<script>window.__pwned=5</script>-{uuid.uuid4().hex[:6]}"
    flow = (
        baton.new(workflow_name="<b>evil</b>", workflow_id=workflow_id)
        .add("evil_step", evil, {"workflow_model": EVIL_MODEL})
        .add("boom", boom, deps=["evil_step"])
    )
    async with baton_worker(steps=STEPS, ledger=ledger):
        handle = await flow.start(client, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(f"{page_server.url}flow?id={quote(workflow_id)}")
        await expect(page.locator("#steps tr[data-state=failed]")).to_have_count(1, timeout=20_000)
        # Shown as text: the names, the model and the error message.
        await expect(page.locator("#flow-id")).to_have_text(workflow_id)
        await expect(page.locator("#steps td.model").first).to_have_text(EVIL_MODEL)
        await expect(page.locator('#steps tr[data-step="boom"] td.err')).to_contain_text(
            "window.__pwned=1"
        )
        await expect(page.locator('#steps tr[data-step="evil_step"] td').first).to_have_text(
            f"evil_step ({EVIL_STEP})"
        )
        shot = screenshot_path("attacker-flow")
        await page.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot: {shot}")
        await page.goto(page_server.url)
        await expect(page.locator("#flows a", has_text="xss-<script>")).to_have_count(1)
        # ...and never run: no script of theirs, no image, no handler fired.
        assert await page.evaluate("typeof window.__pwned") == "undefined"
        assert await page.locator("main img, main script, main iframe").count() == 0
        assert dialogs == []

        # The Temporal UI's markdown: every cell escaped, the table intact.
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        text = meta.current_details
        assert "<" not in text and ">" not in text.replace("&gt;", ""), text
        assert md_cells("boom", "failed") in text
        assert md_cells("evil\\_step", "completed", escape_cell(EVIL_MODEL)) in text


async def test_forged_step_states_are_shown_as_text(
    client, task_queue, baton_worker, ledger, page_server, browser
) -> None:
    """A workflow of anyone's may answer ``baton.steps`` with markup for names."""
    workflow_id = f"forged-{uuid.uuid4().hex[:6]}"
    async with baton_worker(workflows=[Forged]):
        handle = await client.start_workflow(Forged.run, id=workflow_id, task_queue=task_queue)
        page = await browser.new_page()
        await page.goto(f"{page_server.url}flow?id={quote(workflow_id)}")
        rows = page.locator("#steps tr[data-step]")
        await expect(rows).to_have_count(2, timeout=20_000)
        names = await rows.evaluate_all("rows => rows.map(r => r.dataset.step)")
        assert sorted(names) == sorted([ATTACK, "</table><h1>owned</h1>"])
        await expect(page.locator("#steps td.err").first).to_contain_text(ATTACK)
        await expect(page.locator("main h1")).to_have_count(1)  # the page's own title only
        assert await page.evaluate("typeof window.__pwned") == "undefined"
        assert await page.locator("main img, main script").count() == 0
        await handle.signal(Forged.finish)
        await handle.result()


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class Http:
    """A plain HTTP client (the standard library's), run in a thread."""

    def __init__(self, port: int) -> None:
        self.port = port

    def _call(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers)
            got = conn.getresponse()
            return Answer(got.status, {k.lower(): v for k, v in got.getheaders()}, got.read())
        finally:
            conn.close()

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None):
        return await asyncio.to_thread(self._call, method, path, headers or {})

    async def get(self, path: str, headers: dict[str, str] | None = None):
        return await self.request("GET", path, headers)


async def test_read_only_and_own_host_only(page_server) -> None:
    base = "/"
    http = Http(page_server.port)
    if True:
        page = await http.get(base)
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            answer = await http.request(method, base + "api/flows")
            assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
        # DNS rebinding: a page on evil.example that resolves to 127.0.0.1 gets nothing.
        rebound = await http.get(base + "api/flows", headers={"Host": "evil.example:80"})
        assert rebound.status_code == 403
        assert "open the page by the URL printed" in rebound.json()["error"]
        missing = await http.get(base + "api/flow?id=" + quote("no-such-flow"))
        assert (
            missing.status_code == 404 and "no workflow 'no-such-flow'" in missing.json()["error"]
        )
        no_id = await http.get(base + "api/flow")
        assert no_id.status_code == 400 and "?id=WORKFLOW_ID" in no_id.json()["error"]
        bad_since = await http.get(base + "api/costs?since=1y")
        assert bad_since.status_code == 400 and "90m, 24h, 7d" in bad_since.json()["error"]
        assert (await http.get(base + "static/../../etc/passwd")).status_code == 404
        assert (await http.get(base + "api/costs?since=24h")).json()["points"] == []
