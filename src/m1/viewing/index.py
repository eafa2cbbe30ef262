"""The index `m1 view` keeps beside each run, so that a filter or a list page never reads a trace
and an item page reads only its own lines.

    index = RunIndex(run)                     # <run>/view-index.sqlite
    index.refresh(progress)                   # "current", "updated", "rebuilt" or "busy"; progress(done, total bytes)
    with index.connect() as db: ...           # the tables below (sqlite3, read them with SQL)
    read_prediction(run, key, offset, length) # one predictions line, by seek: the full row

Tables (one sqlite3 file):
  items        position (items.jsonl order), uid, source, question (and `folded`, case-folded for
               search), answer_idx, domain (MeSH, when the run is labelled), item (the item as JSON)
  predictions  per (point, uid, sample): line, offset, length (of its predictions.jsonl line),
               thinking/answer/inserted/probe tokens, thinking_end, answer_end, error, budget_hit
               (`m1.evaluation.results.budget_hit`, the summary's rule),
               and per mode (strict_, reference_) letter, rule, correct; `scored_by` says whether the
               letters come from the point's scored.jsonl or were scored here
  outcomes     per (point, uid): the item's answer as the run's summary counts it, per mode letter
               and correct (one sample: its own; several: the majority vote's letter,
               `m1.evaluation.votes.majority`, right when it is the gold letter), plus samples (how
               many are in), thinking tokens (the mean), budget_hit (any sample), error (any sample)
  problems     lines skipped: path (in the run), line number, what is wrong
  files        how far each file has been read; meta: the index version and what it was built from

Keeping up: predictions files are append-only, so a refresh indexes the complete lines added
since the last one (a final line without its newline is still being written and waits; the
same reading as `m1.io.read_jsonl_tolerant`). A file that shrank, or whose indexed part changed
(its first or last indexed bytes differ), a changed items.jsonl or labels entry, or another
INDEX_VERSION rebuilds the whole index. A point's scored.jsonl, written when the point finishes,
replaces the letters scored here (with the same `m1.scoring` rules) when it appears or changes.
A complete line that is not a prediction is skipped and recorded in `problems`; a second line
for the same (uid, sample), which a crash can leave, is ignored as the run store ignores it.

Crash safety: a rebuild writes a new file beside the index and renames it over the old one;
every update is one transaction. A reader sees the old index or the new one, never half.

Two `m1 view` of one run share its index: one's update waits up to BUSY_WAIT_S for the other's
transaction, then leaves the index as it is ("busy": what it holds is served, the next refresh
tries again). A locked index is not a broken one: only a file sqlite cannot read is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.evaluation.config import GridPoint
from m1.evaluation.results import budget_hit
from m1.io import sha256_file
from m1.scoring import MODES, prediction_from_record, score_reply, vote
from m1.viewing.runs import Run, check_run, run_domains

INDEX_VERSION = 1
INDEX_NAME = "view-index.sqlite"
FINGERPRINT_BYTES = 4096
# How long an update waits for another process's transaction on the index (sqlite's busy timeout):
# an update is one short transaction, and a request should not hang behind a stuck writer.
BUSY_WAIT_S = 1.0
# sqlite's primary result codes SQLITE_BUSY and SQLITE_LOCKED (extended codes add bits above 0xFF).
BUSY_CODES = (5, 6)
Progress = Callable[[int, int], None]

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, indexed INTEGER,
                    lines INTEGER, head TEXT, tail TEXT, partial INTEGER);
CREATE TABLE items (position INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
                    question TEXT NOT NULL, folded TEXT NOT NULL, answer_idx TEXT NOT NULL, domain TEXT,
                    item TEXT NOT NULL);
CREATE TABLE predictions (point TEXT NOT NULL, uid TEXT NOT NULL, sample INTEGER NOT NULL, line INTEGER NOT NULL,
                          offset INTEGER NOT NULL, length INTEGER NOT NULL, thinking_tokens INTEGER,
                          answer_tokens INTEGER, inserted_tokens INTEGER, probe_tokens INTEGER, thinking_end TEXT,
                          answer_end TEXT, error TEXT, budget_hit INTEGER NOT NULL,
                          strict_letter TEXT, strict_rule TEXT, strict_correct INTEGER,
                          reference_letter TEXT, reference_rule TEXT, reference_correct INTEGER, scored_by TEXT,
                          PRIMARY KEY (point, uid, sample)) WITHOUT ROWID;
CREATE TABLE outcomes (point TEXT NOT NULL, uid TEXT NOT NULL, samples INTEGER NOT NULL,
                       strict_letter TEXT, strict_correct INTEGER, reference_letter TEXT, reference_correct INTEGER,
                       thinking_tokens REAL, budget_hit INTEGER NOT NULL, error INTEGER NOT NULL,
                       PRIMARY KEY (point, uid)) WITHOUT ROWID;
CREATE INDEX outcomes_by_item ON outcomes (uid);
CREATE TABLE problems (path TEXT NOT NULL, line INTEGER NOT NULL, problem TEXT NOT NULL);
"""
SCORE_COLUMNS = tuple(f"{mode}_{field}" for mode in MODES for field in ("letter", "rule", "correct"))
PREDICTION_COLUMNS = ("point", "uid", "sample", "line", "offset", "length", "thinking_tokens", "answer_tokens",
                      "inserted_tokens", "probe_tokens", "thinking_end", "answer_end", "error", "budget_hit",
                      *SCORE_COLUMNS, "scored_by")


