"""The item list's filters: request parameters checked into an `ItemQuery`, then run as SQL over the
catalog's indexes, giving one page of items, the number matched, and per-facet counts.

    query = parse_query(request.query_params.multi_items(), catalog)      # QueryError: a 400
    with catalog.reading() as db:
        page = list_items(db, catalog, query)     # page.total, page.items, page.facets

Parameters (every one optional; an empty value is the same as none; each once, except `run`):
  q            text the question contains (case-folded)
  source       a source name;  domain  a MeSH domain (runs with a labels file)
  run          a run name, repeatable: only items these runs answered, and only their columns
  point        the grid point the filters below and the sort read: `<run name>:<key>`, or a key
               that one of the runs has (`B128_K4`)
  mode         strict (default) or reference: the scoring mode of correct, no_answer and rule
  correct      true | false: the item's answer at `point` is right / wrong (no answer is wrong)
  no_answer    true | false: at `point` the mode found no answer letter
  rule         an extraction rule (m1.scoring.RULES) that chose an answer at `point`
  budget_hit   true | false: thinking at `point` reached its budget (thinking_end budget_reached)
  flip         right_to_wrong | wrong_to_right | either, between `flip_from` and `flip_to` (two
               points, of any runs: items matched by uid), in `mode`
  sort         order (the run's item order, default) | thinking_asc | thinking_desc (thinking
               tokens at `point`; items without a prediction there last)
  page         1, 2, …;  per_page  1 to 500 (default 50)

At a point with several samples per item, correct, no_answer and flip read the majority vote of
the samples' letters (the run's summary's answer), budget_hit and rule match when any sample
did, and the sort reads the mean thinking tokens. An item without a prediction at a point (a run
still being written) matches none of that point's filters. Each facet counts the items that
match every other filter (its own left out), so it shows what choosing another value would give.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from m1.evaluation.view_links import point_name
from m1.scoring import MODES, RULES
from m1.viewing.catalog import Catalog, PointRef, QueryError

PARAMS = ("q", "source", "domain", "run", "point", "mode", "correct", "no_answer", "rule", "budget_hit", "flip",
          "flip_from", "flip_to", "sort", "page", "per_page")
BOOLEANS = ("true", "false")
FLIPS = ("right_to_wrong", "wrong_to_right", "either")
SORTS = ("order", "thinking_asc", "thinking_desc")
PER_PAGE, MAX_PER_PAGE, MAX_PAGE, MAX_TEXT = 50, 500, 1_000_000, 500
POINT_FILTERS = ("correct", "no_answer", "rule", "budget_hit")


@dataclass(frozen=True)
class ItemQuery:
    """A checked item-list request (see the module docstring for what each field means)."""

    text: str = ""
    source: str | None = None
    domain: str | None = None
    runs: tuple[int, ...] = ()  # catalog positions; () = every run
    run_names: tuple[str, ...] = ()
    point: PointRef | None = None
    mode: str = "strict"
    correct: bool | None = None
    no_answer: bool | None = None
    rule: str | None = None
    budget_hit: bool | None = None
    flip: str | None = None
    flip_from: PointRef | None = None
    flip_to: PointRef | None = None
    sort: str = "order"
    page: int = 1
    per_page: int = PER_PAGE

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query's URL parameters (with `changes`), in a fixed order, defaults left out."""
        query = replace(self, **changes)
        flags = {True: "true", False: "false", None: None}
        values: list[tuple[str, str | None]] = [
            ("q", query.text or None), ("source", query.source), ("domain", query.domain),
            *(("run", name) for name in query.run_names),
            ("point", query.point.name if query.point else None),
            ("mode", query.mode if query.mode != "strict" else None),
            ("correct", flags[query.correct]), ("no_answer", flags[query.no_answer]), ("rule", query.rule),
            ("budget_hit", flags[query.budget_hit]), ("flip", query.flip),
            ("flip_from", query.flip_from.name if query.flip_from else None),
            ("flip_to", query.flip_to.name if query.flip_to else None),
            ("sort", query.sort if query.sort != "order" else None),
            ("page", str(query.page) if query.page != 1 else None),
            ("per_page", str(query.per_page) if query.per_page != PER_PAGE else None)]
        return [(name, value) for name, value in values if value is not None]


