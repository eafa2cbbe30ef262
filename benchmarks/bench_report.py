"""Benchmark: `m1 report` on a run of the whole suite, 10,549 items x 10 grid points.

    .venv/bin/python benchmarks/bench_report.py            # from the repository root
    M1_SHARED_DATA=/path/to/shared/data python benchmarks/bench_report.py [--keep DIR]

Writes, in a temporary directory, the run directory `m1 eval` leaves on the real suite's items
(their uids and sources; the shared data folder as for the other benchmarks): metrics.json and
points/<key>/scored.jsonl for budgets 128 to 8192 at no "Wait", B1024 with one and two "Wait"
rounds, and B1024 with 4 samples. The outcomes are drawn (seeded): accuracy rising with the
budget, an answer probability for 95 % of the predictions, a MeSH domain (76) for 98 % of the
items. metrics.json carries every section the report draws from, at the size a real run gives:
both modes' metrics per point, every prediction's thinking tokens, and the sections of issue 14
(13 policies with per-source and per-domain scores, 8 neighbour pairs with every flipped item,
calibration with a 201-threshold selective curve per point and mode, the domains' coverage).

Then it times `write_report` on that run (loading, tables, the figures as PNG and SVG, HTML and
Markdown) and prints the seconds and their ratio to the 60 s target of issue 14. `--keep DIR`
writes the run and its report there instead, to look at.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import suite_items
from m1.evaluation.paired import mcnemar_exact
from m1.evaluation.report import write_report
from m1.scoring import MODES, ScoredRow, mode_metrics, wilson_interval

TARGET_SECONDS = 60.0
BUDGETS = (128, 256, 512, 1024, 2048, 4096, 8192)
GRID = [(b, 0, 1) for b in BUDGETS] + [(1024, 1, 1), (1024, 2, 1), (1024, 0, 4)]  # (budget, Wait, samples)
DOMAINS = [f"qualifier {code:02d}" for code in range(76)]
SELECTIVE_POINTS = 201  # as many thresholds as scoring keeps of each selective curve
LETTERS = "ABCDE"


def key(budget: int, wait: int, samples: int) -> str:
    return f"B{budget}_K{wait}" + (f"_N{samples}" if samples > 1 else "")


def draw_point(rng: random.Random, items: list[tuple[str, str, str]], ease: dict[str, float], budget: int,
               wait: int, samples: int) -> list[dict]:
    """scored.jsonl rows of one point, as score_run writes them: one per (item, sample)."""
    skill = 0.25 + 0.05 * BUDGETS.index(budget) + 0.02 * wait
    rows = []
    for uid, source, gold in items:
        for sample in range(samples):
            right = rng.random() < skill + ease[uid] * 0.4 - 0.2
            wrong = rng.choice([letter for letter in LETTERS[:4] if letter != gold])
            strict = gold if right else (None if rng.random() < 0.3 else wrong)
            thinking = min(budget * (1 + wait), int(rng.expovariate(1 / (0.7 * budget))) + 16)
            read = None if rng.random() < 0.05 else min(1.0, max(0.25, rng.gauss(0.75 if right else 0.5, 0.15)))
            rows.append({"uid": uid, **({"sample": sample} if samples > 1 else {}), "source": source,
                         "answer_idx": gold, "strict_letter": strict,
                         "strict_rule": "boxed_letter" if strict else "no_answer", "strict_correct": right,
                         "reference_letter": strict or wrong, "reference_rule": "boxed_letter",
                         "reference_correct": right, "tokens": thinking + 12, "thinking_tokens": thinking,
                         "confidence_strict": None if read is None else (round(read, 4) if strict else 0.0),
                         "confidence_reference": None if read is None else round(read, 4)})
    return rows


def group_score(correct: dict[str, float], tokens: dict[str, float], uids: list[str]) -> dict:
    right, spent = sum(correct[u] for u in uids), sum(tokens[u] for u in uids)
    low, high = wilson_interval(right, len(uids))
    return {"correct": right, "n": len(uids), "accuracy": right / len(uids), "ci_low": low, "ci_high": high,
            "cost_per_correct": spent / right if right else None, "tokens_mean": spent / len(uids)}


def breakdown(correct: dict[str, float], tokens: dict[str, float], groups: dict[str, dict[str, list[str]]]) -> dict:
    return {"overall": group_score(correct, tokens, list(correct)),
            **{kind: {name: group_score(correct, tokens, uids) for name, uids in found.items()}
               for kind, found in groups.items()}}


def answers(rows: list[dict], mode: str) -> dict[str, tuple[str | None, bool]]:
    """Each item's answer at a point: its one answer, or the majority of its samples."""
    votes: dict[str, list[dict]] = {}
    for row in rows:
        votes.setdefault(row["uid"], []).append(row)
    found = {}
    for uid, these in votes.items():
        letters = [r[f"{mode}_letter"] for r in these if r[f"{mode}_letter"]]
        top = max(dict.fromkeys(letters), key=letters.count) if letters else None
        found[uid] = (top, top == these[0]["answer_idx"])
    return found


