"""The viewer's pages and JSON API: (slow) filters, paging and item traces against real runs of the
default model, checked against the run's own scored.jsonl and predictions; then bad input on
synthetic runs: a folder that is not a run, a run still being written, a corrupt line, a run
that predates traces, hostile query strings (never a 500), stale indexes, and the API key."""

from __future__ import annotations

import base64
import html
import json
import random
import re
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from m1.data.errors import DataError
from m1.viewing import open_run
from m1.viewing.app import SECURITY_HEADERS
from m1.viewing.query import PARAMS

from .conftest import client_for
from .stores import Answer, make_items, make_run, odd_rows, predictions

# ------------------------------------------------------------------------------ real runs


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def real(real_runs):
    return client_for(real_runs["budget"], real_runs["early"])


@pytest.mark.slow
def test_filters_and_counts_agree_with_the_runs_own_scores(real, real_runs):
    items = [row["uid"] for row in lines(real_runs["budget"] / "items.jsonl")]
    everything = real.get("/api/items").json()
    assert everything["total"] == 6 and [item["uid"] for item in everything["items"]] == items
    for run, key in (("budget", "B16_K1"), ("budget", "B32_K1"), ("early", "B32_K1_EE1")):
        scored = {row["uid"]: row for row in lines(real_runs[run] / "points" / key / "scored.jsonl")}
        rows = {row["uid"]: row for row in lines(real_runs[run] / "points" / key / "predictions.jsonl")}
        at = f"point={run}:{key}"
        for mode in ("strict", "reference"):
            right = [uid for uid in items if scored[uid][f"{mode}_correct"]]
            page = real.get(f"/api/items?{at}&mode={mode}&correct=true").json()
            assert [item["uid"] for item in page["items"]] == right
            wrong = real.get(f"/api/items?{at}&mode={mode}&correct=false").json()
            assert wrong["total"] == 6 - len(right)
            assert page["facets"]["correct"] == {"true": len(right), "false": 6 - len(right)}
            rules = [scored[uid][f"{mode}_rule"] for uid in items]
            facet = real.get(f"/api/items?{at}&mode={mode}").json()["facets"]["rule"]
            assert facet == {rule: rules.count(rule) for rule in set(rules)}
            for rule in set(rules):
                found = real.get(f"/api/items?{at}&mode={mode}&rule={rule}").json()
                assert [item["uid"] for item in found["items"]] == [u for u in items if scored[u][f"{mode}_rule"] == rule]
        silent = [uid for uid in items if scored[uid]["strict_letter"] is None]
        assert [i["uid"] for i in real.get(f"/api/items?{at}&no_answer=true").json()["items"]] == silent
        hit = [uid for uid in items if rows[uid]["thinking_end"] == "budget_reached"]
        assert [i["uid"] for i in real.get(f"/api/items?{at}&budget_hit=true").json()["items"]] == hit
        ascending = real.get(f"/api/items?{at}&sort=thinking_asc").json()["items"]
        tokens = [item["points"][f"{run}:{key}"]["thinking_tokens"] for item in ascending]
        assert tokens == sorted(rows[uid]["thinking_tokens"] for uid in items)


@pytest.mark.slow
def test_flips_and_paging_on_the_real_run(real, real_runs):
    before, after = ({row["uid"]: row["strict_correct"] for row in lines(real_runs["budget"] / "points" / key /
                                                                          "scored.jsonl")} for key in ("B16_K1", "B32_K1"))
    flips = "flip_from=budget:B16_K1&flip_to=budget:B32_K1"
    page = real.get(f"/api/items?{flips}&flip=either").json()
    assert {item["uid"] for item in page["items"]} == {uid for uid in before if before[uid] != after[uid]}
    assert page["facets"]["flip"]["right_to_wrong"] == sum(before[u] and not after[u] for u in before)
    assert page["facets"]["flip"]["wrong_to_right"] == sum(after[u] and not before[u] for u in before)
    first, second = (real.get(f"/api/items?per_page=4&page={n}").json() for n in (1, 2))
    assert (first["pages"], len(first["items"]), len(second["items"])) == (2, 4, 2)
    assert [i["uid"] for i in first["items"] + second["items"]] == [i["uid"] for i in real.get("/api/items").json()["items"]]
    assert [i["position"] for i in second["items"]] == [5, 6]


