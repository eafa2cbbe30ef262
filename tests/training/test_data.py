"""Reading SFT records (JSONL, Parquet, datasets folder), their checks, the held-out split, and
the max-length policy with its counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.curation.sft_format import sft_messages
from m1.data.errors import DataError
from m1.training.config import DataSettings
from m1.training.data import SFTRecord, load_records, sample_records, split_held_out
from m1.training.lengths import ANSWER_SEPARATOR, apply_length_policy, measure
from m1.training.templates import SMOLLM2_TRAINING_TEMPLATE


def record_row(i: int, reasoning_sentences: int = 3) -> dict:
    prompt = f"Question {i}: which vitamin prevents scurvy?\nA. Vitamin C\nB. Vitamin D"
    reasoning = " ".join(f"Step {k}: collagen synthesis needs ascorbate." for k in range(reasoning_sentences))
    answer = "A. Vitamin C"
    return {"uid": f"u{i}", "source": "Test", "domain": None, "prompt": prompt, "reasoning": reasoning,
            "answer": answer, "messages": sft_messages(prompt, reasoning, answer), "text": ""}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_reads_jsonl_parquet_and_datasets_folder(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = [record_row(i) for i in range(4)]
    jsonl = load_records(DataSettings(path=str(write_jsonl(tmp_path / "sft.jsonl", rows))))
    Dataset.from_list(rows).to_parquet(str(tmp_path / "sft.parquet"))
    parquet = load_records(DataSettings(path=str(tmp_path / "sft.parquet")))
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "flat"))
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dict"))
    folder = load_records(DataSettings(path=str(tmp_path / "flat")))
    split = load_records(DataSettings(path=str(tmp_path / "dict"), split="train"))
    assert jsonl == parquet == folder == split
    assert [r.uid for r in jsonl] == ["u0", "u1", "u2", "u3"] and jsonl[0].messages == rows[0]["messages"]


def test_records_without_messages_are_rendered_in_the_m1_format(tmp_path: Path) -> None:
    row = record_row(0)
    del row["messages"]
    (record,) = load_records(DataSettings(path=str(write_jsonl(tmp_path / "sft.jsonl", [row]))))
    assert record.messages == sft_messages(row["prompt"], row["reasoning"], row["answer"])
    assert record.messages[1]["content"].startswith("<|im_start|>think\n")


@pytest.mark.parametrize(("change", "field", "problem"), [
    (lambda r: r.pop("messages") and r.pop("reasoning"), "reasoning", "no `messages`"),
    (lambda r: r.update(messages=[{"role": "user", "content": "q"}]), "messages", "assistant turn"),
    (lambda r: r.update(messages=[{"role": "robot", "content": "q"}]), "messages[0]", "role"),
    (lambda r: r.update(uid="u0"), "uid", "repeats row 1"),
])
def test_bad_rows_name_file_row_and_field(tmp_path: Path, change, field: str, problem: str) -> None:
    rows = [record_row(0), record_row(1)]
    change(rows[1])
    path = write_jsonl(tmp_path / "sft.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_records(DataSettings(path=str(path)))
    assert (caught.value.problem.file, caught.value.problem.row, caught.value.problem.field) == (str(path), "2", field)
    assert problem in str(caught.value)


def test_missing_files_and_broken_json_are_reported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_records(DataSettings(path=str(tmp_path / "nope.jsonl")))
    (tmp_path / "bad.jsonl").write_text(json.dumps(record_row(0)) + "\n{not json\n")
    with pytest.raises(DataError, match="row 2.*invalid JSON"):
        load_records(DataSettings(path=str(tmp_path / "bad.jsonl")))


def test_held_out_split_is_by_uid_not_position() -> None:
    records = [SFTRecord(f"u{i}", []) for i in range(50)]
    train, held = split_held_out(records, 0.2, seed=42)
    assert len(held) == 10 and len(train) == 40 and not {r.uid for r in train} & {r.uid for r in held}
    _, held_reversed = split_held_out(records[::-1], 0.2, seed=42)
    assert {r.uid for r in held_reversed} == {r.uid for r in held}
    assert len(split_held_out(records, 7, seed=42)[1]) == 7
    assert {r.uid for r in split_held_out(records, 0.2, seed=1)[1]} != {r.uid for r in held}
    with pytest.raises(DataError, match="held_out"):
        split_held_out(records, 50, seed=42)
    assert sample_records(records, 5, seed=0) == sample_records(records, 5, seed=0)
    assert len(sample_records(records, 5, seed=0)) == 5 and sample_records(records, None, 0) == records


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


def test_length_policies_count_what_they_do(tokenizer) -> None:
    records = [SFTRecord(f"u{i}", record_row(i, reasoning_sentences=n)["messages"])
               for i, n in enumerate([2, 2, 40, 40, 400])]
    lengths = [measure(tokenizer, SMOLLM2_TRAINING_TEMPLATE, r.messages)[0] for r in records]
    limit = 200
    assert lengths[0] <= limit < lengths[2]

    kept, report = apply_length_policy(records, tokenizer, SMOLLM2_TRAINING_TEMPLATE, limit, "drop")
    assert [r.uid for r in kept] == ["u0", "u1"] and report.dropped == {"longer than max_length": 3}
    assert report.tokens == lengths[0] + lengths[1] and report.longest_in == max(lengths)

    kept, report = apply_length_policy(records, tokenizer, SMOLLM2_TRAINING_TEMPLATE, limit, "truncate")
    assert len(kept) == 5 and report.truncated == 3 and report.tokens == lengths[0] + lengths[1] + 3 * limit

    kept, report = apply_length_policy(records, tokenizer, SMOLLM2_TRAINING_TEMPLATE, limit, "trim_reasoning")
    assert len(kept) == 5 and report.trimmed == 3 and report.within_limit == 2
    for original, trimmed in zip(records, kept):
        content = trimmed.messages[-1]["content"]
        assert measure(tokenizer, SMOLLM2_TRAINING_TEMPLATE, trimmed.messages)[0] <= limit
        # The answer marker, the answer and the end of the turn stay; the reasoning ends on a sentence.
        assert content.endswith(ANSWER_SEPARATOR + "Answer: A. Vitamin C")
        assert content.split(ANSWER_SEPARATOR)[0].endswith("ascorbate.")
        assert original.messages[0] == trimmed.messages[0]

    # A prompt that alone exceeds the limit cannot be saved by any policy.
    huge = SFTRecord("huge", sft_messages("word " * 400, "short reasoning.", "A"))
    for policy, reason in (("truncate", "prompt alone fills max_length"),
                           ("trim_reasoning", "prompt and answer alone exceed max_length")):
        kept, report = apply_length_policy([huge], tokenizer, SMOLLM2_TRAINING_TEMPLATE, limit, policy)
        assert not kept and report.dropped == {reason: 1}
