"""`m1 report`'s sections of issue 14 (accuracy against compute, answer flips, calibration, MeSH
domains) from synthetic metrics.json files built here in the shapes scoring writes: random per-item
outcomes of a few grid points become the summary's policies, flips, calibration and domains, and
the report's tables are checked against brute force over the same outcomes. Shapes: today's
summary (no new sections), points without samples or calibration, samples with calibration and
domains, thinned selective curves, points without any probability, a target no threshold reaches,
hostile labels, and three runs of which two answered the same items; (slow) the HTML of every
section in a headless browser."""

from __future__ import annotations

import html
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="m1 report needs matplotlib: pip install matplotlib")

from test_report import run_browser  # the browser helper of the report's own test

from m1.data.items import MCQItem
from m1.evaluation.paired import mcnemar_exact
from m1.evaluation.report import write_report
from m1.scoring import ScoredRow, mode_metrics, wilson_interval

MODES = ("strict", "reference")
SOURCES = {"MedQA_USLME_test": 14, "PubMedQA_test": 10, "GPQA_Medical_test": 6}
DOMAINS = ("Drug Therapy", "Diagnosis", "Genetics")
LETTERS = "ABCD"
GOLD = "A"


@dataclass
class Answer:
    """One item at one grid point in one mode: the letter (None: no answer), right or not."""

    letter: str | None
    correct: float  # 1.0 / 0.0; the "sample" aggregation's share of right samples


@dataclass
class Point:
    key: str
    budget: int
    extensions: int
    samples: int
    skill: float
    answers: dict[str, dict[str, Answer]] = field(default_factory=dict)  # mode -> uid -> the point's answer
    tokens: dict[str, float] = field(default_factory=dict)  # uid -> tokens over all samples
    confidence: dict[str, dict[str, float | None]] = field(default_factory=dict)  # mode -> uid -> read


def uids() -> list[tuple[str, str]]:
    return [(f"{source}-{i}", source) for source, size in SOURCES.items() for i in range(size)]


def domain_of(uid: str) -> str | None:
    """Every item but one per source is labelled; the rest are the "unlabelled" ones."""
    index = int(uid.rsplit("-", 1)[1])
    return None if index == 0 else DOMAINS[index % len(DOMAINS)]


def draw(rng: random.Random, point: Point, calibrated: bool, read: bool = True) -> Point:
    """Random answers and tokens per item; probabilities where `calibrated`, none at all unless `read`."""
    for uid, _ in uids():
        right = rng.random() < point.skill
        wrong = rng.choice([None, "B", "C"])
        point.answers.setdefault("strict", {})[uid] = Answer(GOLD if right else wrong, float(right))
        # reference guesses a letter where strict finds none; otherwise they agree
        guess = GOLD if right else (wrong or "D")
        point.answers.setdefault("reference", {})[uid] = Answer(guess, float(right))
        point.tokens[uid] = float(point.samples * rng.choice([0.5, 0.75, 1.0]) * point.budget)
        for mode in MODES:
            # a third of the items have no probability where the point was calibrated at all
            chance = None if not calibrated or rng.random() < 0.3 else round(rng.uniform(0.25, 1.0), 2)
            point.confidence.setdefault(mode, {})[uid] = chance if read else None
    return point


def score(values: dict[str, float], tokens: dict[str, float], group: list[str]) -> dict:
    correct = sum(values[uid] for uid in group)
    low, high = wilson_interval(correct, len(group))
    spent = sum(tokens[uid] for uid in group)
    return {"correct": correct, "n": len(group), "accuracy": correct / len(group), "ci_low": low, "ci_high": high,
            "cost_per_correct": spent / correct if correct else None, "tokens_mean": spent / len(group)}


def groups(labelled: bool) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {"sources": {}, "domains": {}}
    for uid, source in uids():
        found["sources"].setdefault(source, []).append(uid)
        if labelled and domain_of(uid):
            found["domains"].setdefault(domain_of(uid), []).append(uid)
    return found if labelled else {"sources": found["sources"]}