@pytest.mark.slow
def test_an_item_shows_every_run_point_and_trace(real, real_runs):
    uid = lines(real_runs["budget"] / "items.jsonl")[0]["uid"]
    view = real.get(f"/api/items/{quote(uid, safe='')}").json()
    assert [column["run"] for column in view["runs"]] == ["budget", "early"]
    assert [p["key"] for p in view["runs"][0]["points"]] == ["B16_K1", "B32_K1"]
    for column in view["runs"]:
        for point in column["points"]:
            row = next(r for r in lines(real_runs[column["run"]] / "points" / point["key"] / "predictions.jsonl")
                       if r["uid"] == uid)
            scored = next(r for r in lines(real_runs[column["run"]] / "points" / point["key"] / "scored.jsonl")
                          if r["uid"] == uid)
            [sample] = point["samples"]
            assert sample["note"] is None and sample["thinking_tokens"] == row["thinking_tokens"]
            assert {m: (s["letter"], s["rule"]) for m, s in sample["scores"].items()} == {
                m: (scored[f"{m}_letter"], scored[f"{m}_rule"]) for m in ("strict", "reference")}
            segments = sample["segments"]
            assert "".join(s["text"] for s in segments) == row["thinking"] + row["reply"]
            inserted = [s["text"] for s in segments if s["kind"] == "inserted"]
            # SmolLM2 stops at once: its one Wait is always inserted, then the answer prefix.
            assert " Wait" in [s["text"] for s in segments if s["kind"] == "inserted" and s["part"] == "thinking"]
            assert inserted[-1] == "</think>\n\n" or inserted[-1] == "\n</think>\n\nFinal Answer:"
            probes = [s["probe"] for s in segments if s["kind"] == "probe"]
            assert probes == row.get("probes", [])
            assert any(s["kind"] == "exit" for s in segments) == (row["thinking_end"] == "early_exit")
    page = real.get(f"/items/{quote(uid, safe='')}?point=B32_K1")
    assert page.status_code == 200 and '<span class="inserted"> Wait</span>' in page.text
    assert "◆" in page.text  # the early-exit run's probes


# ------------------------------------------------------------------------------ bad input

ITEMS = make_items({"S1": 4, "S2": 2})


@pytest.fixture()
def writing(tmp_path: Path) -> Path:
    """A run still being written: B32_K1 has 3 of its 6 predictions, nothing scored, run.json unfinished."""
    answers = {"B16_K1": {item.uid: [Answer("A")] for item in ITEMS},
               "B32_K1": {item.uid: [Answer("B", 20)] for item in ITEMS[:3]}}
    return make_run(tmp_path, "writing", ITEMS, answers, [16, 32], finish=False)


