"""A wrong-typed value anywhere in a benchmark file is a row problem, never a traceback.

Every fixture in the schema of an official release (tests/fixtures/upstream and the Hub schemas in
tests/fixtures/hub) is taken apart field by field: each value, at every depth, is replaced in turn
by values of the other JSON types, and the file is loaded, detected, converted and read as a suite
source. The fields come from the fixtures themselves, so a field a fixture gains is covered too.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from m1.cli import app
from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.data.loaders import FORMATS, Format, detect_format, load_items
from m1.data.rows import RawRow, validate_rows
from m1.data.suite import SUITE, read_source
from m1.data.tables import read_content

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASES = sorted(path for folder in ("upstream", "hub") for path in (FIXTURES / folder).iterdir()
                  if path.suffix in (".json", ".jsonl", ".csv"))
WRONG = [None, True, 7, "text", [1, 2], {"k": 1}]
GUARD = "cannot read this row"  # the words of the shared guard for a failure no converter checks


def same_type(a: Any, b: Any) -> bool:
    return type(a) is type(b) or (type(a) in (int, float) and type(b) in (int, float))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value: each key of an object, the first element of a list."""
    children = list(value.items()) if isinstance(value, dict) else list(enumerate(value[:1])) if isinstance(value, list) else []
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    changed = copy.deepcopy(value)
    get(changed, path[:-1])[path[-1]] = new
    return changed


@dataclass
class Mutation:
    place: str  # the place changed: "context/contexts/0"
    label: str  # where the value was changed, and to what
    new: Any  # the value put there
    content: Any  # the changed document, or the changed rows
    where: str | None  # the row a problem must name; None: a change above the rows
    scope: int  # how many of the fixture's items the change may take away
    field: str  # the row's field changed ("context"), which a problem must name; "": the row itself


class Release:
    """A fixture as the test rewrites it: a JSON document, or rows written one a line."""

    def __init__(self, path: Path):
        self.path, self.format = path, detect_format(path)
        content = read_content(path)
        self.document = content.document
        self.layout = FORMATS[self.format].table_in(content).layout if FORMATS[self.format].fits else "document"
        # CSV and JSON lines are rewritten as JSON lines, so that a cell can hold any JSON type.
        self.rows = None if self.document is not None else [record for _, record in content.tables[0].records]

    def mutations(self) -> Iterator[Mutation]:
        if self.rows is None:
            for path in paths(self.document):
                for new in WRONG:
                    if not same_type(get(self.document, path), new):
                        place = "/".join(map(str, path))
                        yield Mutation(place, f"{place} = {new!r}", new, replaced(self.document, path, new),
                                       *self.where(path))
            return
        for index, row in enumerate(self.rows):
            for path in paths(row):
                for new in WRONG:
                    if not same_type(get(row, path), new):
                        changed = [replaced(r, path, new) if i == index else r for i, r in enumerate(self.rows)]
                        place = "/".join(map(str, path))
                        yield Mutation(place, f"line {index + 1} {place} = {new!r}", new, changed, str(index + 1), 1,
                                       str(path[0]))

    def where(self, path: tuple[Any, ...]) -> tuple[str | None, int, str]:
        """The row a place in the document belongs to (as the loader names it), how many items
        that row has, and the row's field the place is in."""
        if self.layout == "json-keyed" and len(path) > 1:
            return str(path[0]), 1, str(path[1])
        if self.layout == "json-columns" and len(path) > 1:
            return str(path[1]), 1, str(path[0])
        if self.format == "headqa" and len(path) > 3:
            return f"exams.{path[1]}.data[{path[3]}]", 1, str(path[4]) if len(path) > 4 else ""
        if self.format == "headqa" and len(path) > 1:  # a change to an exam: its questions
            return f"exams.{path[1]}", len(self.document["exams"][path[1]]["data"]), str(path[2]) if len(path) > 2 else ""
        return None, 0, ""

    def write(self, folder: Path, content: Any) -> Path:
        folder.mkdir()
        if self.rows is None:
            out = folder / self.path.name
            out.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
        else:
            out = folder / f"{self.path.stem}.jsonl"
            out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in content), encoding="utf-8")
        return out


def dumped(items: list[MCQItem]) -> Counter[str]:
    return Counter(json.dumps(item.model_dump(), sort_keys=True) for item in items)