def parse_query(pairs: Iterable[tuple[str, str]], catalog: Catalog, sources: Sequence[str],
                domains: Sequence[str]) -> ItemQuery:
    """Check request parameters (`sources`, `domains`: the values there are); QueryError names the
    first bad one and what it takes."""
    given: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in PARAMS:
            raise QueryError(name, "unknown parameter", PARAMS)
        given.setdefault(name, []).append(value)
    for name, values in given.items():
        if name != "run" and len(values) > 1:
            raise QueryError(name, f"given {len(values)} times; give it once")
    one = {name: values[0].strip() for name, values in given.items() if name != "run" and values[0].strip()}
    run_names = tuple(dict.fromkeys(value.strip() for value in given.get("run", []) if value.strip()))
    runs = catalog.run_numbers(run_names)

    def choice(name: str, allowed: Sequence[str], default: str | None = None) -> str | None:
        value = one.get(name, default)
        if value is not None and value not in allowed:
            raise QueryError(name, f"{value!r} is not one of the values", allowed)
        return value

    def flag(name: str) -> bool | None:
        value = choice(name, BOOLEANS)
        return None if value is None else value == "true"

    def number(name: str, default: int, largest: int) -> int:
        value = one.get(name)
        if value is None:
            return default
        if not value.isascii() or not value.isdigit() or len(value) > 9 or not 1 <= int(value) <= largest:
            raise QueryError(name, f"{value[:40]!r} is not a whole number from 1 to {largest}")
        return int(value)

    text = one.get("q", "")
    if len(text) > MAX_TEXT:
        raise QueryError("q", f"longer than {MAX_TEXT} characters")
    point = catalog.point(one["point"], runs) if "point" in one else None
    query = ItemQuery(
        text=text, source=choice("source", sources), domain=choice("domain", domains),
        runs=tuple(runs) if run_names else (), run_names=run_names, point=point,
        mode=choice("mode", MODES, "strict"), correct=flag("correct"), no_answer=flag("no_answer"),
        rule=choice("rule", tuple(RULES)), budget_hit=flag("budget_hit"), flip=choice("flip", FLIPS),
        flip_from=catalog.point(one["flip_from"], runs, "flip_from") if "flip_from" in one else None,
        flip_to=catalog.point(one["flip_to"], runs, "flip_to") if "flip_to" in one else None,
        sort=choice("sort", SORTS, "order"), page=number("page", 1, MAX_PAGE),
        per_page=number("per_page", PER_PAGE, MAX_PER_PAGE))
    needs_point = [name for name in POINT_FILTERS if getattr(query, name) is not None]
    if query.sort != "order":
        needs_point.append("sort")
    if needs_point and point is None:
        raise QueryError("point", f"{needs_point[0]} reads a grid point: give point=", catalog.point_names(runs or None))
    if query.flip is not None:
        for name in ("flip_from", "flip_to"):
            if getattr(query, name) is None:
                raise QueryError(name, "flip compares two grid points: give flip_from= and flip_to=",
                                 catalog.point_names(runs or None))
        if query.flip_from == query.flip_to:
            raise QueryError("flip_to", "is the same point as flip_from: choose another")
    return query


# ---------------------------------------------------------------------------------- the SQL


@dataclass(frozen=True)
class Condition:
    """One filter as SQL over the universe row `u`, named by the facet it narrows."""

    facet: str
    sql: str
    args: tuple[Any, ...] = ()


def _outcome(point: PointRef, test: str, *args: Any) -> tuple[str, tuple[Any, ...]]:
    return (f"EXISTS (SELECT 1 FROM r{point.run}.outcomes o WHERE o.point = ? AND o.uid = u.uid AND {test})",
            (point.key, *args))