def test_a_folder_that_is_not_a_run_is_refused_naming_what_is_missing(tmp_path: Path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("model: x\n")
    with pytest.raises(DataError, match=r"half: not an m1 eval run: run.json, items.jsonl missing"):
        open_run(tmp_path / "half")
    with pytest.raises(DataError, match="no such folder"):
        open_run(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        open_run(tmp_path / "file")


def test_a_run_that_goes_away_while_served_is_named(writing: Path):
    client = client_for(writing)
    assert client.get("/items").status_code == 200
    (writing / "items.jsonl").unlink()
    for path in ("/items", "/api/items", "/items/S1-0"):
        response = client.get(path)
        assert response.status_code == 503 and f"{writing}: not an m1 eval run: items.jsonl missing" in response.text


def test_a_run_still_being_written_shows_what_is_there_and_says_so(writing: Path):
    client = client_for(writing)
    page = client.get("/items")
    assert page.status_code == 200
    assert "writing is still being written" in page.text and "B32_K1: 3 of 6 predictions" in page.text
    api = client.get("/api/items?point=B32_K1&correct=false").json()
    assert api["total"] == 3 and api["runs"][0]["in_progress"]
    assert [p["predictions"] for p in api["runs"][0]["points"]] == [6, 3]
    view = client.get("/api/items/S2-1").json()
    assert [p["key"] for p in view["runs"][0]["points"]] == ["B16_K1"]
    assert client.get("/items/S2-1").status_code == 200


def test_a_corrupt_line_is_named_skipped_and_counted_on_the_page(writing: Path):
    path = predictions(writing, "B16_K1")
    good = path.read_text().splitlines(keepends=True)
    path.write_text("".join([good[0], '{"uid": "S1-1", broken\n', *good[1:]]))
    client = client_for(writing)
    page = client.get("/items")
    assert "writing: 1 line skipped" in page.text
    assert "<code>points/B16_K1/predictions.jsonl</code> line 2: not a JSON line" in page.text
    api = client.get("/api/items").json()
    assert api["runs"][0]["problems"] == 1
    assert api["runs"][0]["skipped"][0] == {"file": "points/B16_K1/predictions.jsonl", "line": 2,
                                             "problem": api["runs"][0]["skipped"][0]["problem"]}
    # The rows on either side of it are there.
    assert client.get("/api/items?point=B16_K1&correct=true").json()["total"] == 6


def test_valid_rows_with_odd_fields_are_shown_not_a_500(writing: Path):
    odd_rows(predictions(writing, "B16_K1"))
    client = client_for(writing)
    for uid in ("S1-0", "S1-1", "S1-2"):
        page, api = client.get(f"/items/{uid}"), client.get(f"/api/items/{uid}")
        assert (page.status_code, api.status_code) == (200, 200), uid
        [sample] = api.json()["runs"][0]["points"][0]["samples"]
        probes = [s["probe"] for s in sample["segments"] if s["kind"] == "probe"]
        odd_probe = {"answer": "A", "probability": "high", "thinking_tokens": 3, "read": "letters"}
        assert probes == {"S1-0": [None], "S1-1": [], "S1-2": [odd_probe]}[uid]
        assert sample["answer_read"] == {"S1-1": None, "S1-2": {"answer": "A", "probability": "high"}}.get(uid)
        assert sample["exit_rule"] is None
    assert "◆ probe</span>" in client.get("/items/S1-0").text
    assert "◆ A</span>" in client.get("/items/S1-2").text  # the word is not shown as a probability


def test_a_run_that_predates_traces_is_shown_unmarked(writing: Path):
    path = predictions(writing, "B16_K1")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "spans"}) + "\n" for row in rows))
    client = client_for(writing)
    [point, _] = client.get("/api/items/S1-0").json()["runs"][0]["points"]
    [sample] = point["samples"]
    assert "predates traces" in sample["note"] and {s["kind"] for s in sample["segments"]} == {"unmarked"}
    assert "predates traces" in client.get("/items/S1-0").text


HOSTILE = ["", " ", "writing:", ":", "::B16_K1", "0", "-1", "1e3", "9" * 40, "NaN", "'; DROP TABLE items; --", "%",
           "_", "\\", "\x00", "\u2028", "🙂", "<script>alert(1)</script>", "../../etc/passwd", "x" * 3000, "१", "a\r\nb"]
# Values each parameter takes, drawn as often as hostile ones, so that many requests reach the SQL.
VALID = {"q": ["organ", "WHICH ORGAN 1"], "source": ["S1", "S2"], "domain": ["Surgery"], "run": ["writing"],
         "point": ["writing:B16_K1", "B32_K1"], "mode": ["strict", "reference"], "correct": ["true", "false"],
         "no_answer": ["true", "false"], "rule": ["boxed_letter", "no_answer"], "budget_hit": ["true", "false"],
         "flip": ["either", "right_to_wrong"], "flip_from": ["writing:B16_K1"], "flip_to": ["B32_K1"],
         "sort": ["thinking_asc", "thinking_desc"], "page": ["1", "2"], "per_page": ["1", "3"]}


def test_hostile_query_strings_never_get_a_500(writing: Path):
    client = client_for(writing)
    draw = random.Random(16)
    names = [*PARAMS, *PARAMS, "junk", "", "point[]", "q\x00"]
    answered = 0
    for _ in range(150):
        pairs = [("point", "writing:B16_K1")] if draw.random() < 0.5 else []
        for name in draw.sample(names, draw.randint(1, 4)):
            pairs.append((name, draw.choice(VALID[name] if name in VALID and draw.random() < 0.6 else HOSTILE)))
        query = "&".join(f"{quote(name)}={quote(value)}" for name, value in pairs)
        for path in ("/api/items", "/items", f"/api/items/{draw.choice(['S1-0', '%00', '..%2F', 'x' * 300])}"):
            response = client.get(f"{path}?{query}")
            assert response.status_code in (200, 400, 404), (path, pairs, response.status_code)
            answered += response.status_code == 200
            if path.startswith("/api/") and response.status_code == 400:
                error = response.json()["error"]
                assert error["param"] is not None and error["message"].startswith(f"{error['param']}")
    assert answered > 50, "the fuzz should reach the queries, not only the checks"
    for raw in ("%ZZ", "&&&", "==", "q=%", "point=%E2%80", "q=" + "%FF" * 50, "run"):
        assert client.get(f"/api/items?{raw}").status_code in (200, 400)
    assert "<script>alert(1)</script>" not in client.get("/items?q=%3Cscript%3Ealert(1)%3C/script%3E").text


def test_bad_requests_say_what_is_wrong(writing: Path):
    client = client_for(writing)
    response = client.get("/api/items?point=B16_K1&correct=maybe")
    assert response.status_code == 400
    assert response.json()["error"] == {"message": "correct: 'maybe' is not one of the values; allowed: true, false",
                                        "param": "correct", "allowed": ["true", "false"]}
    page = client.get("/items?sort=sideways")
    assert page.status_code == 400 and "sort: " in page.text and "<code>thinking_asc</code>" in page.text
    missing = client.get("/api/items/no-such-item")
    assert missing.status_code == 404 and "no item with uid 'no-such-item'" in missing.json()["error"]["message"]
    assert client.get("/items/no-such-item").status_code == 404
    assert client.get("/nothing-here").status_code == 404
    assert client.post("/api/items").status_code == 405
    assert client.get("/api/items/S1-0?correct=true").status_code == 400  # the list's filters are not an item's


def test_appended_lines_are_seen_and_a_truncated_file_rebuilds(writing: Path):
    client = client_for(writing)
    count = lambda: client.get("/api/items?point=B32_K1&correct=false").json()["total"]  # noqa: E731
    assert count() == 3
    path = predictions(writing, "B32_K1")
    rows = path.read_text().splitlines(keepends=True)
    extra = json.loads(rows[0]) | {"uid": "S1-3"}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(extra) + "\n")
    assert count() == 4
    assert client.get("/api/items/S1-3").json()["runs"][0]["points"][1]["key"] == "B32_K1"
    path.write_text(rows[0])
    assert count() == 1
    assert client.get("/api/items").json()["runs"][0]["points"][1]["predictions"] == 1


