"""The official releases of every benchmark in the suite: detected, converted, and checked row by row.

Fixtures (tests/fixtures/upstream) are invented questions in each release's schema; the tests
rewrite them into the other containers real files come in, and break them on purpose.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from m1.data.errors import DataError
from m1.data.items import MCQItem, make_uid
from m1.data.loaders import FORMATS, PUBMEDQA_INSTRUCTION, detect_format, load_items
from m1.data.upstream import GPQA_ANSWERS, gpqa_option_order, gpqa_row_key, parse_answer_choices

UPSTREAM = Path(__file__).parents[1] / "fixtures" / "upstream"

OFFICIAL = [
    # (fixture, format it is detected as, items, rows left out by the format)
    ("medqa_4_options_test.jsonl", "eval-jsonl", 3, 0),
    ("medqa_test.jsonl", "eval-jsonl", 3, 0),
    ("medmcqa_validation.jsonl", "medmcqa", 4, 0),
    ("medmcqa_dev.json", "medmcqa-release", 4, 0),
    ("ori_pqal.json", "pubmedqa", 3, 0),
    ("mmlu_pro_test.jsonl", "mmlu-pro", 4, 0),
    ("gpqa_main.csv", "gpqa", 4, 0),
    ("medbullets_op4.csv", "medbullets", 3, 0),
    ("medbullets_op5.json", "medbullets", 3, 0),
    ("medxpertqa_text_test.jsonl", "medxpertqa", 4, 0),
    ("hle_test.jsonl", "hle", 3, 2),
]


def jsonl_rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (UPSTREAM / name).read_text().splitlines() if line.strip()]


def csv_rows(name: str) -> list[dict[str, Any]]:
    with (UPSTREAM / name).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]], *, bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def columns(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """pandas' `to_json(orient="columns")` layout."""
    names = list(dict.fromkeys(key for row in rows for key in row))
    return {name: {str(i): row.get(name) for i, row in enumerate(rows)} for name in names}


def split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """pandas' `to_json(orient="split")` layout."""
    names = list(dict.fromkeys(key for row in rows for key in row))
    return {"columns": names, "index": list(range(len(rows))), "data": [[row.get(n) for n in names] for row in rows]}


def write_container(path: Path, rows: list[dict[str, Any]], container: str) -> Path:
    if container == "jsonl":
        return write_jsonl(path.with_suffix(".jsonl"), rows)
    if container == "csv":
        return write_csv(path.with_suffix(".csv"), rows, bom=True)
    if container == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path.with_suffix(".parquet"))
        return path.with_suffix(".parquet")
    layout = {"json-list": rows, "json-columns": columns(rows), "json-split": split(rows)}[container]
    path.with_suffix(".json").write_text(json.dumps(layout, ensure_ascii=False))
    return path.with_suffix(".json")


def records(items: list[MCQItem]) -> list[tuple[str, dict[str, Any]]]:
    return [(item.uid, item.to_eval_record()) for item in items]


# ----------------------------------------------------------------------------- every release


@pytest.mark.parametrize(("name", "fmt", "count", "excluded"), OFFICIAL)
def test_official_file_is_detected_and_loads(name: str, fmt: str, count: int, excluded: int) -> None:
    path = UPSTREAM / name
    assert detect_format(path) == fmt
    result = load_items(path)
    assert (result.format, len(result.items), sum(result.excluded.values()), result.problems) == (fmt, count, excluded, [])
    for item in result.items:
        assert item.answer == item.options[item.answer_idx]
        assert "Answer Choices" not in item.question
        assert all(text.strip() and text != "N/A" for text in item.options.values())


SCHEMAS = [
    # (fixture, containers its rows are also published or exported in)
    ("medqa_4_options_test.jsonl", ["json-list", "json-columns", "json-split", "parquet"]),
    ("medqa_test.jsonl", ["json-list", "json-columns", "parquet"]),
    ("medmcqa_validation.jsonl", ["json-list", "json-columns", "csv", "parquet"]),
    ("mmlu_pro_test.jsonl", ["json-list", "json-columns", "json-split", "parquet"]),
    ("medxpertqa_text_test.jsonl", ["json-list", "json-columns", "parquet"]),
    ("hle_test.jsonl", ["json-list", "json-columns", "parquet"]),
    ("medbullets_op4.csv", ["jsonl", "json-list", "json-columns", "json-split", "parquet"]),
    ("gpqa_main.csv", ["jsonl", "json-list", "json-columns", "parquet"]),
]


