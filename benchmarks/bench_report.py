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
as scoring computes them from those rows (m1.evaluation.analysis: 13 policies with per-source and
per-domain scores, the neighbour pairs with every flipped item, calibration with a bounded
selective curve per point and mode), and the domains' coverage.

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
from m1.evaluation.analysis import analyse
from m1.evaluation.config import GridPoint
from m1.evaluation.report import write_report
from m1.scoring import MODES, ScoredRow, mode_metrics

TARGET_SECONDS = 60.0
BUDGETS = (128, 256, 512, 1024, 2048, 4096, 8192)
GRID = [(b, 0, 1) for b in BUDGETS] + [(1024, 1, 1), (1024, 2, 1), (1024, 0, 4)]  # (budget, Wait, samples)
DOMAINS = [f"qualifier {code:02d}" for code in range(76)]
LETTERS = "ABCDE"


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
            "usage": usage}


def write_run(root: Path) -> Path:
    rng = random.Random(0)
    suite = suite_items()
    items = [(item.uid, item.source, item.answer_idx) for found in suite.values() for item in found]
    ease = {uid: rng.random() for uid, _, _ in items}  # how easy an item is, at every point alike
    domain = {uid: rng.choice(DOMAINS) for uid, _, _ in items if rng.random() < 0.98}

    run = root / "suite-10pt"
    points = [GridPoint(budget, wait, "", 0, samples=samples) for budget, wait, samples in GRID]
    rows: dict[str, list[dict]] = {}
    walls, summary_points = {}, []
    for point in points:
        rows[point.key] = draw_point(rng, items, ease, point.budget, point.extensions, point.samples)
        directory = run / "points" / point.key
        directory.mkdir(parents=True)
        (directory / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[point.key]))
        walls[point.key] = sum(r["tokens"] for r in rows[point.key]) / 2000  # 2,000 tokens/s
        summary_points.append(point_entry(point.key, point.budget, point.extensions, point.samples, rows[point.key],
                                          walls[point.key]))
    # The sections of issue 14 as scoring computes them (m1.evaluation.analysis), from the drawn rows.
    groupings = {"sources": {uid: source for uid, source, _ in items}, "domains": domain}
    sections = analyse(points, rows, walls, groupings)
    for entry in summary_points:
        entry["calibration"] = sections.calibration[entry["point"]]
    summary = {"run": run.name, "model": "UCSC-VLAA/m1-7B-23K", "backend": "vllm", "preset": "m1",
               "items": len(items), "points": summary_points, **sections.to_dict(),
               "domains": {"file": "runs/domains/suite.jsonl", "sha256": "0" * 64, "labelled": len(domain),
                           "unlabelled": [uid for uid, _, _ in items if uid not in domain]},
               "calibration_target": sections.target}
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
