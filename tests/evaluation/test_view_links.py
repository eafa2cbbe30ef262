"""The report's links into m1 view: run names as the viewer gives them, and URLs that survive any
name (spaces, slashes, "&", "#", non-ASCII) intact."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from m1.evaluation.view_links import item_url, items_url, point_name, run_names


def test_runs_are_named_by_folder_then_parent_then_number(tmp_path: Path) -> None:
    a, b = tmp_path / "x" / "run", tmp_path / "y" / "run"
    assert run_names([tmp_path / "base", tmp_path / "tuned"]) == ["base", "tuned"]
    assert run_names([a, b]) == ["x/run", "y/run"]
    assert run_names([a, a]) == ["x/run", "x/run (2)"]


def test_urls_carry_any_name_intact() -> None:
    name = point_name("base run/é & co #1", "B128_K4")
    url = urlsplit(items_url(run="base run/é & co #1", source=None, point=name, correct="false"))
    assert url.path == "/items" and not url.fragment
    assert parse_qsl(url.query) == [("run", "base run/é & co #1"), ("point", name), ("correct", "false")]
    assert items_url() == "/items"
    page = urlsplit(item_url("a/b?c#d", runs=["r 1", "r2"]))
    assert unquote(page.path) == "/items/a/b?c#d" and page.path.count("/") == 2
    assert parse_qsl(page.query) == [("run", "r 1"), ("run", "r2")]