@pytest.mark.parametrize(("name", "containers"), SCHEMAS)
def test_same_rows_load_the_same_from_every_container(tmp_path: Path, name: str, containers: list[str]) -> None:
    rows = csv_rows(name) if name.endswith(".csv") else jsonl_rows(name)
    expected = load_items(UPSTREAM / name, source="Set")
    for container in containers:
        path = write_container(tmp_path / f"{container}-{Path(name).stem}", rows, container)
        loaded = load_items(path, source="Set")
        assert loaded.format == expected.format, container
        assert records(loaded.items) == records(expected.items), container
        assert loaded.excluded == expected.excluded, container


# ----------------------------------------------------------------------------- MedQA


def test_medqa_official_4_and_5_options() -> None:
    four = load_items(UPSTREAM / "medqa_4_options_test.jsonl").items
    five = load_items(UPSTREAM / "medqa_test.jsonl").items
    assert {len(item.options) for item in four} == {4} and {len(item.options) for item in five} == {5}
    assert [item.answer for item in four] == [item.answer for item in five]
    assert four[0].metadata == {"meta_info": "step2&3", "metamap_phrases": ["30 year old runner", "heel pain", "first steps"]}
    assert {item.metadata["meta_info"] for item in five} == {"step1", "step2&3"}


# ----------------------------------------------------------------------------- MedMCQA


def test_medmcqa_cop_counts_from_0_on_the_hub_and_from_1_in_the_release() -> None:
    hub = load_items(UPSTREAM / "medmcqa_validation.jsonl", source="MedMCQA").items
    release = load_items(UPSTREAM / "medmcqa_dev.json", source="MedMCQA").items
    assert [(i.answer_idx, i.answer) for i in hub] == [("C", "Abducens nerve"), ("A", "Lorazepam"), ("D", "Ileum"), ("B", "15 mmHg")]
    assert records(release) == records(hub)
    assert hub[0].uid == make_uid("MedMCQA", "0f1e2d3c-0000-4000-8000-000000000001")
    assert hub[0].metadata["subject_name"] == "Anatomy"


def test_medmcqa_file_that_fits_both_numberings_is_ambiguous(tmp_path: Path) -> None:
    rows = [row for row in jsonl_rows("medmcqa_validation.jsonl") if row["cop"] in (1, 2)]
    path = write_jsonl(tmp_path / "medmcqa_part.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_items(path)
    message = str(caught.value)
    assert str(path) in message and "fits several formats" in message
    assert "medmcqa (" in message and "medmcqa-release (" in message
    assert all(name in caught.value.problem.fix for name in FORMATS)
    named = load_items(path, format="medmcqa-release").items
    assert [item.answer_idx for item in named] == ["B", "A"]  # cop 2, 1 counted from 1


def test_medmcqa_bad_cop_names_row_and_field(tmp_path: Path) -> None:
    rows = jsonl_rows("medmcqa_validation.jsonl")
    rows[2]["cop"] = 9
    path = write_jsonl(tmp_path / "medmcqa_validation.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_items(path, format="medmcqa")
    assert (caught.value.problem.row, caught.value.problem.field) == ("3", "cop")


# ----------------------------------------------------------------------------- PubMedQA


def test_pubmedqa_pqal_is_written_as_the_suite_writes_it(tmp_path: Path) -> None:
    items = load_items(UPSTREAM / "ori_pqal.json").items
    assert [item.answer for item in items] == ["yes", "no", "maybe"]
    first = items[0]
    assert first.question == ("Adults with prediabetes were randomised to a daily 30-minute walk or usual care. Fasting "
                              f"glucose fell by 0.4 mmol/L in the walking group.\n\n{PUBMEDQA_INSTRUCTION}\n"
                              "Does a daily walk lower fasting glucose in adults with prediabetes?")
    assert first.uid == make_uid("PubMedQA", "90000001")
    data = json.loads((UPSTREAM / "ori_pqal.json").read_text())
    del data["90000002"]["CONTEXTS"]
    broken = tmp_path / "ori_pqal.json"
    broken.write_text(json.dumps(data))
    result = load_items(broken, skip_invalid=True)
    assert [(p.row, p.field) for p in result.problems] == [("90000002", "CONTEXTS")]
    assert len(result.items) == 2


# ----------------------------------------------------------------------------- MMLU-Pro


def test_mmlu_pro_drops_na_padding_and_letters_follow() -> None:
    items = {item.metadata["question_id"]: item for item in load_items(UPSTREAM / "mmlu_pro_test.jsonl").items}
    assert len(items[70001].options) == 10 and items[70001].answer == "Niacin"
    trailing = items[70002]  # two trailing "N/A": the answer keeps its letter
    assert (len(trailing.options), trailing.answer_idx, trailing.answer) == (8, "C", "Mitochondrion")
    middle = items[70003]  # an "N/A" before the answer: the answer moves up from F to E
    assert list(middle.options.values()) == ["Glucagon", "Cortisol", "Adrenaline", "Growth hormone", "Insulin"]
    assert (middle.answer_idx, middle.answer, middle.metadata["padding_options_dropped"]) == ("E", "Insulin", 1)
    assert items[70001].uid == make_uid("mmlu_pro_test", "70001")


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"answer": "D"}, "answer", "disagrees with answer_index"),
    ({"answer_index": 12}, "answer_index", "not a position"),
    ({"options": ["Ribosome", "N/A", "Lysosome"], "answer_index": 1, "answer": "B"}, "answer_index", "padding option"),
])
def test_mmlu_pro_bad_answer_names_row_and_field(tmp_path: Path, change: dict[str, Any], field: str, words: str) -> None:
    rows = jsonl_rows("mmlu_pro_test.jsonl")
    rows[1] |= change
    with pytest.raises(DataError) as caught:
        load_items(write_jsonl(tmp_path / "mmlu_pro.jsonl", rows))
    assert (caught.value.problem.row, caught.value.problem.field) == ("2", field)
    assert words in caught.value.problem.problem