def conditions(query: ItemQuery) -> list[Condition]:
    mode, point = query.mode, query.point
    found = []
    if query.text:
        found.append(Condition("q", "instr(u.folded, ?) > 0", (query.text.casefold(),)))
    if query.source is not None:
        found.append(Condition("source", "u.source = ?", (query.source,)))
    if query.domain is not None:
        found.append(Condition("domain", "u.domain = ?", (query.domain,)))
    for number in query.runs:
        found.append(Condition("run", f"EXISTS (SELECT 1 FROM r{number}.items i WHERE i.uid = u.uid)"))
    if query.correct is not None:
        found.append(Condition("correct", *_outcome(point, f"o.{mode}_correct = ?", int(query.correct))))
    if query.no_answer is not None:
        found.append(Condition("no_answer", *_outcome(point, f"(o.{mode}_letter IS NULL) = ?", int(query.no_answer))))
    if query.budget_hit is not None:
        found.append(Condition("budget_hit", *_outcome(point, "o.budget_hit = ?", int(query.budget_hit))))
    if query.rule is not None:
        found.append(Condition("rule", f"EXISTS (SELECT 1 FROM r{point.run}.predictions p WHERE p.point = ? "
                                       f"AND p.uid = u.uid AND p.{mode}_rule = ?)", (point.key, query.rule)))
    if query.flip is not None:
        test = {"right_to_wrong": "a.{c} = 1 AND b.{c} = 0", "wrong_to_right": "a.{c} = 0 AND b.{c} = 1",
                "either": "a.{c} != b.{c}"}[query.flip].format(c=f"{mode}_correct")
        found.append(Condition("flip", f"EXISTS (SELECT 1 FROM {_pair(query)} WHERE {test})",
                               (query.flip_from.key, query.flip_to.key)))
    return found


def _pair(query: ItemQuery) -> str:
    """The two flip points' outcomes of the universe row `u`, as `a` and `b` (two point arguments)."""
    return (f"r{query.flip_from.run}.outcomes a JOIN r{query.flip_to.run}.outcomes b "
            f"ON a.point = ? AND a.uid = u.uid AND b.point = ? AND b.uid = u.uid")


def _where(found: Sequence[Condition], leave_out: str | None = None) -> tuple[str, tuple[Any, ...]]:
    kept = [c for c in found if c.facet != leave_out]
    if not kept:
        return "", ()
    return " WHERE " + " AND ".join(c.sql for c in kept), tuple(arg for c in kept for arg in c.args)


# ---------------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class Cell:
    """An item's outcome at one point, in the page's mode."""

    point: str  # the point's name
    letter: str | None
    correct: bool
    samples: int
    thinking_tokens: float | None
    budget_hit: bool
    error: bool

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "letter": self.letter, "correct": self.correct, "samples": self.samples,
                "thinking_tokens": self.thinking_tokens, "budget_hit": self.budget_hit, "error": self.error}


@dataclass(frozen=True)
class ListedItem:
    position: int  # 1-based, in the universe's order
    uid: str
    source: str
    domain: str | None
    question: str
    cells: dict[str, Cell]  # by point name; points without a prediction for the item are absent

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "uid": self.uid, "source": self.source, "domain": self.domain,
                "question": self.question, "points": {name: cell.to_dict() for name, cell in self.cells.items()}}


@dataclass(frozen=True)
class ItemPage:
    query: ItemQuery
    total: int  # items matched
    universe: int  # items there are
    items: list[ListedItem]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "universe": self.universe, "page": self.query.page,
                "per_page": self.query.per_page, "pages": self.pages, "mode": self.query.mode,
                "point": self.query.point.name if self.query.point else None,
                "items": [item.to_dict() for item in self.items], "facets": self.facets}


def list_items(db: sqlite3.Connection, catalog: Catalog, query: ItemQuery) -> ItemPage:
    found = conditions(query)
    where, args = _where(found)
    total = db.execute(f"SELECT COUNT(*) FROM universe u{where}", args).fetchone()[0]
    universe = db.execute("SELECT COUNT(*) FROM universe").fetchone()[0]
    order, order_args = "u.rank", ()
    if query.sort != "order":
        tokens = (f"(SELECT o.thinking_tokens FROM r{query.point.run}.outcomes o "
                  f"WHERE o.point = ? AND o.uid = u.uid)")
        order = f"{tokens} {'ASC' if query.sort == 'thinking_asc' else 'DESC'} NULLS LAST, u.rank"
        order_args = (query.point.key,)
    rows = db.execute(f"SELECT u.rank, u.uid, u.source, u.domain, u.question FROM universe u{where} "
                      f"ORDER BY {order} LIMIT ? OFFSET ?",
                      (*args, *order_args, query.per_page, (query.page - 1) * query.per_page)).fetchall()
    cells = _cells(db, catalog, query, [row[1] for row in rows])
    items = [ListedItem(rank, uid, source, domain, question, cells.get(uid, {}))
             for rank, uid, source, domain, question in rows]
    return ItemPage(query, total, universe, items, facets(db, query, found))


