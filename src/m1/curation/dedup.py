"""Dedup: keep the first of each group of duplicate questions, naming the kept twin of every drop.

    stage = Deduplicate(DedupConfig(), run_dir)           # MinHash LSH, confirmed by fuzz.ratio >= 95
    stage = Deduplicate(DedupConfig(method="reference"), run_dir)   # the paper's O(N²) rule, capped

Two rows are duplicates when their normalised, option-order-free views (question plus sorted option
texts, see `m1.curation.text`) are identical (`exact duplicate`) or at least `threshold` similar by
RapidFuzz `fuzz.ratio` (`near duplicate`). Near twins are found through MinHash LSH
(`m1.curation.similarity`), so 200K rows take minutes, not the days an all-pairs comparison takes.
Rows are visited in input order (pool order, then file order), and the first of a group is kept.

`method: reference` is the paper's rule for comparison on subsets: `fuzz.ratio >= 95` on the raw
question-and-options text against every earlier kept row (top 5 matches), which is O(N²) and misses
copies that differ in case, spacing or option order. It refuses more than `reference_max_rows` rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from rapidfuzz import fuzz, process

from m1.curation.similarity import NearDuplicateSettings, SimilarityIndex
from m1.curation.stage import Drop, Outcome, Row, SetStage
from m1.curation.text import item_view
from m1.data.errors import DataError
from m1.engine.prompt import user_message

Progress = Callable[[int, int], None]
PROGRESS_EVERY = 1000  # rows between progress updates in the reference rule
SIGNATURE_BLOCK = 4096  # rows whose MinHash signatures are computed together


def raw_text(row: Row) -> str:
    """The question and its options as displayed, for the reference rule (which compares raw text)."""
    return user_message(row["question"], row["options"], suffix=None)


class DedupConfig(NearDuplicateSettings):
    """Duplicate removal within the training rows."""

    method: Literal["minhash", "reference"] = "minhash"
    reference_max_rows: int = Field(20_000, gt=0, description="the reference rule's O(N²) guard")


class Deduplicate(SetStage):
    """Drops every row that repeats an earlier kept row, exactly or nearly."""

    name = "dedup"
    version = "2"

    def __init__(self, config: DedupConfig, run_dir: Path | None = None):
        self.config = config
        self.run_dir = run_dir
        self.progress: Progress | None = None
        self._counts: Counter[str] = Counter()

    def params(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        return dict(self._counts)  # a set stage runs whole in one process: its counts are complete

    def process_all(self, rows: list[Row]) -> list[Outcome]:
        if self.config.method == "reference":
            return self._reference(rows)
        index = SimilarityIndex(self.config)
        outcomes: list[Outcome] = []
        for start in range(0, len(rows), SIGNATURE_BLOCK):
            block = rows[start:start + SIGNATURE_BLOCK]
            views = [item_view(row["question"], row["options"]) for row in block]
            # Rows within a block may be twins of each other, so signatures are computed for the
            # block in bulk but rows are still looked up and added one at a time, in order.
            for row, view, signature in zip(block, views, index.signatures(views)):
                match = index.find(view, signature)
                if match is None:
                    index.add(row["uid"], view, signature)
                    outcomes.append(row)
                else:
                    kind = "exact duplicate" if match.exact else "near duplicate"
                    self._counts[kind] += 1
                    outcomes.append(Drop(kind, f"twin of kept row {match.describe()}"))
            if self.progress:
                self.progress(len(outcomes), len(rows))
        return outcomes

    def _reference(self, rows: list[Row]) -> list[Outcome]:
        if len(rows) > self.config.reference_max_rows:
            raise DataError.at("config", "", "dedup.reference_max_rows",
                               f"the reference rule compares every pair of rows; {len(rows):,} rows exceed the "
                               f"cap of {self.config.reference_max_rows:,}",
                               "use dedup.method=minhash, or raise dedup.reference_max_rows")
        cutoff = 100.0 * self.config.threshold
        kept_texts: list[str] = []
        kept_uids: list[str] = []
        outcomes: list[Outcome] = []
        for position, row in enumerate(rows, start=1):
            text = raw_text(row)
            # The paper's form: the five best matches above the cutoff, the first of them decides.
            matches = process.extract(text, kept_texts, scorer=fuzz.ratio, limit=5, score_cutoff=cutoff)
            if matches:
                _, score, where = matches[0]
                kind = "exact duplicate" if score == 100 else "near duplicate"
                self._counts[kind] += 1
                outcomes.append(Drop(kind, f"twin of kept row {kept_uids[where]} "
                                                       f"(reference fuzz.ratio {score / 100:.3f})"))
            else:
                kept_texts.append(text)
                kept_uids.append(row["uid"])
                outcomes.append(row)
            if self.progress and position % PROGRESS_EVERY == 0:
                self.progress(position, len(rows))
        return outcomes