# ----------------------------------------------------------------------------- GPQA


def gpqa_by_id(path: Path, **kwargs: Any) -> dict[str, MCQItem]:
    return {item.metadata.get("Record ID", item.question): item for item in load_items(path, **kwargs).items}


def test_gpqa_options_follow_the_documented_seeded_rule() -> None:
    rows = csv_rows("gpqa_main.csv")
    items = gpqa_by_id(UPSTREAM / "gpqa_main.csv")
    for row in rows:
        item = items[row["Record ID"]]
        answers = [row[name].strip() for name in GPQA_ANSWERS]
        order = gpqa_option_order(row["Record ID"])
        assert list(item.options.values()) == [answers[i] for i in order]
        assert item.answer == answers[0]
        assert item.uid == make_uid("gpqa_main", row["Record ID"])
    # BOM and quoted newlines: the first column is named cleanly, multi-line cells stay whole.
    first = items[rows[0]["Record ID"]]
    assert "Pre-Revision Question" in first.metadata and "\n" in first.question
    assert first.metadata["Explanation"] == "Invented explanation,\nover two lines."


def test_gpqa_order_is_stable_and_independent_of_row_order(tmp_path: Path) -> None:
    rows = csv_rows("gpqa_main.csv")
    reference = gpqa_by_id(UPSTREAM / "gpqa_main.csv")
    shuffled = gpqa_by_id(write_csv(tmp_path / "gpqa_reversed.csv", rows[::-1]))
    assert {k: (v.options, v.answer_idx) for k, v in shuffled.items()} == \
           {k: (v.options, v.answer_idx) for k, v in reference.items()}
    # Without a Record ID the key is the question's digest: still the same order whatever the row order.
    no_ids = [{k: v for k, v in row.items() if k != "Record ID"} for row in rows]
    forward = gpqa_by_id(write_csv(tmp_path / "a.csv", no_ids))
    backward = gpqa_by_id(write_csv(tmp_path / "b.csv", no_ids[::-1]))
    assert {k: v.options for k, v in forward.items()} == {k: v.options for k, v in backward.items()}
    assert gpqa_row_key(no_ids[0]).startswith("sha1:")


def test_gpqa_rule_spreads_the_correct_answer_and_depends_on_the_seed() -> None:
    keys = [f"recKey{i:04d}" for i in range(200)]
    positions = [gpqa_option_order(key).index(0) for key in keys]
    assert set(positions) == {0, 1, 2, 3}
    assert max(positions.count(p) for p in range(4)) < 0.4 * len(keys)
    assert [gpqa_option_order(key) for key in keys] == [gpqa_option_order(key) for key in keys]
    assert any(gpqa_option_order(key, seed=7) != gpqa_option_order(key) for key in keys)


def test_csv_cells_beyond_the_default_size_limit(tmp_path: Path) -> None:
    rows = csv_rows("medbullets_op4.csv")
    rows[0]["explanation"] = "long explanation. " * 10_000  # 180 kB, over csv's 128 KiB default
    items = load_items(write_csv(tmp_path / "medbullets_op4.csv", rows)).items
    assert len(items[0].metadata["explanation"]) > 131072