def predictions_file(key: str) -> str:
    """A point's predictions file, relative to the run directory (as `problems` names it)."""
    return f"points/{key}/predictions.jsonl"


def scored_file(key: str) -> str:
    return f"points/{key}/scored.jsonl"


def read_prediction(run: Run, key: str, offset: int, length: int) -> dict[str, Any]:
    """The predictions row at `offset` (an index entry's), read alone."""
    with (run.root / predictions_file(key)).open("rb") as handle:
        handle.seek(offset)
        return json.loads(handle.read(length))


@dataclass(frozen=True)
class Line:
    """One complete line of a JSONL file: where it is, and its object or why it is none (both None
    for a blank line)."""

    number: int
    offset: int
    length: int
    row: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def blank(self) -> bool:
        return self.row is None and self.problem is None

    @property
    def end(self) -> int:
        return self.offset + self.length


def jsonl_lines(path: Path, start: int = 0, first_number: int = 1, stop: int | None = None) -> Iterator[Line]:
    """The complete lines from byte `start` (line `first_number`) up to byte `stop`; a final line
    without its newline, or past `stop`, is not yielded (the writer is still at it)."""
    with path.open("rb") as handle:
        handle.seek(start)
        offset, number = start, first_number
        for raw in handle:
            if not raw.endswith(b"\n") or (stop is not None and offset + len(raw) > stop):
                return
            line = Line(number, offset, len(raw))
            if raw.strip():
                try:
                    row = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    line = Line(number, offset, len(raw), problem=f"not a JSON line ({getattr(err, 'msg', None) or err})")
                else:
                    line = Line(number, offset, len(raw), row, None) if isinstance(row, dict) else Line(
                        number, offset, len(raw), problem=f"a JSON {type(row).__name__} where an object was expected")
            yield line
            offset, number = offset + len(raw), number + 1


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    inode: int

    def key(self) -> tuple[int, int, int]:
        return self.size, self.mtime_ns, self.inode


def file_state(path: Path) -> FileState | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return FileState(stat.st_size, stat.st_mtime_ns, stat.st_ino)