def policies_of(point: Point, rng: random.Random, labelled: bool) -> list[dict]:
    """The point's policies: itself when it has one sample, each aggregation of its samples when several."""
    names = ["single"] if point.samples == 1 else ["sample", "majority", "weighted", "esc2"]
    everything = [uid for uid, _ in uids()]
    entries = []
    for name in names:
        # an aggregation costs all samples' tokens, "sample" one sample's, ESC somewhere between
        share = {"sample": 1 / point.samples, "esc2": rng.choice([0.5, 0.75])}.get(name, 1.0)
        tokens = {uid: t * share for uid, t in point.tokens.items()}
        entry = {"policy": point.key if name == "single" else f"{point.key}:{name}", "point": point.key,
                 "aggregation": name, "samples": point.samples}
        for mode in MODES:
            values = {uid: a.correct for uid, a in point.answers[mode].items()}
            if name == "sample":
                values = {uid: rng.randint(0, point.samples) / point.samples for uid in values}
            elif name != "majority" and name != "single":
                values = {uid: float(rng.random() < point.skill) for uid in values}
            entry[mode] = {"overall": score(values, tokens, everything),
                           **{kind: {g: score(values, tokens, members) for g, members in found.items()}
                              for kind, found in groups(labelled).items()},
                           "tokens_mean": sum(tokens.values()) / len(tokens), "wall_seconds_per_item": 0.01 * share}
        entry["tokens_mean"], entry["wall_seconds_per_item"] = entry["strict"]["tokens_mean"], 0.01 * share
        entries.append(entry)
    return entries


def counts(pairs: list[tuple[bool, bool]]) -> dict:
    r2w = sum(a and not b for a, b in pairs)
    w2r = sum(b and not a for a, b in pairs)
    both = sum(a and b for a, b in pairs)
    return {"n": len(pairs), "right_to_wrong": r2w, "wrong_to_right": w2r, "both_right": both,
            "both_wrong": len(pairs) - r2w - w2r - both, "p_value": mcnemar_exact(r2w, w2r)}


def flips_of(before: Point, after: Point, kind: str, labelled: bool) -> dict:
    entry = {"from": before.key, "to": after.key, "kind": kind}
    for mode in MODES:
        a, b = before.answers[mode], after.answers[mode]
        outcome = {uid: (a[uid].correct == 1.0, b[uid].correct == 1.0) for uid in a}
        entry[mode] = {"overall": counts(list(outcome.values())),
                       **{kind_: {g: counts([outcome[u] for u in members]) for g, members in found.items()}
                          for kind_, found in groups(labelled).items()},
                       "flipped": [{"uid": uid, "source": uid.rsplit("-", 1)[0], "gold": GOLD, "from": a[uid].letter,
                                    "to": b[uid].letter, "direction": "right_to_wrong" if x else "wrong_to_right"}
                                   for uid, (x, y) in outcome.items() if x != y]}
    return entry


def calibration_of(point: Point, mode: str, target: float = 0.9, thin: int | None = None) -> dict:
    """As m1.evaluation.calibration defines it: bins, ECE, the selective curve and the target found
    on the whole curve; as scoring stores it, the curve cut to `thin` evenly spread thresholds."""
    judged = [(point.confidence[mode][uid], point.answers[mode][uid].correct == 1.0) for uid, _ in uids()]
    read = [(c, ok) for c, ok in judged if c is not None]
    bins = []
    for i in range(10):
        inside = [(c, ok) for c, ok in read if i / 10 <= c < (i + 1) / 10 or (i == 9 and c == 1.0)]
        bins.append({"low": i / 10, "high": (i + 1) / 10, "count": len(inside),
                     "confidence": sum(c for c, _ in inside) / len(inside) if inside else None,
                     "accuracy": sum(ok for _, ok in inside) / len(inside) if inside else None})
    ece = sum(b["count"] / len(read) * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) if read \
        else None
    curve = [{"threshold": None, "coverage": 0.0, "accuracy": None}]
    for t in sorted({c for c, _ in read}, reverse=True):
        answered = [ok for c, ok in read if c >= t]
        curve.append({"threshold": t, "coverage": len(answered) / len(read), "accuracy": sum(answered) / len(answered)})
    reached = [p for p in curve[1:] if p["accuracy"] >= target]
    lowest = min(reached, key=lambda p: p["threshold"], default=None)
    if thin is not None and len(curve) > thin:
        curve = [curve[round(i * (len(curve) - 1) / (thin - 1))] for i in range(thin)]
    return {"n": len(judged), "with_probability": len(read),
            "missing": [uid for uid, _ in uids() if point.confidence[mode][uid] is None], "ece": ece, "bins": bins,
            "selective": curve, "target": {"accuracy": target, "threshold": lowest and lowest["threshold"],
                                           "coverage": lowest and lowest["coverage"]}}


