"""The live text stream never shows part of a stop string, and shows everything that was kept."""

from __future__ import annotations

import pytest

from m1.engine.backends.base import TextStream, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    return load_tokenizer(str(default_model_dir))


@pytest.mark.parametrize(("generated", "kept"), [
    ("The answer is B</think> trailing", "The answer is B"),   # a multi-token stop completes
    ("Consider </th and more", "Consider </th and more"),     # a false start is shown once disproved
    ("Ends with </thi", "Ends with </thi"),                   # the round ends inside a false start
    ("Plain text, no stop at all.", "Plain text, no stop at all."),
])
def test_stream_holds_back_possible_stops(tokenizer, generated: str, kept: str) -> None:
    shown: list[str] = []
    stream = TextStream(tokenizer, lambda phase, text, inserted: shown.append(text))
    for token in tokenizer.encode(generated, add_special_tokens=False):
        stream.push("thinking", token, ("</think>",))
        assert "</think>" not in "".join(shown)
        assert kept.startswith("".join(shown))  # never anything the record will not contain
    stream.end_round(kept)
    assert "".join(shown) == kept
