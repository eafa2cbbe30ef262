"""Benchmark: the distill stage over a slow, faulty OpenAI-compatible API — one request at a time
(the baseline) against concurrent workers, and a re-run served by the reply cache.

    .venv/bin/python benchmarks/bench_curation_client.py
    .venv/bin/python benchmarks/bench_curation_client.py --rows 200 --latency 0.1 --workers 16

The API is the test suite's fault server (`tests/curation/fault_server.py`, a real HTTP server on
loopback): every good reply takes `--latency` seconds, and requests follow its fault plans (429
with Retry-After: 1, 500s, timeouts, malformed bodies, truncated and reasoning-less replies, one
row in ten that never succeeds). Prompts are real MedQA test questions. Each configuration runs
`run_stage(Distill(...))` in a fresh run folder; the re-run reuses the concurrent run's cache.
Printed per configuration: seconds, rows per second and the speed-up over the baseline, rows kept
and dropped, requests sent, retries, replies paid, and requests paid more than once (must be 0).
The re-run still sends requests for the rows whose requests never succeed: failures are not cached.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for the fault server

from _common import medqa_items  # noqa: E402

from m1.engine.client import ClientConfig  # noqa: E402
from m1.curation.distill import Distill, DistillConfig  # noqa: E402
from m1.curation.sft_format import sft_prompt  # noqa: E402
from m1.curation.stage import run_stage  # noqa: E402
from tests.curation.fault_server import FaultServer  # noqa: E402


def rows(count: int) -> list[dict]:
    return [{"uid": item.uid, "source": item.source, "question": item.question, "options": dict(item.options),
             "answer_idx": item.answer_idx, "answer": item.answer, "prompt": sft_prompt(item.question, item.options),
             "metadata": {}} for item in medqa_items(count)]


def distill(server: FaultServer, run_dir: Path, data: list[dict], workers: int) -> tuple[float, dict]:
    # The model is named after the run folder: the server assigns fault plans to requests it has
    # not seen, so each configuration meets the same faults, and the re-run meets its own cache.
    teacher = ClientConfig(model=f"teacher-{run_dir.name}", base_url=server.base_url, api_key_env="BENCH_UNUSED_KEY", max_tokens=64,
                           timeout=0.5, max_retries=3, backoff_initial=0.05, backoff_max=0.5,
                           max_concurrency=workers)
    stage = Distill(DistillConfig(teacher=teacher, workers=workers, batch_size=max(8, workers * 4)), run_dir)
    started = time.perf_counter()
    manifest = run_stage(stage, data, run_dir / "distill", upstream="bench")
    return time.perf_counter() - started, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per good reply")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("m1.curation").setLevel(logging.ERROR)  # the rows given up on are expected here
    data = rows(args.rows)

    print(f"distill over a faulty API: {len(data)} MedQA prompts, {args.latency:g} s per good reply")
    print(f"{'configuration':<26}{'seconds':>9}{'rows/s':>9}{'speed-up':>10}{'kept':>6}{'dropped':>9}"
          f"{'requests':>10}{'retries':>9}{'paid':>6}{'paid twice':>12}")
    with tempfile.TemporaryDirectory() as folder, FaultServer(timeout_sleep=1.0, delay=args.latency) as server:
        baseline = None
        runs = [("1 worker (baseline)", Path(folder) / "sequential", 1),
                (f"{args.workers} workers", Path(folder) / "concurrent", args.workers),
                (f"{args.workers} workers, re-run", Path(folder) / "concurrent", args.workers)]
        for label, run_dir, workers in runs:
            if label.endswith("re-run"):
                (run_dir / "distill" / "manifest.json").unlink()  # force the stage to be redone
                for name in ("kept.jsonl", "dropped.jsonl"):
                    (run_dir / "distill" / name).unlink()
            paid_before = sum(server.paid.values())
            seconds, manifest = distill(server, run_dir, data, workers)
            stats = manifest["extra"]["teacher"]
            baseline = baseline or seconds
            paid = sum(server.paid.values()) - paid_before
            print(f"{label:<26}{seconds:>9.2f}{len(data) / seconds:>9.1f}{baseline / seconds:>9.1f}x"
                  f"{manifest['rows_out']:>6}{sum(manifest['dropped'].values()):>9}{stats['requests']:>10}"
                  f"{stats['retries']:>9}{paid:>6}{sum(1 for n in server.paid.values() if n > 1):>12}")
            server.paid.clear()  # "paid twice" is per configuration


if __name__ == "__main__":
    main()
