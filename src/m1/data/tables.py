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

A file is read from disk once (its md5 is taken from the same bytes); a path that is missing, a
folder or unreadable is a `DataError` naming it. JSONL lines are split on "\n" only
(`m1.io.text_lines`). A record that cannot be read (a malformed JSONL line, a CSV row longer than
its header) is a `DataError` in place of the row, so that the loader can report it or skip it with
the others.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from m1.data.errors import DataError
from m1.io import text_lines

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
    """A file read once: its digest, its JSON document (when it is one) and the tables it can be read as."""

    path: Path
    md5: str
    document: Any = None
    tables: list[Table] = field(default_factory=list)


def as_record(path: Path, where: str | int, value: Any) -> Record:
    """A row of a JSON file as a record: the object itself, or a DataError where it is not one."""
    if isinstance(value, dict):
        return value
    return DataError.at(path, where, "", "row is not a JSON object", "fix the row or rerun with --skip-invalid to skip it")


# --------------------------------------------------------------------------- bytes and text


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise DataError.at(path, "", "", "this is a folder, not a data file", "pass one of the files in it")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError.at(path, "", "", "file not found", "check the path") from None
    except OSError as err:
        raise DataError.at(path, "", "", f"cannot read the file ({err.strerror or err})",
                           "check that the file exists and that you may read it") from None


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text, with or without a byte-order mark; line endings are left as they are."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError.at(path, "", "", f"not UTF-8 text (byte {err.start})", "save the file as UTF-8") from None


# --------------------------------------------------------------------------- JSON


class _DuplicateKey(Exception):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    repeated = [key for key, count in Counter(key for key, _ in pairs).items() if count > 1]
    if repeated:
        raise _DuplicateKey(repeated[0])
    return dict(pairs)


def read_json(path: Path) -> Any:
    """Parse a JSON file; malformed JSON or a repeated key becomes a DataError with the line."""
    return _parse_json(path, _decode(path, _read_bytes(path)))


def _parse_json(path: Path, text: str, line: int | None = None) -> Any:
    """JSON with repeated keys refused. A fault is a DataError at `line` (a JSONL line), else at
    the line of the document where the parser stopped."""
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as err:
        raise DataError.at(path, line or err.lineno, "", f"malformed JSON: {err.msg} (column {err.colno})",
                           "repair the JSON syntax at that line") from None
    except _DuplicateKey as dup:
        raise DataError.at(path, line or "", str(dup), f"key '{dup}' appears twice in one object",
                           "each option letter and field may appear once") from None


def _jsonl_records(path: Path, text: str) -> list[tuple[str, Record]]:
    records: list[tuple[str, Record]] = []
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = as_record(path, number, _parse_json(path, line, number))
        except DataError as err:
            record = err
        records.append((str(number), record))
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


def _csv_records(path: Path, text: str) -> list[tuple[str, Record]]:
    records: list[tuple[str, Record]] = []
    # Explanations and abstracts can outgrow the csv module's default 128 KiB cell limit.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    # newline="": the csv module reads quoted line breaks itself, exactly as written.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
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
    except csv.Error as err:
        raise DataError.at(path, "", "", f"malformed CSV: {err}", "repair the CSV quoting") from None
    return records


def _parquet_records(path: Path, data: bytes) -> list[tuple[str, Record]]:
    import pyarrow as pa  # imported here: only Parquet files need it
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(pa.BufferReader(data)).to_pylist()
    except pa.ArrowException as err:
        raise DataError.at(path, "", "", f"not a readable Parquet file ({err})",
                           "check the file: it may be cut short, or not be Parquet") from None
    return [(str(index), row) for index, row in enumerate(rows)]


# --------------------------------------------------------------------------- any file


def read_content(path: Path) -> Content:
    """Read a file once into its digest, document and tables: by extension, else by what the text is."""
    data = _read_bytes(path)
    content = Content(path, hashlib.md5(data).hexdigest())
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        content.tables = [Table("parquet", _parquet_records(path, data))]
        return content
    text = _decode(path, data)
    if suffix == ".csv":
        content.tables = [Table("csv", _csv_records(path, text))]
    elif suffix == ".jsonl":
        content.tables = [Table("jsonl", _jsonl_records(path, text))]
    elif text.lstrip().startswith(("{", "[")):  # otherwise not JSON: no table, so no format claims it
        try:
            content.document = _parse_json(path, text)
        except DataError:
            # A `.json` file of JSON lines (MedMCQA's release names its JSONL files `.json`): if its
            # first line is a complete object, read it line by line; otherwise the JSON is broken.
            lines = [line for line in text_lines(text) if line.strip()]
            if len(lines) > 1 and _is_json_object(lines[0]):
                content.tables = [Table("jsonl", _jsonl_records(path, text))]
                return content
            raise
        content.tables = _document_tables(content.document)
    return content


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False
