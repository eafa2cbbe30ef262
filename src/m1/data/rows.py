"""Rows: what a format's reader yields (`RawRow`), and the one place rows are checked into items.

    result = validate_rows(path, "eval-jsonl", raw_rows, skip_invalid=False)   # LoadResult

Every format reader only says which field of its record is the question, the options, the answer;
the rules live here once: every string is stripped; a missing field, an answer letter that is not
an option, answer text that differs from its option, empty options or a repeated option letter
raise `DataError` naming the file, the row and the field (the file's own name for it, which a
reader gives in `RawRow.fields` where it differs from m1's), or with `skip_invalid` are recorded
in `problems` and skipped. A reader that leaves a row out on purpose (HLE's exact-match questions)
sets `excluded` to the reason, and the result counts those rows by reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m1.data.errors import DataError, RowProblem
from m1.data.items import OPTION_LETTERS, MCQItem, content_key

FIELD_FIX = "fix the row or rerun with --skip-invalid to skip it"


@dataclass
class LoadResult:
    """Items read from one file, the rows skipped as invalid, and the rows left out by rule."""

    path: Path
    format: str
    items: list[MCQItem] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)  # reason -> rows

    def by_source(self) -> dict[str, list[MCQItem]]:
        grouped: dict[str, list[MCQItem]] = {}
        for item in self.items:
            grouped.setdefault(item.source, []).append(item)
        return grouped


@dataclass
class RawRow:
    """A row after format-specific parsing, before validation; `where` locates it in the file."""

    where: str
    source: str | None  # None: the loader fills in the format's default source name
    question: Any
    options: Any
    answer_idx: Any
    answer: Any = None
    original_id: str | None = None
    metadata: Any = field(default_factory=dict)
    error: DataError | None = None  # a row-level fault found while parsing (bad JSON line)
    excluded: str | None = None  # why the format leaves this row out (not an error)
    # The file's own name of a field where it is not m1's: {"answer_idx": "label"}. "options"
    # also names where the options came from, so "options.B" becomes "<that>.B" unless given.
    fields: dict[str, str] = field(default_factory=dict)

    def field_name(self, name: str) -> str:
        """What the file calls m1's field `name` ("options.B", "answer_idx", ...)."""
        if name in self.fields:
            return self.fields[name]
        head, dot, letter = name.partition(".")
        return f"{self.fields[head]}.{letter}" if dot and head in self.fields else name


class RowFault(Exception):
    """Raised by a format's row converter; the loader turns it into a DataError at that row."""

    def __init__(self, field_name: str, problem: str, fix: str = FIELD_FIX):
        super().__init__(problem)
        self.field, self.problem, self.fix = field_name, problem, fix


def kind(value: Any) -> str:
    """A value's JSON type in words, for messages about a wrong-typed field."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    names = {str: "text", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return next((name for cls, name in names.items() if isinstance(value, cls)), type(value).__name__)


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def validate_row(path: Path, raw: RawRow, occurrence: int = 0) -> MCQItem:
    """Check a raw row field by field and build the item; the error names what would fix it."""

    def fail(field_name: str, problem: str, fix: str = FIELD_FIX) -> DataError:
        return DataError.at(path, raw.where, raw.field_name(field_name), problem, fix)

    if raw.error is not None:
        raise raw.error
    if not isinstance(raw.source, str) or not raw.source.strip():
        raise fail("source", "missing source", "add a 'source' field or pass --source")
    if isinstance(raw.metadata, str):
        try:
            raw.metadata = json.loads(raw.metadata) if raw.metadata.strip() else {}
        except json.JSONDecodeError:
            raise fail("metadata", "metadata is a string that is not JSON", "write metadata as a JSON object") from None
    if not isinstance(raw.metadata, dict):
        raise fail("metadata", "metadata must be a JSON object")

    question = _clean(raw.question)
    if not isinstance(question, str) or not question:
        raise fail("question", "missing or empty question" if question in (None, "") else
                   f"question must be text, got {kind(question)}")
    if isinstance(raw.options, str):
        try:
            raw.options = json.loads(raw.options)
        except json.JSONDecodeError:
            raise fail("options", "options is a string that is not a JSON object",
                       'write options as {"A": "...", "B": "..."}') from None
    if not isinstance(raw.options, dict) or not raw.options:
        raise fail("options", "missing or empty options" if not raw.options else
                   f"options must be an object of lettered texts, got {kind(raw.options)}",
                   'give options as {"A": "...", "B": "..."}')
    options: dict[str, str] = {}
    for letter, text in raw.options.items():
        letter = _clean(str(letter))
        if len(letter) != 1 or letter not in OPTION_LETTERS:
            raise fail(f"options.{letter}", f"option key {letter!r} is not a single capital letter A-Z")
        if letter in options:
            raise fail(f"options.{letter}", f"option letter {letter} appears twice")
        text = _clean(text)
        # An empty option text is allowed: real benchmark files have them (HLE), and the item is
        # still answerable; `m1 data inspect` counts them.
        if not isinstance(text, str):
            raise fail(f"options.{letter}", f"option {letter} is not text (got {kind(text)})")
        options[letter] = text
    answer_idx = _clean(raw.answer_idx)
    if not isinstance(answer_idx, str) or not answer_idx:
        raise fail("answer_idx", "missing answer letter" if answer_idx in (None, "") else
                   f"the answer letter must be text, got {kind(answer_idx)}")
    if answer_idx not in options:
        raise fail("answer_idx", f"answer letter {answer_idx!r} is not one of the options "
                   f"{', '.join(options)}")
    answer = _clean(raw.answer)
    if answer is None or answer == "":
        answer = options[answer_idx]
    elif not isinstance(answer, str):
        raise fail("answer", f"answer must be text, got {kind(answer)}")
    elif answer != options[answer_idx]:
        raise fail("answer", f"answer text {answer!r} differs from option {answer_idx} "
                   f"{options[answer_idx]!r}", "make the answer text equal its option's text")
    return MCQItem.create(
        source=raw.source,
        question=question,
        options=options,
        answer_idx=answer_idx,
        answer=answer,
        original_id=raw.original_id,
        occurrence=occurrence,
        metadata=raw.metadata,
    )


def validate_rows(path: Path, fmt: str, rows: Iterable[RawRow], skip_invalid: bool) -> LoadResult:
    """Validate parsed rows, number exact repeats, and either stop at or collect bad rows."""
    result = LoadResult(path=path, format=fmt)
    occurrences: Counter[tuple[str, str]] = Counter()
    for raw in rows:
        if raw.excluded is not None and raw.error is None:
            result.excluded[raw.excluded] += 1
            continue
        try:
            item = validate_row(path, raw)
        except DataError as err:
            if not skip_invalid:
                raise
            result.problems.append(err.problem)
            continue
        key = (item.source, raw.original_id or content_key(item.question, item.options, item.answer_idx))
        seen = occurrences[key]
        occurrences[key] += 1
        if seen:
            item = MCQItem.create(
                source=item.source, question=item.question, options=item.options,
                answer_idx=item.answer_idx, answer=item.answer, original_id=raw.original_id,
                occurrence=seen, metadata=item.metadata,
            )
        result.items.append(item)
    return result
