"""Benchmark: `m1 view` on a run of the eval suite's size: first page and filters vs reading every trace.

    .venv/bin/python benchmarks/bench_view.py                          # 10,549 items x 10 points, 4K tokens
    .venv/bin/python benchmarks/bench_view.py --items 500 --tokens 512 # a quick look
    .venv/bin/python benchmarks/bench_view.py --keep /tmp/big-run      # keep the synthetic run to browse

Writes a synthetic run store with `m1.evaluation.store.RunStore` (a real config, items.jsonl, and per
grid point predictions.jsonl with traces of `--tokens` thinking tokens, "Wait" spans where the point
has extensions, every trace about `--tokens` long (3 words per 4 tokens), scored.jsonl scored by
`m1.scoring` as `m1 eval` scores it). Then, in this process:
- the index build from nothing (once per run: what `m1 view` does the first time it opens it);
- the first page: a fresh catalog over the built index (as a new `m1 view` process starts), then
  GET /items, the HTML page; target < 3 s;
- filters, each a GET of /items with parameters (correct at a point, flipped between two points,
  no answer, a source, a question search, sort by thinking), each timed on its own; target < 1 s;
- one item page (every point's trace of one item);
- the baseline: reading and decoding every prediction line of the run, what a viewer that loads
  every trace would pay before its first page.
Prints each time and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from m1.config import load_config
from m1.data.items import MCQItem
from m1.evaluation.config import EvalConfig
from m1.evaluation.results import scored_row
from m1.evaluation.store import RunStore
from m1.scoring.predictions import prediction_from_record, score_predictions
from m1.viewing import Catalog, open_runs
from m1.viewing.app import create_app

SOURCES = ("MedMCQA_validation", "MedQA_USLME_test", "PubMedQA_test", "MMLU-Pro_Medical_test",
           "GPQA_Medical_test", "Lancet", "MedBullets_op4", "MedBullets_op5", "MedXpertQA", "NEJM",
           "HumanityLastExam")
WORDS = ("the patient presents with acute chest pain radiating to left arm troponin elevated ECG shows "
         "ST elevation in leads II III aVF consider inferior myocardial infarction right coronary artery "
         "occlusion management includes aspirin heparin reperfusion therapy within ninety minutes however "
         "hypotension suggests right ventricular involvement so avoid nitrates and give fluids").split()
WAIT = " Wait"
PREFIX = "\n<|im_start|>answer\nFinal Answer:"


def make_items(count: int, rng: random.Random) -> list[MCQItem]:
    items = []
    for number in range(count):
        options = {letter: " ".join(rng.choices(WORDS, k=3)) for letter in "ABCD"}
        gold = rng.choice("ABCD")
        question = f"Case {number}: " + " ".join(rng.choices(WORDS, k=rng.randint(20, 60))) + "?"
        items.append(MCQItem(uid=f"{number:016x}", source=SOURCES[number % len(SOURCES)], question=question,
                             options=options, answer_idx=gold, answer=options[gold]))
    return items


def thinking_text(words: int, extensions: int, rng: random.Random) -> tuple[str, list[list]]:
    """`words` words of thinking with `extensions` inserted "Wait"s, and its spans."""
    pieces, spans = [], []
    per_round = max(1, words // (extensions + 1))
    for round_number in range(extensions + 1):
        if round_number:
            pieces.append(WAIT)
            spans.append(["inserted", len(WAIT)])
        text = " " + " ".join(rng.choices(WORDS, k=per_round))
        pieces.append(text)
        spans.append(["generated", len(text)])
    return "".join(pieces), spans


def write_run(out: Path, items_count: int, tokens: int, seed: int) -> tuple[Path, EvalConfig]:
    rng = random.Random(seed)
    budgets = [tokens // 8, tokens // 4, tokens // 2, tokens, tokens * 2]  # traces over the budget hit it
    config = load_config(EvalConfig, None, [f"out_dir={out}", "name=synthetic", f"grid.max_thinking_tokens={budgets}",
                                            "grid.num_extensions=[0,2]"])
    store = RunStore.open(config)
    items = make_items(items_count, rng)
    store.save_items(items)
    for point in config.grid_points():
        rows = []
        for item in items:
            used = rng.randint(tokens * 9 // 10, tokens)  # every trace about `tokens` long, whatever the point
            thinking, spans = thinking_text(used * 3 // 4, point.extensions, rng)  # ~4 tokens per 3 words
            letter = rng.choice("ABCD") if rng.random() > 0.1 else None
            answer = f" The answer is {letter}." if letter else " I cannot tell."
            hit = used >= point.budget
            rows.append({
                "uid": item.uid, "source": item.source, "options": item.options, "answer_idx": item.answer_idx,
                "reply": PREFIX + answer, "budget": point.budget, "extensions": point.extensions,
                "thinking": thinking, "answer": answer, "thinking_tokens": used, "answer_tokens": 6,
                "inserted_tokens": point.extensions + 8, "extensions_used": point.extensions,
                "thinking_end": "budget_reached" if hit else "extensions_spent" if point.extensions else "natural_stop",
                "answer_end": "stop", "error": None, "batch_seconds": 1.0,
                "spans": [*spans, ["inserted", len(PREFIX)], ["generated", len(answer)]]})
        path = store.predictions_path(point)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:  # one write, not m1 eval's fsync per line
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        records = [prediction_from_record(path, number, row) for number, row in enumerate(rows, start=1)]
        strict, reference = score_predictions(records, "strict"), score_predictions(records, "reference")
        scored = [scored_row(point, row, s, r) for row, s, r in zip(rows, strict, reference)]
        store.write_point_results(point, scored, {"point": point.key})
        print(f"  wrote {point.key}: {path.stat().st_size / 1e6:,.0f} MB", flush=True)
    store.write_summary({"run": "synthetic", "items": items_count, "points": []})
    return store.root, config


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def get(client: TestClient, url: str) -> str:
    response = client.get(url)
    if response.status_code != 200:
        sys.exit(f"GET {url}: {response.status_code} {response.text[:300]}")
    return response.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_549)
    parser.add_argument("--tokens", type=int, default=4096, help="thinking tokens per trace (3 words per 4 tokens)")
    parser.add_argument("--repeats", type=int, default=3, help="times each filter is timed (median)")
    parser.add_argument("--keep", type=Path, help="write the run here and keep it (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    out = args.keep or Path(tempfile.mkdtemp(prefix="m1-bench-view-"))
    try:
        print(f"writing a synthetic run: {args.items:,} items x 10 points, {args.tokens} thinking tokens each")
        seconds, (root, config) = timed(lambda: write_run(out, args.items, args.tokens, args.seed))
        size = sum(path.stat().st_size for path in root.rglob("predictions.jsonl"))
        print(f"  {size / 1e6:,.0f} MB of predictions in {seconds:.0f} s")
        keys = [point.key for point in config.grid_points()]

        build, _ = timed(lambda: Catalog(open_runs([root])).refresh())
        print(f"index build from nothing: {build:.1f} s")

        def first_page() -> TestClient:
            client = TestClient(create_app(Catalog(open_runs([root]))))
            get(client, "/items")
            return client

        first, client = timed(first_page)
        filters = {
            "wrong at a point": f"/items?point=synthetic:{keys[3]}&correct=false",
            "flipped between two points": f"/items?flip_from=synthetic:{keys[0]}&flip_to=synthetic:{keys[-1]}"
                                          "&flip=either",
            "no answer at a point": f"/items?point=synthetic:{keys[5]}&no_answer=true",
            "a source": "/items?source=MedXpertQA",
            "question search": "/items?q=hypotension%20suggests",
            "sort by thinking, page 20": f"/items?point=synthetic:{keys[-1]}&sort=thinking_desc&page=20",
        }
        filter_times = {name: statistics.median(timed(lambda: get(client, url))[0] for _ in range(args.repeats))
                        for name, url in filters.items()}
        matched = {name: client.get(url.replace("/items", "/api/items", 1)).json()["total"]
                   for name, url in filters.items()}
        item_page, _ = timed(lambda: get(client, f"/items/{100:016x}"))

        def read_everything() -> int:
            count = 0
            for path in sorted(root.rglob("predictions.jsonl")):
                with path.open(encoding="utf-8") as handle:
                    count += sum(1 for line in handle if json.loads(line))
            return count

        baseline, rows = timed(read_everything)
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)

    print(f"\nm1 view, {datetime.date.today()}: {args.items:,} items x {len(keys)} points ({rows:,} traces, "
          f"{size / 1e6:,.0f} MB)")
    print(f"  baseline: read and decode every trace        {baseline:7.2f} s")
    print(f"  first page (fresh catalog, built index)      {first:7.2f} s   ratio {first / baseline:.3f}"
          f"   target < 3 s {'met' if first < 3 else 'NOT met'}")
    for name, seconds in filter_times.items():
        print(f"  filter: {name:<36} {seconds:7.2f} s   ratio {seconds / baseline:.3f}"
              f"   target < 1 s {'met' if seconds < 1 else 'NOT met'}   ({matched[name]:,} items)")
    print(f"  item page (10 traces)                        {item_page:7.2f} s   ratio {item_page / baseline:.3f}")
    print(f"  index build (once per run)                   {build:7.2f} s   ratio {build / baseline:.3f}")


if __name__ == "__main__":
    main()
