"""m1 view in a real headless Chromium (driven by Playwright, the system's browser): open the list,
choose a filter and see the count change, open an item and see its thinking with the inserted
"Wait" marked, the two runs side by side; no console error, no failed or outside request.
Screenshots of each view go to the test's folder and, when $M1_TEST_ARTIFACTS is set, there too."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from m1.viewing import Catalog, open_runs
from m1.viewing.app import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(real_runs):
    """The viewer over both real runs, on a port the system picks, in this process."""
    import uvicorn

    app = create_app(Catalog(open_runs([real_runs["budget"], real_runs["early"]])))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the viewer did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def shoot(page, folder: Path, name: str) -> None:
    """A full-page screenshot in `folder`, copied to $M1_TEST_ARTIFACTS when set; both paths printed."""
    shot = folder / name
    page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")
    if os.environ.get("M1_TEST_ARTIFACTS"):
        artifacts = Path(os.environ["M1_TEST_ARTIFACTS"])
        artifacts.mkdir(parents=True, exist_ok=True)
        print(f"screenshot: {shutil.copy2(shot, artifacts / name)}")


def scored(root: Path, key: str) -> dict[str, dict]:
    return {row["uid"]: row for row in map(json.loads, (root / "points" / key / "scored.jsonl").read_text().splitlines())}


def test_list_filter_item_and_side_by_side_in_chromium(served, real_runs, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    right = sum(row["strict_correct"] for row in scored(real_runs["budget"], "B32_K1").values())
    # The value whose count differs from all six items (a tiny model may get none, or all, right).
    value, expected = ("true", right) if right < 6 else ("false", 0)
    problems: list[str] = []
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium.binary, args=list(chromium.flags))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: problems.append(f"console: {message.text}")
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.on("response", lambda response: problems.append(f"{response.status}: {response.url}")
                    if response.status >= 400 else None)
            page.on("request", lambda request: requested.append(request.url))

            page.goto(f"{served}/items")
            assert page.inner_text("#count") == "6"
            assert page.eval_on_selector("link[rel=stylesheet]", "l => l.sheet.cssRules.length") > 20
            shoot(page, tmp_path, "view-list.png")

            # Each choice applies itself (the page's script submits the form).
            with page.expect_navigation():
                page.select_option("select[name=point]", "budget:B32_K1")
            with page.expect_navigation():
                page.select_option("select[name=correct]", value)
            assert page.inner_text("#count") == str(expected)
            assert f"correct={value}" in page.url and "point=budget%3AB32_K1" in page.url
            option = page.inner_text(f"select[name=correct] option[value={value}]")
            assert option.endswith(f"({expected})")
            shoot(page, tmp_path, "view-list-filtered.png")

            uid = json.loads((real_runs["budget"] / "items.jsonl").read_text().splitlines()[0])["uid"]
            page.goto(f"{served}/items/{quote(uid, safe='')}?run=budget&point=B32_K1")
            wait = page.locator("details[open] .part.thinking .inserted").first
            assert wait.text_content() == " Wait"
            marked = wait.evaluate("e => getComputedStyle(e).backgroundColor")
            plain = page.eval_on_selector("details[open] .part.thinking .generated",
                                          "e => getComputedStyle(e).backgroundColor")
            assert marked != plain, "inserted text must look different from generated text"
            assert page.locator(".legend .inserted").is_visible()
            shoot(page, tmp_path, "view-item.png")

            page.goto(f"{served}/items/{quote(uid, safe='')}?point=early:B32_K1_EE1")
            assert page.locator(".column").count() == 2
            assert [page.inner_text(f".column:nth-child({n}) h2") for n in (1, 2)] == ["budget", "early"]
            # The fixed budget beside the early-exit point: both open, the probes marked in the second.
            assert page.locator(".column:nth-child(1) details[open] .key").inner_text() == "B32_K1"
            assert page.locator(".column:nth-child(2) details[open] .probe").count() >= 1
            shoot(page, tmp_path, "view-side-by-side.png")
        finally:
            browser.close()
    assert problems == []
    assert requested and all(url.startswith(served) for url in requested), "a request left the viewer"
    assert {url.rsplit("/", 1)[-1] for url in requested if "/assets/" in url} == {"view.css", "view.js", "icon.svg"}
