"""Loaders on the real files (exact counts of the data README) and on deliberately broken rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.data.errors import DataError
from m1.data.items import MCQItem, make_uid
from m1.data.loaders import detect_format, load_items, load_pubmedqa_split

REAL_FILES = [
    # (path under shared/data, expected format, expected count)
    ("eval/huatuo_eval_data.json", "m1-eval", 4183 + 1273 + 1000 + 1535 + 390),
    ("eval/m1_eval_data.partial.json", "m1-eval", 10549),
    ("eval/reasoningeval/medbullets_op4.jsonl", "eval-jsonl", 308),
    ("eval/reasoningeval/medbullets_op5.jsonl", "eval-jsonl", 308),
    ("eval/reasoningeval/MedXpertQA_test.jsonl", "eval-jsonl", 1449),
    ("eval/reasoningeval/HLE_biomed.jsonl", "eval-jsonl", 103),
    ("eval/medqa_test_5opt.jsonl", "eval-jsonl", 1273),
    ("pools/headqa_en/train_HEAD_EN.json", "headqa", 2657),
    ("pools/headqa_en/dev_HEAD_EN.json", "headqa", 1366),
    ("pools/headqa_en/test_HEAD_EN.json", "headqa", 2742),
    ("pools/pubmedqa/ori_pqal.json", "pubmedqa", 1000),
    ("pools/huatuo_demo/demo_data.json", "huatuo-demo", 198),
]


@pytest.mark.parametrize(("relative", "fmt", "count"), REAL_FILES)
def test_real_file_loads_with_exact_count(shared_data: Path, relative: str, fmt: str, count: int) -> None:
    path = shared_data / relative
    assert detect_format(path) == fmt
    result = load_items(path)
    assert result.format == fmt
    assert result.problems == []
    assert len(result.items) == count
    assert len({item.uid for item in result.items}) == count, "uids must be unique even for duplicate rows"


def test_huatuo_eval_sources_and_counts(shared_data: Path) -> None:
    grouped = load_items(shared_data / "eval/huatuo_eval_data.json").by_source()
    assert {name: len(items) for name, items in grouped.items()} == {
        "MedMCQA_validation": 4183, "MedQA_USLME_test": 1273, "PubMedQA_test": 1000,
        "MMLU-Pro_Medical_test": 1535, "GPQA_Medical_test": 390,
    }


def test_medxpertqa_label_becomes_answer(shared_data: Path) -> None:
    items = load_items(shared_data / "eval/reasoningeval/MedXpertQA_test.jsonl", source="MedXpertQA").items
    first = items[0]
    assert first.source == "MedXpertQA"
    assert first.answer_idx == "B"
    assert first.answer == first.options["B"]
    assert first.metadata["id"] == "Text-1001"
    assert first.uid == make_uid("MedXpertQA", "Text-1001")
    assert {item.metadata["id"] for item in items} >= {"Text-1001", "Text-2449"}


def test_hle_answer_prefix_is_removed(shared_data: Path) -> None:
    items = load_items(shared_data / "eval/reasoningeval/HLE_biomed.jsonl").items
    first = items[0]
    assert first.answer_idx == "C"
    assert first.answer == "Patient 3, Patient 2, Patient 1"
    assert first.metadata["answer_as_written"].startswith("C. Patient 3")
    # Row 89 writes more lines in its answer than option D holds; the option is the answer.
    assert items[88].answer == items[88].options["D"]
    # Row 35 has an empty option H in the real file, kept as it is.
    assert items[34].options["H"] == ""


@pytest.mark.parametrize("answer_idx, answer", [("A", "A. Dermatitis herpetiformis"), ("B", "B. fragilis")])
def test_an_option_whose_own_text_starts_with_its_letter_is_the_answer(tmp_path: Path, answer_idx, answer) -> None:
    """MedMCQA has options such as "B. fragilis": that is the option's text, not HLE's "B. text" form."""
    options = {"A": "A. Dermatitis herpetiformis", "B": "B. fragilis", "C": "Pemphigus", "D": "Lichen planus"}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"question": "Which one?", "options": options, "answer": answer,
                                "answer_idx": answer_idx}) + "\n")
    result = load_items(path, source="S")
    assert result.format == "eval-jsonl"
    item = result.items[0]
    assert (item.answer_idx, item.answer) == (answer_idx, options[answer_idx])


def test_medqa_5opt_keeps_meta_info(shared_data: Path) -> None:
    items = load_items(shared_data / "eval/medqa_test_5opt.jsonl").items
    assert all(len(item.options) == 5 for item in items)
    assert {item.metadata["meta_info"] for item in items} == {"step1", "step2&3"}


def test_headqa_maps_ra_to_letter(shared_data: Path) -> None:
    items = load_items(shared_data / "pools/headqa_en/train_HEAD_EN.json").items
    first = items[0]
    assert first.question == "The excitatory postsynaptic potentials:"
    assert first.answer_idx == "C"  # ra "3" is the third answer
    assert len(first.options) == 5
    assert sum(1 for item in items if item.metadata["image"]) > 0


def test_pubmedqa_split_and_eval_text(shared_data: Path) -> None:
    train, test = load_pubmedqa_split(shared_data / "pools/pubmedqa/ori_pqal.json",
                                      shared_data / "pools/pubmedqa/test_ground_truth.json")
    assert (len(train), len(test)) == (500, 500)
    assert not {i.metadata["pmid"] for i in train} & {i.metadata["pmid"] for i in test}
    # The pool renders questions exactly as the evaluation suite does, so overlap is visible.
    suite = {item.question: item.answer for item in
             load_items(shared_data / "eval/huatuo_eval_data.json").by_source()["PubMedQA_test"]}
    for item in train + test:
        assert suite[item.question] == item.answer


def test_huatuo_demo_keeps_reasoning(shared_data: Path) -> None:
    items = load_items(shared_data / "pools/huatuo_demo/demo_data.json").items
    assert all(item.metadata["reasoning"] for item in items)
    assert items[0].answer == "Parvovirus B19 infection"


def test_duplicates_get_distinct_stable_uids(shared_data: Path) -> None:
    path = shared_data / "eval/m1_eval_data.partial.json"
    first = [item.uid for item in load_items(path).items]
    again = [item.uid for item in load_items(path).items]
    assert first == again
    gpqa = load_items(path).by_source()["GPQA_Medical_test"]
    assert len({item.question for item in gpqa}) == 78
    assert len({item.uid for item in gpqa}) == 390


# ----------------------------------------------------------------------------- bad input


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


GOOD = {"question": "Which nerve is injured?", "options": {"A": "Radial", "B": "Ulnar"},
        "answer": "Ulnar", "answer_idx": "B"}


@pytest.mark.parametrize(
    ("bad_row", "field", "words"),
    [
        ({**GOOD, "answer_idx": "E"}, "answer_idx", "not one of the options"),
        ({**GOOD, "answer": "Median"}, "answer", "differs from option B"),
        ({**GOOD, "options": {}}, "options", "missing or empty options"),
        ({k: v for k, v in GOOD.items() if k != "question"}, "question", "missing or empty question"),
        ({k: v for k, v in GOOD.items() if k != "answer_idx"}, "answer_idx", "missing answer letter"),
        ({**GOOD, "options": {"A": "Radial", "b": "Ulnar"}}, "options.b", "not a single capital letter"),
        ('{"question": "q", "options": {"A": "x", "A": "y"}, "answer_idx": "A"}', "A", "appears twice"),
        ('{"question": "q", "options": ', "", "malformed JSON"),
    ],
)
def test_bad_row_names_file_row_and_field(tmp_path: Path, bad_row: object, field: str, words: str) -> None:
    path = write_jsonl(tmp_path / "broken.jsonl", [GOOD, GOOD | {"question": "Second?"}, bad_row])
    with pytest.raises(DataError) as caught:
        load_items(path, source="Test")
    problem = caught.value.problem
    assert problem.file == str(path)
    assert problem.row == "3"
    assert problem.field == field
    assert words in problem.problem
    assert str(path) in str(caught.value) and "row 3" in str(caught.value)


def test_skip_invalid_collects_every_problem(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [GOOD, {**GOOD, "answer_idx": "Z"}, "not json", GOOD | {"question": "Q2"}])
    result = load_items(path, source="Test", skip_invalid=True)
    assert [item.question for item in result.items] == ["Which nerve is injured?", "Q2"]
    assert [(p.row, p.field) for p in result.problems] == [("2", "answer_idx"), ("3", "")]


def test_nested_json_error_names_source_and_index(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"SetA": [GOOD, {**GOOD, "answer": "Radial"}]}))
    with pytest.raises(DataError) as caught:
        load_items(path)
    assert caught.value.problem.row == "SetA[1]"
    assert caught.value.problem.field == "answer"


def test_malformed_json_file_names_line(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text('{\n  "SetA": [\n    {"question": }\n  ]\n}')
    with pytest.raises(DataError) as caught:
        load_items(path, format="m1-eval")
    assert caught.value.problem.row == "3"
    assert "malformed JSON" in caught.value.problem.problem


def test_unknown_format_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match="cannot tell the file's format"):
        load_items(path)
    with pytest.raises(DataError, match="unknown format 'yaml'"):
        load_items(path, format="yaml")


# ----------------------------------------------------------------------------- own schema


def own_rows() -> list[dict]:
    return [
        {"source": "Mine", "question": "Q1", "options": {"A": "x", "B": "y"}, "answer_idx": "A", "id": "q1"},
        {"source": "Mine", "question": "Q2", "options": {"A": "x", "B": "y", "C": "z"}, "answer_idx": "C",
         "metadata": {"topic": "cardio"}},
    ]


def test_own_schema_jsonl_csv_parquet_agree(tmp_path: Path) -> None:
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = own_rows()
    jsonl = write_jsonl(tmp_path / "items.jsonl", rows)
    csv_path = tmp_path / "items.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "source", "question", "options", "answer_idx", "metadata"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "options": json.dumps(row["options"]), "metadata": json.dumps(row.get("metadata", {}))})
    parquet = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "options": json.dumps(r["options"]),
                                          "metadata": json.dumps(r.get("metadata", {})), "id": r.get("id")}
                                         for r in rows]), parquet)
    loaded = [load_items(p).items for p in (jsonl, csv_path, parquet)]
    assert all(result == loaded[0] for result in loaded)
    assert loaded[0][0].uid == make_uid("Mine", "q1")
    assert loaded[0][1].metadata == {"topic": "cardio"}
    assert loaded[0][1].answer == "z"


def test_csv_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text('source,question,options,answer_idx\nMine,Q1,"{""A"": ""x""}",A\nMine,Q2,"{""A"": ""x""}",B\n')
    with pytest.raises(DataError) as caught:
        load_items(path)
    assert (caught.value.problem.row, caught.value.problem.field) == ("3", "answer_idx")


def test_item_model_rejects_inconsistent_answer() -> None:
    with pytest.raises(ValueError, match="differs from option"):
        MCQItem.create(source="S", question="q", options={"A": "x", "B": "y"}, answer_idx="A", answer="y")
    item = MCQItem.create(source="S", question="q", options={"A": "x", "B": "y"}, answer_idx="B")
    assert item.options_block() == "A. x\nB. y"
    assert item.to_eval_record() == {"question": "q", "options": {"A": "x", "B": "y"}, "answer": "y", "answer_idx": "B"}
