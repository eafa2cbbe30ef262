"""Early exit on the vLLM backend, on the real default model: a probe never changes the thinking,
an exit cuts the thinking short without changing what came before, and per-sample scheduling gives
the records lock-step scheduling gives.

One batch holds every case (each sample has its own policy: no early exit, observe-only probes,
a real exit), once per schedule: the default model writes after "Let me analyze each option.", so
thinking runs to the budget with the option lines between; every newline is a probe point
(`transitions`), which also pins how a round the engine stopped at a pause is kept and classified.
"""

from __future__ import annotations

import pytest

from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt

from .test_hf_backend import QUESTIONS

pytestmark = pytest.mark.slow

FORCING = {"max_thinking_tokens": 16, "num_extensions": 1, "min_thinking_tokens": 8, "max_answer_tokens": 2,
           "extension_str": "Let me analyze each option.\n"}
POLICIES = {
    "none": BudgetPolicy.from_preset("m1", **FORCING),
    # Probes only at transitions (every newline), so each probe stands where a round paused.
    "observe": BudgetPolicy.from_preset("m1", **FORCING, early_exit={"every": None, "transitions": ("\n",),
                                                                    "observe": True, "probe_tokens": 3}),
    # Any letter answer with a fair share settles, so the letter prompt exits at its first probe.
    "exit": BudgetPolicy.from_preset("m1", **FORCING, early_exit={"every": 4, "threshold": 0.3, "probe_tokens": 3}),
}
# A multiple-choice prompt (letter probes) and a free-form one (trial answers).
CASES = [(QUESTIONS[0][0], QUESTIONS[0][1], tuple(QUESTIONS[0][1])), (QUESTIONS[2][0], QUESTIONS[2][1], None)]


def batch(tokenizer) -> tuple[list[str], list[BudgetPolicy], list[tuple[str, ...] | None], list[tuple[str, int]]]:
    prompts, policies, choices, keys = [], [], [], []
    for case, (question, options, letters) in enumerate(CASES):
        for name, policy in POLICIES.items():
            prompts.append(render_prompt(tokenizer, question, options, policy))
            policies.append(policy)
            choices.append(letters)
            keys.append((name, case))
    return prompts, policies, choices, keys


def signature(record) -> tuple:
    """Everything of a record but the clock."""
    probes = [{k: v for k, v in probe.items() if k != "seconds"} for probe in record.probes or []]
    return (record.thinking_ids, record.answer_ids, record.thinking_end, record.extensions_used,
            record.inserted_tokens, record.reply, record.trace, probes, record.probe_tokens, record.exit_rule)


def run(backend, schedule: str, on_probe=None) -> dict[tuple[str, int], object]:
    prompts, policies, choices, keys = batch(backend.tokenizer)
    backend.scheduling = schedule
    try:
        records = backend.generate(prompts, policies, choices=choices, on_probe=on_probe)
    finally:
        backend.scheduling = "per_sample"
    return dict(zip(keys, records))


@pytest.fixture(scope="module")
def streamed() -> list[tuple[int, dict]]:
    return []


@pytest.fixture(scope="module")
def per_sample(vllm_backend, streamed):
    return run(vllm_backend, "per_sample", on_probe=lambda index, entry: streamed.append((index, entry)))


@pytest.fixture(scope="module")
def lockstep(vllm_backend):
    return run(vllm_backend, "lockstep")


def test_observed_probes_leave_the_thinking_as_it_was(vllm_backend, per_sample) -> None:
    tokenizer = vllm_backend.tokenizer
    for case in range(len(CASES)):
        plain, observed = per_sample["none", case], per_sample["observe", case]
        assert plain.error is None and observed.error is None
        assert signature(observed)[:6] == signature(plain)[:6]
        assert plain.probes is None and observed.probes
        assert observed.probe_tokens == sum(probe["tokens"] for probe in observed.probes)
        for probe in observed.probes:
            # Each probe stands right after a generated newline: the engine stopped on the pause,
            # kept its token in the round and reported it as a pause, not as the end of thinking.
            last = observed.thinking_ids[probe["thinking_tokens"] - 1]
            assert "\n" in tokenizer.decode([last]), probe
        assert any(kind == "generated" and tokenizer.decode(ids).endswith("\n") for kind, ids in observed.trace)