def test_gpqa_error_names_the_line_a_multiline_record_starts_on(tmp_path: Path) -> None:
    rows = csv_rows("gpqa_main.csv")
    rows[1]["Incorrect Answer 2"] = "  "
    path = write_csv(tmp_path / "gpqa.csv", rows)
    lines_before = 1 + sum(1 + sum(v.count("\n") for v in row.values()) for row in rows[:1])
    with pytest.raises(DataError) as caught:
        load_items(path)
    assert (caught.value.problem.row, caught.value.problem.field) == (str(lines_before + 1), "Incorrect Answer 2")


# ----------------------------------------------------------------------------- MedBullets


def test_medbullets_csv_and_column_json() -> None:
    op4 = load_items(UPSTREAM / "medbullets_op4.csv").items
    op5 = load_items(UPSTREAM / "medbullets_op5.json").items
    assert [len(i.options) for i in op4] == [4, 4, 4] and [len(i.options) for i in op5] == [5, 5, 5]
    assert [i.answer_idx for i in op4] == [i.answer_idx for i in op5] == ["A", "C", "B"]
    assert op4[0].metadata["explanation"].startswith("A diffuse goitre with a bruit suggests Graves disease.\n\nIncorrect")
    assert op5[0].metadata["link"] == "https://example.org/q/1"
    # No id in MedBullets: the uid comes from the content, as for the bundle's MedBullets rows.
    assert op4[0].uid == MCQItem.create(source="medbullets_op4", question=op4[0].question, options=op4[0].options,
                                        answer_idx="A").uid


def test_medbullets_four_option_row_in_a_five_option_table(tmp_path: Path) -> None:
    rows = [row | {"ope": ""} for row in csv_rows("medbullets_op4.csv")]
    items = load_items(write_csv(tmp_path / "medbullets.csv", rows, bom=True)).items
    assert records(items) == records(load_items(UPSTREAM / "medbullets_op4.csv", source="medbullets").items)


def test_medbullets_answer_text_must_match_its_option(tmp_path: Path) -> None:
    rows = csv_rows("medbullets_op4.csv")
    rows[2]["answer"] = "Streptococcus pyogenes"
    path = write_csv(tmp_path / "medbullets_op4.csv", rows)
    with pytest.raises(DataError) as caught:
        load_items(path)
    assert caught.value.problem.field == "answer" and "differs from option B" in caught.value.problem.problem
    assert caught.value.problem.row != "" and str(path) in str(caught.value)


# ----------------------------------------------------------------------------- MedXpertQA


def test_medxpertqa_shows_each_option_once() -> None:
    items = load_items(UPSTREAM / "medxpertqa_text_test.jsonl").items
    assert [item.metadata["id"] for item in items] == ["Text-7", "Text-1001", "Text-1500", "Text-2449"]
    for item, row in zip(items, jsonl_rows("medxpertqa_text_test.jsonl")):
        assert row["question"].startswith(item.question) and "Answer Choices" not in item.question
        prompt = f"{item.question}\n{item.options_block()}"
        for letter, text in item.options.items():
            assert prompt.count(text) == 1, (item.metadata["id"], letter)
        assert item.uid == make_uid("medxpertqa_text_test", item.metadata["id"])
        assert item.answer_idx == row["label"]


def test_medxpertqa_multimodal_rows_are_excluded(tmp_path: Path) -> None:
    rows = jsonl_rows("medxpertqa_text_test.jsonl")
    rows[0]["images"] = ["MM-7-a.jpeg"]
    result = load_items(write_jsonl(tmp_path / "medxpertqa_mm_test.jsonl", rows))
    assert (len(result.items), dict(result.excluded)) == (3, {"needs its image (the suite is text-only)": 1})


def test_medxpertqa_evaluation_input_variant(tmp_path: Path) -> None:
    """MedXpertQA's own eval input: options as [{letter, content}], label as ["B"]."""
    rows = [row | {"options": [{"letter": k, "content": v} for k, v in row["options"].items()], "label": [row["label"]]}
            for row in jsonl_rows("medxpertqa_text_test.jsonl")]
    path = write_jsonl(tmp_path / "medxpertqa_text_test.jsonl", rows)
    assert records(load_items(path).items) == records(load_items(UPSTREAM / "medxpertqa_text_test.jsonl").items)


def test_medxpertqa_choices_written_as_lettered_lines(tmp_path: Path) -> None:
    rows = jsonl_rows("medxpertqa_text_test.jsonl")
    for row in rows:
        stem = row["question"].split("\nAnswer Choices:")[0]
        row["question"] = stem + "\nAnswer Choices:\n" + "\n".join(f"{k}. {v}" for k, v in row["options"].items())
    path = write_jsonl(tmp_path / "medxpertqa.jsonl", rows)
    assert records(load_items(path).items) == records(load_items(UPSTREAM / "medxpertqa_text_test.jsonl",
                                                                  source="medxpertqa").items)


