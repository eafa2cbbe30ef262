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

A copy that grows is not similar any more: a short stem with a prefix ("Question 12:") or an
instruction line ("Choose the best answer.") added falls below the symmetric ratio. So a row that
matches nothing is also searched for evaluation items it *contains* (`m1.curation.containment`:
proposed by word 3-gram containment of the evaluation side, confirmed when at least
`containment.threshold` of the item's characters are found in the row, the question in the row's
question and each option among its own options, one row option to one item option, typos costing a
character each; a row whose options are empty or placeholders such as "A" or "Option A" wrote them
into its question, where they are looked for too), in the same two views. A question is looked for
alone only from `containment.min_words` words: a shorter stem is inside many unrelated rows (of the
6,963 clean HEAD-QA and demo rows, looking for questions of 8+ words alone flagged 29, of 10+ words
1, of 13+ none). Such a drop's detail names the item, the view and the shares found:
"MedMCQA_validation/3f2a… (question+options view, contained 0.984, 0.62 of its 3-grams)".
`containment: null` turns this off; with `method: reference` it leaves the paper's rule alone.

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

from m1.curation.containment import Containment, ContainmentIndex, ContainmentSettings, Probe
from m1.curation.paths import resolve_path
from m1.curation.similarity import Match, NearDuplicateSettings, SimilarityIndex
from m1.curation.stage import Drop, Outcome, Row, RowStage, annotations
from m1.curation.text import item_segments
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
    containment: ContainmentSettings | None = Field(
        default_factory=ContainmentSettings,
        description="also drop rows that contain an evaluation item with other text around it (null: off)")
    batch_size: int = Field(512, gt=0, description="rows written per step (the resume granularity)")


class Decontaminate(RowStage):
    """Drops rows that match or contain an evaluation item in either view."""

    name = "decontaminate"
    version = "3"

    def __init__(self, config: DecontamConfig, run_dir: Path | None = None, *, name: str | None = None,
                 config_key: str = "decontaminate"):
        self.config = config
        self.run_dir = run_dir
        self.name = name or type(self).name
        self.config_key = config_key
        self.batch_size = config.batch_size
        self._indexes: dict[View, SimilarityIndex] | None = None
        self._raw: dict[View, tuple[list[str], list[str]]] | None = None
        self._containing: ContainmentIndex | None = None

    def _suite_path(self) -> Path:
        return resolve_path(self.config.suite, key=f"{self.config_key}.suite")

    def params(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", exclude={"batch_size"}) | {"suite_md5": md5_file(self._suite_path())}

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        counts: dict[str, Counter[str]] = {"similar": Counter(), "contained": Counter()}
        for found in annotations(kept, dropped, "contamination"):
            for match in found["matches"]:
                counts[match["rule"]][match["view"]] += 1
        return {"matches_by_view": dict(counts["similar"]), "contained_by_view": dict(counts["contained"])}

    def eval_items(self) -> dict[str, list]:
        path = self._suite_path()
        suite = load_suite(path)
        wanted = self.config.eval_sources or list(suite)
        unknown = [name for name in [*wanted, *self.config.exclude_eval_sources] if name not in suite]
        if unknown:
            raise DataError.at(path, "", f"{self.config_key}.eval_sources", f"no evaluation source named {unknown[0]}",
                               f"choose from: {', '.join(suite)}")
        return {name: suite[name] for name in wanted if name not in self.config.exclude_eval_sources}

    def _view(self, view: View, question: str, segments: list[str]) -> str | None:
        """The symmetric rule's text of a question in one view (None: not compared in this view)."""
        if view == "question":
            if len(question.split()) < self.config.question_min_words:
                return None
            return segments[0]
        return "\n".join(segments)

    def _contained_view(self, view: View, segments: list[str]) -> tuple[str, list[str]] | None:
        """The question and options looked for inside rows in one view (None: not looked for in it)."""
        if view == "question":
            return (segments[0], []) if len(segments[0].split()) >= self.config.containment.min_words else None
        return segments[0], segments[1:]

    def _build(self) -> None:
        """Index every evaluation item under each view (raw texts for the reference rule)."""
        eval_items = self.eval_items()
        self._indexes = {view: SimilarityIndex(self.config) for view in self.config.views}
        self._raw = {}
        if self.config.containment is not None:
            self._containing = ContainmentIndex(self.config.containment)
        for view, index in self._indexes.items():
            keys, texts = [], []
            for source, items in eval_items.items():
                for item in items:
                    key = f"{source}/{item.uid}"
                    segments = item_segments(item.question, item.options)
                    text = self._view(view, item.question, segments)
                    if text is not None:
                        keys.append(key)
                        raw = self.config.method == "reference"
                        texts.append(_raw_view(view, item.question, item.options) if raw else text)
                    contained = self._contained_view(view, segments) if self._containing is not None else None
                    if contained is not None:
                        self._containing.add(key, *contained, label=view)
            if self.config.method == "minhash":
                index.add_many(keys, texts)
            else:
                self._raw[view] = (keys, texts)

    def _find_all(self, view: View, rows: Sequence[Row], segments: list[list[str]]) -> list[Match | None]:
        """Each row's closest evaluation item in one view, or None."""
        texts = [self._view(view, row["question"], parts) for row, parts in zip(rows, segments)]
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

    def _contained(self, segments: list[str]) -> list[tuple[View, Containment]]:
        """The evaluation items a row contains, one per view."""
        if self._containing is None:
            return []
        found = self._containing.find(Probe.of(segments[0], segments[1:], self.config.containment.ngram_words))
        order = {view: place for place, view in enumerate(self.config.views)}
        return [(match.label, match) for match in sorted(found, key=lambda match: order[match.label])]

    def process_batch(self, rows: Sequence[Row]) -> list[Outcome]:
        if self._indexes is None:
            self._build()
        segments = [item_segments(row["question"], row["options"]) for row in rows]
        per_view = {view: self._find_all(view, rows, segments) for view in self.config.views}
        outcomes = []
        for i, row in enumerate(rows):
            found = [(view, per_view[view][i]) for view in self.config.views if per_view[view][i]]
            # Containment is the costlier search and adds nothing to a row already matched.
            outcomes.append(self._decide(row, found or self._contained(segments[i])))
        return outcomes

    def _decide(self, row: Row, found: list[tuple[View, Match | Containment]]) -> Outcome:
        if not found:
            return row
        # The closest match names the reason; every view's match goes into the detail.
        _, best = max(found, key=lambda pair: pair[1].similarity)
        eval_source = best.key.split("/", 1)[0]
        detail = "; ".join(f"{match.key} ({view} view, {match.closeness})" for view, match in found)
        matches = [{"view": view, "eval_item": match.key, "similarity": match.similarity,
                    "rule": "contained" if isinstance(match, Containment) else "similar"} for view, match in found]
        return Drop(f"contaminated: {eval_source}", detail, {**row, "contamination": {"matches": matches}})