def policies(point: str, samples: int, rows: list[dict], wall: float, groups: dict) -> list[dict]:
    tokens: dict[str, float] = {}
    for row in rows:
        tokens[row["uid"]] = tokens.get(row["uid"], 0) + row["tokens"]
    shares = {"single": 1.0} if samples == 1 else {"sample": 1 / samples, "majority": 1.0, "weighted": 1.0,
                                                    "esc2": 0.6}
    entries = []
    for name, share in shares.items():
        cost = {uid: t * share for uid, t in tokens.items()}
        entry = {"policy": point if samples == 1 else f"{point}:{name}", "point": point, "aggregation": name,
                 "samples": samples}
        for mode in MODES:
            if name == "sample":
                right: dict[str, float] = {}
                for row in rows:
                    right[row["uid"]] = right.get(row["uid"], 0.0) + row[f"{mode}_correct"] / samples
            else:
                right = {uid: float(ok) for uid, (_, ok) in answers(rows, mode).items()}
            entry[mode] = breakdown(right, cost, groups) | {"tokens_mean": statistics.fmean(cost.values()),
                                                            "wall_seconds_per_item": wall * share / len(cost)}
        entry |= {"tokens_mean": entry["strict"]["tokens_mean"],
                  "wall_seconds_per_item": entry["strict"]["wall_seconds_per_item"]}
        entries.append(entry)
    return entries


def flip_counts(outcomes: list[tuple[bool, bool]]) -> dict:
    r2w = sum(a and not b for a, b in outcomes)
    w2r = sum(b and not a for a, b in outcomes)
    both = sum(a and b for a, b in outcomes)
    return {"n": len(outcomes), "right_to_wrong": r2w, "wrong_to_right": w2r, "both_right": both,
            "both_wrong": len(outcomes) - r2w - w2r - both, "p_value": mcnemar_exact(r2w, w2r)}


def flips(before: str, after: str, kind: str, rows: dict[str, list[dict]], groups: dict, sources: dict) -> dict:
    entry = {"from": before, "to": after, "kind": kind}
    for mode in MODES:
        a, b = answers(rows[before], mode), answers(rows[after], mode)
        outcome = {uid: (a[uid][1], b[uid][1]) for uid in a}
        entry[mode] = {"overall": flip_counts(list(outcome.values())),
                       **{g: {name: flip_counts([outcome[u] for u in uids]) for name, uids in found.items()}
                          for g, found in groups.items()},
                       "flipped": [{"uid": uid, "source": sources[uid][0], "gold": sources[uid][1], "from": a[uid][0],
                                    "to": b[uid][0], "direction": "right_to_wrong" if x else "wrong_to_right"}
                                   for uid, (x, y) in outcome.items() if x != y]}
    return entry


def calibration(rows: list[dict], mode: str, samples: int, target: float = 0.9) -> dict:
    """m1.evaluation.calibration's result for one point and mode, its curve thinned as scoring keeps it."""
    judged = [(r[f"confidence_{mode}"], r[f"{mode}_correct"], r["uid"] if samples == 1 else f"{r['uid']}#{r['sample']}")
              for r in rows]
    read = sorted(((c, ok) for c, ok, _ in judged if c is not None), reverse=True)
    bins = []
    for i in range(10):
        inside = [(c, ok) for c, ok in read if i / 10 <= c < (i + 1) / 10 or (i == 9 and c == 1.0)]
        bins.append({"low": i / 10, "high": (i + 1) / 10, "count": len(inside),
                     "confidence": statistics.fmean(c for c, _ in inside) if inside else None,
                     "accuracy": statistics.fmean(ok for _, ok in inside) if inside else None})
    curve, right = [{"threshold": None, "coverage": 0.0, "accuracy": None}], 0
    for index, (confidence, ok) in enumerate(read):
        right += ok
        if index + 1 == len(read) or read[index + 1][0] != confidence:
            curve.append({"threshold": confidence, "coverage": (index + 1) / len(read), "accuracy": right / (index + 1)})
    reached = [p for p in curve[1:] if p["accuracy"] >= target]
    lowest = min(reached, key=lambda p: p["threshold"], default=None)
    step = (len(curve) - 1) / (SELECTIVE_POINTS - 1)
    thinned = [curve[round(i * step)] for i in range(SELECTIVE_POINTS)] if len(curve) > SELECTIVE_POINTS else curve
    return {"n": len(judged), "with_probability": len(read), "missing": [uid for c, _, uid in judged if c is None],
            "ece": sum(b["count"] / len(read) * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]),
            "bins": bins, "selective": thinned,
            "target": {"accuracy": target, "threshold": lowest and lowest["threshold"],
                       "coverage": lowest and lowest["coverage"]}}