def test_every_format_of_a_release_has_a_fixture() -> None:
    formats = {Release(path).format for path in RELEASES}
    ours = {"m1-eval", "eval-jsonl", "huatuo-demo", "items"}
    assert set(FORMATS) - ours <= formats, set(FORMATS) - ours - formats


@pytest.mark.parametrize("fixture", RELEASES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_wrong_typed_value_is_a_row_problem_naming_file_row_and_field(tmp_path: Path, fixture: Path) -> None:
    release = Release(fixture)
    original = dumped(load_items(fixture, source="Set").items)
    suite_sources = [s for s in SUITE if s.upstream and release.format in s.upstream.formats]
    mutations = list(release.mutations())
    assert len(mutations) >= 20
    for number, change in enumerate(mutations):
        path = release.write(tmp_path / str(number), change.content)
        try:
            detect_format(path)
        except DataError as err:
            assert err.problem.file == str(path), change.label
        try:
            result = load_items(path, format=release.format, source="Set", skip_invalid=True)
        except DataError as err:  # only a change above the rows may stop the whole file
            assert change.where is None and err.problem.file == str(path), (change.label, err)
            continue
        for problem in result.problems:
            assert (problem.file, problem.row) == (str(path), change.where), (change.label, problem)
            assert GUARD not in problem.problem, (change.label, problem)  # every converter checks its types
            # The field named is the one changed, as the file names it ("opa", "label", "context.contexts").
            # A null may instead blame the field that needed it (a trailing null option is dropped).
            if change.field and change.new is not None:
                assert re.split(r"[.\[]", problem.field)[0] == change.field, (change.label, problem)
            elif not change.field:
                assert problem.field in ("", "data"), (change.label, problem)
        assert sum((original - dumped(result.items)).values()) <= change.scope, change.label
        try:
            load_items(path, format=release.format, source="Set")
        except DataError as err:
            assert (err.problem.file, err.problem.row) == (str(path), change.where or ""), (change.label, err)
        for declared in suite_sources:
            try:
                read_source(declared, path, release.format)
            except DataError as err:
                assert err.problem.file == str(path), (change.label, err)


@pytest.mark.parametrize("fixture", RELEASES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_convert_skips_a_wrong_typed_row_without_a_traceback(tmp_path: Path, fixture: Path) -> None:
    """Each field of the fixture's rows, once, through `m1 data convert --skip-invalid`."""
    release = Release(fixture)
    runner = CliRunner()
    seen: set[str] = set()
    for number, change in enumerate(release.mutations()):
        if change.place in seen or change.where is None:
            continue
        seen.add(change.place)
        path = release.write(tmp_path / str(number), change.content)
        report = path.with_name("skipped.jsonl")
        result = runner.invoke(app, ["data", "convert", str(path), "--format", release.format, "--skip-invalid",
                                     "--report", str(report), "--out", str(path.with_name("out.json")), "--json"])
        assert "Traceback" not in result.output, (change.label, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (change.label, result.exception)
        assert result.exit_code in (0, 2), (change.label, result.output)
        if report.exists():
            assert {json.loads(line)["row"] for line in report.read_text().splitlines()} <= {change.where}, change.label
    assert seen


def test_the_shared_guard_names_the_row_and_the_field_it_was_reading(tmp_path: Path) -> None:
    """A converter bug on an unforeseen value: a row problem (skippable), not a traceback."""

    def careless(where: str, row: dict[str, Any], source: str | None) -> RawRow:
        return RawRow(where, source, row["question"].strip(), {"A": "x", "B": "y"}, row.get("answer").upper())

    fmt = Format("careless", "a converter that checks nothing", careless)
    records = [("1", {"question": "Q1", "answer": "a"}), ("2", {"question": "Q2", "answer": 3}),
               ("3", {"question": ["Q3"], "answer": "b"})]
    result = validate_rows(tmp_path / "f.jsonl", fmt.name, fmt.rows_from(tmp_path / "f.jsonl", records, "S"), True)
    assert [item.answer_idx for item in result.items] == ["A"]
    assert [(p.row, p.field) for p in result.problems] == [("2", "answer"), ("3", "question")]
    assert all(GUARD in p.problem and "AttributeError" in p.problem and p.file == str(tmp_path / "f.jsonl")
               for p in result.problems)
    with pytest.raises(DataError, match="row 2, field 'answer'"):
        validate_rows(tmp_path / "f.jsonl", fmt.name, fmt.rows_from(tmp_path / "f.jsonl", records, "S"), False)
