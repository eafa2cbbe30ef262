"""The runs one `m1 view` serves: their indexes kept up to date and read through one connection.

    catalog = Catalog(open_runs(paths))
    catalog.refresh(progress)                     # build or update every run's index (m1 view's start)
    with catalog.reading() as db:                 # refreshed first; one request at a time
        db.execute("SELECT COUNT(*) FROM universe")
    catalog.point("tuned:B128_K4"), catalog.statuses(db)

Every run's index file is attached to the connection as `r0`, `r1`, … in the order the runs were
given; an index file replaced since it was attached (rebuilt here, or by another `m1 view` of
the run) is attached again: an attached file is known by its (device, inode), and a connection
to a replaced one would read the deleted file forever. `universe` (a temporary table) holds every
item of any run once, matched by uid: the first run's items in its order, then the items only
later runs have; an item's domain is the first label any run gives it.

A grid point is named `<run name>:<point key>`; a bare key names the point of the only run
(of those asked for) that has it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from m1.data.errors import DataError
from m1.evaluation.view_links import point_name
from m1.viewing.index import Progress, RunIndex
from m1.viewing.runs import Run

# SQLite attaches at most 10 databases to one connection by default; side by side, a few runs is
# what a page can show anyway.
MAX_RUNS = 8


class QueryError(ValueError):
    """A request parameter with a value the viewer cannot use: a 400 naming it and what it takes."""

    def __init__(self, param: str, problem: str, allowed: Sequence[str] = ()):
        self.param, self.problem, self.allowed = param, problem, list(allowed)
        listed = f"; allowed: {', '.join(self.allowed)}" if self.allowed else ""
        super().__init__(f"{param}: {problem}{listed}")


@dataclass(frozen=True)
class PointRef:
    """A grid point of one of the catalog's runs."""

    run: int  # the run's position in the catalog (its index is attached as r<run>)
    key: str
    name: str  # "<run name>:<key>"
    samples: int
    budget: int | None


@dataclass(frozen=True)
class PointStatus:
    name: str
    key: str
    expected: int  # items × samples
    predictions: int  # (uid, sample) rows indexed
    scored: bool  # its scored.jsonl is there: the point is finished
    writing: bool  # a line is being written (a final line without its newline)


@dataclass(frozen=True)
class RunStatus:
    """What the banner says of a run: still being written?, and the lines that were skipped."""

    name: str
    root: Path
    finished: bool
    points: list[PointStatus]
    problems: list[tuple[str, int, str]]  # (file in the run, line, what is wrong), the first ones
    problem_count: int
    domains_note: str | None = None
    items: int = 0

    @property
    def in_progress(self) -> bool:
        return not self.finished or any(point.predictions < point.expected for point in self.points)

    def progress_note(self) -> str:
        """What is missing, for the banner: "run.json has no finish time; B32_K1: 3 of 6 predictions"."""
        parts = [] if self.finished else ["run.json has no finish time"]
        parts += [f"{point.key}: {point.predictions} of {point.expected} predictions"
                  + (", a line being written" if point.writing else "")
                  for point in self.points if point.predictions < point.expected or point.writing]
        return "; ".join(parts)