@pytest.mark.parametrize(("edit", "words"), [
    (lambda q: q.replace("(C) Plasma renin activity", "(C) Plasma aldosterone"),
     "choice (C) reads 'Plasma aldosterone' but options.C is 'Plasma renin activity'"),
    (lambda q: q.split(" (J) ")[0], "it lists A–I but options has A–J"),
    (lambda q: q.replace("Answer Choices: (A)", "Answer Choices: see below (A)"), "lists no choices"),
])
def test_medxpertqa_choices_that_disagree_with_options_are_an_error(tmp_path: Path, edit: Any, words: str) -> None:
    rows = jsonl_rows("medxpertqa_text_test.jsonl")
    rows[1]["question"] = edit(rows[1]["question"])
    path = write_jsonl(tmp_path / "medxpertqa.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_items(path)
    problem = caught.value.problem
    assert (problem.file, problem.row, problem.field) == (str(path), "2", "question")
    assert words in problem.problem
    skipped = load_items(path, skip_invalid=True)
    assert [p.row for p in skipped.problems] == ["2"] and len(skipped.items) == 3


@pytest.mark.parametrize(("block", "expected"), [
    ("(A) x (B) y (C) z", {"A": "x", "B": "y", "C": "z"}),
    ("\n(A) x\n(B) y, see (A)\n(C) z", {"A": "x", "B": "y, see (A)", "C": "z"}),
    ("\nA. Marker P\nB. Growth on\nE. coli lawns\nC. none", {"A": "Marker P", "B": "Growth on\nE. coli lawns", "C": "none"}),
    ("\nA) one\nB) two", {"A": "one", "B": "two"}),
    ("see the list (A) x", {}),
])
def test_parse_answer_choices(block: str, expected: dict[str, str]) -> None:
    assert parse_answer_choices(block) == expected


# ----------------------------------------------------------------------------- HLE


def test_hle_keeps_text_only_multiple_choice_and_counts_the_rest() -> None:
    result = load_items(UPSTREAM / "hle_test.jsonl")
    assert dict(result.excluded) == {"not multiple choice (answer_type 'exactMatch')": 1,
                                     "needs its image (the suite is text-only)": 1}
    first, second, third = result.items
    assert first.question.endswith("relapse of a made-up disease?")
    assert first.options == {"A": "Marker P alone", "B": "Marker Q and marker R",
                             "C": "Marker P with a rising\ntrend of marker S", "D": "None of the above"}
    assert first.answer == "Marker P with a rising\ntrend of marker S"
    assert second.options["A"] == "A yeast that grows on\nE. coli lawns" and second.answer_idx == "B"
    assert third.metadata["category"] == "Math"
    assert first.uid == make_uid("hle_test", "66hle00000000000000000a1")


def test_hle_parquet_with_image_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    png = {"bytes": b"\x89PNG\r\n\x1a\n", "path": None}
    rows = [row | {"image_preview": png, "rationale_image": png} for row in jsonl_rows("hle_test.jsonl")]
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    result = load_items(path)
    assert result.format == "hle" and len(result.items) == 3 and sum(result.excluded.values()) == 2
    assert all("image_preview" not in item.metadata for item in result.items)
    json.dumps([item.metadata for item in result.items])


@pytest.mark.parametrize(("change", "field"), [
    ({"question": "Which marker predicts relapse?"}, "question"),
    ({"answer": "F"}, "answer"),  # the file's own field, not m1's answer_idx
])
def test_hle_bad_multiple_choice_row(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    rows = jsonl_rows("hle_test.jsonl")
    rows[0] |= change
    with pytest.raises(DataError) as caught:
        load_items(write_jsonl(tmp_path / "hle.jsonl", rows))
    assert (caught.value.problem.row, caught.value.problem.field) == ("1", field)


# ----------------------------------------------------------------------------- files no format claims


@pytest.mark.parametrize("content", ['[{"prompt": "q", "completion": "a"}]', '{"a": 1, "b": [1, 2]}', "id,text\n1,hello\n"])
def test_unknown_file_names_the_file_and_lists_the_formats(tmp_path: Path, content: str) -> None:
    path = tmp_path / ("data.csv" if content.startswith("id,") else "data.json")
    path.write_text(content)
    with pytest.raises(DataError) as caught:
        load_items(path)
    assert str(path) in str(caught.value) and "cannot tell the file's format" in str(caught.value)
    assert all(name in caught.value.problem.fix for name in FORMATS)