def _cells(db: sqlite3.Connection, catalog: Catalog, query: ItemQuery, uids: list[str]) -> dict[str, dict[str, Cell]]:
    """The page's items' outcomes at every point of the runs shown."""
    found: dict[str, dict[str, Cell]] = {}
    if not uids:
        return found
    marks = ", ".join("?" * len(uids))
    mode = query.mode
    for number in query.runs or range(len(catalog.runs)):
        name = catalog.runs[number].name
        order = {point.key: position for position, point in enumerate(catalog.runs[number].points)}
        rows = db.execute(f"SELECT uid, point, {mode}_letter, {mode}_correct, samples, thinking_tokens, budget_hit, "
                          f"error FROM r{number}.outcomes WHERE uid IN ({marks})", uids).fetchall()
        for uid, key, letter, correct, samples, tokens, budget_hit, error in sorted(rows, key=lambda r: order[r[1]]):
            found.setdefault(uid, {})[point_name(name, key)] = Cell(point_name(name, key), letter, bool(correct),
                                                                   samples, tokens, bool(budget_hit), bool(error))
    return found


def facets(db: sqlite3.Connection, query: ItemQuery, found: Sequence[Condition]) -> dict[str, dict[str, int]]:
    """Per facet, the items matching every other filter, by the facet's value."""
    def grouped(facet: str, select: str, joins: str = "", join_args: tuple[Any, ...] = (),
                count: str = "COUNT(*)") -> dict[str, int]:
        where, args = _where(found, facet)
        rows = db.execute(f"SELECT {select}, {count} FROM universe u{joins}{where} GROUP BY 1 ORDER BY 1",
                          (*join_args, *args))
        return {_label(value): n for value, n in rows}

    counted = {"source": grouped("source", "u.source"), "domain": grouped("domain", "u.domain")}
    if (point := query.point) is not None:
        mode = query.mode
        outcome = f" JOIN r{point.run}.outcomes o ON o.point = ? AND o.uid = u.uid"
        counted["correct"] = _booleans(grouped("correct", f"o.{mode}_correct = 1", outcome, (point.key,)))
        counted["no_answer"] = _booleans(grouped("no_answer", f"o.{mode}_letter IS NULL", outcome, (point.key,)))
        counted["budget_hit"] = _booleans(grouped("budget_hit", "o.budget_hit = 1", outcome, (point.key,)))
        counted["rule"] = grouped("rule", f"p.{mode}_rule", f" JOIN r{point.run}.predictions p ON p.point = ? "
                                  "AND p.uid = u.uid", (point.key,), "COUNT(DISTINCT u.uid)")
    if query.flip_from is not None and query.flip_to is not None:
        column = f"{query.mode}_correct"
        pairs = grouped("flip", f"a.{column} * 2 + b.{column}", " JOIN " + _pair(query),
                        (query.flip_from.key, query.flip_to.key))
        counted["flip"] = {"right_to_wrong": pairs.get("2", 0), "wrong_to_right": pairs.get("1", 0),
                           "either": pairs.get("2", 0) + pairs.get("1", 0),
                           "unchanged": pairs.get("0", 0) + pairs.get("3", 0)}
    return counted


def _label(value: Any) -> str:
    """A facet value as text ("unlabelled": an item without a domain)."""
    return "unlabelled" if value is None else str(value)


def _booleans(counts: Mapping[str, int]) -> dict[str, int]:
    """A comparison's counts (grouped as 0 and 1) as {"true": n, "false": n}."""
    return {"true": counts.get("1", 0), "false": counts.get("0", 0)}


def facet_values(db: sqlite3.Connection) -> tuple[list[str], list[str]]:
    """The sources and the domains there are (what source= and domain= accept)."""
    sources = [row[0] for row in db.execute("SELECT DISTINCT source FROM universe ORDER BY source")]
    domains = [row[0] for row in db.execute("SELECT DISTINCT domain FROM universe WHERE domain IS NOT NULL "
                                            "ORDER BY domain")]
    return sources, domains

