"""The labels file as a run input: reading it (a bad line names the file, the line and the field),
items it lacks are unlabelled, and a run records the file and its sha256 (the identity leaves them out)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from m1.config import load_config
from m1.data.errors import DataError
from m1.evaluation.config import EvalConfig
from m1.evaluation.domains import LABEL_FIELDS, label_line, load_labels, write_labels
from m1.evaluation.store import RunStore
from m1.io import sha256_file

NAMES = ["Diagnosis", "Drug Therapy", "Pathology", "Surgery", "Genetics"]


def good_lines(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        code = rng.randrange(76)
        method = rng.choice(["llm", "fallback"])
        domain = {"code": f"{code:02d}", "name": rng.choice(NAMES), "method": method, "flagged": method != "llm",
                  "attempts": 1, "reply": "Code: 20"}
        lines.append(label_line(f"src-{i:04d}", rng.choice(["MedQA_USLME_test", "PubMedQA_test"]), domain))
    return lines


def test_written_labels_read_back_with_their_sha256(tmp_path: Path) -> None:
    for n in (1, 7, 40):
        lines = good_lines(n, seed=n)
        path = tmp_path / f"labels-{n}.jsonl"
        sha256 = write_labels(path, lines)
        labels = load_labels(path)
        assert labels.names == {line["uid"]: line["name"] for line in lines}
        assert labels.sha256 == sha256 == sha256_file(path) and labels.file == str(path)
        assert all(tuple(json.loads(text)) == LABEL_FIELDS for text in path.read_text().splitlines())


def test_items_without_a_label_are_listed_in_order(tmp_path: Path) -> None:
    lines = good_lines(10)
    path = tmp_path / "labels.jsonl"
    write_labels(path, lines[::2])
    uids = [line["uid"] for line in lines]
    coverage = load_labels(path).coverage(reversed(uids))
    assert coverage["labelled"] == 5 and coverage["unlabelled"] == [uid for uid in reversed(uids[1::2])]
    assert coverage["file"] == str(path) and coverage["sha256"] == sha256_file(path)


def set_field(field: str, value):
    return lambda line: json.dumps(line | {field: value})


def drop_field(field: str):
    return lambda line: json.dumps({k: v for k, v in line.items() if k != field})


BAD_LINES = {
    "not json": (lambda line: json.dumps(line)[:-3], ""),
    "a list": (lambda line: json.dumps(list(line.values())), ""),
    **{f"no {field}": (drop_field(field), field) for field in LABEL_FIELDS},
    "empty uid": (set_field("uid", " "), "uid"),
    "numeric uid": (set_field("uid", 12), "uid"),
    "empty name": (set_field("name", ""), "name"),
    "null source": (set_field("source", None), "source"),
    "numeric code": (set_field("code", 24), "code"),
    "one-digit code": (set_field("code", "7"), "code"),
    "code past 75": (set_field("code", "76"), "code"),
    "code with a name": (set_field("code", "24 Drug Therapy"), "code"),
    "flagged as text": (set_field("flagged", "yes"), "flagged"),
    "method null": (set_field("method", None), "method"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
@pytest.mark.parametrize("position", [0, 3, 8])
def test_a_bad_line_names_the_file_the_line_and_the_field(tmp_path: Path, case: str, position: int) -> None:
    spoil, field = BAD_LINES[case]
    lines = [json.dumps(line) for line in good_lines(9)]
    lines[position] = spoil(json.loads(lines[position]))
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        load_labels(path)
    problem = caught.value.problem
    assert (problem.file, problem.row, problem.field) == (str(path), str(position + 1), field)
    assert problem.fix  # says how to put it right


def test_a_uid_labelled_twice_names_both_lines(tmp_path: Path) -> None:
    lines = good_lines(6)
    lines[4] = lines[4] | {"uid": lines[1]["uid"]}
    path = tmp_path / "labels.jsonl"
    write_labels(path, lines)
    with pytest.raises(DataError, match=r"line 2") as caught:
        load_labels(path)
    assert (caught.value.problem.row, caught.value.problem.field) == ("5", "uid")


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xff\xfe{}\n"])
def test_an_empty_or_unreadable_file_says_so(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match="m1 label-domains"):
        load_labels(path)


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found.*m1 label-domains"):
        load_labels(tmp_path / "missing.jsonl")


def test_labels_are_no_part_of_the_identity_but_must_exist(tmp_path: Path) -> None:
    # Labels change no prediction: adding, moving or editing them re-scores the same run.
    first, moved = tmp_path / "a" / "labels.jsonl", tmp_path / "b" / "renamed.jsonl"
    write_labels(first, good_lines(8))
    moved.parent.mkdir()
    shutil.copy(first, moved)
    write_labels(moved, good_lines(8)[:-1])
    plain = load_config(EvalConfig, None, [])
    at_first = load_config(EvalConfig, None, [f"domains={first}"])
    at_moved = load_config(EvalConfig, None, [f"domains={moved}"])
    assert at_first.identity() == at_moved.identity() == plain.identity()
    with pytest.raises(DataError, match="labels file not found"):
        load_config(EvalConfig, None, [f"domains={tmp_path / 'nope.jsonl'}"]).domains_file()


def test_run_json_records_the_labels_file_and_its_sha256(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    sha256 = write_labels(labels, good_lines(5))
    config = load_config(EvalConfig, None, [f"domains={labels}", f"out_dir={tmp_path / 'runs'}"])
    store = RunStore.open(config)
    run_json = store.root / "run.json"
    assert json.loads(run_json.read_text())["domains"] == {"file": str(labels), "sha256": sha256}
    # The same run, scored again without labels and then with other ones: run.json says which were used.
    without = RunStore.open(load_config(EvalConfig, None, [f"out_dir={tmp_path / 'runs'}"]))
    assert without.root == store.root
    without.write_summary({"points": []})
    assert "domains" not in json.loads(run_json.read_text())
    other = write_labels(labels, good_lines(4))
    store.write_summary({"points": [], "domains": {"file": str(labels), "sha256": other, "labelled": 4, "unlabelled": []}})
    assert json.loads(run_json.read_text())["domains"] == {"file": str(labels), "sha256": other}