"""Decontaminate: drop training rows that are evaluation items, naming the evaluation item each matches.

    stage = Decontaminate(DecontamConfig(suite="${shared_data}/eval/m1_eval_data.partial.json"), run_dir)
    # a dropped row: reason "contaminated: MedQA_USLME_test",
    #                detail "MedQA_USLME_test/3f2a… (question+options view, exact)"

Every source of the evaluation suite is indexed under two views, and a training row is checked in
both (`m1.curation.similarity`: exact by digest, near by MinHash LSH confirmed by `fuzz.ratio`):

- `question+options`: the normalised question with its option texts sorted, so a copy with the
  options shuffled, re-cased or re-spaced is still found;
- `question`: the normalised question alone, which finds an evaluation question reused with other
  options (the suite itself has such pairs). Only questions of at least `question_min_words` words
  are compared this way: short stems such as "Which of the following is true?" are shared by
  unrelated items and would flag them; those rows are still checked by the other view.

The original compared a long training prompt against a short evaluation question (so near-copies
scored far below the cutoff) and its MMLU branch compared against single characters (so it never
matched); here both sides always use the same view. `method: reference` applies the paper's rule
instead (`fuzz.ratio >= 95` on the raw texts of each view against every evaluation item), which
costs rows x suite comparisons and misses copies with shuffled options; it is there for comparison.

The stage may run twice (SPEC §3: before difficulty, and after verify against the final evaluation
file); the pipeline gives the second one its own name and directory.

PubMedQA: the suite's `PubMedQA_test` holds all 1,000 PQA-L items, so every PubMedQA training row
(the 500 PMIDs outside the official test split) matches it and is dropped here — they are
contaminated for this suite. `exclude_eval_sources: [PubMedQA_test]` keeps them, as the paper did;
only do that when PubMedQA is then evaluated on the official 500-PMID test half alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from rapidfuzz import fuzz, process

from m1.curation.paths import resolve_path
from m1.curation.similarity import Match, NearDuplicateSettings, SimilarityIndex
from m1.curation.stage import Drop, Outcome, Row, RowStage, annotations
from m1.curation.text import item_view, question_view
from m1.data.errors import DataError
from m1.data.suite import SUITE_FILE_NAME, load_suite
from m1.engine.prompt import user_message
from m1.io import md5_file

View = Literal["question+options", "question"]
DEFAULT_SUITE = "${shared_data}/eval/" + SUITE_FILE_NAME


def _raw_view(view: View, question: str, options: dict[str, str]) -> str:
    """The text the reference rule compares: the question, or the question with its options as shown."""
    return question if view == "question" else user_message(question, options, None)


class DecontamConfig(NearDuplicateSettings):
    """What to check training rows against, and how."""

    suite: str = Field(DEFAULT_SUITE, description="an m1 evaluation file (the published partial suite by default)")
    eval_sources: list[str] | None = Field(None, description="check against these sources only (default: all)")
    exclude_eval_sources: list[str] = Field(default_factory=list, description="sources whose overlaps are allowed")
    views: list[View] = Field(default_factory=lambda: ["question+options", "question"], min_length=1)
    question_min_words: int = Field(10, ge=1, description="shorter questions are compared only with their options")
    method: Literal["minhash", "reference"] = "minhash"
    batch_size: int = Field(512, gt=0, description="rows written per step (the resume granularity)")


class Decontaminate(RowStage):
    """Drops rows that match an evaluation item in either view."""

    name = "decontaminate"
    version = "1"

    def __init__(self, config: DecontamConfig, run_dir: Path | None = None, *, name: str | None = None,
                 config_key: str = "decontaminate"):
        self.config = config
        self.run_dir = run_dir
        self.name = name or type(self).name
        self.config_key = config_key
        self.batch_size = config.batch_size
        self._indexes: dict[View, SimilarityIndex] | None = None
        self._raw: dict[View, tuple[list[str], list[str]]] | None = None

    def _suite_path(self) -> Path:
        return resolve_path(self.config.suite, key=f"{self.config_key}.suite")

    def params(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", exclude={"batch_size"}) | {"suite_md5": md5_file(self._suite_path())}

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        views = Counter(match["view"] for matches in annotations(kept, dropped, "contamination")
                        for match in matches["matches"])
        return {"matches_by_view": dict(views)}

    def eval_items(self) -> dict[str, list]:
        path = self._suite_path()
        suite = load_suite(path)
        wanted = self.config.eval_sources or list(suite)
        unknown = [name for name in [*wanted, *self.config.exclude_eval_sources] if name not in suite]
        if unknown:
            raise DataError.at(path, "", f"{self.config_key}.eval_sources", f"no evaluation source named {unknown[0]}",
                               f"choose from: {', '.join(suite)}")
        return {name: suite[name] for name in wanted if name not in self.config.exclude_eval_sources}

    def _view(self, view: View, question: str, options: dict[str, str]) -> str | None:
        if view == "question":
            if len(question.split()) < self.config.question_min_words:
                return None
            return question_view(question)
        return item_view(question, options)

    def _build(self) -> None:
        """Index every evaluation item under each view (raw texts for the reference rule)."""
        eval_items = self.eval_items()
        self._indexes = {view: SimilarityIndex(self.config) for view in self.config.views}
        self._raw = {}
        for view, index in self._indexes.items():
            keys, texts = [], []
            for source, items in eval_items.items():
                for item in items:
                    text = self._view(view, item.question, item.options)
                    if text is not None:
                        keys.append(f"{source}/{item.uid}")
                        raw = self.config.method == "reference"
                        texts.append(_raw_view(view, item.question, item.options) if raw else text)
            if self.config.method == "minhash":
                index.add_many(keys, texts)
            else:
                self._raw[view] = (keys, texts)

    def _find_all(self, view: View, rows: Sequence[Row]) -> list[Match | None]:
        """Each row's closest evaluation item in one view, or None."""
        texts = [self._view(view, row["question"], row["options"]) for row in rows]
        if self.config.method == "minhash":
            index = self._indexes[view]
            present = [text for text in texts if text is not None]
            signatures = iter(index.signatures(present))
            return [None if text is None else index.find(text, next(signatures)) for text in texts]
        # The reference rule: fuzz.ratio >= cutoff on raw text, against every evaluation item.
        keys, eval_texts = self._raw[view]
        found = []
        for row, text in zip(rows, texts):
            best = None if text is None else process.extractOne(
                _raw_view(view, row["question"], row["options"]), eval_texts, scorer=fuzz.ratio,
                score_cutoff=100.0 * self.config.threshold)
            found.append(None if best is None else Match(keys[best[2]], round(best[1] / 100.0, 4), best[1] == 100))
        return found

    def process_batch(self, rows: Sequence[Row]) -> list[Outcome]:
        if self._indexes is None:
            self._build()
        per_view = {view: self._find_all(view, rows) for view in self.config.views}
        return [self._decide(row, [(view, per_view[view][i]) for view in self.config.views if per_view[view][i]])
                for i, row in enumerate(rows)]

    def _decide(self, row: Row, found: list[tuple[View, Match]]) -> Outcome:
        if not found:
            return row
        # The closest match names the reason; every view's match goes into the detail.
        _, best = max(found, key=lambda pair: pair[1].similarity)
        eval_source = best.key.split("/", 1)[0]
        detail = "; ".join(f"{match.key} ({view} view, {match.closeness})" for view, match in found)
        matches = [{"view": view, "eval_item": match.key, "similarity": match.similarity} for view, match in found]
        return Drop(f"contaminated: {eval_source}", detail, {**row, "contamination": {"matches": matches}})
