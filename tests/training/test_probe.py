"""The format probe: what counts as writing the m1 format, and which questions it asks."""

from __future__ import annotations

import pytest

from m1.training.config import ProbeSettings
from m1.training.probe import BUNDLED_SAMPLE, follows_m1_format, format_probe, probe_items


@pytest.mark.parametrize(("reply", "follows"), [
    ("<|im_start|>think\nLow reticulocytes.\n<|im_start|>answer\nAnswer: A<|im_end|>", True),
    ("<|im_start|>think\nStill thinking when the tokens ran out", False),  # never reached the answer
    ("The answer is A.", False),
    ("Answer: A\n<|im_start|>think\nx\n<|im_start|>answer\nA", False),  # must open with the thinking
    ("<think>\nx\n</think>\nA", False),
])
def test_what_follows_the_m1_format(reply: str, follows: bool) -> None:
    assert follows_m1_format(reply) is follows


def test_probe_items_spread_over_sources() -> None:
    items = probe_items(ProbeSettings(items=7, suite=str(BUNDLED_SAMPLE)), seed=42)
    assert len(items) == 7 and len({item.source for item in items}) == 3  # the sample has 3 sources
    assert items == probe_items(ProbeSettings(items=7, suite=str(BUNDLED_SAMPLE)), seed=42)


def test_probe_runs_unforced_generation(tiny_backend) -> None:
    items = probe_items(ProbeSettings(items=3, suite=str(BUNDLED_SAMPLE)), seed=0)
    tokenizer = tiny_backend.tokenizer
    tokenizer.padding_side = "right"
    result = format_probe(tiny_backend.model, tokenizer, items, max_new_tokens=8)
    assert result.items == 3 and len(result.replies) == 3 and 0 <= result.following <= 3
    assert tokenizer.padding_side == "right"  # the probe gives the tokenizer back as it found it
