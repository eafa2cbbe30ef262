"""Where each character of a prediction came from: a predictions row as display segments.

    for segment in segments(row):     # a predictions.jsonl row (m1.evaluation.runner.prediction_row)
        segment.part, segment.kind, segment.text, segment.probe
    trace_note(row)                   # None, or why the row's text is shown unmarked
    probability(segment.probe)        # a probe's (or answer_read's) probability as shown: a float or None

A row's `spans` ([kind, characters], run-length over `thinking + reply`, filled by
`m1.engine.controller`) say which text the model generated and which m1 inserted: the "Wait"
extensions in the thinking, the answer prefix ("</think>\\n\\nFinal Answer:") at the start of the
reply; a zero-length "probe" span is where the i-th early-exit probe (`row["probes"][i]`) read
the answer. `segments` cuts the spans where the thinking ends (`part` "thinking" or "reply",
split at `len(thinking)`), gives each probe its entry, and adds a zero-length "exit" segment at
the end of the thinking when early exit ended it (thinking_end "early_exit"). A row without
spans (written before m1 recorded them) or with spans that do not cover its text is shown
"unmarked": its text, with the exit point, and `trace_note` says why. A probe entry that is not
an object (or `probes` that is not a list) is malformed: its mark is drawn with entry None.

Pure functions, no HTML: `m1 view` and the static report both draw these segments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from m1.engine.controller import SpanKind

SegmentKind = Literal["generated", "inserted", "unmarked", "probe", "exit"]
Part = Literal["thinking", "reply"]
SPAN_KINDS: tuple[str, ...] = get_args(SpanKind)  # what the controller writes


@dataclass(frozen=True)
class Segment:
    """A run of text of one origin in one part of the row; "probe" and "exit" hold no text.

    `probe` is the probe's entry of `row["probes"]` (thinking_tokens, answer, probability,
    letters, …) and `number` its index there; both None for other kinds (and `probe` None for a
    probe mark the row has no entry for)."""

    kind: SegmentKind
    part: Part
    text: str = ""
    probe: Mapping[str, Any] | None = None
    number: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "part": self.part, "text": self.text,
                "probe": None if self.probe is None else dict(self.probe), "number": self.number}


def trace_note(row: Mapping[str, Any]) -> str | None:
    """Why the row's text cannot be marked by origin (None: its spans cover its text exactly)."""
    spans = row.get("spans")
    if spans is None:
        return "this run predates traces (its rows record no spans), so inserted text is not marked"
    text_length = len(_text(row, "thinking")) + len(_text(row, "reply"))
    if not _well_formed(spans):
        return "the row's spans are malformed, so inserted text is not marked"
    covered = sum(length for _, length in spans)
    if covered != text_length:
        return (f"the row's spans cover {covered} characters and its text has {text_length} "
                "(the generation failed part way?), so inserted text is not marked")
    return None


def segments(row: Mapping[str, Any]) -> list[Segment]:
    """The row's thinking and reply as segments in text order (see the module docstring)."""
    thinking, reply = _text(row, "thinking"), _text(row, "reply")
    if trace_note(row) is not None:
        found = [Segment("unmarked", "thinking", thinking)] if thinking else []
        return _with_exit(row, found + ([Segment("unmarked", "reply", reply)] if reply else []))
    probes = row.get("probes")
    entries = probes if isinstance(probes, list) else []
    split, position, number, found = len(thinking), 0, 0, []
    text = thinking + reply
    for kind, length in row["spans"]:
        if kind == "probe":
            entry = entries[number] if number < len(entries) else None
            found.append(Segment("probe", "thinking" if position <= split else "reply",
                                 probe=entry if isinstance(entry, Mapping) else None, number=number))
            number += 1
            continue
        end = position + length
        if position < split < end:  # a span across the end of the thinking is cut there
            found += [Segment(kind, "thinking", text[position:split]), Segment(kind, "reply", text[split:end])]
        else:
            found.append(Segment(kind, "thinking" if end <= split else "reply", text[position:end]))
        position = end
    return _with_exit(row, found)


def probability(entry: Mapping[str, Any] | None) -> float | None:
    """The probability a probe entry or a row's answer_read gives, as pages show it: a finite
    number, else None (a row read from disk may hold anything there)."""
    value = entry.get("probability") if isinstance(entry, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _with_exit(row: Mapping[str, Any], found: list[Segment]) -> list[Segment]:
    """`found` with the exit mark after the last thinking segment, when early exit ended thinking."""
    if row.get("thinking_end") != "early_exit":
        return found
    first_reply = next((i for i, segment in enumerate(found) if segment.part == "reply"), len(found))
    return [*found[:first_reply], Segment("exit", "thinking"), *found[first_reply:]]


def _text(row: Mapping[str, Any], field: str) -> str:
    value = row.get(field)
    return value if isinstance(value, str) else ""


def _well_formed(spans: Any) -> bool:
    if not isinstance(spans, list):
        return False
    for span in spans:
        if not (isinstance(span, (list, tuple)) and len(span) == 2 and span[0] in SPAN_KINDS):
            return False
        length = span[1]
        if isinstance(length, bool) or not isinstance(length, int) or length < 0 or (span[0] == "probe" and length):
            return False
    return True
