"""File primitives every layer uses, so that nothing a user paid for is lost to a crash.

- `atomic_write_text` / `atomic_write_bytes` / `atomic_write_json`: write to a temporary file in
  the same directory, fsync, then rename over the target. A reader sees the old file or the new
  one, never half of either.
- `append_jsonl`: append complete lines and flush them to disk, for results that accumulate as
  work finishes (predictions, teacher replies); `read_jsonl_tolerant` reads such a file back and
  ignores a last line cut short by a kill.
- `text_lines`: the lines of a JSON Lines text, split the way JSONL means them.
- `md5_file`, `sha256_file`: content digests for manifests and for input files a run depends on.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp alone gives 0600


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Append rows as JSON lines and fsync; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    if not lines:
        return 0
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(lines))
        handle.flush()
        os.fsync(handle.fileno())
    return len(lines)


def read_jsonl_tolerant(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of an append-only JSONL file; a final line cut short by a crash is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return  # the writer died mid-line; that row was never complete
            line = line.strip()
            if line:
                yield json.loads(line)


def text_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text: split on "\n" only, a trailing "\r" dropped (CRLF files).

    `str.splitlines` also splits on U+2028, U+2029, U+0085 and other separators that JSON allows
    raw inside strings (and that `json.dumps(ensure_ascii=False)` writes), so it would cut a row
    in two and shift every line number after it.
    """
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def md5_file(path: str | Path) -> str:
    return _file_digest(path, hashlib.md5())


def sha256_file(path: str | Path) -> str:
    return _file_digest(path, hashlib.sha256())


def _file_digest(path: str | Path, digest: Any) -> str:
    # hashlib.file_digest would do, but it is Python 3.11+ and m1 supports 3.10.
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
