"""Reading files: JSON Lines split the way JSONL means them, and paths that cannot be read.

The separator tests take every JSON Lines fixture of the upstream releases, put a line or
paragraph separator inside every row's text, write it raw (as `ensure_ascii=False` does) and check
that it loads exactly as the same rows written escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from m1.data.errors import DataError
from m1.data.loaders import detect_format, load_items
from m1.data.tables import read_content, read_json
from m1.io import text_lines

UPSTREAM = Path(__file__).parents[1] / "fixtures" / "upstream"
HUB = Path(__file__).parents[1] / "fixtures" / "hub"
# Every fixture read line by line: `.jsonl` files and MedMCQA's JSON lines in a `.json` file.
JSONL_FIXTURES = sorted(path for path in [*UPSTREAM.iterdir(), *HUB.iterdir()]
                        if path.suffix in (".json", ".jsonl") and read_content(path).tables
                        and read_content(path).tables[0].layout == "jsonl")
# Characters `str.splitlines` breaks lines at that JSON allows raw inside a string.
SEPARATORS = {"LINE SEPARATOR": "\u2028", "PARAGRAPH SEPARATOR": "\u2029", "NEXT LINE": "\u0085"}


def fixture_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def with_separator(value: Any, separator: str) -> Any:
    """Every text in a row (keys aside) with the separator after its first word."""
    if isinstance(value, str) and " " in value:
        return value.replace(" ", f" {separator}", 1)
    if isinstance(value, list):
        return [with_separator(v, separator) for v in value]
    if isinstance(value, dict):
        return {k: with_separator(v, separator) for k, v in value.items()}
    return value


def write_lines(path: Path, rows: list[Any], *, raw: bool, newline: str = "\n") -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=not raw) for row in rows]
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return path


def loaded(path: Path, **kwargs: Any) -> tuple[str, list[tuple[str, dict[str, Any]]], dict[str, int]]:
    result = load_items(path, **kwargs)
    return result.format, [(item.uid, item.model_dump()) for item in result.items], dict(result.excluded)


def test_the_fixtures_cover_every_line_read_layout() -> None:
    names = {path.name for path in JSONL_FIXTURES}
    assert "medmcqa_dev.json" in names and "medxpertqa_text_test.jsonl" in names and "pubmedqa.jsonl" in names


@pytest.mark.parametrize("separator", SEPARATORS.values(), ids=SEPARATORS.keys())
@pytest.mark.parametrize("fixture", JSONL_FIXTURES, ids=lambda path: path.name)
def test_separators_inside_strings_do_not_split_rows(tmp_path: Path, fixture: Path, separator: str) -> None:
    rows = [with_separator(row, separator) for row in fixture_rows(fixture)]
    (tmp_path / "raw").mkdir()
    raw = write_lines(tmp_path / "raw" / fixture.name, rows, raw=True)
    escaped = write_lines(tmp_path / fixture.name, rows, raw=False)
    assert separator in raw.read_text(encoding="utf-8") and separator not in escaped.read_text(encoding="utf-8")
    assert detect_format(raw) == detect_format(escaped) == detect_format(fixture)
    assert loaded(raw) == loaded(escaped)
    # Named with --format too: rows stay whole and a bad row is counted from the right line.
    fmt = detect_format(fixture)
    broken = write_lines(raw, [*rows[:2], '{"question": ', *rows[2:]], raw=True)
    result = load_items(broken, format=fmt, skip_invalid=True)
    assert [(p.row, "malformed JSON" in p.problem) for p in result.problems] == [("3", True)]
    assert [item.model_dump() for item in result.items] == [item.model_dump() for item in
                                                          load_items(escaped, format=fmt).items]


@pytest.mark.parametrize("fixture", JSONL_FIXTURES, ids=lambda path: path.name)
def test_crlf_lines_load_as_lf_lines_and_keep_their_numbers(tmp_path: Path, fixture: Path) -> None:
    rows = fixture_rows(fixture)
    (tmp_path / "lf").mkdir()
    lf = write_lines(tmp_path / "lf" / fixture.name, rows, raw=True)
    crlf = write_lines(tmp_path / fixture.name, rows, raw=True, newline="\r\n")
    assert b"\r\n" in crlf.read_bytes()
    assert detect_format(crlf) == detect_format(fixture)
    assert loaded(crlf) == loaded(lf)
    bad = write_lines(crlf, [rows[0], "", '{"question": ', *rows[1:]], raw=True, newline="\r\n")
    result = load_items(bad, format=detect_format(fixture), skip_invalid=True)
    assert [p.row for p in result.problems] == ["3"]


def test_text_lines_splits_on_newline_only() -> None:
    assert text_lines('{"q": "a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg"}\r\n{"q": 2}\n') == [
        '{"q": "a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg"}', '{"q": 2}', ""]
    assert text_lines("one\r\n\r\ntwo\r") == ["one", "", "two"]


# ----------------------------------------------------------------------------- paths that cannot be read


def unreadable(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A path of that kind, and the words its error must use."""
    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "plain.json").write_text("{}")
    return {"missing": (tmp_path / "nonexist.jsonl", "file not found"),
            "missing csv": (tmp_path / "gone.csv", "file not found"),
            "missing parquet": (tmp_path / "gone.parquet", "file not found"),
            "folder": (tmp_path / "folder.jsonl", "a folder, not a data file"),
            "under a file": (tmp_path / "plain.json" / "rows.jsonl", "cannot read the file")}[kind]


@pytest.mark.parametrize("kind", ["missing", "missing csv", "missing parquet", "folder", "under a file"])
@pytest.mark.parametrize("reader", [read_content, read_json, detect_format, load_items])
def test_a_path_that_cannot_be_read_is_a_data_error_naming_it(tmp_path: Path, kind: str, reader: Any) -> None:
    path, words = unreadable(tmp_path, kind)
    with pytest.raises(DataError) as caught:
        reader(path)
    problem = caught.value.problem
    assert (problem.file, problem.row) == (str(path), "")
    assert words in problem.problem and problem.fix


def test_a_broken_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    path.write_bytes(b"PAR1 cut short")
    with pytest.raises(DataError, match="not a readable Parquet file") as caught:
        load_items(path)
    assert caught.value.problem.file == str(path)
