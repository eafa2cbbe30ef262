"""Helpers for the curation stage tests: curation rows (real HeadQA items or synthetic ones) and a
real `m1 serve` process for the model-facing stages.

    rows = headqa_rows(shared_data, 6)       # real items in the curation row schema
    rows = synthetic_rows(30)                # no data needed
    with m1_server(log_path) as server: ...  # the default model on loopback, stopped by its PID
"""

from __future__ import annotations

from pathlib import Path

from m1.curation.sft_format import sft_prompt
from m1.data.loaders import load_items
from m1.serving.launch import ServerProcess

MODEL = "smollm2-135m"


def row_from(uid: str, source: str, question: str, options: dict[str, str], answer_idx: str) -> dict:
    """A row as the ingest stage writes it (uid, source, question, options, answer, prompt, metadata)."""
    return {"uid": uid, "source": source, "question": question, "options": options, "answer_idx": answer_idx,
            "answer": options[answer_idx], "prompt": sft_prompt(question, options), "metadata": {}}


def headqa_rows(shared_data: Path, n: int) -> list[dict]:
    items = load_items(shared_data / "pools" / "headqa_en" / "train_HEAD_EN.json", format="headqa").items
    # Short questions keep the tiny model's prompts (and the tests) quick.
    short = sorted(items, key=lambda item: len(item.question) + sum(map(len, item.options.values())))[:n]
    return [row_from(item.uid, "headqa", item.question, dict(item.options), item.answer_idx) for item in short]


def synthetic_rows(n: int) -> list[dict]:
    return [row_from(f"row{i:03d}", "synthetic", f"Question number {i}: which option is right?",
                     {"A": f"alpha {i}", "B": f"beta {i}", "C": f"gamma {i}", "D": f"delta {i}"}, "ABCD"[i % 4])
            for i in range(n)]


def m1_server(log_path: Path) -> ServerProcess:
    """`m1 serve` with the default model on the transformers backend, on a free loopback port."""
    return ServerProcess(["--model", MODEL, "--backend", "transformers", "--max-batch-size", "8",
                          "--max-context", "2048"], log_path=log_path, env={"M1_API_KEY": ""})
