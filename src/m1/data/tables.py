"""Tables: the containers benchmark files come in, read into records that say where each one is.

    content = read_content(Path("medbullets_op4.csv"))
    content.tables[0].layout, content.tables[0].records[0]    # "csv", ("2", {"question": ...})

One file can be read as several tables when its shape allows more than one reading (a JSON object
of objects is both pandas' column-oriented `{"question": {"0": ...}}` and an object keyed by row
id like PubMedQA's PQA-L); the loaders' format registry decides which reading fits a format.

Layouts and what `where` (the row a message names) is for each:
- `jsonl`         one JSON object a line (also a `.json` file written that way): the line number
- `json-list`     a JSON list of objects: `[index]`
- `json-columns`  pandas `orient="columns"`: the index label
- `json-keyed`    an object of objects keyed by id (pandas `orient="index"`, PQA-L): the key
- `json-split`    pandas `orient="split"` / `orient="table"`: the index label, else `[index]`
- `csv`           UTF-8 with or without a byte-order mark, quoted newlines allowed: the line
                  the record starts on (the header is line 1)
- `parquet`       the 0-based row index

A record that cannot be read (a malformed JSONL line, a CSV row longer than its header) is a
`DataError` in place of the row, so that the loader can report it or skip it with the others.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from m1.data.errors import DataError

Record = Union[dict[str, Any], DataError]


@dataclass
class Table:
    """Records in file order, each with where it sits in the file."""

    layout: str
    records: list[tuple[str, Record]]

    def rows(self) -> Iterator[dict[str, Any]]:
        """The records that could be read."""
        return (record for _, record in self.records if isinstance(record, dict))

    def first(self) -> dict[str, Any]:
        return next(self.rows(), {})


@dataclass
class Content:
    """A file read once: its JSON document (when it is one) and the tables it can be read as."""

    path: Path
    document: Any = None
    tables: list[Table] = field(default_factory=list)


# --------------------------------------------------------------------------- JSON


class _DuplicateKey(Exception):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    repeated = [key for key, count in Counter(key for key, _ in pairs).items() if count > 1]
    if repeated:
        raise _DuplicateKey(repeated[0])
    return dict(pairs)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError.at(path, "", "", f"not UTF-8 text (byte {err.start})", "save the file as UTF-8") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file; malformed JSON or a repeated key becomes a DataError with the line."""
    return _parse_json(path, _read_text(path))


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as err:
        raise DataError.at(path, err.lineno, "", f"malformed JSON: {err.msg} (column {err.colno})",
                           "repair the JSON syntax at that line") from None
    except _DuplicateKey as dup:
        raise DataError.at(path, "", str(dup), f"key '{dup}' appears twice in one object",
                           "each option letter and field may appear once") from None


def _jsonl_records(path: Path, lines: list[str]) -> list[tuple[str, Record]]:
    records: list[tuple[str, Record]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed: Any = json.loads(line, object_pairs_hook=_reject_duplicate_keys)
        except json.JSONDecodeError as err:
            parsed = DataError.at(path, number, "", f"malformed JSON: {err.msg} (column {err.colno})",
                                  "each line must be one complete JSON object")
        except _DuplicateKey as dup:
            parsed = DataError.at(path, number, str(dup), f"key '{dup}' appears twice in one object",
                                  "each option letter and field may appear once")
        if not isinstance(parsed, (dict, DataError)):
            parsed = DataError.at(path, number, "", "line is not a JSON object",
                                  "fix the row or rerun with --skip-invalid to skip it")
        records.append((str(number), parsed))
    return records


def _document_tables(document: Any) -> list[Table]:
    """Every table reading a parsed JSON document allows (none for a nested document)."""
    if isinstance(document, list):
        if document and all(isinstance(row, dict) for row in document):
            return [Table("json-list", [(f"[{i}]", row) for i, row in enumerate(document)])]
        return []
    if not isinstance(document, dict) or not document:
        return []
    tables = []
    columns = document.get("columns")
    data = document.get("data")
    if isinstance(data, list) and isinstance(columns, list) and all(isinstance(r, list) for r in data):
        index = document.get("index") or list(range(len(data)))
        tables.append(Table("json-split", [(str(i), dict(zip(columns, r))) for i, r in zip(index, data)]))
    elif isinstance(document.get("schema"), dict) and isinstance(data, list) and all(isinstance(r, dict) for r in data):
        tables.append(Table("json-split", [(f"[{i}]", r) for i, r in enumerate(data)]))
    values = list(document.values())
    if all(isinstance(value, dict) for value in values):
        index = list(values[0])
        if all(list(value) == index for value in values):
            tables.append(Table("json-columns", [(str(label), {name: column[label] for name, column in document.items()})
                                                 for label in index]))
        tables.append(Table("json-keyed", [(str(key), value) for key, value in document.items()]))
    return tables


# --------------------------------------------------------------------------- CSV and Parquet


def _csv_records(path: Path) -> list[tuple[str, Record]]:
    records: list[tuple[str, Record]] = []
    # Explanations and abstracts can outgrow the csv module's default 128 KiB cell limit.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return records
            start = reader.line_num + 1
            for row in reader:
                record: Record = row
                if None in row:  # DictReader files surplus cells under the key None
                    record = DataError.at(path, start, "", f"row has {len(row[None])} more cells than the "
                                          f"header's {len(reader.fieldnames)} columns",
                                          "quote cells that contain commas")
                records.append((str(start), record))
                start = reader.line_num + 1
    except UnicodeDecodeError as err:
        raise DataError.at(path, "", "", f"not UTF-8 text (byte {err.start})", "save the file as UTF-8") from None
    except csv.Error as err:
        raise DataError.at(path, "", "", f"malformed CSV: {err}", "repair the CSV quoting") from None
    return records


def _parquet_records(path: Path) -> list[tuple[str, Record]]:
    import pyarrow.parquet as pq  # imported here: only Parquet files need it

    return [(str(index), row) for index, row in enumerate(pq.read_table(path).to_pylist())]


# --------------------------------------------------------------------------- any file


def read_content(path: Path) -> Content:
    """Read a file into its document and tables by extension, falling back on what the text is."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return Content(path, tables=[Table("parquet", _parquet_records(path))])
    if suffix == ".csv":
        return Content(path, tables=[Table("csv", _csv_records(path))])
    text = _read_text(path)
    if suffix == ".jsonl":
        return Content(path, tables=[Table("jsonl", _jsonl_records(path, text.splitlines()))])
    if not text.lstrip().startswith(("{", "[")):
        return Content(path)  # not JSON: no table, so no format will claim it
    try:
        document = _parse_json(path, text)
    except DataError:
        # A `.json` file of JSON lines (MedMCQA's release names its JSONL files `.json`): if its
        # first line is a complete object, read it line by line; otherwise the JSON is broken.
        first_line = text.lstrip().split("\n", 1)[0]
        if _is_json_object(first_line) and len(text.strip().splitlines()) > 1:
            return Content(path, tables=[Table("jsonl", _jsonl_records(path, text.splitlines()))])
        raise
    return Content(path, document=document, tables=_document_tables(document))


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False
