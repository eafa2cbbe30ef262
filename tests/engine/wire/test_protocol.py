"""Request fields → budget policy, answer text → `content`, engine pieces → stream deltas: the
parts of the server that need no model, checked directly."""

from __future__ import annotations

import pytest

from m1.engine.controller import GenerationRecord
from m1.engine.policy import BudgetPolicy
from m1.engine.wire.errors import APIError
from m1.engine.wire.protocol import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    ChatRequest,
    CompletionRequest,
    Limits,
    build_policy,
    decode_body,
    fit_answer_budget,
    parse,
)
from m1.engine.wire.responses import StreamShaper, usage, visible_answer

LIMITS = Limits(max_context=4096, max_thinking_tokens=4096)


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from m1.engine.backends.base import load_tokenizer

    return load_tokenizer(str(default_model_dir))


def chat(**fields) -> ChatRequest:
    return parse(ChatRequest, {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_request_fields_map_onto_the_policy(tokenizer) -> None:
    plan = build_policy(chat(thinking_budget=512, num_extensions=2, extension_str="Hmm", min_thinking_tokens=100,
                             max_tokens=64, temperature=0.7, top_p=0.9, seed=3, stop=["###"]), LIMITS, tokenizer,
                        chat=True)
    policy = plan.policy
    assert plan.preset == "m1" and policy.thinking and policy.early_exit is None and plan.choices is None
    assert (policy.max_thinking_tokens, policy.num_extensions, policy.extension_str, policy.min_thinking_tokens,
            policy.max_answer_tokens) == (512, 2, "Hmm", 100, 64)
    assert policy.answer_stops == ("<|im_end|>", "###") and policy.think_stops == ("<|im_start|>", "<|im_end|>")
    assert (policy.sampling.temperature, policy.sampling.top_p, policy.sampling.seed) == (0.7, 0.9, 3)


def test_defaults_are_the_paper_s(tokenizer) -> None:
    plan = build_policy(chat(), LIMITS, tokenizer, chat=True)
    expected = BudgetPolicy.from_preset("m1", max_thinking_tokens=4096)
    assert plan.preset == "m1" and plan.policy == expected  # greedy, K = 0, 1,024 answer tokens


def test_max_completion_tokens_caps_thinking_and_answer_together(tokenizer) -> None:
    policy = build_policy(chat(max_completion_tokens=300, thinking_budget=512), LIMITS, tokenizer, chat=True).policy
    assert (policy.max_total_tokens, policy.max_answer_tokens, policy.thinking_cap) == (300, 300, 300)
    assert policy.answer_room(120) == 180
    plain = build_policy(parse(CompletionRequest, {"model": "m", "prompt": "x", "max_completion_tokens": 7}),
                         LIMITS, tokenizer, chat=False).policy
    assert plain.max_answer_tokens == 7 and not plain.thinking


def test_max_tokens_and_max_completion_tokens_together_are_refused(tokenizer) -> None:
    with pytest.raises(APIError) as err:
        build_policy(chat(max_tokens=64, max_completion_tokens=300), LIMITS, tokenizer, chat=True)
    assert err.value.status == 400 and err.value.param == "max_completion_tokens"
    assert "max_tokens" in err.value.message


def test_completions_are_plain_unless_thinking_is_asked_for(tokenizer) -> None:
    plain = build_policy(parse(CompletionRequest, {"model": "m", "prompt": "x", "stop": "\n"}), LIMITS,
                         tokenizer, chat=False)
    assert plain.preset == "none" and not plain.policy.thinking and plain.policy.answer_stops == ("\n",)
    thinking = build_policy(parse(CompletionRequest, {"model": "m", "prompt": "x", "num_extensions": 1}),
                            LIMITS, tokenizer, chat=False)
    assert thinking.preset == "m1" and thinking.policy.thinking and thinking.policy.num_extensions == 1
    tags = build_policy(parse(CompletionRequest, {"model": "m", "prompt": "x", "budget_preset": "think-tags"}),
                        LIMITS, tokenizer, chat=False)
    assert tags.preset == "think-tags" and tags.policy.think_stops == ("</think>",)


def test_stop_token_ids_become_stops(tokenizer) -> None:
    plan = build_policy(parse(CompletionRequest, {"model": "m", "prompt": [1, 2], "stop_token_ids": [1]}),
                        LIMITS, tokenizer, chat=False)
    assert plan.policy.answer_stops == ("<|im_start|>",)


@pytest.mark.parametrize(("raw", "says"), [
    (b'{"max_tokens": ' + b"9" * (MAX_INT_DIGITS + 1) + b"}", "digits"),
    (b"-" + b"9" * 5000, "digits"),
    (b'{"temperature": 1e999}', "out of range"),
    (b'{"temperature": -1e400}', "out of range"),
    (b'{"temperature": NaN}', "NaN"),
    (b'{"seed": -Infinity}', "Infinity"),
    (b"[" * 100_000 + b"]" * 100_000, "nests deeper"),
    (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nests deeper"),
    (b'{"stop": ["\\ud800"]}', "lone surrogate"),
    (b'{"\\udfff": 1}', "lone surrogate"),
    (b'{"model": "\xff"}', "not UTF-8"),
    ('{"model": "m"}'.encode("utf-16"), "not UTF-8"),
    (b'\xef\xbb\xbf{"model": "m"}', "not valid JSON"),
    (b'{"model": "m",}', "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "not an array"),
    (b"null", "not null"),
])
def test_only_plain_json_objects_are_decoded(raw: bytes, says: str) -> None:
    with pytest.raises(APIError) as caught:
        decode_body(raw)
    assert caught.value.status == 400 and says in caught.value.message


def test_plain_json_decodes_as_json() -> None:
    raw = ('{"model": "m", "t": 0.5, "n": -' + "9" * MAX_INT_DIGITS + ', "x": "\\ud83d\\ude00 é", "deep": '
           + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}").encode()
    body = decode_body(raw)
    assert body["x"] == "\U0001f600 é" and body["n"] == -int("9" * MAX_INT_DIGITS) and body["t"] == 0.5


def test_answer_budget_must_fit_beside_the_prompt() -> None:
    policy = BudgetPolicy.from_preset("m1", max_answer_tokens=1000)
    assert fit_answer_budget(policy, 3000, 7, LIMITS, explicit=True, param="prompt") is policy
    with pytest.raises(APIError) as caught:
        fit_answer_budget(policy, 3100, 7, LIMITS, explicit=True, param="prompt")
    assert caught.value.param == "prompt" and caught.value.code == "context_length_exceeded"
    assert fit_answer_budget(policy, 3100, 7, LIMITS, explicit=False, param="prompt").max_answer_tokens == 989


@pytest.mark.parametrize(("reply", "content"), [
    ("<|im_start|>answer\nThe answer is \\boxed{B}", "The answer is \\boxed{B}"),
    ("\n<|im_start|>answer\nFinal Answer: B", "Final Answer: B"),
    ("<|im_start|>answer\nFinal Answer: B", "Final Answer: B"),
    ("", ""),
])
def test_content_drops_the_marker_and_keeps_final_answer(reply: str, content: str) -> None:
    assert visible_answer(BudgetPolicy.from_preset("m1"), reply) == content


def test_think_tags_and_no_think_content() -> None:
    assert visible_answer(BudgetPolicy.from_preset("think-tags"), "</think>\n\nB") == "B"
    assert visible_answer(BudgetPolicy.from_preset("think-tags"), "\n</think>\n\nFinal Answer: B") == "Final Answer: B"
    assert visible_answer(BudgetPolicy.from_preset("no-think"), "  B. Vitamin C") == "B. Vitamin C"


def test_usage_is_an_honest_account() -> None:
    record = GenerationRecord(prompt="p", thinking="a Wait b", reply="<|im_start|>answer\nB", answer="\nB",
                              thinking_tokens=30, answer_tokens=2, inserted_tokens=3, extensions_used=1,
                              thinking_end="extensions_spent", answer_end="stop")
    block = usage([record], 40, BudgetPolicy.from_preset("m1", max_thinking_tokens=64, num_extensions=1), "m1")
    assert (block["prompt_tokens"], block["completion_tokens"], block["total_tokens"]) == (40, 32, 72)
    assert block["completion_tokens_details"] == {"reasoning_tokens": 30}
    assert block["m1"]["inserted_tokens"] == 3 and block["m1"]["answer_tokens"] == 2
    assert (block["m1"]["thinking_budget"], block["m1"]["extensions_used"], block["m1"]["thinking_end"]) == (
        64, 1, "extensions_spent")


def test_stream_holds_back_a_stop_that_spans_tokens(tokenizer) -> None:
    """The engine's live text can show the first tokens of a multi-token stop ('</', 'think') before
    the stop is found; the stream must never send them."""
    policy = BudgetPolicy.from_preset("think-tags", num_extensions=1)
    shaper = StreamShaper(policy, tokenizer, chat=True)
    sent: dict[str, str] = {"reasoning_content": "", "content": ""}
    pieces = [("think", "Scurvy is"), ("think", "</"), ("think", "think"), ("think", " Wait"),
              ("think", " vitamin C"), ("think", " deficiency, a long and well-known disease."), ("think", "</"),
              ("think", "think"), ("answer", "</think>\n\n"), ("answer", "B"), ("answer", ". Vitamin C")]
    for phase, text in pieces:
        for field, delta in shaper.push(phase, text).items():
            sent[field] += delta
    assert "</" not in sent["reasoning_content"]
    thinking = "Scurvy is Wait vitamin C deficiency, a long and well-known disease."
    record = GenerationRecord(prompt="p", thinking=thinking,
                              reply="</think>\n\nB. Vitamin C")
    for field, delta in shaper.finish(record).items():
        sent[field] += delta
    assert sent == {"reasoning_content": record.thinking, "content": "B. Vitamin C"}


def test_completion_stream_is_the_continuation(tokenizer) -> None:
    policy = BudgetPolicy.from_preset("m1", num_extensions=1)
    shaper = StreamShaper(policy, tokenizer, chat=False)
    text = ""
    for phase, piece in [("think", "Hmm."), ("think", " Wait"), ("think", ", yes."), ("answer", "<|im_start|>answer"),
                         ("answer", "\nB")]:
        text += shaper.push(phase, piece).get("text", "")
    record = GenerationRecord(prompt="p", thinking="Hmm. Wait, yes.", reply="<|im_start|>answer\nB")
    text += shaper.finish(record).get("text", "")
    assert text == "Hmm. Wait, yes.<|im_start|>answer\nB"
