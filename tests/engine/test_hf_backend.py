"""The transformers backend honours every budget rule, and its KV-cache continuation is exact.

Exactness is checked the strongest way there is: the whole token sequence of each sample
(prompt, thinking, inserted "Wait"s and answer prefixes, answer) is run through the model again
in one plain forward pass, and every generated token must be the greedy choice at its position.
A mistake in left padding, position ids, masking or cache handling would break that.
"""

from __future__ import annotations

import pytest

from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt

QUESTIONS = [
    ("Which vitamin deficiency causes scurvy?", {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"}),
    ("A 60-year-old man has crushing chest pain radiating to the left arm and sweating. "
     "Which test should be done first?", {"A": "ECG", "B": "CT head", "C": "Colonoscopy", "D": "Spirometry"}),
    ("Most common cause of community-acquired pneumonia?", {"A": "Streptococcus pneumoniae", "B": "Legionella"}),
    ("Drug of choice for absence seizures?", {"A": "Ethosuximide", "B": "Phenytoin", "C": "Carbamazepine"}),
    ("Deficiency of which enzyme causes classic phenylketonuria in newborns screened at birth?",
     {"A": "Phenylalanine hydroxylase", "B": "Tyrosinase", "C": "Homogentisate oxidase", "D": "Fumarylacetoacetase",
      "E": "Cystathionine synthase"}),
]


def prompts_for(backend, policy: BudgetPolicy) -> list[str]:
    return [render_prompt(backend.tokenizer, q, o, policy) for q, o in QUESTIONS]


def assert_greedy_consistent(backend, prompt: str, record) -> None:
    """Replay prompt + trace in one forward pass; each generated token must be the argmax."""
    import torch

    ids = backend.tokenizer.encode(prompt, add_special_tokens=False)
    generated_positions = []
    for kind, piece in record.trace:
        if kind == "generated":
            generated_positions += range(len(ids), len(ids) + len(piece))
        ids += piece
    if not generated_positions:
        return
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([ids], device=backend.device)).logits[0]
    for position in generated_positions:
        assert int(logits[position - 1].argmax()) == ids[position], f"token {position} differs from greedy"


def check_accounting(record, policy: BudgetPolicy) -> None:
    assert record.error is None
    assert record.thinking_tokens <= policy.max_thinking_tokens
    assert record.answer_tokens <= policy.max_answer_tokens
    assert record.thinking_ids is not None and len(record.thinking_ids) == record.thinking_tokens
    assert len(record.answer_ids) == record.answer_tokens
    generated = sum(len(p) for kind, p in record.trace if kind == "generated")
    inserted = sum(len(p) for kind, p in record.trace if kind == "inserted")
    assert generated == record.thinking_tokens + record.answer_tokens
    assert inserted == record.inserted_tokens
    assert record.extensions_used <= policy.num_extensions


@pytest.mark.parametrize(("budget", "extensions"), [(7, 0), (16, 2), (33, 3)])
def test_tiny_model_hits_budget_exactly(tiny_backend, budget: int, extensions: int) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=budget, num_extensions=extensions, max_answer_tokens=5)
    prompts = prompts_for(tiny_backend, policy)
    records = tiny_backend.generate(prompts, policy)
    assert len(records) == len(prompts)
    for prompt, record in zip(prompts, records):
        check_accounting(record, policy)
        if record.thinking_end == "budget_reached":
            assert record.thinking_tokens == budget
            assert record.reply.startswith("\n<|im_start|>answer\nFinal Answer:") or record.reply.startswith("<|im_start|>answer\nFinal Answer:")
        assert_greedy_consistent(tiny_backend, prompt, record)


def test_batch_results_do_not_depend_on_batch_size(tiny_backend) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=12, num_extensions=1, max_answer_tokens=4)
    prompts = prompts_for(tiny_backend, policy)
    batched = tiny_backend.generate(prompts, policy)
    size = tiny_backend.batch_size
    try:
        tiny_backend.batch_size = 1
        single = tiny_backend.generate(prompts, policy)
    finally:
        tiny_backend.batch_size = size
    assert [r.thinking_ids for r in batched] == [r.thinking_ids for r in single]
    assert [r.answer_ids for r in batched] == [r.answer_ids for r in single]


def test_prompt_longer_than_context_fails_only_that_sample(tiny_backend) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=8, max_answer_tokens=4)
    prompts = prompts_for(tiny_backend, policy)[:2]
    prompts.insert(1, "word " * 3000)
    records = tiny_backend.generate(prompts, policy)
    assert records[0].error is None and records[2].error is None
    assert "leaves no room for the answer" in records[1].error
    assert records[1].thinking_tokens == 0


