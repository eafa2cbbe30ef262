"""The report's embedded traces on real runs of the default model: for readers without `m1 view`,
report.html shows a bounded sample of items, flipped ones first, with inserted text and probes
marked as the viewer marks them, and each item links to its page in the viewer; rows with odd
fields (probe entries that are not objects, a probability that is a word) are drawn, not a crash."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from m1.evaluation.report import write_report
from m1.evaluation.report.items import ITEMS_SHOWN
from m1.evaluation.view_links import VIEW_URL

from .conftest import client_for
from .stores import Answer, make_items, make_run, odd_rows, predictions


@pytest.mark.slow
def test_the_report_embeds_flipped_items_first_with_marked_traces(real_runs, tmp_path: Path) -> None:
    roots = [real_runs["budget"], real_runs["early"]]
    text = write_report(roots, tmp_path / "report").html.read_text()
    items = re.findall(r"<section class=item>(.*?)</section>", text, re.S)
    order = [json.loads(line)["uid"] for line in (roots[0] / "items.jsonl").read_text().splitlines()]
    assert 0 < len(items) <= ITEMS_SHOWN and len(items) == min(ITEMS_SHOWN, len(order))
    shown = [re.search(r"· ([0-9a-zA-Z_-]+)</a>", item).group(1) for item in items]
    summary = json.loads((roots[0] / "metrics.json").read_text())
    flipped = list(dict.fromkeys(entry["uid"] for flips in summary.get("flips", [])
                                 for entry in flips["strict"]["flipped"]))
    assert shown[:len(flipped)] == flipped[:ITEMS_SHOWN]  # flipped first, in the report's order
    assert shown[len(flipped):] == [uid for uid in order if uid not in flipped][:ITEMS_SHOWN - len(flipped)]
    # Every point's end of thinking (and answer prefix) is m1's and is marked inserted; so are its "Wait"s.
    for item in items:
        points = re.findall(r"<details class=point>.*?</details>", item, re.S)
        assert len(points) == 3  # B16_K1, B32_K1 of one run, B32_K1_EE1 of the other
        assert all(re.search(r"<span class=inserted>\s*&lt;/think&gt;", p) for p in points)
    assert re.search(r"<span class=inserted>\s*Wait</span>", text)
    assert "<span class=probe>◆ " in text  # the early-exit run's probes
    client = client_for(*roots)
    for link in re.findall(rf'<h3><a class=view href="{re.escape(VIEW_URL)}(/items/[^"]*)"', text):
        assert client.get(html.unescape(link)).status_code == 200


def test_the_report_draws_rows_with_odd_fields(tmp_path: Path) -> None:
    items = make_items({"S1": 3})
    root = make_run(tmp_path, "odd", items, {"B16_K1": {item.uid: [Answer("A")] for item in items}}, [16])
    odd_rows(predictions(root, "B16_K1"))
    text = write_report([root], tmp_path / "report").html.read_text()
    assert "<span class=probe>◆ probe</span>" in text and "<span class=probe>◆ A</span>" in text
