"""The report's embedded sample of traces: long thinking cut to its start and end, with every mark
(inserted text, probes, the exit) kept where it stood or right after the cut."""

from __future__ import annotations

import pytest

from m1.evaluation.report.items import _cut
from m1.evaluation.trace import Segment


def thinking(*pieces: tuple[str, str]) -> list[Segment]:
    return [Segment(kind, "thinking", text) for kind, text in pieces]


def shown(pieces) -> str:
    return "".join(f"<{p}>" if isinstance(p, int) else f"[{p.kind}]" if not p.text else p.text for p in pieces)


def test_short_thinking_is_kept_whole() -> None:
    found = thinking(("generated", "abc"), ("inserted", " Wait"), ("generated", "def"))
    assert _cut(found, head=6, tail=6) == found


@pytest.mark.parametrize(("head", "tail"), [(1, 1), (2, 3), (5, 5), (4, 9), (10, 1)])
def test_the_cut_keeps_head_and_tail_and_counts_the_rest(head: int, tail: int) -> None:
    text = "abcdefghij" + " Wait" + "klmnopqrst"
    found = thinking(("generated", "abcdefghij"), ("inserted", " Wait"), ("generated", "klmnopqrst"))
    found.append(Segment("generated", "reply", "B"))
    pieces = _cut(found, head=head, tail=tail)
    cut = [p for p in pieces if isinstance(p, int)]
    assert cut == [len(text) - head - tail]
    kept = [p for p in pieces if not isinstance(p, int) and p.part == "thinking"]
    marker = pieces.index(cut[0])
    assert "".join(p.text for p in pieces[:marker]) == text[:head]
    assert "".join(p.text for p in kept[marker:]) == text[-tail:]
    assert pieces[-1] == Segment("generated", "reply", "B")  # the reply is never cut
    # Each kept character keeps its origin.
    position = 0
    for piece in pieces:
        if isinstance(piece, int):
            position += piece
        elif piece.part == "thinking":
            origin = "inserted" if 10 <= position < 15 else "generated"
            assert piece.kind == origin or (position < 15 <= position + len(piece.text)), (head, tail, piece)
            position += len(piece.text)


def test_marks_in_the_cut_stand_right_after_it() -> None:
    found = [*thinking(("generated", "0123456789")), Segment("probe", "thinking", number=0),
             *thinking(("generated", "abcdefghij")), Segment("probe", "thinking", number=1), Segment("exit", "thinking")]
    assert shown(_cut(found, head=3, tail=3)) == "012<14>[probe]hij[probe][exit]"
    assert shown(_cut(found, head=12, tail=3)) == "0123456789[probe]ab<5>hij[probe][exit]"