@dataclass
class Catalog:
    runs: list[Run]
    indexes: list[RunIndex] = field(init=False)

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("m1 view needs at least one run")
        if len(self.runs) > MAX_RUNS:
            raise ValueError(f"m1 view shows at most {MAX_RUNS} runs side by side, got {len(self.runs)}")
        self.indexes = [RunIndex(run) for run in self.runs]
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._attached: list[tuple[int, int] | None] = [None] * len(self.runs)  # (st_dev, st_ino) of r<n>
        self.names = [run.name for run in self.runs]
        self.points_by_name = {point_name(run.name, point.key): PointRef(number, point.key,
                                                                         point_name(run.name, point.key),
                                                                         point.samples, point.budget)
                               for number, run in enumerate(self.runs) for point in run.points}

    # ------------------------------------------------------------------ keeping up

    def refresh(self, progress: Progress | None = None) -> None:
        """Bring every index up to date (building it if need be) and attach the files that are
        new; a run that cannot be read is raised (a DataError) after the others are attached."""
        failed: DataError | None = None
        for index in self.indexes:
            try:
                index.refresh(progress)
            except DataError as err:
                failed = failed or err
        if self._db is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
        changed = False
        for number, index in enumerate(self.indexes):
            # The file's identity before ATTACH opens it: a replacement in between is seen next time.
            identity = _identity(index.path)
            if identity is None or identity == self._attached[number]:
                continue
            if self._attached[number] is not None:
                self._db.execute(f"DETACH DATABASE r{number}")
            self._db.execute("ATTACH DATABASE ? AS ?", (str(index.path), f"r{number}"))
            self._attached[number], changed = identity, True
        if changed and None not in self._attached:
            self._fill_universe()
        if failed is not None:
            raise failed

    def _fill_universe(self) -> None:
        db = self._db
        with db:
            db.execute("DROP TABLE IF EXISTS temp.universe")
            db.execute("CREATE TEMP TABLE universe (rank INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, "
                       "source TEXT NOT NULL, question TEXT NOT NULL, folded TEXT NOT NULL, domain TEXT)")
            for number in range(len(self.runs)):
                db.execute(f"INSERT OR IGNORE INTO universe (uid, source, question, folded, domain) "
                           f"SELECT uid, source, question, folded, domain FROM r{number}.items ORDER BY position")
                db.execute(f"UPDATE universe SET domain = (SELECT i.domain FROM r{number}.items i "
                           f"WHERE i.uid = universe.uid) WHERE domain IS NULL")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, with every index brought up to date first; one reader at a time."""
        with self._lock:
            self.refresh()
            yield self._db

    # ------------------------------------------------------------------ names

    def run_numbers(self, names: Sequence[str]) -> list[int]:
        """The catalog positions of runs given by name (`run=`); all runs when none is given."""
        if not names:
            return list(range(len(self.runs)))
        unknown = [name for name in names if name not in self.names]
        if unknown:
            raise QueryError("run", f"no run named {unknown[0]!r}", self.names)
        return [self.names.index(name) for name in dict.fromkeys(names)]

    def point_names(self, runs: Sequence[int] | None = None) -> list[str]:
        return [ref.name for ref in self.points_by_name.values() if runs is None or ref.run in runs]

    def point(self, text: str, runs: Sequence[int] | None = None, param: str = "point") -> PointRef:
        """A point named `<run name>:<key>`, or by its key alone when one of `runs` has it."""
        if text in self.points_by_name:
            return self.points_by_name[text]
        among = list(range(len(self.runs))) if runs is None else list(runs)
        found = [ref for ref in self.points_by_name.values() if ref.key == text and ref.run in among]
        if len(found) == 1:
            return found[0]
        if found:
            raise QueryError(param, f"{text!r} is a point of several runs: name the run", [ref.name for ref in found])
        raise QueryError(param, f"no grid point {text!r}", self.point_names())

    # ------------------------------------------------------------------ banners

    def statuses(self, db: sqlite3.Connection, shown: int = 20) -> list[RunStatus]:
        """Each run's state: finished or still being written, and the lines skipped (the first `shown`)."""
        found = []
        for number, run in enumerate(self.runs):
            schema = f"r{number}"
            items = db.execute(f"SELECT COUNT(*) FROM {schema}.items").fetchone()[0]
            counts = dict(db.execute(f"SELECT point, COUNT(*) FROM {schema}.predictions GROUP BY point"))
            files = {path: partial for path, partial in db.execute(f"SELECT path, partial FROM {schema}.files")}
            points = [PointStatus(point_name(run.name, point.key), point.key, items * point.samples, counts.get(point.key, 0),
                                  f"points/{point.key}/scored.jsonl" in files,
                                  bool(files.get(f"points/{point.key}/predictions.jsonl")))
                      for point in run.points]
            problems = db.execute(f"SELECT path, line, problem FROM {schema}.problems ORDER BY path, line LIMIT ?",
                                  (shown,)).fetchall()
            count = db.execute(f"SELECT COUNT(*) FROM {schema}.problems").fetchone()[0]
            note = db.execute(f"SELECT value FROM {schema}.meta WHERE key = 'domains_note'").fetchone()
            found.append(RunStatus(run.name, run.root, run.finished(), points, [tuple(p) for p in problems], count,
                                   (note[0] or None) if note else None, items))
        return found


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino
