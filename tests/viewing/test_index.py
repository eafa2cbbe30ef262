"""The index beside a run: built once, each entry's offset reading back its own line; brought up to
date when a predictions file grows (a line being written waits), rebuilt when one shrinks or is
replaced, when items.jsonl or the index version changes, or when the index file is broken; a
scored.jsonl replaces the letters scored here (which agree with it); bad lines are named,
skipped and counted; a failed build leaves the old index as it was. A catalog reads an index
another process replaced, and the others when one run fails; an index another process holds
locked is served as it is, not rebuilt."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from m1.evaluation.runner import prediction_row
from m1.evaluation.store import RunStore
from m1.data.errors import DataError
from m1.viewing import INDEX_NAME, Catalog, RunIndex, open_run, open_runs, read_prediction
from m1.viewing import index as index_module
from m1.viewing.index import SCORE_COLUMNS

from .stores import Answer, make_items, make_run, point, predictions, record

ITEMS = make_items({"S1": 4, "S2": 2})
ANSWERS = {"B16_K1": {item.uid: [Answer("AB"[i % 2], 5 + i)] for i, item in enumerate(ITEMS)},
           "B32_K1": {item.uid: [Answer(None if i == 3 else "A", 20 + i, budget_hit=i < 2)]
                      for i, item in enumerate(ITEMS[:4])}}


def build(root: Path) -> RunIndex:
    index = RunIndex(open_run(root))
    assert index.refresh() == "rebuilt"
    return index


def rows(index: RunIndex, sql: str, *args) -> list[tuple]:
    with index.connect() as db:
        return db.execute(sql, args).fetchall()


def append(root: Path, key: str, uid: str, answer: Answer) -> None:
    item = next(item for item in ITEMS if item.uid == uid)
    with predictions(root, key).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(prediction_row(item, point(root, key), record(answer), 0.1)) + "\n")


@pytest.fixture()
def writing(tmp_path: Path) -> Path:
    """A run still being written: B32_K1 has 4 of its 6 predictions, nothing is scored."""
    return make_run(tmp_path, "writing", ITEMS, ANSWERS, [16, 32], finish=False)


def test_entries_read_back_their_own_lines_and_the_letters_agree_with_scored_jsonl(tmp_path: Path):
    root = make_run(tmp_path, "done", ITEMS, ANSWERS | {"B32_K1": {u: [Answer("A")] for u in ANSWERS["B16_K1"]}},
                    [16, 32])
    unscored = tmp_path / "unscored"
    unscored.mkdir()
    for name in ("run.json", "config.yaml", "items.jsonl"):
        (unscored / name).write_bytes((root / name).read_bytes())
    for key in ("B16_K1", "B32_K1"):
        predictions(unscored, key).parent.mkdir(parents=True)
        predictions(unscored, key).write_bytes(predictions(root, key).read_bytes())
    index, own = build(root), build(unscored)
    run = index.run
    entries = rows(index, "SELECT point, uid, sample, offset, length, thinking_tokens FROM predictions")
    assert len(entries) == 12
    for key, uid, sample, offset, length, tokens in entries:
        row = read_prediction(run, key, offset, length)
        assert (row["uid"], row.get("sample", 0), row["thinking_tokens"]) == (uid, sample, tokens)
    letters = f"SELECT point, uid, {', '.join(SCORE_COLUMNS)} FROM predictions ORDER BY point, uid"
    assert rows(index, letters) == rows(own, letters)
    assert {by for (by,) in rows(index, "SELECT scored_by FROM predictions")} == {"scored.jsonl"}
    assert {by for (by,) in rows(own, "SELECT scored_by FROM predictions")} == {"m1 view"}
    assert index.refresh() == "current" and index.path == root / INDEX_NAME


def test_appended_lines_are_indexed_and_a_line_being_written_waits(writing: Path):
    index = build(writing)
    count = "SELECT COUNT(*) FROM predictions WHERE point = 'B32_K1'"
    assert rows(index, count) == [(4,)]
    append(writing, "B32_K1", "S2-0", Answer("A", 7))
    path = predictions(writing, "B32_K1")
    whole = json.dumps(prediction_row(ITEMS[5], point(writing, "B32_K1"), record(Answer("B", 9)), 0.1)) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(whole[:50])  # the writer is mid-line
    assert index.refresh() == "updated"
    assert rows(index, count) == [(5,)]
    assert rows(index, "SELECT partial FROM files WHERE path = 'points/B32_K1/predictions.jsonl'") == [(1,)]
    assert rows(index, "SELECT strict_letter, strict_correct, thinking_tokens FROM outcomes WHERE uid = 'S2-0' "
                       "AND point = 'B32_K1'") == [("A", 1, 7.0)]
    with path.open("a", encoding="utf-8") as handle:
        handle.write(whole[50:])
    assert index.refresh() == "updated"
    assert rows(index, "SELECT uid, line FROM predictions WHERE point = 'B32_K1' AND uid LIKE 'S2-%'") == [
        ("S2-0", 5), ("S2-1", 6)]
    assert rows(index, "SELECT COUNT(*) FROM problems") == [(0,)]


def test_a_scored_jsonl_that_appears_replaces_the_letters(writing: Path):
    index = build(writing)
    from m1.config import load_config
    from m1.evaluation.config import EvalConfig
    from m1.evaluation.results import score_run

    for uid in ("S2-0", "S2-1"):
        append(writing, "B32_K1", uid, Answer("A"))
    config = load_config(EvalConfig, writing / "config.yaml")
    RunStore(writing, config).write_summary(score_run(config, RunStore(writing, config), config.grid_points(), ITEMS))
    assert index.refresh() == "updated"
    assert rows(index, "SELECT DISTINCT scored_by FROM predictions") == [("scored.jsonl",)]
    assert rows(index, "SELECT COUNT(*) FROM outcomes") == [(12,)]


def test_a_shrunk_or_replaced_file_and_changed_items_rebuild(writing: Path):
    index = build(writing)
    path = predictions(writing, "B16_K1")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]))
    assert index.refresh() == "rebuilt"
    assert rows(index, "SELECT COUNT(*) FROM predictions WHERE point = 'B16_K1'") == [(3,)]
    # The same size, other content: the fingerprint of the indexed part tells. (Rewritten in place
    # within the file system's mtime granularity, its stat would not change: a second later.)
    path.write_bytes(b"".join(lines[:3]).replace(b'"thinking_tokens": 5', b'"thinking_tokens": 6'))
    written = path.stat()
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns + 1_000_000_000))
    assert index.refresh() == "rebuilt"
    assert rows(index, "SELECT thinking_tokens FROM predictions WHERE uid = 'S1-0' AND point = 'B16_K1'") == [(6,)]
    # The run store's repair rewrites the file (a new inode) without its torn last line: not a rebuild.
    with path.open("ab") as handle:
        handle.write(b'{"uid": "S1-')
    index.refresh()
    RunStore(writing, index.run.config).repair(point(writing, "B16_K1"))
    assert index.refresh() == "updated"
    items = writing / "items.jsonl"
    items.write_text(items.read_text().replace("which organ 1?", "which organ one?"))
    assert index.refresh() == "rebuilt"
    assert rows(index, "SELECT question FROM items WHERE uid = 'S1-1'") == [("Question 1 of S1: which organ one?",)]


def test_bad_lines_are_named_skipped_and_counted(writing: Path):
    path = predictions(writing, "B32_K1")
    good = path.read_text().splitlines(keepends=True)
    path.write_text("".join([good[0], "{not json\n", "\n", "[1, 2]\n", good[1],
                             json.dumps({"uid": "S1-9", "source": "S1", "options": {"A": "x", "B": "y"},
                                         "answer_idx": "A", "reply": "A"}) + "\n",
                             json.dumps({"uid": "S1-2", "source": "S1"}) + "\n", good[1], *good[2:]]))
    index = build(writing)
    problems = rows(index, "SELECT path, line, problem FROM problems ORDER BY line")
    assert [(p, n) for p, n, _ in problems] == [("points/B32_K1/predictions.jsonl", n) for n in (2, 4, 6, 7)]
    assert "not a JSON line" in problems[0][2] and "a JSON list" in problems[1][2]
    assert "'S1-9' is not in items.jsonl" in problems[2][2] and "field 'options': missing" in problems[3][2]
    # The row written twice (line 8) counts once, as the run store reads it; the rest are indexed.
    assert rows(index, "SELECT uid, line FROM predictions WHERE point = 'B32_K1' ORDER BY line") == [
        ("S1-0", 1), ("S1-1", 5), ("S1-2", 9), ("S1-3", 10)]


def test_another_version_a_broken_file_or_a_failed_build(writing: Path):
    index = build(writing)
    with sqlite3.connect(index.path) as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'version'")
    assert index.refresh() == "rebuilt"
    index.path.write_bytes(b"this is not a database" * 100)
    assert index.refresh() == "rebuilt"
    before = index.path.read_bytes()
    append(writing, "B32_K1", "S2-0", Answer("A"))
    predictions(writing, "B16_K1").write_text("")  # shrank: a rebuild, which fails half way

    def fail(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index.refresh(fail)
    assert index.path.read_bytes() == before
    assert [p.name for p in writing.iterdir() if p.name.endswith(".tmp")] == []
    assert index.refresh() == "rebuilt"


def count_in(catalog: Catalog, number: int = 0) -> int:
    with catalog.reading() as db:
        return db.execute(f"SELECT COUNT(*) FROM r{number}.predictions").fetchone()[0]


def test_a_catalog_reads_the_index_another_process_replaced(writing: Path, tmp_path: Path):
    catalog = Catalog(open_runs([writing]))
    assert count_in(catalog) == 10
    # A second m1 view started on the fresh run builds the index too, and renames it over this one's...
    other = RunIndex(open_run(writing), tmp_path / "built-elsewhere.sqlite")
    assert other.refresh() == "rebuilt"
    os.replace(other.path, writing / INDEX_NAME)
    # ...then brings it up to date itself: this catalog's refresh has nothing left to do.
    append(writing, "B32_K1", "S2-0", Answer("A"))
    assert RunIndex(open_run(writing)).refresh() == "updated"
    assert count_in(catalog) == 11


def test_a_run_that_fails_does_not_keep_the_others_on_their_old_index(writing: Path, tmp_path: Path):
    other = make_run(tmp_path / "other", "other", ITEMS, ANSWERS, [16, 32], finish=False)
    catalog = Catalog(open_runs([writing, other]))
    assert count_in(catalog, 0) == 10
    predictions(writing, "B16_K1").write_text("")  # run 0 is rebuilt by the next refresh...
    items = (other / "items.jsonl").read_bytes()
    (other / "items.jsonl").unlink()  # ...in which run 1 fails
    with pytest.raises(DataError, match="items.jsonl missing"):
        catalog.refresh()
    (other / "items.jsonl").write_bytes(items)
    assert (count_in(catalog, 0), count_in(catalog, 1)) == (4, 10)


def test_an_index_another_process_holds_is_served_as_it_is(writing: Path, monkeypatch):
    monkeypatch.setattr(index_module, "BUSY_WAIT_S", 0.05)
    index = build(writing)
    inode = index.path.stat().st_ino
    append(writing, "B32_K1", "S2-0", Answer("A"))
    with closing(sqlite3.connect(index.path)) as other:
        other.execute("BEGIN IMMEDIATE")  # another m1 view mid-update
        assert index.refresh() == "busy"
        assert index.path.stat().st_ino == inode  # locked is not broken: no rebuild
        other.rollback()
    assert index.refresh() == "updated"
    assert rows(index, "SELECT COUNT(*) FROM predictions WHERE point = 'B32_K1'") == [(5,)]
