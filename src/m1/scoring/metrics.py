"""Accuracy per source with 95 % Wilson intervals, micro and macro averages, the no-answer rate,
and where the two extraction modes disagree.

    strict = mode_metrics(scored_rows, "strict")           # ModeMetrics
    strict.micro.accuracy, strict.macro.ci_low, strict.no_answer_rate
    disagreement(reference_rows, strict_rows)              # Disagreement
    render_table(strict)                                   # rich Table for the CLI

Definitions. Per source, accuracy = correct / items, where an item with no answer counts as
wrong, with a Wilson score interval (better than the normal interval near 0 % and 100 % and for
small sources). Micro = over all items pooled (Wilson interval). Macro = the unweighted mean of
the per-source accuracies; its interval is a normal approximation, mean ± z·sqrt(Σ p(1-p)/n)/S,
clipped to [0, 1]. No-answer rate = items whose extraction gave no letter / items.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

Z_95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """One prediction, scored: what the reply chose, by which rule, and whether it is right."""

    uid: str
    source: str
    answer_idx: str
    letter: str | None
    rule: str
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for `correct` successes in `total` trials; (0, 1) when total is 0."""
    if total <= 0:
        return 0.0, 1.0
    if not 0 <= correct <= total:
        raise ValueError(f"correct={correct} is outside 0..total={total}")
    p = correct / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


@dataclass(frozen=True, slots=True)
class Accuracy:
    """An accuracy with its 95 % interval and the counts behind it."""

    items: int
    correct: int
    no_answer: int
    accuracy: float
    ci_low: float
    ci_high: float

    @property
    def no_answer_rate(self) -> float:
        return self.no_answer / self.items if self.items else 0.0

    @classmethod
    def of(cls, correct: int, items: int, no_answer: int = 0) -> Accuracy:
        low, high = wilson_interval(correct, items)
        return cls(items, correct, no_answer, correct / items if items else 0.0, low, high)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "no_answer_rate": self.no_answer_rate}


@dataclass(frozen=True, slots=True)
class SourceMetrics:
    """Accuracy of one source (benchmark) and which rules decided its answers."""

    source: str
    accuracy: Accuracy
    rules: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, **self.accuracy.to_dict(), "rules": dict(self.rules)}


@dataclass(frozen=True, slots=True)
class ModeMetrics:
    """All metrics of one extraction mode over a predictions file."""

    mode: str
    sources: list[SourceMetrics]
    micro: Accuracy
    macro: Accuracy  # `correct`/`items` are totals; accuracy and interval are the macro ones
    rules: dict[str, int]

    @property
    def no_answer_rate(self) -> float:
        return self.micro.no_answer_rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "items": self.micro.items,
            "no_answer_rate": self.no_answer_rate,
            "micro": self.micro.to_dict(),
            "macro": {
                "accuracy": self.macro.accuracy,
                "ci_low": self.macro.ci_low,
                "ci_high": self.macro.ci_high,
                "sources": len(self.sources),
            },
            "sources": [source.to_dict() for source in self.sources],
            "rules": dict(self.rules),
        }


def mode_metrics(rows: Iterable[ScoredRow], mode: str) -> ModeMetrics:
    """Per-source, micro and macro accuracy of rows scored in one mode (sources in first-seen order)."""
    counts: dict[str, list[int]] = {}  # source -> [items, correct, no_answer]
    rules: dict[str, Counter[str]] = {}
    for row in rows:
        tally = counts.setdefault(row.source, [0, 0, 0])
        tally[0] += 1
        tally[1] += int(row.correct)
        tally[2] += int(row.letter is None)
        rules.setdefault(row.source, Counter())[row.rule] += 1

    sources = [
        SourceMetrics(source, Accuracy.of(correct, items, no_answer), dict(rules[source].most_common()))
        for source, (items, correct, no_answer) in counts.items()
    ]
    total_items = sum(tally[0] for tally in counts.values())
    total_correct = sum(tally[1] for tally in counts.values())
    total_none = sum(tally[2] for tally in counts.values())
    all_rules: Counter[str] = Counter()
    for per_source in rules.values():
        all_rules.update(per_source)
    return ModeMetrics(
        mode=mode,
        sources=sources,
        micro=Accuracy.of(total_correct, total_items, total_none),
        macro=_macro(sources, total_correct, total_items, total_none),
        rules=dict(all_rules.most_common()),
    )