def test_thinking_is_capped_by_the_context_window(tiny_backend) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=1000, max_answer_tokens=50)
    prompt = prompts_for(tiny_backend, policy)[0]
    prompt_len = len(tiny_backend.tokenizer.encode(prompt, add_special_tokens=False))
    window = tiny_backend.max_context
    try:
        tiny_backend.max_context = prompt_len + 200
        record = tiny_backend.generate([prompt], policy)[0]
    finally:
        tiny_backend.max_context = window
    total = prompt_len + record.thinking_tokens + record.inserted_tokens + record.answer_tokens
    assert total <= prompt_len + 200
    assert record.thinking_end == "context_full"
    assert record.thinking_tokens < 200


def test_sampling_is_seeded_per_sample(tiny_backend) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=10, max_answer_tokens=3,
                                      sampling={"temperature": 0.8, "top_p": 0.9, "seed": 3})
    prompts = prompts_for(tiny_backend, policy)
    first = [r.thinking_ids for r in tiny_backend.generate(prompts, policy)]
    # A sample draws the same whatever its position or batch mates: reversed, or alone.
    reversed_order = [r.thinking_ids for r in tiny_backend.generate(prompts[::-1], policy)][::-1]
    alone = tiny_backend.generate(prompts[1:2], policy)[0].thinking_ids
    assert reversed_order == first
    assert alone == first[1]
    other_seed = policy.model_copy(update={"sampling": policy.sampling.model_copy(update={"seed": 4})})
    assert [r.thinking_ids for r in tiny_backend.generate(prompts, other_seed)] != first


@pytest.mark.slow
def test_default_model_stops_at_once_and_wait_makes_it_think(smol_backend) -> None:
    plain = BudgetPolicy.from_preset("m1", max_thinking_tokens=64, max_answer_tokens=32)
    records = smol_backend.generate(prompts_for(smol_backend, plain), plain)
    # Never trained to think: it closes the thinking block right away.
    assert sum(r.thinking_tokens == 0 for r in records) >= 4
    assert all(r.thinking_end == "natural_stop" for r in records)

    forced = BudgetPolicy.from_preset("m1", max_thinking_tokens=64, num_extensions=2, max_answer_tokens=32)
    prompts = prompts_for(smol_backend, forced)
    records = smol_backend.generate(prompts, forced)
    for prompt, record in zip(prompts, records):
        check_accounting(record, forced)
        assert record.thinking.startswith("Wait")  # the marker ends in a newline: no extra space
        assert record.extensions_used >= 1
        assert record.thinking_tokens > 0
        assert_greedy_consistent(smol_backend, prompt, record)


@pytest.mark.slow
def test_default_model_minimum_thinking(smol_backend) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=40, num_extensions=6, min_thinking_tokens=25,
                                      max_answer_tokens=16)
    prompts = prompts_for(smol_backend, policy)
    records = smol_backend.generate(prompts, policy)
    for prompt, record in zip(prompts, records):
        check_accounting(record, policy)
        reached = record.thinking_tokens >= 25
        assert reached or record.thinking_end == "extensions_spent"
        if record.thinking_end == "natural_stop":
            assert reached
        assert_greedy_consistent(smol_backend, prompt, record)


def test_each_prompt_can_bring_its_own_policy(tiny_backend) -> None:
    budgets = [5, 11, 3, 9]
    policies = [BudgetPolicy.from_preset("m1", max_thinking_tokens=b, num_extensions=1, max_answer_tokens=2) for b in budgets]
    prompts = prompts_for(tiny_backend, policies[0])[:4]
    records = tiny_backend.generate(prompts, policies)
    for budget, policy, record in zip(budgets, policies, records):
        check_accounting(record, policy)
        if record.thinking_end == "budget_reached":
            assert record.thinking_tokens == budget
    with pytest.raises(ValueError, match="one policy or one per prompt"):
        tiny_backend.generate(prompts, policies[:2])


def assert_stream_marks_inserted_text(records, policy: BudgetPolicy, pieces) -> None:
    """The live text reassembles each record exactly, and every piece m1 inserted is flagged as such:
    the "Wait"s during thinking, the answer prefix before the answer; the rest is generated."""
    for index, record in enumerate(records):
        mine = [(phase, text, inserted) for i, phase, text, inserted in pieces if i == index]
        assert "".join(t for phase, t, _ in mine if phase == "think") == record.thinking
        assert "".join(t for phase, t, _ in mine if phase == "answer") == record.reply
        think_inserted = [t for phase, t, inserted in mine if phase == "think" and inserted]
        assert [t.strip() for t in think_inserted] == [policy.extension_str] * record.extensions_used
        answer_inserted = "".join(t for phase, t, inserted in mine if phase == "answer" and inserted)
        assert record.reply == answer_inserted + record.answer and record.reply.startswith(answer_inserted)


@pytest.mark.slow
def test_live_text_flags_what_m1_inserted(smol_backend):
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=40, num_extensions=3, min_thinking_tokens=20,
                                      max_answer_tokens=8)
    pieces = []
    records = smol_backend.generate(prompts_for(smol_backend, policy)[:3], policy,
                                    on_text=lambda *piece: pieces.append(piece))
    assert any(record.extensions_used for record in records)
    assert_stream_marks_inserted_text(records, policy, pieces)
