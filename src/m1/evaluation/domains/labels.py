"""The labels file: one MeSH domain per evaluation item, written by `m1 label-domains`, read by runs.

    labels = load_labels("runs/domains/local.jsonl")
    labels.names["MedQA_USLME_test-0001"]     # "Drug Therapy"
    labels.sha256, labels.file                # what a run records and hashes into its identity
    labels.coverage(uids)                     # {"file", "sha256", "labelled", "unlabelled": [uids]}
    labels_file(path)                         # {"file", "sha256"} without reading the lines

One JSON object a line, in item order:

    {"uid": "...", "source": "MedQA_USLME_test", "code": "24", "name": "Drug Therapy",
     "method": "llm", "flagged": false}

`method` says how the classifier found the code ("llm", or "fallback": the closest scope note
after no code could be read) and `flagged` marks labels a person may want to check. A file may
lack some of a run's items: those are unlabelled and listed, not an error. A malformed line is a
`DataError` naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1.curation.mesh import N_QUALIFIERS
from m1.data.errors import DataError
from m1.io import atomic_write_text, sha256_file, text_lines

LABEL_FIELDS = ("uid", "source", "code", "name", "method", "flagged")
_CODE = re.compile(r"^[0-9]{2}$")
_FIX = "write each line as m1 label-domains does, or label again: m1 label-domains CONFIG"


@dataclass(frozen=True)
class Labels:
    """A labels file as read: each uid's domain name, and the file's path and sha256."""

    names: Mapping[str, str]
    sha256: str
    file: str

    def coverage(self, uids: Iterable[str]) -> dict[str, Any]:
        """How many of `uids` have a label, and which do not (in the order given)."""
        uids = list(uids)
        unlabelled = [uid for uid in uids if uid not in self.names]
        return {"file": self.file, "sha256": self.sha256, "labelled": len(uids) - len(unlabelled),
                "unlabelled": unlabelled}


def label_line(uid: str, source: str, domain: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the file, from a row's `domain` section as the curation classify stage writes it."""
    return {"uid": uid, "source": source, "code": domain["code"], "name": domain["name"],
            "method": domain["method"], "flagged": bool(domain["flagged"])}


def write_labels(path: str | Path, lines: Sequence[Mapping[str, Any]]) -> str:
    """Write the file atomically (a reader never sees half of it); returns its sha256."""
    text = "".join(json.dumps({field: line[field] for field in LABEL_FIELDS}, ensure_ascii=False) + "\n"
                   for line in lines)
    atomic_write_text(path, text)
    return sha256_file(path)


def labels_file(path: str | Path) -> dict[str, str]:
    """{"file", "sha256"}: what a run records of its labels file, and hashes into its identity."""
    _must_exist(Path(path))
    return {"file": str(path), "sha256": sha256_file(path)}


def load_labels(path: str | Path) -> Labels:
    """Read and check a labels file; every line must hold all of LABEL_FIELDS, well typed."""
    path = Path(path)
    _must_exist(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError.at(path, "", "", f"not UTF-8 text ({err.reason} at byte {err.start})", _FIX) from None
    names: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        entry = _parse_line(path, number, line)
        uid = entry["uid"]
        if uid in names:
            raise DataError.at(path, number, "uid", f"uid {uid!r} is labelled twice (first on line {first_line[uid]})",
                               "keep one line per item")
        names[uid], first_line[uid] = entry["name"], number
    if not names:
        raise DataError.at(path, "", "", "the labels file holds no labels", _FIX)
    return Labels(names=names, sha256=hashlib.sha256(data).hexdigest(), file=str(path))


def _must_exist(path: Path) -> None:
    if not path.is_file():
        raise DataError.at(path, "", "domains", "labels file not found",
                           "write it with m1 label-domains CONFIG, or fix the domains= path")


def _parse_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError.at(path, number, "", f"not JSON ({err.msg} at column {err.colno})", _FIX) from None
    if not isinstance(entry, dict):
        raise DataError.at(path, number, "", f"a line must be a JSON object, not {type(entry).__name__}", _FIX)
    for field in LABEL_FIELDS:
        if field not in entry:
            raise DataError.at(path, number, field, "missing", f"every line needs {', '.join(LABEL_FIELDS)}")
    for field in ("uid", "source", "name", "method"):
        if not isinstance(entry[field], str) or not entry[field].strip():
            raise DataError.at(path, number, field, f"must be non-empty text, got {entry[field]!r}", _FIX)
    code = entry["code"]
    if not isinstance(code, str) or not _CODE.match(code) or int(code) >= N_QUALIFIERS:
        raise DataError.at(path, number, "code", f"must be a MeSH qualifier code written as two-digit text, "
                                                 f"\"00\" to \"{N_QUALIFIERS - 1}\"; got {code!r}", _FIX)
    if not isinstance(entry["flagged"], bool):
        raise DataError.at(path, number, "flagged", f"must be true or false, got {entry['flagged']!r}", _FIX)
    return entry