def test_pages_and_assets_come_from_the_server_alone(writing: Path):
    client = client_for(writing)
    page = client.get("/items")
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    assert "http://" not in page.text and "https://" not in page.text
    for asset, kind in (("view.css", "text/css"), ("view.js", "text/javascript"), ("icon.svg", "image/svg+xml")):
        response = client.get(f"/assets/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
    assert client.get("/assets/../app.py").status_code == 404
    assert client.get("/", follow_redirects=False).headers["location"] == "/items"


def test_an_api_key_locks_every_route(writing: Path):
    client = client_for(writing, api_key="view-key")
    for path in ("/items", "/api/items", "/items/S1-0", "/assets/view.css"):
        refused = client.get(path)
        assert refused.status_code == 401 and "view-key" not in refused.text
        assert refused.headers["www-authenticate"].startswith('Basic realm="m1 view"')
    basic = "Basic " + base64.b64encode(b"me:view-key").decode()
    for headers in ({"Authorization": basic}, {"Authorization": "Bearer view-key"}, {"x-api-key": "view-key"}):
        assert client.get("/api/items", headers=headers).status_code == 200
    assert client.get("/api/items", headers={"Authorization": "Basic " + base64.b64encode(b"me:nope").decode()}
                      ).status_code == 401


def test_another_host_name_is_refused_before_any_route(writing: Path):
    """DNS rebinding: a page of evil.example that a DNS answer points at 127.0.0.1 sends its own name."""
    from fastapi.testclient import TestClient

    from m1.auth import trusted_hosts
    from m1.viewing import Catalog, open_runs
    from m1.viewing.app import create_app

    catalog = Catalog(open_runs([writing]))
    for hosts, api_key in ((trusted_hosts("127.0.0.1"), None), (trusted_hosts("192.168.1.5"), "view-key")):
        client = TestClient(create_app(catalog, api_key=api_key, hosts=hosts), base_url="http://127.0.0.1:8765")
        for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example", "testserver", "[::2]:8765"):
            for path in ("/items", "/api/items", "/items/S1-0", "/assets/view.css", "/nothing-here"):
                refused = client.get(path, headers={"Host": host})
                assert refused.status_code == 400 and "S1-0" not in refused.text, (host, path)
                assert refused.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
        key = {"x-api-key": api_key} if api_key else {}
        for host in ("127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", *hosts[3:]):
            assert client.get("/api/items", headers={"Host": host, **key}).status_code == 200, host
    assert trusted_hosts("::1") == ["127.0.0.1", "localhost", "[::1]"]
    assert trusted_hosts("fe80::1") == ["127.0.0.1", "localhost", "[::1]", "[fe80::1]"]
    assert trusted_hosts("0.0.0.0") == trusted_hosts("::") == ["*"]  # every interface: the key guards it


def test_every_link_the_report_writes_opens_in_the_viewer(tmp_path: Path):
    """The report (m1.evaluation.view_links) and the viewer agree on names and parameters."""
    from m1.evaluation.report import write_report
    from m1.evaluation.view_links import VIEW_URL

    answers = {"B16_K1": {item.uid: [Answer("A" if i % 2 else None)] for i, item in enumerate(ITEMS)},
               "B32_K1": {item.uid: [Answer("A" if i % 3 else "B")] for i, item in enumerate(ITEMS)}}
    root = make_run(tmp_path, "reported", ITEMS, answers, [16, 32])
    report = write_report([root], tmp_path / "report")
    links = sorted(set(re.findall(rf"""href=['"]?{re.escape(VIEW_URL)}(/[^'" >]*)""", report.html.read_text())))
    assert any("flip=" in link for link in links) and any(link.startswith("/items/") for link in links)
    client = client_for(root)
    for link in links:
        response = client.get(html.unescape(link).replace("/items", "/api/items", 1))
        assert response.status_code == 200, (link, response.text[:300])
    # A linked flip count lists exactly that many items, and a linked uid opens that item.
    cells = re.findall(rf"""<a class=view href="{re.escape(VIEW_URL)}(/[^"]*)">([^<]*)</a>""", report.html.read_text())
    flips = [(html.unescape(link), text) for link, text in cells if "flip=" in link and text.isdigit()]
    assert flips and any(text != "0" for _, text in flips)
    for link, text in flips:
        assert client.get(link.replace("/items", "/api/items", 1)).json()["total"] == int(text), link
    # An accuracy cell lists the n - correct items of its source and point, a no-answer cell the
    # items without an answer there: counted here from the point's scored.jsonl.
    counted = {"correct": 0, "no_answer": 0}
    for link, _ in cells:
        params = dict(parse_qsl(urlsplit(html.unescape(link)).query))
        kind = "correct" if params.get("correct") == "false" else "no_answer" if "no_answer" in params else None
        if kind is None:
            continue
        mode, key = params["mode"], params["point"].removeprefix("reported:")
        scored = [row for row in lines(root / "points" / key / "scored.jsonl")
                  if params.get("source") in (None, row["source"])]
        wanted = sum((not row[f"{mode}_correct"]) if kind == "correct" else row[f"{mode}_letter"] is None
                     for row in scored)
        assert client.get(html.unescape(link).replace("/items", "/api/items", 1)).json()["total"] == wanted, link
        counted[kind] += 1
    # Both sources and every "all items" row, at both points.
    assert counted == {"correct": 4, "no_answer": 6}, counted
    # A flipped uid opens that item with the flip's from-point (B16_K1) open.
    uids = [(html.unescape(link), text) for link, text in cells if link.startswith("/items/") and " · " not in text]
    assert uids
    for link, uid in uids:
        view = client.get(link.replace("/items", "/api/items", 1)).json()
        assert view["uid"] == uid and "point=reported%3AB16_K1" in link
        assert [p["name"] for p in view["runs"][0]["points"] if p["focused"]] == ["reported:B16_K1"]
