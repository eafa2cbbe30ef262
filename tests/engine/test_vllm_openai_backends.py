"""vLLM (offline) and the OpenAI-compatible backend (against vLLM's real server) honour the same
budget semantics as the transformers backend, on the real default model.

Greedy decoding in float32 makes the three backends produce the same tokens, so the strongest
check is that their records agree id for id with the transformers reference.
"""

from __future__ import annotations

import pytest

from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt

from .test_hf_backend import QUESTIONS, assert_stream_marks_inserted_text, check_accounting

pytestmark = pytest.mark.slow

POLICIES = {
    "plain": BudgetPolicy.from_preset("m1", max_thinking_tokens=64, max_answer_tokens=24),
    "wait2": BudgetPolicy.from_preset("m1", max_thinking_tokens=64, num_extensions=2, max_answer_tokens=24),
    "budget_hit": BudgetPolicy.from_preset("m1", max_thinking_tokens=8, num_extensions=3, max_answer_tokens=8),
    "minimum": BudgetPolicy.from_preset("m1", max_thinking_tokens=40, num_extensions=6, min_thinking_tokens=25,
                                        max_answer_tokens=8),
}


def prompts(tokenizer, policy: BudgetPolicy) -> list[str]:
    return [render_prompt(tokenizer, q, o, policy) for q, o in QUESTIONS[:3]]


def signature(record) -> tuple:
    return (record.thinking_ids, record.answer_ids, record.thinking_end, record.extensions_used,
            record.inserted_tokens, record.reply)


@pytest.fixture(scope="module")
def reference(smol_backend):
    return {name: smol_backend.generate(prompts(smol_backend.tokenizer, p), p) for name, p in POLICIES.items()}


@pytest.mark.parametrize("name", list(POLICIES))
def test_vllm_matches_transformers(vllm_backend, reference, name: str) -> None:
    policy = POLICIES[name]
    records = vllm_backend.generate(prompts(vllm_backend.tokenizer, policy), policy)
    for record, expected in zip(records, reference[name]):
        check_accounting(record, policy)
        assert signature(record) == signature(expected)
    if name == "budget_hit":
        assert all(r.thinking_end == "budget_reached" and r.thinking_tokens == 8 for r in records)
    if name == "wait2":
        assert all(r.extensions_used == 2 for r in records)


def test_vllm_and_openai_live_text_flag_what_m1_inserted(vllm_backend, vllm_server, default_model_dir) -> None:
    from m1.engine.backends.openai import OpenAIBackend

    policy = POLICIES["minimum"]
    client = OpenAIBackend("smollm2-135m", base_url=vllm_server, tokenizer=str(default_model_dir), max_context=4096)
    for backend in (vllm_backend, client):
        pieces = []
        records = backend.generate(prompts(backend.tokenizer, policy), policy, on_text=lambda *p: pieces.append(p))
        assert_stream_marks_inserted_text(records, policy, pieces)


@pytest.mark.parametrize("name", list(POLICIES))
def test_openai_backend_against_real_server_matches(vllm_server, reference, default_model_dir, name: str) -> None:
    from m1.engine.backends.openai import OpenAIBackend

    backend = OpenAIBackend("smollm2-135m", base_url=vllm_server, tokenizer=str(default_model_dir),
                            max_context=4096, keep_trace=True, concurrency=4)
    policy = POLICIES[name]
    records = backend.generate(prompts(backend.tokenizer, policy), policy)
    for record, expected in zip(records, reference[name]):
        check_accounting(record, policy)
        assert signature(record) == signature(expected)


def test_openai_backend_text_mode_keeps_budgets(vllm_server, default_model_dir) -> None:
    """Without token ids (servers that do not return them) budgets still hold, counted from usage."""
    from m1.engine.backends.openai import OpenAIBackend

    backend = OpenAIBackend("smollm2-135m", base_url=vllm_server, tokenizer=str(default_model_dir),
                            max_context=4096, token_ids=False)
    policy = POLICIES["budget_hit"]
    records = backend.generate(prompts(backend.tokenizer, policy), policy)
    for record in records:
        assert record.error is None
        assert record.thinking_tokens == 8 and record.thinking_end == "budget_reached"
        assert record.thinking_ids is None


def test_bad_samples_fail_alone(vllm_backend, vllm_server, default_model_dir) -> None:
    from m1.engine.backends.openai import OpenAIBackend

    policy = POLICIES["plain"]
    batch = prompts(vllm_backend.tokenizer, policy)[:2]
    batch.insert(1, "word " * 5000)
    for backend in (vllm_backend, OpenAIBackend("smollm2-135m", base_url=vllm_server,
                                                tokenizer=str(default_model_dir), max_context=4096)):
        records = backend.generate(batch, policy)
        assert records[0].error is None and records[2].error is None
        assert "leaves no room for the answer" in records[1].error


def test_unreachable_server_is_an_error_per_sample(default_model_dir) -> None:
    from m1.engine.backends.openai import OpenAIBackend

    backend = OpenAIBackend("smollm2-135m", base_url="http://127.0.0.1:9/v1", tokenizer=str(default_model_dir),
                            max_context=4096, max_retries=1, timeout=5)
    policy = POLICIES["plain"]
    records = backend.generate(prompts(backend.tokenizer, policy)[:2], policy)
    assert all(r.error and "request failed after retries" in r.error for r in records)


def test_seeded_samples_of_prompts_longer_than_one_prefill_step(vllm_backend) -> None:
    # Together these prompts exceed one engine step's token budget. Prefilled in chunks, vLLM on
    # CPU rewinds each seeded request's generator by an offset CPU generators lack, and the engine
    # dies; engine_args prefills whole prompts on CPU. The draws stay the seeds' own.
    scheduler = vllm_backend.llm.llm_engine.vllm_config.scheduler_config
    long_question = "Which artery supplies the heart's anterior wall? " + "Consider the coronary anatomy. " * 120
    n = scheduler.max_num_batched_tokens // len(vllm_backend.tokenizer.encode(long_question)) + 2
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=6, max_answer_tokens=2,
                                      sampling={"temperature": 0.8, "seed": 3})
    texts = [render_prompt(vllm_backend.tokenizer, f"{i}. {long_question}", None, policy) for i in range(n)]
    policies = [policy.model_copy(update={"sampling": policy.sampling.model_copy(update={"seed": i})})
                for i in range(n)]
    together = vllm_backend.generate(texts, policies)
    assert all(record.error is None and record.thinking_tokens > 0 for record in together)
    alone = vllm_backend.generate(texts[-1:], policies[-1:])
    assert alone[0].thinking == together[-1].thinking  # the seed decides, not the batch
