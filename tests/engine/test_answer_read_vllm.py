"""The answer read (`answer_probability`) on vLLM, offline and on the serving path (the async
engine `m1 serve --backend vllm` runs), on the real default model: it changes no generated token,
and it reads what one plain transformers forward at the forced answer gives.

Each check is one call in which every prompt runs with and without the read (a policy per prompt),
so the requests share the engine's batches.

    PYTHONPATH=src python -m pytest tests/engine/test_answer_read_vllm.py -q
"""

from __future__ import annotations

import asyncio

import pytest

from m1.engine.policy import BudgetPolicy

from .test_answer_read import batch, check_reads, same_but_the_read, with_and_without
from .test_early_exit import LETTERS

pytestmark = pytest.mark.slow

pytest.importorskip("vllm")

# A multiple-choice prompt and one without letters (no read).
CHOICES = [LETTERS[0], None]
ANSWER = {"max_answer_tokens": 3}
# The default model stops at once: a natural stop, "Wait" then its own stop or the budget, the
# budget with observed probes before it (none at the cap: a read of its own), and early exit at its
# first probe (the natural stop before "Wait", where any letter settles: the read reuses it).
CASES = [{"max_thinking_tokens": 16} | ANSWER, {"max_thinking_tokens": 16, "num_extensions": 1} | ANSWER,
         {"max_thinking_tokens": 6, "num_extensions": 2, "early_exit": {"every": 4, "observe": True}} | ANSWER,
         {"max_thinking_tokens": 8, "num_extensions": 1, "early_exit": {"every": 8, "threshold": 0.01}} | ANSWER]


@pytest.fixture(scope="module")
def offline(vllm_backend):
    prompts, policies, choices = batch(vllm_backend, CASES, CHOICES)
    plain, records, reading = with_and_without(vllm_backend, prompts, policies, choices)  # checks the live probes
    return prompts, reading, choices, plain, records


def test_vllm_reads_the_letters_and_changes_no_token(offline, smol_backend) -> None:
    prompts, policies, choices, plain, records = offline
    # vLLM reads the letters from its top logprobs, transformers from the whole softmax.
    check_reads(smol_backend, prompts, policies, choices, plain, records, tolerance=0.02)
    assert {record.thinking_end for record in records} >= {"natural_stop", "budget_reached", "early_exit"}
    assert any(record.answer_read["reused"] for record in records if record.answer_read)


def test_the_serving_engine_reads_what_the_offline_engine_reads(offline, default_model_dir) -> None:
    from m1.engine.backends.vllm_async import AsyncVLLMBackend

    prompts, policies, choices, plain, records = offline
    # The prompt with letters, under the budget case: early exit's probes, then a read of its own.
    picks = [next(index for index, letters in enumerate(CHOICES) if letters) + 2 * len(CHOICES)]
    assert records[picks[0]].probes and not records[picks[0]].answer_read["reused"]
    live = []

    async def serve() -> list:
        backend = AsyncVLLMBackend(str(default_model_dir), max_model_len=2048)
        await backend.start()
        try:
            return await asyncio.gather(*(
                backend.generate_one(prompts[i], policy, request_id=f"r{i}-{policy.answer_probability}",
                                     choices=choices[i], on_probe=lambda index, entry: live.append(entry))
                for i in picks for policy in (policies[i].model_copy(update={"answer_probability": False}),
                                              policies[i])))
        finally:
            backend.shutdown()

    served = asyncio.run(serve())
    for n, i in enumerate(picks):
        without, read = served[2 * n], served[2 * n + 1]
        same_but_the_read(read, without)
        same_but_the_read(read, records[i])  # as the offline engine generated it
        mine, want = read.answer_read, records[i].answer_read
        exact = ("answer", "read", "tokens", "note", "reused")
        assert {k: mine[k] for k in exact} == {k: want[k] for k in exact}
        assert mine["letters"] == pytest.approx(want["letters"], abs=1e-3)
    assert len(live) == sum(len(record.probes or []) for record in served)  # early exit's probes only