def test_probes_read_letters_or_trial_answers(vllm_backend, per_sample) -> None:
    for (name, case), record in per_sample.items():
        letters = CASES[case][2]
        prefix = POLICIES[name].answer_after_budget
        # The answer prefix fed on the side branch (its newline dropped after a newline), then what was read.
        fed = {len(vllm_backend.tokenizer.encode(text, add_special_tokens=False)) for text in (prefix, prefix[1:])}
        for probe in record.probes or []:
            assert probe["read"] == ("letters" if letters else "trial")
            if letters:
                # The top letter's share of the letters' mass is at least an even share.
                assert probe["answer"] in letters and 1 / len(letters) <= probe["probability"] <= 1
                assert 0 <= probe["outside"] <= 1
                assert probe["tokens"] in fed  # a letter read generates nothing
            else:
                assert probe["outside"] is None
                assert any(1 <= probe["tokens"] - n <= POLICIES[name].early_exit.probe_tokens for n in fed)


def test_exit_cuts_the_thinking_short_without_changing_it(per_sample) -> None:
    exited = per_sample["exit", 0]
    plain = per_sample["none", 0]
    policy = POLICIES["exit"]
    assert exited.thinking_end == "early_exit" and exited.exit_rule == "confidence >= 0.3"
    assert policy.min_thinking_tokens <= exited.thinking_tokens < plain.thinking_tokens
    assert exited.thinking_ids == plain.thinking_ids[:exited.thinking_tokens]
    assert exited.probes[-1]["probability"] >= 0.3
    assert exited.reply.startswith(policy.answer_after_budget)
    assert len(exited.answer_ids) == exited.answer_tokens <= policy.max_answer_tokens
    # A prompt whose probes never settle thinks exactly as without early exit.
    unsettled = per_sample["exit", 1]
    assert unsettled.thinking_end != "early_exit"
    assert signature(unsettled)[:6] == signature(per_sample["none", 1])[:6]


def test_every_probe_is_reported_live(per_sample, streamed) -> None:
    keys = list(per_sample)
    for index, entry in streamed:
        assert entry in per_sample[keys[index]].probes
    assert len(streamed) == sum(len(record.probes or []) for record in per_sample.values())


def test_per_sample_and_lockstep_schedules_give_the_same_records(per_sample, lockstep) -> None:
    for key, record in per_sample.items():
        assert signature(record) == signature(lockstep[key]), key


def test_vllm_probes_agree_with_transformers(smol_backend, per_sample) -> None:
    prompts, policies, choices, keys = batch(smol_backend.tokenizer)
    reference = dict(zip(keys, smol_backend.generate(prompts, policies, choices=choices)))
    for key, record in per_sample.items():
        expected = reference[key]
        assert signature(record)[:6] == signature(expected)[:6], key
        assert [(p["thinking_tokens"], p["answer"], p["read"], p["tokens"]) for p in record.probes or []] == \
               [(p["thinking_tokens"], p["answer"], p["read"], p["tokens"]) for p in expected.probes or []], key
        for mine, theirs in zip(record.probes or [], expected.probes or []):
            if theirs["probability"] is None:
                assert mine["probability"] is None, key
            else:  # vLLM reads the letters from its top logprobs, transformers from the whole softmax
                assert mine["probability"] == pytest.approx(theirs["probability"], abs=0.02), key


def test_a_probe_point_inside_a_multi_token_stop_does_not_split_it(vllm_backend) -> None:
    """Per-sample scheduling (lock-step gives the same records: see the test above)."""
    from .test_early_exit import LETTERS, split_stop_policies

    prompts, plain, probed = split_stop_policies(vllm_backend)
    expected = vllm_backend.generate(prompts, plain)
    records = vllm_backend.generate(prompts, probed, choices=LETTERS[:len(prompts)])
    assert expected[0].thinking_end == "extensions_spent"
    for record, want in zip(records, expected):
        assert (record.thinking_ids, record.answer_ids, record.thinking_end) == \
            (want.thinking_ids, want.answer_ids, want.thinking_end)
