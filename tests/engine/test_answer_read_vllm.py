"""The answer read (`answer_probability`) on vLLM's offline engine, on the real default model: it
changes no generated token, and it reads what one plain transformers forward at the forced answer
gives. (The serving path's async engine shares the round loop and `VLLMRounds`; `m1 serve` asks
for no answer read.)

Each check is one call in which every prompt runs with and without the read (a policy per prompt),
so the requests share the engine's batches.

    PYTHONPATH=src python -m pytest tests/engine/test_answer_read_vllm.py -q
"""

from __future__ import annotations

import pytest

from .test_answer_read import batch, check_reads, with_and_without
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
