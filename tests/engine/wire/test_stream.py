"""`StreamShaper` over many simulated generations: random token splits of thinking and answers
that hold partial and complete stop strings (one-token and spanning), both thinking presets and
no-think, chat and completions, with the live text as the backends send it ("clean": stops and
their beginnings already held back, the round's kept text sent when it ends) and as a backend
that shows everything would ("raw": a stop's first tokens, or the stop and tokens after it,
appear before the round is cut). For every piece pushed:

1. what was sent is a prefix of the final reply, and the stream plus `finish` is the reply exactly;
2. nothing sent holds a complete stop string (or so, by 1, anything after one);
3. text is held back only while the live text not yet sent is the beginning of a stop spanning
   several tokens (after a thinking round that ended on such a beginning, the rest of the thinking
   waits for the record: see `StreamShaper`).
"""

from __future__ import annotations

import random

import pytest

from m1.engine.backends.base import partial_stop
from m1.engine.controller import GenerationRecord, join_extension, join_prefix
from m1.engine.policy import BudgetPolicy
from m1.engine.wire.responses import StreamShaper, first_stop, visible_answer

# Pieces of generated text: words, and fragments that look like the start of a stop ("</thi",
# "<|im", "\nQuest") or only part of one ("x < y", "</thinking") without being one.
WORDS = ["The ", "patient", " has ", "scurvy", ".", "\n", " x < y", " a</thi", "nking", " <|im", "|>", "</", "thin",
         "k", "<", "#", "##", "\nQuest", "ion", " so", " B", ")", " vitamin C", " é", "\n\n"]
CLIENT_STOPS = ["\nQuestion:", "###"]  # spanning and one token for the default model's tokenizer
TRIALS = 150


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from m1.engine.backends.base import load_tokenizer

    return load_tokenizer(str(default_model_dir))


def spanning(stops: tuple[str, ...], tokenizer) -> tuple[str, ...]:
    return tuple(s for s in stops if len(tokenizer.encode(s, add_special_tokens=False)) > 1)


def words(rng: random.Random, stops: tuple[str, ...]) -> str:
    """Generated text with no complete stop in it (what a round keeps)."""
    while True:
        text = "".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
        if first_stop(text, stops) is None:
            return text


def split(rng: random.Random, text: str) -> list[str]:
    """`text` as token-like pieces at random points."""
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 6)))) if len(text) > 1 else []
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)]) if text[a:b]]


def ending(rng: random.Random, stops: tuple[str, ...], spans: tuple[str, ...], raw: bool) -> list[str]:
    """What a raw backend shows of a round's end after its kept text: nothing, a spanning stop's
    first characters, or a stop (a one-token stop as one piece) and tokens after it."""
    if not raw or not stops or rng.random() < 0.3:
        return []
    stop = rng.choice(stops)
    if stop in spans and rng.random() < 0.5:
        return split(rng, stop[:rng.randint(1, len(stop) - 1)])
    shown = [stop] if stop not in spans else split(rng, stop)
    return shown + split(rng, rng.choice(["", " junk", "after the stop"]))


def simulate(rng: random.Random, policy: BudgetPolicy, spans: dict[str, tuple[str, ...]], raw: bool):
    """(pieces pushed, the record, per piece: what a correct stream may show and hold).

    Each step carries the field's live text not yet sent may be compared against: `live` (every
    character pushed in the current phase, junk included) and `kept` (what the record will hold
    of it), plus `settled`: a thinking round ended on a spanning stop's beginning.
    """
    pieces: list[tuple[str, str]] = []
    thinking, think_live, settled = "", "", False
    steps = []
    if policy.thinking:
        rounds = rng.randint(1, policy.num_extensions + 1)
        for index in range(rounds):
            if index:
                insert = join_extension(policy.think_start + thinking, policy.extension_str)
                pieces.append(("think", insert))
                thinking += insert
                think_live = thinking
                steps.append((thinking, think_live, settled))
            kept = words(rng, policy.think_stops)
            shown = split(rng, kept) + ending(rng, policy.think_stops, spans["think"], raw)
            for piece in shown:
                pieces.append(("think", piece))
                think_live += piece
                steps.append((thinking + kept[:max(0, len(think_live) - len(thinking))], think_live, settled))
            thinking += kept
            round_live = think_live[len(thinking) - len(kept):]
            cut = first_stop(round_live, policy.think_stops)
            if cut is None and partial_stop(round_live, spans["think"]):
                settled = True
    budget = policy.thinking and rng.random() < 0.3
    prefix = policy.answer_after_budget if budget else policy.answer_after_stop
    insert = join_prefix(policy.think_start + thinking, prefix)
    answer = words(rng, policy.answer_stops)
    reply, live = insert + answer, ""
    answer_pieces = ([insert] if insert else []) + split(rng, answer) + ending(rng, policy.answer_stops,
                                                                               spans["answer"], raw)
    for piece in answer_pieces:
        pieces.append(("answer", piece))
        live += piece
        steps.append((reply[:len(live)], live, settled))
    assert len(steps) == len(pieces)
    return pieces, GenerationRecord(prompt="p", thinking=thinking, reply=reply), steps


def stop_beginning(live: str, unsent: str, stops: tuple[str, ...]) -> bool:
    """Does `live` end with the beginning of a stop that covers all of `unsent` (its last characters)?"""
    return any(live.endswith(stop[:size]) for stop in stops for size in range(max(1, len(unsent)), len(stop)))