def _macro(sources: Sequence[SourceMetrics], correct: int, items: int, no_answer: int) -> Accuracy:
    if not sources:
        return Accuracy(0, 0, 0, 0.0, 0.0, 1.0)
    accuracies = [s.accuracy.accuracy for s in sources]
    mean = sum(accuracies) / len(sources)
    variance = sum(p * (1 - p) / s.accuracy.items for p, s in zip(accuracies, sources)) / len(sources) ** 2
    margin = Z_95 * math.sqrt(variance)
    return Accuracy(items, correct, no_answer, mean, max(0.0, mean - margin), min(1.0, mean + margin))


@dataclass(frozen=True, slots=True)
class ModeDifference:
    """One item the two modes read differently."""

    uid: str
    source: str
    answer_idx: str
    reference_letter: str | None
    reference_rule: str
    strict_letter: str | None
    strict_rule: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Where reference and strict extraction chose different letters (None counts as a letter)."""

    items: int
    count: int
    strict_no_answer: int  # strict gave no answer, reference picked a letter
    different_letters: int  # both picked, different letters
    reference_only_correct: int
    strict_only_correct: int
    by_source: dict[str, int]
    by_rules: dict[str, int]  # "reference_rule -> strict_rule": count
    examples: list[ModeDifference] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.items if self.items else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = self.rate
        data["examples"] = [example.to_dict() for example in self.examples]
        return data


def disagreement(
    reference: Sequence[ScoredRow], strict: Sequence[ScoredRow], max_examples: int = 20
) -> Disagreement:
    """Compare the two modes item by item (rows joined by uid, not by position)."""
    strict_by_uid = {row.uid: row for row in strict}
    if len(strict_by_uid) != len(reference) or any(row.uid not in strict_by_uid for row in reference):
        raise ValueError("reference and strict rows must hold the same uids, each once")
    count = none = different = ref_only = strict_only = 0
    by_source: Counter[str] = Counter()
    by_rules: Counter[str] = Counter()
    examples: list[ModeDifference] = []
    for ref in reference:
        other = strict_by_uid[ref.uid]
        ref_only += int(ref.correct and not other.correct)
        strict_only += int(other.correct and not ref.correct)
        if ref.letter == other.letter:
            continue
        count += 1
        if other.letter is None:
            none += 1
        elif ref.letter is not None:
            different += 1
        by_source[ref.source] += 1
        by_rules[f"{ref.rule} -> {other.rule}"] += 1
        if len(examples) < max_examples:
            examples.append(
                ModeDifference(
                    ref.uid, ref.source, ref.answer_idx, ref.letter, ref.rule, other.letter, other.rule
                )
            )
    return Disagreement(
        items=len(reference),
        count=count,
        strict_no_answer=none,
        different_letters=different,
        reference_only_correct=ref_only,
        strict_only_correct=strict_only,
        by_source=dict(by_source.most_common()),
        by_rules=dict(by_rules.most_common()),
        examples=examples,
    )


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _interval(accuracy: Accuracy) -> str:
    return f"{_percent(accuracy.ci_low)}–{_percent(accuracy.ci_high)}"


def render_table(metrics: ModeMetrics, title: str | None = None) -> Table:
    """A rich table: one row per source, then micro and macro averages."""
    table = Table(title=title or f"Accuracy ({metrics.mode} extraction)")
    table.add_column("source")
    table.add_column("items", justify="right")
    table.add_column("correct", justify="right")
    table.add_column("acc %", justify="right")
    table.add_column("95 % CI", justify="right")
    table.add_column("no answer %", justify="right")
    for source in metrics.sources:
        acc = source.accuracy
        table.add_row(
            source.source, str(acc.items), str(acc.correct), _percent(acc.accuracy), _interval(acc),
            _percent(acc.no_answer_rate),
        )
    micro, macro = metrics.micro, metrics.macro
    table.add_section()
    table.add_row(
        "micro (all items)", str(micro.items), str(micro.correct), _percent(micro.accuracy),
        _interval(micro), _percent(micro.no_answer_rate),
    )
    table.add_row(
        f"macro ({len(metrics.sources)} sources)", "", "", _percent(macro.accuracy), _interval(macro), ""
    )
    return table
