"""Find the indexed items that a new item contains, whatever it adds around them.

    index = ContainmentIndex(ContainmentSettings())
    index.add("MedMCQA_validation/3f2a…", "drug of choice for absence seizures", ["ethosuximide", "valproate"])
    probe = Probe.of("q 12 drug of choise for absence seizures choose the best answer",
                     ["valproate", "ethosuximide", "phenytoin"], ngram_words=3)
    index.find(probe)   # [Containment(key="MedMCQA_validation/3f2a…", label="", contained=0.982, ngram_share=0.5)]

Symmetric similarity (`m1.curation.similarity`) falls as a copy grows: a ten-word stem with a prefix
and an instruction line such as "Choose the best answer." is far below any useful ratio of the
original. Containment asks how much of the *indexed* item is in the new one, ignoring what the new
one adds, which is how the open evaluation harnesses measure a leak (the share of the evaluation
item's n-grams found in the training text). Items are normalised texts (`m1.curation.text`): a
question and its options, or a question alone. Like the symmetric index, the index proposes and an
alignment confirms:

- propose: an inverted index maps each word n-gram of an indexed item (n-grams never cross from
  the question into an option or between options, so option order does not matter; a text shorter
  than n words is one n-gram) to the items holding it, so a lookup costs the new item's n-grams,
  not the number of items indexed. An n-gram held by more than `common_ngram_texts` items ("which
  of the", "of the following") proposes nothing, though it still counts. An item is a candidate
  when at least `ngram_floor` of its n-grams are in the new item (`ngram_share`).
- confirm: the candidate's question is aligned at its best place in the new question (RapidFuzz
  `partial_ratio`: the window most like it, so words added around it cost nothing), and each of its
  options is matched with the most similar new option not matched yet (`fuzz.ratio`, longest options
  first: an option such as "Stage 1" must be an option, not two letters somewhere, and one new option
  "5 month" cannot stand for all of "2 month", "3 month", "4 month", "5 month"). When the new item
  has no options of its own, only placeholders ("A", "Option A"; `Probe.options_in_question`), it
  wrote them into its question, so each option is also looked for there (`partial_ratio`); only
  then, as an option such as "1" or "A" is inside almost any question. The share of the candidate's
  characters matched this way is `contained`; at or above `threshold`, with at least
  `question_share` of the question itself found (so that an item is never found by its options
  alone), the new item contains the candidate.

n = 3 words (`ngram_words`): lm-eval-harness uses 13-grams, but MedMCQA stems are often shorter than
13 words (median 11 in the suite), where a 13-gram cannot exist, and every typo removes up to n
n-grams. Three words of medical text are specific enough to propose few candidates once the common
ones are set aside, and a short stem with a typo keeps enough of them to be proposed; the alignment,
where a typo costs a character and a different word costs the word, decides.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process

Gram = tuple[str, ...]
# A normalised option that stands for no text: "a", "1", "option a", "choice 2".
_PLACEHOLDER = re.compile(r"(?:(?:option|choice) )?\w{1,2}")


class ContainmentSettings(BaseModel):
    """How much of an indexed item a new item must hold to contain it, and how candidates are proposed."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.95, gt=0.0, le=1.0,
                             description="share of the indexed item's characters found in the new item that counts")
    ngram_words: int = Field(3, ge=1, description="words per n-gram in the proposal index")
    ngram_floor: float = Field(0.3, gt=0.0, le=1.0,
                               description="share of the indexed item's n-grams the new item must hold to be aligned")
    common_ngram_texts: int = Field(100, ge=1,
                                    description="an n-gram in more indexed items than this proposes nothing")
    question_share: float = Field(0.8, gt=0.0, le=1.0,
                                  description="least share of the question itself found, so options alone never match")
    min_words: int = Field(13, ge=1, description="a question shorter than this is looked for only with its options")


@dataclass(frozen=True)
class Containment:
    """An indexed item found inside a new item: the share of its characters and of its n-grams found."""

    key: str
    label: str
    contained: float
    ngram_share: float
    ngram_words: int

    @property
    def similarity(self) -> float:
        """What matches are ranked by, as for `m1.curation.similarity.Match`."""
        return self.contained

    @property
    def closeness(self) -> str:
        return f"contained {self.contained:.3f}, {self.ngram_share:.2f} of its {self.ngram_words}-grams"


def ngrams(segments: Sequence[str], size: int) -> set[Gram]:
    """Word n-grams of each segment (a segment shorter than `size` words is one n-gram)."""
    grams: set[Gram] = set()
    for segment in segments:
        words = segment.split()
        if len(words) < size:
            if words:
                grams.add(tuple(words))
        else:
            grams.update(zip(*(words[offset:] for offset in range(size))))
    return grams


@dataclass(frozen=True)
class Probe:
    """A new item prepared once for every lookup: its normalised question, options and n-grams."""

    question: str
    options: tuple[str, ...]
    grams: frozenset[Gram]
    options_in_question: bool  # no options but placeholders: any options are written in the question

    @classmethod
    def of(cls, question: str, options: Sequence[str], ngram_words: int) -> Probe:
        options = tuple(option for option in options if option)
        placeholders = all(_PLACEHOLDER.fullmatch(option) for option in options)
        grams = ngrams([question, *options], ngram_words)
        if placeholders:
            # An indexed option shorter than n words is one shorter n-gram: find it in the question too.
            grams.update(*(ngrams([question], size) for size in range(1, ngram_words)))
        return cls(question, options, frozenset(grams), placeholders)


def _found_in(text: str, place: str, least: float) -> float:
    """Characters of `text` matched at its best place in `place` (`place` may add text around it);
    any figure below `least` when fewer than `least` are."""
    if not text:
        return 0.0
    if len(text) <= len(place):
        # partial_ratio aligns the shorter string in the longer: the matched share of `text`. The
        # cutoff lets RapidFuzz give up early on a long text that is not there.
        cutoff = max(0.0, 100.0 * least / len(text))
        return fuzz.partial_ratio(text, place, score_cutoff=cutoff) / 100.0 * len(text)
    # `text` is longer than the place: at most the place's length of it is matched
    # (ratio = 2·matched / (|text| + |place|)).
    return fuzz.ratio(text, place) / 100.0 * (len(text) + len(place)) / 2.0


def _option_found(option: str, probe: Probe, unmatched: list[str]) -> float:
    """The share of `option` found: in the most similar probe option not matched yet (which is then
    matched), or, when the probe's options are placeholders, written into its question."""
    found = 0.0
    if unmatched:
        _, score, place = process.extractOne(option, unmatched, scorer=fuzz.ratio)
        if score > 0:
            found = score / 100.0
            del unmatched[place]
    if probe.options_in_question and found < 1.0:
        # A space on each side must match too: "2" inside "12" costs a character, as a word it does not.
        found = max(found, fuzz.partial_ratio(f" {option} ", f" {probe.question} ") / 100.0)
    return found


def contained_share(question: str, options: Sequence[str], probe: Probe, settings: ContainmentSettings) -> float:
    """The share of an item's characters found in the probe: the question at its best place in the
    probe's question, each option in the probe's most similar option left (`_option_found`). 0.0
    when less than `question_share` of the question is found, and as soon as the share cannot reach
    `threshold` (so a long candidate that is not contained stops early)."""
    options = [option for option in options if option]
    total = len(question) + sum(map(len, options))
    allowed = (1.0 - settings.threshold) * total  # characters that may go unmatched
    least = len(question) - min(allowed, (1.0 - settings.question_share) * len(question))
    found = _found_in(question, probe.question, least)
    if found < least:
        return 0.0
    lost = len(question) - found
    unmatched = list(probe.options)
    # Longest first: a long option is the surest of its match, and the one a short one would take.
    for option in sorted(options, key=len, reverse=True):
        if lost > allowed:
            return 0.0
        lost += len(option) * (1.0 - _option_found(option, probe, unmatched))
    return 0.0 if lost > allowed else 1.0 - lost / total