class RunIndex:
    """The index of one run (see the module docstring)."""

    def __init__(self, run: Run, path: Path | None = None):
        self.run = run
        self.path = path or run.root / INDEX_NAME

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=BUSY_WAIT_S)) as db:
            yield db

    # ------------------------------------------------------------------ keeping up

    def refresh(self, progress: Progress | None = None) -> str:
        """Bring the index up to date with the run's files: "current" (nothing new), "updated"
        (lines appended, a scored.jsonl applied), "rebuilt", or "busy" (another process holds the
        index: left as it is). A run folder that is no longer a run (deleted while served) is a
        DataError naming it."""
        check_run(self.run.root)
        try:
            with self.connect() as db:
                if self._stale(db):
                    raise _Rebuild
                plan = [(point, self._growth(db, point)) for point in self.run.points]
                scored = [point for point in self.run.points if self._scored_changed(db, point)]
                if not scored and all(start is None for _, start in plan):
                    return "current"
                with db:  # one transaction: the new lines, the letters, the outcomes, the file states
                    gold = dict(db.execute("SELECT uid, answer_idx FROM items"))
                    for point, start in plan:
                        if start is not None:
                            touched = self._index_predictions(db, point, gold, *start)
                            self._outcomes(db, point, gold, touched)
                    for point in scored:
                        self._apply_scored(db, point, gold)
                return "updated"
        except sqlite3.DatabaseError as err:
            if _busy(err):
                return "busy"
        except _Rebuild:
            pass
        self._build(progress)
        return "rebuilt"

    def _stale(self, db: sqlite3.Connection) -> bool:
        """Whether only a rebuild brings the index up to date."""
        meta = dict(db.execute("SELECT key, value FROM meta"))
        if meta.get("version") != str(INDEX_VERSION) or meta.get("domains") != self._domains_entry():
            return True
        return not self._same_items(db)

    def _domains_entry(self) -> str:
        return json.dumps(self.run.info().get("domains"), sort_keys=True)

    def _same_items(self, db: sqlite3.Connection) -> bool:
        """Whether items.jsonl is what was indexed: the same stat, or else the same bytes."""
        path = self.run.root / "items.jsonl"
        now = file_state(path)
        known = db.execute("SELECT size, mtime_ns, inode, head FROM files WHERE path = 'items.jsonl'").fetchone()
        if now is None or known is None:
            return False
        if now.key() == tuple(known[:3]):
            return True
        if sha256_file(path) != known[3]:
            return False
        with db:
            db.execute("UPDATE files SET size = ?, mtime_ns = ?, inode = ? WHERE path = 'items.jsonl'", now.key())
        return True

    def _growth(self, db: sqlite3.Connection, point: GridPoint) -> tuple[int, int] | None:
        """Where to go on reading a point's predictions (byte, line number); None when nothing was
        added; raises _Rebuild when the indexed part is gone or changed."""
        name = predictions_file(point.key)
        path, now = self.run.root / name, file_state(self.run.root / name)
        known = db.execute("SELECT size, mtime_ns, inode, indexed, lines, head, tail FROM files WHERE path = ?",
                           (name,)).fetchone()
        size, mtime_ns, inode, indexed, lines, head, tail = known or (0, 0, 0, 0, 0, "", "")
        if now is None:
            if indexed:
                raise _Rebuild
            return None
        if now.key() == (size, mtime_ns, inode):
            return None
        if now.size < indexed or (indexed and _fingerprints(path, indexed) != (head, tail)):
            raise _Rebuild
        return indexed, lines + 1

    def _scored_changed(self, db: sqlite3.Connection, point: GridPoint) -> bool:
        name = scored_file(point.key)
        now = file_state(self.run.root / name)
        known = db.execute("SELECT size, mtime_ns, inode FROM files WHERE path = ?", (name,)).fetchone()
        return (None if now is None else now.key()) != (tuple(known) if known else None)

    # ------------------------------------------------------------------ building

    def _build(self, progress: Progress | None) -> None:
        """Write the whole index to a new file, then rename it over the old one."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        files = [self.run.root / predictions_file(point.key) for point in self.run.points]
        total = sum(state.size for state in map(file_state, files) if state is not None)
        done = [0]

        def advance(count: int) -> None:
            done[0] += count
            if progress is not None:
                progress(min(done[0], total), total)

        try:
            temporary.unlink(missing_ok=True)
            with closing(sqlite3.connect(temporary)) as db:
                # A file nobody reads until it is renamed needs no journal: a crash leaves only the temporary.
                db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + SCHEMA)
                with db:
                    domains, note = run_domains(self.run)
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("version", str(INDEX_VERSION)), ("domains", self._domains_entry()),
                        ("domains_note", note or "")])
                    gold = self._index_items(db, domains)
                    for point in self.run.points:
                        state, scored = self._scored_rows(db, point)
                        touched = self._index_predictions(db, point, gold, 0, 1, scored, advance)
                        self._outcomes(db, point, gold, touched)
                        self._record_file(db, scored_file(point.key), state)
            os.replace(temporary, self.path)
        except OSError as err:
            temporary.unlink(missing_ok=True)
            raise DataError.at(self.path, "", "", f"cannot write the index ({err.strerror or err})",
                               "m1 view keeps its index beside the run: make the run folder writable, or copy "
                               "the run somewhere writable") from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if progress is not None:
            progress(total, total)

    def _index_items(self, db: sqlite3.Connection, domains: Mapping[str, str]) -> dict[str, str]:
        """Read items.jsonl into `items`; returns uid -> gold letter."""
        path = self.run.root / "items.jsonl"
        state = file_state(path)
        digest = sha256_file(path)
        gold: dict[str, str] = {}
        rows = []
        for line in jsonl_lines(path, stop=state.size):
            if line.blank:
                continue
            problem = line.problem
            if problem is None:
                try:
                    item = MCQItem.model_validate(line.row)
                except ValidationError as err:
                    first = err.errors()[0]
                    problem = f"not an item: {'.'.join(map(str, first['loc'])) or 'row'}: {first['msg']}"
            if problem is None and item.uid in gold:
                problem = f"uid {item.uid!r} appears twice"
            if problem is not None:
                db.execute("INSERT INTO problems VALUES (?, ?, ?)", ("items.jsonl", line.number, problem))
                continue
            gold[item.uid] = item.answer_idx
            rows.append((len(rows), item.uid, item.source, item.question, item.question.casefold(), item.answer_idx,
                         domains.get(item.uid), json.dumps(item.model_dump(), ensure_ascii=False)))
        db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO files VALUES ('items.jsonl', ?, ?, ?, ?, 0, ?, '', 0)",
                   (*state.key(), state.size, digest))
        return gold

    def _record_file(self, db: sqlite3.Connection, name: str, state: FileState | None, indexed: int = 0,
                     lines: int = 0, partial: bool = False) -> None:
        """What of a file has been read, as it was (`state`) when reading began."""
        if state is None:
            db.execute("DELETE FROM files WHERE path = ?", (name,))
            return
        head, tail = _fingerprints(self.run.root / name, indexed) if indexed else ("", "")
        db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (name, *state.key(), indexed, lines, head, tail, int(partial)))

    # ------------------------------------------------------------------ predictions

    def _index_predictions(self, db: sqlite3.Connection, point: GridPoint, gold: Mapping[str, str], start: int,
                           first_number: int, scored: Mapping[tuple[str, int], tuple] | None = None,
                           advance: Callable[[int], None] | None = None) -> set[str]:
        """Index the point's complete lines from byte `start`; returns the uids that got a row."""
        name = predictions_file(point.key)
        path = self.run.root / name
        state = file_state(path)
        touched: set[str] = set()
        if state is None:
            return touched
        end, number, batch, reported = start, first_number - 1, [], start
        insert = (f"INSERT OR IGNORE INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(PREDICTION_COLUMNS))})")
        for line in jsonl_lines(path, start, first_number, state.size):
            end, number = line.end, line.number
            if line.blank:
                continue
            values = self._prediction(point, line, gold, scored or {})
            if isinstance(values, str):
                db.execute("INSERT INTO problems VALUES (?, ?, ?)", (name, line.number, values))
                continue
            batch.append(values)
            touched.add(values[1])
            if len(batch) >= 1000:
                db.executemany(insert, batch)
                batch.clear()
                if advance is not None:
                    advance(end - reported)
                    reported = end
        db.executemany(insert, batch)
        if advance is not None:
            advance(state.size - reported)
        # Bytes after the last complete line are a line being written: read next time.
        self._record_file(db, name, state, end, number, partial=end < state.size)
        return touched

    def _prediction(self, point: GridPoint, line: Line, gold: Mapping[str, str],
                    scored: Mapping[tuple[str, int], tuple]) -> tuple | str:
        """The predictions row's index values, or what is wrong with the line."""
        if line.problem is not None:
            return line.problem
        row = line.row
        try:
            checked = prediction_from_record(predictions_file(point.key), line.number, row)
        except DataError as err:
            field = f"field '{err.problem.field}': " if err.problem.field else ""
            return f"not a prediction: {field}{err.problem.problem}"
        if checked.uid not in gold:
            return f"uid {checked.uid!r} is not in items.jsonl"
        sample = row.get("sample", 0)
        if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < point.samples:
            return f"field 'sample': {sample!r} is not a sample number of this point (0 to {point.samples - 1})"
        found = scored.get((checked.uid, sample))
        if found is None:
            scores = [score_reply(checked.reply, checked.options, checked.answer_idx, mode) for mode in MODES]
            found = (*(value for s in scores for value in (s.letter, s.rule, int(s.correct))), "m1 view")
        return (point.key, checked.uid, sample, line.number, line.offset, line.length,
                *(_count(row, name) for name in ("thinking_tokens", "answer_tokens", "inserted_tokens", "probe_tokens")),
                _text(row, "thinking_end"), _text(row, "answer_end"), _text(row, "error"),
                int(budget_hit(row)), *found)

    def _scored_rows(self, db: sqlite3.Connection,
                     point: GridPoint) -> tuple[FileState | None, dict[tuple[str, int], tuple]]:
        """The point's scored.jsonl as it is now, and (uid, sample) -> its score columns (empty
        without one); bad lines are recorded as problems."""
        name = scored_file(point.key)
        path = self.run.root / name
        state = file_state(path)
        db.execute("DELETE FROM problems WHERE path = ?", (name,))
        found: dict[tuple[str, int], tuple] = {}
        if state is None:
            return state, found
        for line in jsonl_lines(path, stop=state.size):
            if line.blank:
                continue
            values, problem = _scored_values(line)
            if problem is not None:
                db.execute("INSERT INTO problems VALUES (?, ?, ?)", (name, line.number, problem))
            else:
                found[values[0]] = values[1]
        return state, found

    def _apply_scored(self, db: sqlite3.Connection, point: GridPoint, gold: Mapping[str, str]) -> None:
        """The point's scored.jsonl appeared or changed: its letters replace the ones scored here."""
        state, scored = self._scored_rows(db, point)
        assignments = ", ".join(f"{column} = ?" for column in (*SCORE_COLUMNS, "scored_by"))
        db.executemany(f"UPDATE predictions SET {assignments} WHERE point = ? AND uid = ? AND sample = ?",
                       [(*values, point.key, uid, sample) for (uid, sample), values in scored.items()])
        self._outcomes(db, point, gold, {uid for uid, _ in scored})
        self._record_file(db, scored_file(point.key), state)

    def _outcomes(self, db: sqlite3.Connection, point: GridPoint, gold: Mapping[str, str], uids: set[str]) -> None:
        """Recompute the point's outcomes of the items `uids` from their predictions."""
        if not uids:
            return
        rows = db.execute("SELECT uid, strict_letter, strict_correct, reference_letter, reference_correct, "
                          "thinking_tokens, budget_hit, error FROM predictions WHERE point = ? ORDER BY uid, sample",
                          (point.key,))
        by_item: dict[str, list[tuple]] = {}
        for row in rows:
            if row[0] in uids:
                by_item.setdefault(row[0], []).append(row)
        db.executemany("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [_outcome(point, uid, samples, gold[uid]) for uid, samples in by_item.items()])


class _Rebuild(Exception):
    """Only a rebuild brings the index up to date."""


def _outcome(point: GridPoint, uid: str, samples: list[tuple], gold: str) -> tuple:
    """One item's outcome at a point, as the run's summary counts it (m1.evaluation.results)."""
    if point.samples == 1:
        _, strict_letter, strict_correct, reference_letter, reference_correct, *_ = samples[0]
    else:  # each mode's majority vote (m1.scoring.vote, the summary's rule), right when it is the gold letter
        strict_letter = vote.majority([s[1] for s in samples])
        reference_letter = vote.majority([s[3] for s in samples])
        strict_correct, reference_correct = int(strict_letter == gold), int(reference_letter == gold)
    tokens = [s[5] for s in samples if s[5] is not None]
    return (point.key, uid, len(samples), strict_letter, strict_correct, reference_letter, reference_correct,
            sum(tokens) / len(tokens) if tokens else None, int(any(s[6] for s in samples)),
            int(any(s[7] for s in samples)))


def _scored_values(line: Line) -> tuple[Any, str | None]:
    """((uid, sample), score columns) of a scored.jsonl line, or what is wrong with it."""
    if line.problem is not None:
        return None, line.problem
    row = line.row
    uid, sample = row.get("uid"), row.get("sample", 0)
    if not isinstance(uid, str) or isinstance(sample, bool) or not isinstance(sample, int):
        return None, "not a scored row: no uid or sample"
    values = []
    for mode in MODES:
        letter, rule, correct = (row.get(f"{mode}_{field}") for field in ("letter", "rule", "correct"))
        if not (letter is None or isinstance(letter, str)) or not isinstance(rule, str) or not isinstance(correct, bool):
            return None, f"not a scored row: {mode}_letter, {mode}_rule or {mode}_correct missing or mistyped"
        values += [letter, rule, int(correct)]
    return ((uid, sample), (*values, "scored.jsonl")), None


def _busy(err: sqlite3.DatabaseError) -> bool:
    """Whether sqlite gave up waiting for another connection's lock (not a broken file)."""
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in BUSY_CODES
    # Python 3.10 gives only the message: sqlite's own text for those two codes.
    return str(err).startswith(("database is locked", "database table is locked"))


def _fingerprints(path: Path, indexed: int) -> tuple[str, str]:
    """Digests of the first and the last bytes of a file's indexed part: a file replaced by other
    content, or rewritten in place, shows there without reading it all."""
    with path.open("rb") as handle:
        head = handle.read(min(indexed, FINGERPRINT_BYTES))
        handle.seek(max(0, indexed - FINGERPRINT_BYTES))
        tail = handle.read(indexed - max(0, indexed - FINGERPRINT_BYTES))
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


def _count(row: dict[str, Any], name: str) -> int | None:
    value = row.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    return value if isinstance(value, str) else None