def point_entry(point: str, budget: int, wait: int, samples: int, rows: list[dict], wall: float) -> dict:
    scored = {mode: [ScoredRow(r["uid"] if samples == 1 else f"{r['uid']}#{r['sample']}", r["source"],
                               r["answer_idx"], r[f"{mode}_letter"], r[f"{mode}_rule"], r[f"{mode}_correct"])
                     for r in rows] for mode in MODES}
    thinking = [r["thinking_tokens"] for r in rows]
    hit = sum(t >= budget * (1 + wait) for t in thinking)
    items = len(rows) // samples
    usage = {"thinking_tokens_mean": statistics.fmean(thinking), "thinking_tokens_median": statistics.median(thinking),
             "thinking_tokens_max": max(thinking), "answer_tokens_mean": 12.0, "inserted_tokens_mean": 0.0,
             "extensions_used_mean": float(wait), "budget_hit_rate": hit / len(rows),
             "thinking_end": {"budget_reached": hit, "natural_stop": len(rows) - hit}, "errors": 0,
             "thinking_tokens": thinking, "total_tokens_mean": sum(r["tokens"] for r in rows) / items,
             "wall_seconds": wall, "wall_seconds_per_item": wall / items}
    return {"point": point, "budget": budget, "extensions": wait, "suffix": "", "samples": samples,
            **{mode: mode_metrics(scored[mode], mode).to_dict() for mode in MODES}, "disagreement": 0,
            "usage": usage, "calibration": {mode: calibration(rows, mode, samples) for mode in MODES}}


def write_run(root: Path) -> Path:
    rng = random.Random(0)
    suite = suite_items()
    items = [(item.uid, item.source, item.answer_idx) for found in suite.values() for item in found]
    ease = {uid: rng.random() for uid, _, _ in items}  # how easy an item is, at every point alike
    sources = {uid: (source, gold) for uid, source, gold in items}
    domain = {uid: rng.choice(DOMAINS) for uid, _, _ in items if rng.random() < 0.98}
    groups: dict[str, dict[str, list[str]]] = {"sources": {}, "domains": {}}
    for uid, source, _ in items:
        groups["sources"].setdefault(source, []).append(uid)
        if uid in domain:
            groups["domains"].setdefault(domain[uid], []).append(uid)

    run = root / "suite-10pt"
    rows: dict[str, list[dict]] = {}
    summary_points, all_policies = [], []
    for budget, wait, samples in GRID:
        point = key(budget, wait, samples)
        rows[point] = draw_point(rng, items, ease, budget, wait, samples)
        directory = run / "points" / point
        directory.mkdir(parents=True)
        (directory / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[point]))
        wall = sum(r["tokens"] for r in rows[point]) / 2000  # 2,000 tokens/s
        summary_points.append(point_entry(point, budget, wait, samples, rows[point], wall))
        all_policies += policies(point, samples, rows[point], wall, groups)
    pairs = [(key(a, 0, 1), key(b, 0, 1), "budget") for a, b in zip(BUDGETS, BUDGETS[1:])]
    pairs += [(key(1024, 0, 1), key(1024, 1, 1), "wait"), (key(1024, 1, 1), key(1024, 2, 1), "wait")]
    summary = {"run": run.name, "model": "UCSC-VLAA/m1-7B-23K", "backend": "vllm", "preset": "m1",
               "items": len(items), "points": summary_points, "policies": all_policies,
               "flips": [flips(a, b, kind, rows, groups, sources) for a, b, kind in pairs],
               "domains": {"file": "runs/domains/suite.jsonl", "sha256": "0" * 64, "labelled": len(domain),
                           "unlabelled": [uid for uid, _, _ in items if uid not in domain]},
               "calibration_target": 0.9}
    (run / "metrics.json").write_text(json.dumps(summary))
    return run


def timed(work: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the run and its report here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        built, run = timed(lambda: write_run(root))
        summary = json.loads((run / "metrics.json").read_text())
        flipped = sum(len(f["strict"]["flipped"]) for f in summary["flips"])
        print(f"run: {summary['items']:,} items x {len(summary['points'])} grid points "
              f"({sum(p['strict']['items'] for p in summary['points']):,} predictions), {len(summary['policies'])} "
              f"policies, {len(summary['flips'])} flip pairs ({flipped:,} strict flipped items); metrics.json "
              f"{(run / 'metrics.json').stat().st_size / 1e6:.1f} MB; written in {built:.1f} s")
        seconds, paths = timed(lambda: write_report([run], root / "report"))
        pngs = sum(1 for p in paths.figures if p.suffix == ".png")
        print(f"write_report: {seconds:.1f} s ({pngs} figures, report.html {paths.html.stat().st_size / 1e6:.1f} MB, "
              f"report.md {paths.markdown.stat().st_size / 1e3:.0f} kB)")
        verdict = "OK" if seconds < TARGET_SECONDS else "TOO SLOW"
        print(f"{seconds / TARGET_SECONDS:.2f} of the {TARGET_SECONDS:.0f} s target: {verdict}")
    return 0 if seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
