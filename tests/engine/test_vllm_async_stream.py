"""The async vLLM backend's live text (what `m1 serve --backend vllm` streams), against a scripted
stand-in for vLLM's engine that stops as vLLM does (stop token ids, stop strings, max_tokens) and
sends one token per engine step: the first token is shown the step it arrives (time to first
token), a stop or end of sequence never is, and the pieces add up to the record."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest

from m1.engine.policy import BudgetPolicy

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from m1.engine.backends.base import load_tokenizer

    return load_tokenizer(str(default_model_dir))


class ScriptedEngine:
    """Each request continues with the next scripted text's tokens, ending as vLLM would end it."""

    def __init__(self, tokenizer, texts: list[str]):
        self.tokenizer, self.texts, self.steps = tokenizer, list(texts), 0

    async def generate(self, prompt, params, request_id):
        script = self.tokenizer.encode(self.texts.pop(0) if self.texts else "", add_special_tokens=False)
        script.append(self.tokenizer.eos_token_id)
        ids: list[int] = []
        for token in script:
            ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            stopped = token in (params.stop_token_ids or []) or token == self.tokenizer.eos_token_id or any(
                stop in text for stop in params.stop or [])
            finish = "stop" if stopped else "length" if len(ids) == params.max_tokens else None
            self.steps += 1
            yield SimpleNamespace(outputs=[SimpleNamespace(token_ids=[token], finish_reason=finish, logprobs=None)])
            if finish:
                return


def backend_with(tokenizer, engine):
    from m1.engine.backends.vllm import VLLMRounds
    from m1.engine.backends.vllm_async import AsyncVLLMBackend

    backend = object.__new__(AsyncVLLMBackend)
    backend.tokenizer, backend.engine, backend.max_context = tokenizer, engine, 4096
    backend.rounds = VLLMRounds(tokenizer)
    return backend


def generate(tokenizer, texts: list[str], policy: BudgetPolicy):
    engine = ScriptedEngine(tokenizer, texts)
    shown: list[tuple[str, str, int]] = []
    record = asyncio.run(backend_with(tokenizer, engine).generate_one(
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" + policy.think_start, policy, request_id="r",
        on_text=lambda _i, phase, text, _inserted: shown.append((phase, text, engine.steps))))
    return record, shown


def test_the_first_token_shows_the_step_it_is_generated(tokenizer) -> None:
    policy = BudgetPolicy.from_preset("no-think", max_answer_tokens=16)
    record, shown = generate(tokenizer, ["The capital of France is Paris."], policy)
    assert shown[0][2] == 1  # on the engine's first step, not held for the next ones
    assert "".join(text for _, text, _ in shown) == record.reply == "The capital of France is Paris."


@pytest.mark.parametrize("preset", ["m1", "think-tags"])
def test_the_live_text_is_the_record(tokenizer, preset: str) -> None:
    """Rounds that end on one-token and spanning stops, a stop inside a token, false starts."""
    rng = random.Random(preset)
    words = ["Scurvy", " is", " x < y", " </th", "ink", " a</", "think>", "<|im_start|>", "<|im_end|>", ".\n",
             "\nQuestion:", " Vitamin C", " so B", " Wait"]
    for _ in range(12):
        texts = ["".join(rng.choice(words) for _ in range(rng.randint(0, 8))) for _ in range(5)]
        policy = BudgetPolicy.from_preset(preset, num_extensions=rng.randint(0, 3), max_thinking_tokens=48,
                                          max_answer_tokens=12, answer_stops=BudgetPolicy.from_preset(preset)
                                          .answer_stops + ("\nQuestion:", "Vitamin C"))
        record, shown = generate(tokenizer, texts, policy)
        thinking = "".join(text for phase, text, _ in shown if phase == "think")
        answer = "".join(text for phase, text, _ in shown if phase == "answer")
        assert (thinking, answer) == (record.thinking, record.reply), texts
