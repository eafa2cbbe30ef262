"""Render: SFT records in SPEC §4's format, unusable teacher output dropped, three export formats."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from m1.curation.render import RECORD_FIELDS, Render, RenderConfig, export_records
from m1.curation.stage import Drop

from .conftest import make_row

OPTIONS = {"A": "Hypokalemia", "B": "Hyperkalemia"}


def teacher(reasoning: str = "  Aldosterone wastes potassium.\n", content: str = "The answer is \\boxed{A}.",
            finish_reason: str = "stop") -> dict:
    return {"reasoning": reasoning, "content": content, "finish_reason": finish_reason, "model": "teacher-x"}


def test_record_and_its_exact_text() -> None:
    row = make_row("Primary hyperaldosteronism causes which disturbance?", OPTIONS, uid="r1", teacher=teacher(),
                   domain={"code": "50", "name": "Pathology"})
    record = Render(RenderConfig()).process(row)
    assert list(record) == list(RECORD_FIELDS)
    assert record["domain"] == "Pathology" and record["answer"] == "The answer is \\boxed{A}."
    assert record["text"] == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nPrimary hyperaldosteronism causes which disturbance?\nA. Hypokalemia\nB. Hyperkalemia\n"
        "Return your final response within \\boxed{}.<|im_end|>\n"
        "<|im_start|>assistant\n<|im_start|>think\nAldosterone wastes potassium.\n<|im_start|>answer\n"
        "Answer: The answer is \\boxed{A}.<|im_end|>\n")
    assert record["messages"][0] == {"role": "user", "content": row["prompt"]}
    assert record["messages"][1]["content"].startswith("<|im_start|>think\nAldosterone")


def test_rows_that_cannot_teach_are_dropped_with_reasons() -> None:
    stage = Render(RenderConfig())
    cases = {
        "no teacher output": make_row("q1", OPTIONS),
        "truncated teacher output": make_row("q2", OPTIONS, teacher=teacher(finish_reason="length")),
        "empty reasoning": make_row("q3", OPTIONS, teacher=teacher(reasoning="  ")),
        "empty answer": make_row("q4", OPTIONS, teacher=teacher(content="")),
    }
    for reason, row in cases.items():
        outcome = stage.process(row)
        assert isinstance(outcome, Drop) and outcome.reason == reason


def test_export_writes_jsonl_parquet_and_a_datasets_folder(tmp_path: Path) -> None:
    import datasets

    stage = Render(RenderConfig())
    records = [stage.process(make_row(f"question {i}?", OPTIONS, uid=f"u{i}", teacher=teacher())) for i in range(3)]
    files = export_records(records, tmp_path, RenderConfig())
    assert set(files) == {"jsonl", "parquet", "datasets"}
    lines = Path(files["jsonl"]).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records
    assert pq.read_table(files["parquet"]).to_pylist() == records
    assert datasets.load_from_disk(files["datasets"]).to_list() == records
    export_records(records[:1], tmp_path, RenderConfig(formats=["datasets"]))  # replaces the folder whole
    assert len(datasets.load_from_disk(files["datasets"])) == 1


@pytest.mark.slow
def test_text_for_another_models_chat_template(default_model_dir: Path) -> None:
    from m1.engine.backends.base import load_tokenizer

    row = make_row("Primary hyperaldosteronism causes which disturbance?", OPTIONS, teacher=teacher())
    record = Render(RenderConfig(tokenizer=str(default_model_dir))).process(row)
    expected = load_tokenizer(str(default_model_dir)).apply_chat_template(record["messages"], tokenize=False)
    assert record["text"] == expected and "<|im_start|>think\nAldosterone" in record["text"]


@pytest.mark.parametrize("content, answer_line", [
    ("The answer is \\boxed{A}.", "Answer: The answer is \\boxed{A}."),
    ("Answer: A", "Answer: A"),
    ("Final Answer: A. Hypokalemia", "Final Answer: A. Hypokalemia"),
    ("final answer: \\boxed{A}", "final answer: \\boxed{A}"),
    ("**Final Answer:** A", "**Final Answer:** A"),
    ("**Answer**: A", "**Answer**: A"),
    ("## Final Answer: A", "## Final Answer: A"),
    ("答案 is not a label: A", "Answer: 答案 is not a label: A"),
    ("Answering this needs care: A", "Answer: Answering this needs care: A"),
])
def test_the_answer_label_is_never_doubled(content: str, answer_line: str) -> None:
    from m1.curation.sft_format import assistant_turn

    assert assistant_turn("Reasoning.", content).splitlines()[-1] == answer_line
