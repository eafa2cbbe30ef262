"""Answers from a grid point's parallel samples: majority vote, confidence-weighted vote, early-stopping
self-consistency (ESC), pass@k and the vote share.

    votes = [Vote("B", True, 0.8, 310), Vote("C", False, 0.6, 290), Vote("B", True, None, 305)]
    majority(votes), weighted(votes), esc(votes, window=2)     # "B", "B", ("B", 3)
    pass_at_k(n=4, c=1, k=2)                                    # 0.5
    point = aggregate_point(scored_rows, windows=(2,))          # one grid point's scored.jsonl rows
    point.results["strict"]["majority"]                         # ItemResult per item, in item order

Rules (SPEC §8; each mode, strict and reference, votes with its own extracted letters):
- majority and weighted are `m1.scoring.vote`'s rules (the ones `m1 serve` votes with): the most
  frequent letter, or the letter with the most confidence (the answer-letter probability; a vote
  without one weighs 0, and with no weight at all it is the majority); a tie goes to the tied
  letter voted first in sample order. "No answer" never wins unless every vote is one.
- ESC with window w: the samples in windows of w in sample order; stop at the first window whose w
  letters are one and the same letter (not "no answer"); else the majority over all samples. Only
  full windows can stop it. Its cost is the tokens of the samples drawn.
- pass@k: the unbiased estimator 1 - C(n-c, k) / C(n, k) of n samples with c right (Chen et al. 2021).
- vote share: the top letter's votes / N (0 when no vote gave a letter): how much the samples agree.

Per item cost (tokens) of each aggregation: "sample" (the accuracy of one sample, averaged over the
samples) the mean tokens of one sample; "majority" and "weighted" all samples' tokens (the read
behind the weights is instrumentation and counted by the caller where it is wanted); f"esc{w}" the
tokens of the samples drawn. A point with one sample aggregates too: every vote is its one answer.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m1.data.errors import DataError
from m1.scoring import MODES, vote


def esc_name(window: int) -> str:
    return f"esc{window}"


@dataclass(frozen=True)
class Vote:
    """One sample's answer in one mode: its letter (None: no answer), whether it is right, the
    probability read for that letter (None: nothing read) and the tokens it cost."""

    letter: str | None
    correct: bool
    confidence: float | None
    tokens: int


def majority(votes: Sequence[Vote]) -> str | None:
    return vote.majority([v.letter for v in votes])


def weighted(votes: Sequence[Vote]) -> str | None:
    return vote.weighted([v.letter for v in votes], [v.confidence for v in votes])


def esc(votes: Sequence[Vote], window: int) -> tuple[str | None, int]:
    """The ESC answer and how many samples it drew."""
    if window < 1:
        raise ValueError(f"an ESC window is 1 sample or more, got {window}")
    for end in range(window, len(votes) + 1, window):
        letters = {vote.letter for vote in votes[end - window:end]}
        if len(letters) == 1 and None not in letters:
            return letters.pop(), end
    return majority(votes), len(votes)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k samples drawn without replacement from n (c right) is right."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def vote_share(votes: Sequence[Vote]) -> float:
    """The majority letter's part of all the samples' votes (0 when none named a letter)."""
    return vote.decide("majority", [v.letter for v in votes]).share


@dataclass(frozen=True)
class ItemResult:
    """One item under one aggregation: its answer (None: no answer; always None for "sample", which
    has no single answer), correct (1.0 or 0.0; for "sample" the share of right samples), tokens."""

    uid: str
    source: str
    gold: str
    letter: str | None
    correct: float
    tokens: float

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "source": self.source, "gold": self.gold, "letter": self.letter,
                "correct": self.correct, "tokens": self.tokens}


@dataclass(frozen=True)
class PointVotes:
    """Every aggregation of one grid point, per mode: results[mode][aggregation] lists the items in
    item order; pass_at_k[mode][k] and vote_share_mean[mode] are means over the items."""

    samples: int
    results: Mapping[str, Mapping[str, tuple[ItemResult, ...]]]
    pass_at_k: Mapping[str, Mapping[int, float]]
    vote_share_mean: Mapping[str, float]

    def correct(self, mode: str, aggregation: str) -> dict[str, float]:
        return {item.uid: item.correct for item in self.results[mode][aggregation]}

    def tokens(self, mode: str, aggregation: str) -> dict[str, float]:
        """Per item tokens; ESC's depend on the mode, since each mode stops on its own letters."""
        return {item.uid: item.tokens for item in self.results[mode][aggregation]}

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples,
                "pass_at_k": {mode: {str(k): p for k, p in ks.items()} for mode, ks in self.pass_at_k.items()},
                "vote_share_mean": dict(self.vote_share_mean),
                "results": {mode: {name: [item.to_dict() for item in items] for name, items in by_name.items()}
                            for mode, by_name in self.results.items()}}


def aggregation_names(windows: Sequence[int] = (2,)) -> tuple[str, ...]:
    return ("sample", "majority", "weighted", *(esc_name(w) for w in windows))


def aggregate_point(rows: Sequence[Mapping[str, Any]], *, windows: Sequence[int] = (2,),
                    where: str = "scored rows") -> PointVotes:
    """Aggregate one point's scored rows (one per (uid, sample); `sample` absent means 0) for every
    aggregation of `aggregation_names(windows)`. `where` names the rows' file in errors."""
    if any(w < 1 for w in windows) or len(set(windows)) < len(windows):
        raise ValueError(f"ESC windows are distinct sample counts of 1 or more, got {list(windows)}")
    items = _items(rows, where)
    samples = len(next(iter(items.values()))[1]) if items else 1
    results: dict[str, dict[str, tuple[ItemResult, ...]]] = {}
    passes: dict[str, dict[int, float]] = {}
    shares: dict[str, float] = {}
    for mode in MODES:
        by_name: dict[str, list[ItemResult]] = {name: [] for name in aggregation_names(windows)}
        pass_sums = dict.fromkeys(range(1, samples + 1), 0.0)
        share_sum = 0.0
        for uid, ((source, gold), item_rows) in items.items():
            votes = [Vote(r[f"{mode}_letter"], r[f"{mode}_correct"], r[f"confidence_{mode}"], r["tokens"])
                     for r in item_rows]
            for name, (letter, correct, tokens) in _aggregate_item(votes, gold, windows).items():
                by_name[name].append(ItemResult(uid, source, gold, letter, correct, tokens))
            right = sum(v.correct for v in votes)
            for k in pass_sums:
                pass_sums[k] += pass_at_k(samples, right, k)
            share_sum += vote_share(votes)
        results[mode] = {name: tuple(found) for name, found in by_name.items()}
        passes[mode] = {k: total / len(items) for k, total in pass_sums.items()} if items else {}
        shares[mode] = share_sum / len(items) if items else 0.0
    return PointVotes(samples, results, passes, shares)


def _aggregate_item(votes: Sequence[Vote], gold: str,
                    windows: Sequence[int]) -> dict[str, tuple[str | None, float, float]]:
    """(answer, correct, tokens) of one item's votes under each aggregation."""
    all_tokens = sum(v.tokens for v in votes)
    found = {"sample": (None, statistics.fmean(v.correct for v in votes), all_tokens / len(votes))}
    for name, letter in (("majority", majority(votes)), ("weighted", weighted(votes))):
        found[name] = (letter, float(letter == gold), all_tokens)
    for window in windows:
        letter, drawn = esc(votes, window)
        found[esc_name(window)] = (letter, float(letter == gold), sum(v.tokens for v in votes[:drawn]))
    return found


_FIELDS = ("uid", "source", "answer_idx", "tokens",
           *(field for mode in MODES for field in (f"{mode}_letter", f"{mode}_correct", f"confidence_{mode}")))


def _items(rows: Sequence[Mapping[str, Any]], where: str) -> dict[str, tuple[tuple[str, str], list[Mapping[str, Any]]]]:
    """The rows grouped by item in first-seen order, each item's rows in sample order; checked."""
    items: dict[str, tuple[tuple[str, str], dict[int, Mapping[str, Any]]]] = {}
    first_row: dict[str, int] = {}  # each item's first row number, to name an incomplete item
    for number, row in enumerate(rows, start=1):
        _check_row(row, number, where)
        uid, sample = row["uid"], row.get("sample", 0)
        first_row.setdefault(uid, number)
        head, by_sample = items.setdefault(uid, ((row["source"], row["answer_idx"]), {}))
        if head != (row["source"], row["answer_idx"]):
            raise DataError.at(where, number, "source" if head[0] != row["source"] else "answer_idx",
                               f"item {uid} has {head} in an earlier row and {(row['source'], row['answer_idx'])} here",
                               "score the run again: the rows of one item must agree")
        if sample in by_sample:
            raise DataError.at(where, number, "sample", f"item {uid} has sample {sample} twice",
                               "score the run again from its predictions")
        by_sample[sample] = row
    counts = {len(by_sample) for _, by_sample in items.values()}
    for uid, (_, by_sample) in items.items():
        if sorted(by_sample) != list(range(max(counts))):
            raise DataError.at(where, first_row[uid], "sample", f"item {uid} has samples {sorted(by_sample)}, "
                               f"expected 0..{max(counts) - 1} like the other items",
                               "finish the run (run the same command again) before scoring it")
    return {uid: (head, [by_sample[s] for s in sorted(by_sample)]) for uid, (head, by_sample) in items.items()}


def _check_row(row: Mapping[str, Any], number: int, where: str) -> None:
    def bad(field: str, problem: str) -> DataError:
        return DataError.at(where, number, field, problem, "score the run again with this version of m1")

    for field in _FIELDS:
        if field not in row:
            raise bad(field, "missing")
    sample = row.get("sample", 0)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise bad("sample", f"{sample!r} is not a sample number (0, 1, ...)")
    if isinstance(row["tokens"], bool) or not isinstance(row["tokens"], int) or row["tokens"] < 0:
        raise bad("tokens", f"{row['tokens']!r} is not a token count")
    for mode in MODES:
        letter, confidence = row[f"{mode}_letter"], row[f"confidence_{mode}"]
        if letter is not None and not isinstance(letter, str):
            raise bad(f"{mode}_letter", f"{letter!r} is not a letter or null")
        if not isinstance(row[f"{mode}_correct"], bool):
            raise bad(f"{mode}_correct", f"{row[f'{mode}_correct']!r} is not true or false")
        if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))
                                       or not 0.0 <= confidence <= 1.0):
            raise bad(f"confidence_{mode}", f"{confidence!r} is not a probability (0 to 1) or null")
