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


@pytest.mark.parametrize(("generated", "stop"), [
    ("A. Vitamin A\nB. Vitamin C\nC. more", "Vitamin C"),  # the stop begins inside " Vitamin"
    ("so the answer is B.</think>\n\nB", "</think>"),
    ("x\nQuestion: next one", "\nQuestion:"),
])
def test_stream_is_the_record_when_a_stop_begins_inside_a_token(tokenizer, generated: str, stop: str) -> None:
    """The record keeps the tokens before the one a stop begins in; the stream shows no more."""
    from m1.engine.backends.base import StopMatcher

    matcher, shown, ids = StopMatcher(tokenizer), [], []
    stream = TextStream(tokenizer, lambda phase, text, inserted: shown.append(text))
    for token in tokenizer.encode(generated, add_special_tokens=False):
        ids.append(token)
        stream.push("answer", token, (stop,))
        if matcher.match(ids, (stop,)) is not None:
            break
    kept = tokenizer.decode(matcher.strip(ids, (stop,)), skip_special_tokens=False)
    assert kept.startswith("".join(shown))
    stream.end_round(kept)
    assert "".join(shown) == kept