class ContainmentIndex:
    """Items under keys and labels, for finding the indexed items a new item contains.

    A label sorts items into kinds (decontamination's views) that share one n-gram index, so a new
    item's n-grams are looked up once for all of them; `find` answers with the best item of each.
    """

    def __init__(self, settings: ContainmentSettings):
        self.settings = settings
        self._keys: list[str] = []
        self._labels: list[str] = []
        self._items: list[tuple[str, tuple[str, ...]]] = []
        self._sizes: list[int] = []  # n-grams per item
        self._first: dict[tuple[str, str, tuple[str, ...]], int] = {}
        self._postings: defaultdict[Gram, list[int]] = defaultdict(list)
        # Set aside at the first lookup after an add: the n-grams that propose, and per item the
        # n-grams too common to propose.
        self._proposing: dict[Gram, list[int]] = {}
        self._common: list[frozenset[Gram]] | None = None
        self._needed: list[int] = []

    def add(self, key: str, question: str, options: Sequence[str] = (), label: str = "") -> None:
        """Index an item; an exact repeat of an indexed item under the same label keeps the first key."""
        options = tuple(option for option in options if option)
        grams = ngrams([question, *options], self.settings.ngram_words)
        if not grams or (label, question, options) in self._first:
            return
        number = self._first[label, question, options] = len(self._keys)
        self._keys.append(key)
        self._labels.append(label)
        self._items.append((question, options))
        self._sizes.append(len(grams))
        for gram in grams:
            self._postings[gram].append(number)
        self._common = None

    def __len__(self) -> int:
        return len(self._keys)

    def _set_common_aside(self) -> None:
        """Split the n-grams into those that propose and those held by too many items."""
        most = self.settings.common_ngram_texts
        self._proposing = {gram: items for gram, items in self._postings.items() if len(items) <= most}
        common: list[set[Gram]] = [set() for _ in self._keys]
        for gram, items in self._postings.items():
            if len(items) > most:
                for number in items:
                    common[number].add(gram)
        self._common = [frozenset(grams) for grams in common]
        # The fewest proposing n-grams an item must share to reach the floor with all its common ones.
        self._needed = [max(1, math.ceil(self.settings.ngram_floor * size - 1e-9) - len(grams))
                        for size, grams in zip(self._sizes, self._common)]

    def find(self, probe: Probe) -> list[Containment]:
        """For each label, the indexed item the probe contains most (the earliest indexed among
        equals), best first; labels with none are left out."""
        if self._common is None:
            self._set_common_aside()
        proposing = self._proposing
        hits = Counter(chain.from_iterable(proposing[gram] for gram in probe.grams if gram in proposing))
        floor, threshold = self.settings.ngram_floor, self.settings.threshold
        best: dict[str, tuple[float, int, float]] = {}
        for number, count in hits.items():
            if count < self._needed[number]:  # cannot reach the floor even with every common n-gram
                continue
            common = self._common[number]
            share = (count + (len(common & probe.grams) if common else 0)) / self._sizes[number]
            if share < floor:
                continue
            contained = contained_share(*self._items[number], probe, self.settings)
            label = self._labels[number]
            if contained < threshold:
                continue
            # Most contained wins; among equals the earliest indexed, whatever order the hits come in.
            if label not in best or (contained, -number) > (best[label][0], -best[label][1]):
                best[label] = (contained, number, share)
        found = [Containment(self._keys[number], label, round(contained, 4), round(share, 4), self.settings.ngram_words)
                 for label, (contained, number, share) in best.items()]
        return sorted(found, key=lambda match: (-match.contained, match.label))