def point_entry(point: Point, calibrated: bool, costed: bool, thin: int | None = None) -> dict:
    rows = {mode: [ScoredRow(uid, source, GOLD, point.answers[mode][uid].letter, "boxed_letter",
                             point.answers[mode][uid].correct == 1.0) for uid, source in uids()] for mode in MODES}
    thinking = [int(point.tokens[uid] / point.samples) for uid, _ in uids()]
    usage = {"thinking_tokens_mean": sum(thinking) / len(thinking), "thinking_tokens": thinking,
             "budget_hit_rate": 0.5, "thinking_end": {"budget_reached": 15, "natural_stop": 15}}
    if costed:
        usage |= {"total_tokens_mean": sum(point.tokens.values()) / len(point.tokens), "wall_seconds": 3.0,
                  "wall_seconds_per_item": 0.1}
    entry = {"point": point.key, "budget": point.budget, "extensions": point.extensions, "suffix": "",
             **({"samples": point.samples} if costed else {}),
             **{mode: mode_metrics(rows[mode], mode).to_dict() for mode in MODES}, "disagreement": 0, "usage": usage}
    if calibrated:
        entry["calibration"] = {mode: calibration_of(point, mode, thin=thin) for mode in MODES}
    return entry


@dataclass
class Run:
    path: Path
    points: list[Point]
    summary: dict


def make_run(root: Path, name: str, seed: int, *, sampled: bool = True, calibrated: bool = True,
             labelled: bool = True, costed: bool = True, scale: float = 1.0, thin: int | None = None,
             unread: tuple[str, ...] = (), answered: list[str] | None = None) -> Run:
    """metrics.json of a run at B128, B512 (one Wait more at B512) and, when `sampled`, B512 with 4
    samples; the selective curves thinned to `thin` thresholds, no probability read at `unread` points.
    items.jsonl lists the uids `answered` (by default those the summary's items have): the report
    tells runs on other items by that file alone."""
    rng = random.Random(seed)
    specs = [("B128_K0", 128, 0, 1, 0.45), ("B512_K0", 512, 0, 1, 0.6), ("B512_K1", 512, 1, 1, 0.62)]
    if sampled:
        specs.append(("B512_K0_N4", 512, 0, 4, 0.7))
    points = [draw(rng, Point(key, int(budget * scale), k, n, skill), calibrated, key not in unread)
              for key, budget, k, n, skill in specs]
    summary = {"run": name, "model": "some/model", "backend": "transformers", "preset": "m1",
               "items": len(uids()), "points": [point_entry(p, calibrated, costed, thin) for p in points]}
    if costed:
        summary["policies"] = [entry for p in points for entry in policies_of(p, rng, labelled)]
        summary["flips"] = [flips_of(points[0], points[1], "budget", labelled),
                            flips_of(points[1], points[2], "wait", labelled)]
    if labelled:
        unlabelled = [uid for uid, _ in uids() if domain_of(uid) is None]
        summary["domains"] = {"file": "runs/domains/local.jsonl", "sha256": "5f" * 32,
                              "labelled": len(uids()) - len(unlabelled), "unlabelled": unlabelled}
    path = root / name
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(summary))
    items = [MCQItem(uid=uid, source=uid.rsplit("-", 1)[0], question=f"Question {uid}?", options={"A": "x", "B": "y"},
                     answer_idx=GOLD, answer="x") for uid in answered or [uid for uid, _ in uids()]]
    (path / "items.jsonl").write_text("".join(json.dumps(item.model_dump()) + "\n" for item in items))
    return Run(path, points, summary)


# ------------------------------------------------------------------ reading the report back


def section(markdown: str, heading: str, exact: bool = False) -> str:
    """The text under the first heading (any level) that starts with `heading` (or is it, `exact`), up
    to the next heading."""
    match = re.search(rf"^#+ {re.escape(heading)}{'' if exact else '.*?'}$(.*?)(?=^#+ |\Z)", markdown, re.M | re.S)
    assert match, f"no heading {heading!r}"
    return match.group(1)


