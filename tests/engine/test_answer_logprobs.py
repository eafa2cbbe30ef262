"""`BudgetPolicy.answer_logprobs` on the transformers and vLLM backends, on the real default model:
each generated answer token gets its log-probability and the top k alternatives, and asking for
them changes no generated token. Choices of a request for several samples (`choice_policy`) keep
choice 0 as the request's own draw and give the others seeds of their own.

    PYTHONPATH=src python -m pytest tests/engine/test_answer_logprobs.py -q
"""

from __future__ import annotations

import math

import pytest

from m1.engine.backends.base import choice_policy, choice_seed, with_sample_seed
from m1.engine.policy import BudgetPolicy, Sampling
from m1.engine.prompt import render_prompt

QUESTION = "Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C"
# A budget hit (forced "Final Answer:" prefix) and a plain answer.
POLICIES = [BudgetPolicy.from_preset("m1", max_thinking_tokens=3, max_answer_tokens=4),
            BudgetPolicy.from_preset("no-think", max_answer_tokens=4)]


def test_choice_zero_is_the_request_and_the_others_have_their_own_seeds() -> None:
    sampled = BudgetPolicy(sampling=Sampling(temperature=0.7, seed=11))
    assert choice_policy(sampled, 0) is sampled
    seeds = [choice_policy(sampled, i).sampling.seed for i in range(8)]
    assert seeds[0] == 11 and len(set(seeds)) == 8 and all(0 <= s < 2**31 for s in seeds)
    assert seeds[3] == choice_seed(11, 3) != choice_seed(12, 3)
    # The backend still mixes each choice's seed with the prompt, so n choices are n distinct draws.
    assert len({with_sample_seed(choice_policy(sampled, i), "q").sampling.seed for i in range(8)}) == 8
    greedy = BudgetPolicy()
    assert all(choice_policy(greedy, i) is greedy for i in range(3))


def test_answer_logprobs_are_in_range() -> None:
    with pytest.raises(ValueError):
        BudgetPolicy(answer_logprobs=21)
    with pytest.raises(ValueError):
        BudgetPolicy(answer_logprobs=-1)


def check_logprobs(backend, top: int = 3) -> None:
    prompts = [render_prompt(backend.tokenizer, QUESTION, None, policy) for policy in POLICIES]
    asked = [policy.model_copy(update={"answer_logprobs": top}) for policy in POLICIES]
    # One call with every prompt both ways, so both run in the same batches.
    records = backend.generate(prompts + prompts, POLICIES + asked)
    plain, read = records[:len(prompts)], records[len(prompts):]
    for without, record in zip(plain, read):
        assert without.answer_logprobs is None
        assert (record.thinking_ids, record.answer_ids, record.reply) == \
            (without.thinking_ids, without.answer_ids, without.reply)
        entries = record.answer_logprobs
        assert len(entries) == record.answer_tokens == len(record.answer_ids)
        assert "".join(entry["token"] for entry in entries) == record.answer
        for token_id, entry in zip(record.answer_ids, entries):
            assert entry["logprob"] <= 0 and len(entry["top"]) == top
            values = [logprob for _token, logprob in entry["top"]]
            assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
            # Greedy: the token generated is the most likely one.
            assert math.isclose(entry["logprob"], values[0], abs_tol=1e-4)
            assert entry["token"] == backend.tokenizer.decode([token_id], skip_special_tokens=False)
    assert any(record.answer_logprobs for record in read)
    return read


@pytest.fixture(scope="module")
def transformers_read(smol_backend):
    return check_logprobs(smol_backend)


@pytest.mark.slow
def test_transformers_answer_logprobs_change_no_token(transformers_read) -> None:
    assert len(transformers_read) == len(POLICIES)


@pytest.mark.slow
def test_vllm_answer_logprobs_change_no_token_and_equal_transformers(vllm_backend, transformers_read) -> None:
    pytest.importorskip("vllm")
    read = check_logprobs(vllm_backend)
    reference = transformers_read
    for record, want in zip(read, reference):
        assert record.answer_ids == want.answer_ids
        for entry, other in zip(record.answer_logprobs, want.answer_logprobs):
            assert math.isclose(entry["logprob"], other["logprob"], abs_tol=1e-3)
            assert [t for t, _ in entry["top"]][:1] == [t for t, _ in other["top"]][:1]


@pytest.mark.slow
def test_samples_of_one_prompt_share_its_prefill_and_draw_as_alone(smol_backend) -> None:
    """Copies of a prompt in one batch are prefilled once (their cache rows copied): each copy
    draws exactly what it draws alone, whatever else is in the batch."""
    policy = BudgetPolicy.from_preset("no-think", max_answer_tokens=4, sampling=Sampling(temperature=1.0, seed=5))
    prompt = render_prompt(smol_backend.tokenizer, QUESTION, None, policy)
    other = render_prompt(smol_backend.tokenizer, "What is 2 + 2?", None, policy)
    choices = [choice_policy(policy, i) for i in range(2)]
    together = smol_backend.generate([prompt, other, prompt], [choices[0], policy, choices[1]])
    alone = [smol_backend.generate([prompt], [choice])[0] for choice in choices]
    assert [together[0].answer_ids, together[2].answer_ids] == [r.answer_ids for r in alone]