def check(policy: BudgetPolicy, tokenizer, rng: random.Random, *, chat: bool, raw: bool) -> None:
    spans = {"think": spanning(policy.think_stops, tokenizer), "answer": spanning(policy.answer_stops, tokenizer)}
    pieces, record, steps = simulate(rng, policy, spans, raw)
    shaper = StreamShaper(policy, tokenizer, chat=chat)
    if chat:
        final = {"reasoning_content": record.thinking, "content": visible_answer(policy, record.reply)}
    else:
        final = {"text": record.thinking + record.reply}
    sent = dict.fromkeys(final, "")
    for (phase, piece), (kept, live, settled) in zip(pieces, steps):
        for field, delta in shaper.push(phase, piece).items():
            sent[field] += delta
        for field, text in sent.items():
            assert final[field].startswith(text), (field, pieces)  # 1 (and 2: nothing after a stop)
        if chat:
            assert first_stop(sent["reasoning_content"], policy.think_stops if policy.thinking else ()) is None
            assert first_stop(sent["content"], policy.answer_stops) is None  # 2
        else:
            answer_part = sent["text"][len(record.thinking):]
            assert first_stop(sent["text"][:len(record.thinking)], policy.think_stops) is None
            assert first_stop(answer_part, policy.answer_stops) is None  # 2
        # 3: what the record will hold of the pieces so far but was not sent is a stop's beginning.
        if phase == "think":
            field, held_kept, rest = ("reasoning_content" if chat else "text"), kept, live
        elif chat:  # content is the answer without its marker and leading whitespace
            field, held_kept, rest = "content", visible_answer(policy, kept), visible_answer(policy, live)
        else:
            field, held_kept, rest = "text", record.thinking + kept, record.thinking + live
        if settled and (phase == "think" or not chat):
            continue
        held, unsent = held_kept[len(sent[field]):], rest[len(sent[field]):]
        stops = spans["think"] if phase == "think" else spans["answer"]
        assert not held or stop_beginning(live, unsent, stops), (field, held, unsent, pieces)
    for field, delta in shaper.finish(record).items():
        sent[field] += delta
    assert sent == final, pieces  # 1


@pytest.mark.parametrize("preset", ["m1", "think-tags", "no-think"])
@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
@pytest.mark.parametrize("raw", [False, True], ids=["clean", "raw"])
def test_stream_adds_up_and_holds_back_only_stop_beginnings(tokenizer, preset: str, chat: bool, raw: bool) -> None:
    rng = random.Random(f"{preset}-{chat}-{raw}")
    for _ in range(TRIALS):
        stops = tuple(rng.sample(CLIENT_STOPS, rng.randint(0, 2)))
        base = BudgetPolicy.from_preset(preset)
        policy = BudgetPolicy.from_preset(preset, num_extensions=rng.randint(0, 3),
                                          answer_stops=tuple(dict.fromkeys(base.answer_stops + stops)))
        check(policy, tokenizer, rng, chat=chat, raw=raw)


def test_ordinary_text_streams_at_once(tokenizer) -> None:
    """No stop beginning at the end: every piece goes out as it comes (the time to first token)."""
    policy = BudgetPolicy.from_preset("think-tags", answer_stops=("\nQuestion:",))
    shaper = StreamShaper(policy, tokenizer, chat=True)
    assert shaper.push("think", "Scurvy") == {"reasoning_content": "Scurvy"}
    assert shaper.push("think", " is <") == {"reasoning_content": " is "}  # "<" may begin "</think>"
    assert shaper.push("think", "3") == {"reasoning_content": "<3"}
    assert shaper.push("answer", "</think>\n\n") == {}
    assert shaper.push("answer", "B") == {"content": "B"}
    assert shaper.push("answer", "\nQuest") == {}
    assert shaper.push("answer", "s") == {"content": "\nQuests"}


def test_partial_stop_and_first_stop() -> None:
    assert partial_stop("so it is B</thi", ("</think>",)) == 5
    assert partial_stop("so it is B", ("</think>",)) == 0
    assert partial_stop("a <", ("</think>", "<|im_end|>")) == 1
    assert first_stop("a</think>b<|im_end|>", ("<|im_end|>", "</think>")) == 1
    assert first_stop("ab", ("</think>",)) is None


def test_ordered_chat_sends_no_answer_before_the_held_thinking() -> None:
    # A round that ends on what may begin the thinking stop ("</") holds that tail until the record.
    # OpenAI's two fields grow side by side, so its answer may go first; Anthropic's blocks are
    # consecutive, so with ordered=True the answer waits for the thinking.
    from m1.engine.backends.base import load_tokenizer
    from m1.engine.controller import GenerationRecord
    from m1.engine.default_model import resolve_model
    from m1.engine.policy import BudgetPolicy
    from m1.engine.wire.responses import StreamShaper

    policy = BudgetPolicy.from_preset("think-tags")
    tokenizer = load_tokenizer(resolve_model("smollm2-135m"))
    record = GenerationRecord(prompt="", thinking="a < b </", reply="\n</think>\n\nFinal Answer: 42")

    def stream(ordered: bool) -> list[dict[str, str]]:
        shaper = StreamShaper(policy, tokenizer, chat=True, ordered=ordered)
        return [shaper.push("think", "a < b </"), shaper.push("answer", "\n</think>\n\nFinal Answer:"),
                shaper.push("answer", " 42"), shaper.finish(record)]

    for ordered in (False, True):
        sent = stream(ordered)
        assert "".join(d.get("reasoning_content", "") for d in sent) == "a < b </"
        assert "".join(d.get("content", "") for d in sent) == "Final Answer: 42"
        first_answer = min(i for i, d in enumerate(sent) if "content" in d)
        last_thinking = max(i for i, d in enumerate(sent) if "reasoning_content" in d)
        assert (last_thinking <= first_answer) is ordered  # unordered: the answer went out first