def table(markdown: str, heading: str, exact: bool = False) -> list[dict[str, str]]:
    lines = [line for line in section(markdown, heading, exact).splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def dominated(p: dict, others: list[dict]) -> bool:
    return any(q["accuracy"] >= p["accuracy"] and q["tokens"] <= p["tokens"]
               and (q["accuracy"] > p["accuracy"] or q["tokens"] < p["tokens"]) for q in others)


def flat(runs: list[Run], mode: str, kind: str = "overall", group: str | None = None) -> list[dict]:
    """Every policy of the runs at a group: label-qualified name, accuracy, tokens per item."""
    found = []
    for run in runs:
        for entry in run.summary.get("policies", []):
            score = entry[mode]["overall"] if kind == "overall" else entry[mode][kind].get(group)
            if score is not None:
                found.append({"run": run.summary["run"], "policy": entry["policy"], "accuracy": score["accuracy"],
                              "tokens": score["tokens_mean"]})
    return found


def cheapest(options: list[dict]) -> dict:
    top = max(o["accuracy"] for o in options)
    return min((o for o in options if o["accuracy"] >= top - 0.01 - 1e-9), key=lambda o: (o["tokens"], o["policy"]))


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


# ------------------------------------------------------------------ the sections


@dataclass
class Report:
    runs: list[Run]
    paths: object  # ReportPaths

    @property
    def markdown(self) -> str:
        return self.paths.markdown.read_text()


THIN = 8  # thresholds kept of each selective curve of the full run (scoring keeps 201 of a real one's)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One run with every section: samples, calibration (its selective curves thinned as scoring
    thins long ones), domains."""
    root = tmp_path_factory.mktemp("full")
    run = make_run(root, "full", 3, thin=THIN)
    return Report([run], write_report([run.path], root / "report"))


@dataclass
class Drawn(Report):
    compute_figures: list = field(default_factory=list)  # the accuracy-against-compute figures drawn


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Drawn:
    """Three runs: "dear" spends twice the tokens of "cheap" on the same items (its policies reach the
    frontier only where more accurate); "other" answered other items."""
    from m1.evaluation.report import write
    from m1.evaluation.report.figures import frontier_figure

    root = tmp_path_factory.mktemp("three")
    runs = [make_run(root, "cheap", 5), make_run(root, "dear", 6, scale=2.0),
            make_run(root, "other", 7, answered=[f"{uid}-b" for uid, _ in uids()])]
    drawn: list = []

    def kept(*args: object) -> object:  # the report's own call, its figure kept to look at
        drawn.append(frontier_figure(*args))
        return drawn[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(write, "frontier_figure", kept)
        paths = write_report([run.path for run in runs], root / "report", mode="reference")
    return Drawn(runs, paths, drawn)


HEADINGS = ("Accuracy against compute", "Answer flips between neighbouring grid points", "Calibration and abstention",
            "Results by MeSH domain")


def test_todays_summary_has_none_of_the_new_sections(tmp_path: Path) -> None:
    run = make_run(tmp_path, "today", 1, sampled=False, calibrated=False, labelled=False, costed=False)
    paths = write_report([run.path], tmp_path / "report")
    markdown, page = paths.markdown.read_text(), paths.html.read_text()
    for heading in HEADINGS:
        assert heading not in markdown and heading not in page
    assert {p.stem for p in paths.figures} == {"accuracy_vs_budget", "accuracy_vs_wait", "thinking_tokens"}
    assert "total tokens per item" not in markdown


def test_frontier_and_cheapest_tables_match_brute_force(full: Report) -> None:
    [run], markdown = full.runs, full.markdown
    for mode in MODES:
        rows = table(markdown, f"Accuracy against compute, every policy ({mode} extraction)")
        options = flat([run], mode)
        assert sorted(r["policy"] for r in rows) == sorted(o["policy"] for o in options)
        expected = {o["policy"] for o in options if not dominated(o, options)}
        assert {r["policy"] for r in rows if r["on the frontier"] == "yes"} == expected
        tokens = [float(r["tokens per item"]) for r in rows]
        assert tokens == sorted(tokens)  # cheapest first
        for row in rows:
            entry = next(e for e in run.summary["policies"] if e["policy"] == row["policy"])[mode]["overall"]
            assert row["accuracy % (95 % CI)"] == f"{pct(entry['accuracy'])} ({pct(entry['ci_low'])}–{pct(entry['ci_high'])})"
            cost = entry["cost_per_correct"]
            assert row["tokens per correct"] == ("—" if cost is None else f"{cost:.0f}")
    rows = {r["source"]: r for r in table(markdown, "Cheapest policy within 1 point of the best, per source (strict")}
    assert list(rows) == list(SOURCES) + ["all items"]
    for source in SOURCES:
        options = flat([run], "strict", "sources", source)
        chosen = cheapest(options)
        assert rows[source]["cheapest within 1 point"] == chosen["policy"]
        assert rows[source]["its tokens per item"] == f"{chosen['tokens']:.0f}"
        assert rows[source]["best acc %"] == pct(max(o["accuracy"] for o in options))
    assert rows["all items"]["cheapest within 1 point"] == cheapest(flat([run], "strict"))["policy"]


def test_runs_rank_together_only_on_the_same_items(three: Drawn) -> None:
    runs, markdown = three.runs, three.markdown
    shared, other = runs[:2], runs[2:]
    intro = section(markdown, "Accuracy against compute", exact=True)
    assert "did not all answer the same items" in intro
    assert "Item set 1: cheap, dear (30 items); item set 2: other (30 items)." in intro
    for mode in MODES:
        rows = table(markdown, f"Accuracy against compute, every policy ({mode} extraction)")
        assert len(rows) == len(flat(runs, mode))
        assert [r["item set"] for r in rows] == sorted(r["item set"] for r in rows)  # set by set
        for number, members in (("1", shared), ("2", other)):
            options = flat(members, mode)
            expected = {(o["run"], o["policy"]) for o in options if not dominated(o, options)}
            flagged = {(r["run"], r["policy"]) for r in rows if r["item set"] == number and r["on the frontier"] == "yes"}
            assert flagged == expected
    rows = table(markdown, "Cheapest policy within 1 point of the best, per source (reference")
    for number, members in (("1", shared), ("2", other)):
        mine = {r["source"]: r for r in rows if r["item set"] == number}
        assert list(mine) == list(SOURCES) + ["all items"]
        for source in SOURCES:
            chosen = cheapest(flat(members, "reference", "sources", source))
            assert mine[source]["cheapest within 1 point"] == f"{chosen['run']}: {chosen['policy']}"
        chosen = cheapest(flat(members, "reference"))
        assert mine["all items"]["cheapest within 1 point"] == f"{chosen['run']}: {chosen['policy']}"


def test_the_compute_figure_has_a_panel_per_mode_the_chosen_first(three: Drawn) -> None:
    [figure] = three.compute_figures
    assert [axis.get_title() for axis in figure.axes] == ["reference extraction", "strict extraction"]
    for axis in figure.axes:
        frontiers = [line for line in axis.get_lines() if line.get_color() == "black"]
        assert sorted(line.get_linestyle() for line in frontiers) == ["--", "-."]  # one per item set
    assert "accuracy_vs_compute" in {p.stem for p in three.paths.figures}


def test_runs_without_items_jsonl_never_share_an_item_set(tmp_path: Path) -> None:
    from m1.evaluation.report import load_runs
    from m1.evaluation.report.load import item_sets

    paths = [make_run(tmp_path, name, 11).path for name in ("a", "b", "c", "d")]
    for path in paths[2:]:
        (path / "items.jsonl").unlink()
    runs = load_runs(paths)
    assert item_sets(runs) == [[0, 1], [2], [3]]
    (paths[0] / "items.jsonl").write_text('{"uid": "x"}\n{"question": "no uid"}\n')
    from m1.data.errors import DataError

    with pytest.raises(DataError, match=r"items\.jsonl.*2.*uid"):
        load_runs(paths)


def test_flips_tables_count_each_pair_per_source_and_list_the_items(full: Report) -> None:
    [run], markdown = full.runs, full.markdown
    rows = table(markdown, "Answer flips between neighbouring grid points, all items (strict")
    assert [(r["from"], r["to"], r["axis"]) for r in rows] == [("B128_K0", "B512_K0", "budget"),
                                                              ("B512_K0", "B512_K1", "wait")]
    by_key = {p.key: p for p in run.points}
    for row in rows:
        before, after = by_key[row["from"]].answers["strict"], by_key[row["to"]].answers["strict"]
        r2w = sum(before[u].correct > after[u].correct for u in before)
        w2r = sum(before[u].correct < after[u].correct for u in before)
        assert (int(row["right → wrong"]), int(row["wrong → right"])) == (r2w, w2r)
        assert row["p (exact McNemar)"] == f"{mcnemar_exact(r2w, w2r):.3g}"
        assert int(row["unchanged right"]) + int(row["unchanged wrong"]) == len(before) - r2w - w2r
    by_source = table(markdown, "Answer flips by source — full")
    pubmed = next(r for r in by_source if r["pair"] == "B128_K0 → B512_K0" and r["source"] == "PubMedQA_test")
    before, after = by_key["B128_K0"].answers["strict"], by_key["B512_K0"].answers["strict"]
    members = [u for u in before if u.startswith("PubMedQA_test")]
    assert int(pubmed["right → wrong"]) == sum(before[u].correct > after[u].correct for u in members)
    assert table(markdown, "Answer flips by domain — full")  # labelled: the same by domain

    listed = table(markdown, "Flipped items B128_K0 → B512_K0")
    flipped = [u for u in before if before[u].correct != after[u].correct]
    assert [r["uid"] for r in listed] == flipped
    for row in listed:
        assert row["answer at B128_K0"] == (before[row["uid"]].letter or "no answer")
        assert row["flip"] in ("right → wrong", "wrong → right") and row["gold"] == GOLD


def test_a_long_flipped_list_is_cut_with_the_count_of_the_rest(tmp_path: Path) -> None:
    run = make_run(tmp_path, "many", 8)
    flips = run.summary["flips"][0]["strict"]
    template = flips["flipped"][0]
    flips["flipped"] = [template | {"uid": f"MedQA_USLME_test-x{i}"} for i in range(73)]
    (run.path / "metrics.json").write_text(json.dumps(run.summary))
    paths = write_report([run.path], tmp_path / "report")
    markdown, page = paths.markdown.read_text(), paths.html.read_text()
    assert len(table(markdown, "Flipped items B128_K0 → B512_K0 — many (strict extraction, 73 items)")) == 50
    assert "23 more flipped items are in metrics.json, flips[0].strict.flipped." in markdown
    assert "MedQA_USLME_test-x49<" in page and "MedQA_USLME_test-x50<" not in page


def lowest_reaching(curve: list[dict], target: float) -> dict | None:
    return min((p for p in curve[1:] if p["accuracy"] >= target), key=lambda p: p["threshold"], default=None)


@pytest.mark.parametrize("target", [0.6, 0.9, 1.0])
def test_calibration_table_finds_the_threshold_for_the_target(full: Report, target: float) -> None:
    """Scoring's own threshold for the target it aimed at (0.9), found on the whole curve; for
    another, the lowest on the thinned curve metrics.json keeps, marked as such. (The report's
    table for another target is drawn alone: the command's test passes one through m1 report.)"""
    from m1.evaluation.report import load_runs, render_markdown_table
    from m1.evaluation.report.tables import calibration_table

    [run] = full.runs
    if target == 0.9:
        markdown = full.markdown
    else:
        drawn = calibration_table(load_runs([run.path]), "strict", target)
        markdown = f"## {drawn.title}\n\n{render_markdown_table(drawn)}\n\n{drawn.note}\n"
    rows = {r["point"]: r for r in table(markdown, "Calibration of the answer probability (strict")}
    calibrated = [p for p in run.summary["points"] if "calibration" in p]
    assert set(rows) == {p["point"] for p in calibrated}
    column = f"threshold for {pct(target)} % accuracy"
    for point in calibrated:
        found, row = point["calibration"]["strict"], rows[point["point"]]
        assert (int(row["predictions"]), int(row["with a probability"]), int(row["without"])) == (
            found["n"], found["with_probability"], len(found["missing"]))
        assert row["ECE"] == f"{found['ece']:.3f}"
        stored = found["target"]
        if target == stored["accuracy"]:
            threshold, coverage, mark = stored["threshold"], stored["coverage"], ""
            on_curve = [p["accuracy"] for p in found["selective"][1:] if p["threshold"] == threshold]
            there = pct(on_curve[0]) if on_curve else f"≥ {pct(target)}"
        else:
            lowest = lowest_reaching(found["selective"], target)
            threshold, coverage, mark = lowest and lowest["threshold"], lowest and lowest["coverage"], " †"
            there = lowest and pct(lowest["accuracy"])
        if threshold is None:
            assert (row[column], row["coverage %"], row["accuracy % there"]) == ("not reached" + mark, "—", "—")
        else:
            assert (row[column], row["coverage %"], row["accuracy % there"]) == (
                f"{threshold:.3f}{mark}", pct(coverage), there)
    note = section(markdown, "Calibration of the answer probability (strict")
    assert ("†: scoring searched every threshold for 90.0 %" in note) == (target != 0.9)
    first = calibrated[0]["calibration"]["strict"]["missing"]
    assert f"{calibrated[0]['point']}: {len(first)} ({', '.join(first[:5])}" in note
    assert {"reliability", "selective_accuracy"} <= {p.stem for p in full.paths.figures}


def test_the_thinned_curve_alone_would_give_another_threshold(full: Report) -> None:
    """What makes the test above tell scoring's threshold from one read off the stored curve."""
    [run] = full.runs
    found = [p["calibration"]["strict"] for p in run.summary["points"]]
    assert all(len(f["selective"]) <= THIN for f in found)
    stored = [f["target"]["threshold"] for f in found]
    thinned = [lowest_reaching(f["selective"], 0.9) for f in found]
    assert any(t != (r and r["threshold"]) for t, r in zip(stored, thinned))


def test_points_without_a_probability_and_a_target_no_threshold_reaches(tmp_path: Path) -> None:
    """A point where nothing was read (no thinking, a server without logprobs) is a row that says so
    and no panel or line of the figures; a target no threshold of a point reaches is "not reached"."""
    from m1.evaluation.report import load_runs
    from m1.evaluation.report.figures import reliability_figure, selective_figure
    from m1.evaluation.report.tables import calibration_table

    run = make_run(tmp_path, "unsure", 17, unread=("B128_K0",))
    unread, unsure = run.summary["points"][0], run.summary["points"][1]
    assert unread["calibration"]["strict"]["with_probability"] == 0 and unread["calibration"]["strict"]["ece"] is None
    for entry in unsure["calibration"]["strict"]["selective"][1:]:
        entry["accuracy"] = min(entry["accuracy"], 0.5)
    (run.path / "metrics.json").write_text(json.dumps(run.summary))
    markdown = write_report([run.path], tmp_path / "report", target_accuracy=0.75).markdown.read_text()
    rows = {r["point"]: r for r in table(markdown, "Calibration of the answer probability (strict")}
    unreached = rows["B512_K0"]
    assert (unreached["threshold for 75.0 % accuracy"], unreached["coverage %"]) == ("not reached †", "—")
    assert rows["B128_K0"] == {"point": "B128_K0", "predictions": "30", "with a probability": "0", "without": "30",
                               "ECE": "no probability read (30 items)", "threshold for 75.0 % accuracy": "—",
                               "coverage %": "—", "accuracy % there": "—"}
    assert "B128_K0:" not in section(markdown, "Calibration of the answer probability (strict")

    runs = load_runs([run.path])
    titles = [axis.get_title() for axis in reliability_figure(runs).axes if axis.get_visible()]
    assert sorted(title.split(" ")[0] for title in titles) == sorted(p["point"] for p in run.summary["points"][1:])
    lines = selective_figure(runs, 0.75).axes[0].get_legend_handles_labels()[1]
    assert "B128_K0" not in lines and "B512_K0" in lines

    blind = load_runs([make_run(tmp_path, "blind", 18, unread=("B128_K0", "B512_K0", "B512_K1", "B512_K0_N4")).path])
    assert reliability_figure(blind) is None and selective_figure(blind, 0.9) is None
    cells = {row[0]: row[4] for row in calibration_table(blind, "strict", 0.9).rows}
    assert cells == {key: f"no probability read (30 {'predictions' if key.endswith('_N4') else 'items'})"
                     for key in ("B128_K0", "B512_K0", "B512_K1", "B512_K0_N4")}


def test_points_without_calibration_or_domains_leave_those_sections_out(tmp_path: Path) -> None:
    run = make_run(tmp_path, "plain", 19, sampled=False, calibrated=False, labelled=False)
    paths = write_report([run.path], tmp_path / "report")
    markdown = paths.markdown.read_text()
    assert "Accuracy against compute" in markdown and "Answer flips between neighbouring" in markdown
    assert "Calibration and abstention" not in markdown and "Results by MeSH domain" not in markdown
    assert "Answer flips by domain" not in markdown
    assert not {"reliability", "selective_accuracy"} & {p.stem for p in paths.figures}
    usage = table(markdown, "Thinking tokens", exact=True)
    assert usage[0]["total tokens per item (all samples)"] == f"{run.summary['points'][0]['usage']['total_tokens_mean']:.0f}"


def test_domain_table_gives_each_domain_its_cheapest_policy(full: Report) -> None:
    [run], markdown = full.runs, full.markdown
    rows = {r["domain"]: r for r in table(markdown, "Accuracy and tokens by MeSH domain — full")}
    assert list(rows) == sorted(DOMAINS)
    for domain, row in rows.items():
        options = flat([run], "strict", "domains", domain)
        assert row["cheapest within 1 point"] == cheapest(options)["policy"]
        entry = run.summary["policies"][0]["strict"]["domains"][domain]
        assert row[run.summary["policies"][0]["policy"]] == f"{pct(entry['accuracy'])} · {entry['tokens_mean']:.0f}"
    note = section(markdown, "Accuracy and tokens by MeSH domain — full")
    unlabelled = run.summary["domains"]["unlabelled"]
    assert f"{len(unlabelled)} unlabelled" in note and unlabelled[0] in note and "5f5f5f5f5f5f" in note


def test_report_command_takes_the_target_accuracy(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from m1.cli import app

    run = make_run(tmp_path, "cli", 31)
    result = CliRunner().invoke(app, ["report", str(run.path), "--out", str(tmp_path / "r"), "--target-accuracy",
                                      "0.75", "--json"])
    assert result.exit_code == 0, result.output
    assert "threshold for 75.0 % accuracy" in Path(json.loads(result.stdout)["markdown"]).read_text()
    refused = CliRunner().invoke(app, ["report", str(run.path), "--target-accuracy", "90"])
    assert refused.exit_code != 0 and "--target-accuracy" in refused.output


def test_labels_and_uids_cannot_put_html_into_report_md(tmp_path: Path) -> None:
    """Nor stop the figures: two "$" would make matplotlib parse the label as TeX."""
    from markupsafe import escape

    label, model = '<img src=x onerror="alert(1)"> & <b>bold</b> | `tick` **star** $\\frac{$', "<i>some</i>/model"
    uid = "<script>alert('uid')</script>|&amp;"
    run = make_run(tmp_path, "hostile", 41, sampled=False, labelled=False)
    run.summary["run"], run.summary["model"] = label, model
    run.summary["flips"][0]["strict"]["flipped"][0]["uid"] = uid
    (run.path / "metrics.json").write_text(json.dumps(run.summary))
    paths = write_report([run.path], tmp_path / "report")
    markdown, page = paths.markdown.read_text(), paths.html.read_text()
    assert "<" not in markdown and ">" not in markdown  # no tag of any kind, the document's own included
    for text in (label, model, uid):
        shown = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
        assert shown in markdown
        assert html.unescape(shown.replace("\\|", "|")) == text
        assert str(escape(text)) in page  # the page escapes on its own (Jinja2's autoescape)
    # an escaped "|" leaves every row of a table with the header's cells
    rows = [line for line in section(markdown, "Flipped items").splitlines() if line.startswith("|")]
    assert len({len(re.findall(r"(?<!\\)\|", line)) for line in rows}) == 1


@pytest.mark.parametrize("target", [0.0, -0.5, 1.0 + 1e-9, 90.0, float("nan")])
def test_a_target_that_is_no_accuracy_is_refused_before_anything_is_written(tmp_path: Path, target: float) -> None:
    run = make_run(tmp_path, "refused", 37, sampled=False, labelled=False)
    with pytest.raises(ValueError, match="above 0 and at most 1"):
        write_report([run.path], tmp_path / "report", target_accuracy=target)
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_every_new_section_renders_in_a_headless_browser(three: Drawn, tmp_path: Path, chromium) -> None:
    paths = three.paths
    text = paths.html.read_text()
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in text
    pngs = sum(1 for p in paths.figures if p.suffix == ".png")
    dom = run_browser(chromium, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom",
                      paths.html.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, "the browser returned no document"
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attributes.get("data-images") == str(pngs) and pngs >= 6
    assert attributes.get("data-images-ok") == "true", "an image did not load"
    assert json.loads(html.unescape(attributes.get("data-errors", "null"))) == [], "the page logged errors"
    assert "Flipped items B128_K0" in dom.stdout and "Reliability diagrams" in dom.stdout
