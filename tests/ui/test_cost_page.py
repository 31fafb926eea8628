"""The cost page in a real headless Chromium, on a real dev server, ledger and stand-in:
flows listed with their cost, one flow's DAG changing live without a reload, the cost
chart, and the same step table in the Temporal UI's current details."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from decimal import Decimal
from urllib.parse import quote

import pytest
from playwright.async_api import expect
from temporalio.api.sdk.v1 import WorkflowMetadata

import baton_temporal as baton

from .conftest import md_cells, screenshot_path
from .ui_steps import RELEASE, STEPS, ask, hold, report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SONNET, GPT = "claude-sonnet-4-20250514", "gpt-4o"


def cost_flow(workflow_id: str) -> baton.Flow:
    return (
        baton.new(workflow_name="cost-page", workflow_id=workflow_id)
        .add("ask_sonnet", ask, {"workflow_model": SONNET})
        .add("ask_gpt", ask, {"workflow_model": GPT})
        .add("hold", hold, deps=["ask_sonnet", "ask_gpt"])
        .add("report", report, deps=["hold"])
    )


def dollars(text: str) -> Decimal:
    assert text.startswith("$"), text
    return Decimal(text[1:].split()[0])


def close_to(shown: str, cost: Decimal) -> bool:
    """The page rounds a cost to 6 places (4 from a cent up)."""
    return abs(dollars(shown) - cost) <= Decimal("0.000001")


async def details(handle) -> str:
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return meta.current_details


async def test_flow_page_updates_live_and_lists_cost(
    client, task_queue, baton_worker, standin, ledger, page_server, browser
) -> None:
    workflow_id = f"cost-page-{uuid.uuid4().hex[:8]}"
    RELEASE[workflow_id] = asyncio.Event()
    async with baton_worker(steps=STEPS, ledger=ledger, llm=standin.config()):
        handle = await cost_flow(workflow_id).start(client, task_queue=task_queue)
        page = await browser.new_page()
        await page.goto(f"{page_server.url}flow?id={quote(workflow_id)}")

        # The flow's DAG: four steps, three edges, drawn once the first event arrives.
        hold_row = page.locator('#steps tr[data-step="hold"]')
        await expect(hold_row).to_have_attribute("data-state", "running", timeout=20_000)
        await expect(page.locator("#dag g.node")).to_have_count(4)
        await expect(page.locator("#dag path.edge")).to_have_count(3)
        gpt_row = page.locator('#steps tr[data-step="ask_gpt"]')
        await expect(gpt_row.locator("td.model")).to_have_text(GPT)
        await expect(gpt_row.locator("td.cost")).to_contain_text("$0.")
        await expect(gpt_row.locator("td.attempts")).to_have_text("1")

        # The Temporal UI's details: the same table, live (hold still running).
        text = await details(handle)
        assert md_cells("step", "state", "model", "attempt") + " cost |" in text
        assert md_cells("hold", "running", "—", "—") + " — |" in text
        assert md_cells("ask\\_gpt", "completed", "gpt\\-4o", "1") in text

        # Released while the page is open: the rows change without a reload.
        await page.evaluate("window.__samePage = 1")
        released = time.monotonic()
        RELEASE[workflow_id].set()
        report_row = page.locator('#steps tr[data-step="report"]')
        await expect(report_row).to_have_attribute("data-state", "completed", timeout=20_000)
        seen_after = time.monotonic() - released
        assert await page.evaluate("window.__samePage") == 1, "the page was reloaded"
        await expect(hold_row).to_have_attribute("data-state", "completed")
        await expect(page.locator("#flow-status")).to_have_text("completed", timeout=10_000)
        await handle.result()

        totals = await ledger.workflow_totals(workflow_id)
        assert totals.calls == 2 and totals.cost_usd > 0
        await expect(page.locator("#flow-cost")).to_have_text(re.compile(r"^\$0\.0"))
        assert close_to(await page.locator("#flow-cost").inner_text(), totals.cost_usd)
        shot = screenshot_path("flow-page")
        await page.screenshot(path=str(shot), full_page=True)
        print(
            f"\nscreenshot: {shot}  (report completed on the page {seen_after:.2f}s after release)"
        )

        text = await details(handle)
        # Steps without LLM calls show no cost; the flow's cost so far is the ledger's.
        assert md_cells("report", "completed", "—", "1") + " — |" in text, text
        head = "**baton flow** · 4 steps: 4 completed · cost so far $"
        assert text.startswith(head), text
        assert close_to(text[len(head) - 1 :].split()[0], totals.cost_usd), text
        gpt_cells = md_cells("ask\\_gpt", "completed", GPT.replace("-", "\\-"), "1")
        gpt_cost = text.split(gpt_cells)[1].split("|")[0]
        assert dollars(gpt_cost.strip()) > 0, text

        # The list: this flow, its status and its cost; and the chart of cost by model.
        await page.goto(page_server.url)
        row = page.locator(f'#flows tr[data-workflow-id="{workflow_id}"]')
        await expect(row.locator("td.cost")).to_have_text(re.compile(r"^\$0\.0"))
        assert close_to(await row.locator("td.cost").inner_text(), totals.cost_usd)
        await expect(row.locator(".badge")).to_have_text("completed")
        await expect(page.locator("#cost-chart")).to_be_visible()
        bars = page.locator("#cost-chart rect.bar")
        await expect(bars.first).to_be_visible()
        models = set(await bars.evaluate_all("bars => bars.map(b => b.dataset.model)"))
        assert {SONNET, GPT} <= models
        assert Decimal(str(totals.cost_usd)) > 0
        shot = screenshot_path("flow-list")
        await page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
