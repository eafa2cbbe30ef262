"""The answer's probability at the forced answer (`answer_probability`, calibration): when the
controller reads it, when it reuses an early-exit probe instead, and, on the transformers backend,
that the read is the model's own next-token distribution there and changes no generated token.

The controller half plays scripted rounds (no model). The model half compares each run with the
same greedy request without the read, token for token, and replays the read in one plain forward.

    PYTHONPATH=src python -m pytest tests/engine/test_answer_read.py -q
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from m1.engine.controller import ProbeResult, RoundOutput, SampleController, join_prefix
from m1.engine.policy import BudgetPolicy
from m1.engine.probe import LetterReader, read_letter_strings

from .test_early_exit import LETTERS, Thinker
from .test_hf_backend import prompts_for

CHOICES = ("A", "B", "C")
READ_KEYS = ["answer", "probability", "letters", "outside", "read", "tokens", "seconds", "note", "reused"]


@dataclass
class CappedThinker(Thinker):
    """A scripted model whose backend has room for only `room` thinking tokens (the context fills)."""

    room: int = 10**6

    def round(self, max_new_tokens: int, pauses: tuple[str, ...]) -> RoundOutput:
        return super().round(min(max_new_tokens, self.room - self.used), pauses)


def letters_read(k: int, answer: str = "B") -> ProbeResult:
    shares = {letter: (0.6 if letter == answer else 0.2) for letter in CHOICES}
    return ProbeResult(answer, 0.6, "letters", tokens=7 + k, seconds=0.01, outside=0.1, letters=shares)


def play(policy: BudgetPolicy, thinker: Thinker, choices=CHOICES, probe=letters_read):
    """Drive a controller to the end: (record, steps, [(probe step, its resume step, entry returned)])."""
    controller = SampleController(policy, choices)
    steps, probes = [], []
    while (step := controller.next_step()) is not None:
        steps.append(step)
        if step.phase == "probe":
            resume = controller.resume_step
            probes.append((step, resume, controller.record_probe(probe(len(probes)))))
        elif step.phase == "think":
            controller.record_round(thinker.round(step.max_new_tokens, step.pauses))
        else:
            controller.record_round(RoundOutput("B", 1, True))
    return controller.record("p"), steps, probes


def without_read(record) -> dict:
    return {k: v for k, v in record.to_dict().items() if k != "answer_read"}


NUMBERS = ("seconds", "probability", "outside", "letters")


def same_but_the_read(record, base) -> None:
    """Every token and count as in `base`; early exit's probes the same, their numbers up to float
    noise (probes of different samples share a forward, and the read changes who probes together)."""
    mine, theirs = without_read(record), without_read(base)
    probes, base_probes = mine.pop("probes") or [], theirs.pop("probes") or []
    assert mine.pop("probe_seconds") >= 0 and theirs.pop("probe_seconds") >= 0
    assert mine == theirs
    assert [{k: v for k, v in p.items() if k not in NUMBERS} for p in probes] == \
           [{k: v for k, v in p.items() if k not in NUMBERS} for p in base_probes]
    for probe, same in zip(probes, base_probes):
        for key in ("probability", "letters"):
            assert (probe[key] is None) == (same[key] is None)
            assert probe[key] is None or probe[key] == pytest.approx(same[key], abs=1e-4)


# Each way thinking can end (with and without early exit), and the scripted model that gets there.
ENDS = {
    "natural_stop": ({}, lambda: Thinker(stops=(5,))),
    "extensions_spent": ({"num_extensions": 1}, lambda: Thinker(stops=(5, 9))),
    "budget_reached": ({"max_thinking_tokens": 12}, Thinker),
    "context_full": ({}, lambda: CappedThinker(room=9)),
    # Probes that read no letters (a server without logprobs): the read at the end is a new one.
    "early_exit": ({"early_exit": {"every": 4, "method": "consistency", "transitions": []}}, Thinker),
}


@pytest.mark.parametrize("end", list(ENDS))
def test_after_any_end_of_thinking_one_letter_read_comes_before_the_unchanged_answer(end) -> None:
    overrides, thinker = ENDS[end]
    base = BudgetPolicy.from_preset("m1", **({"max_thinking_tokens": 20} | overrides))
    def trial(k: int) -> ProbeResult:
        return ProbeResult("A", None, "trial", 5, 0.01, note="no logprobs")

    plain, plain_steps, _ = play(base, thinker(), probe=trial)
    policy = base.model_copy(update={"answer_probability": True})
    # Early exit's probes as without the read, then the read (the probe after them) says "C".
    record, steps, probes = play(policy, thinker(),
                                 probe=lambda k: letters_read(0, "C") if k == len(plain.probes or []) else trial(k))
    assert plain.thinking_end == record.thinking_end == end and plain.answer_read is None
    # The read is one more step, right before the answer; everything else is as without it.
    step, resume, entry = probes[-1]
    assert steps[-2] is step and steps[-1].phase == "answer" and [s for s in steps if s is not step] == plain_steps
    assert without_read(record) == without_read(plain)
    assert (step.phase, step.max_new_tokens, step.choices) == ("probe", 1, CHOICES)
    assert step.insert == join_prefix(policy.think_start + record.thinking, policy.answer_after_budget)
    assert resume is None and entry is None  # nothing speculated beside it, no live probe shown
    assert list(record.answer_read) == READ_KEYS
    assert record.answer_read == {"answer": "C", "probability": 0.6, "letters": {"A": 0.2, "B": 0.2, "C": 0.6},
                                  "outside": 0.1, "read": "letters", "tokens": 7, "seconds": 0.01, "note": None,
                                  "reused": False}
    # Instrumentation: its cost is not the probes'.
    assert record.probe_tokens == plain.probe_tokens and record.probe_seconds == plain.probe_seconds


@pytest.mark.parametrize(("overrides", "thinker", "end"), [
    ({"every": 4, "threshold": 0.5}, Thinker, "early_exit"),  # the probe that settled it
    # A transition probe right before a natural stop: nothing was thought since.
    ({"every": None, "observe": True}, lambda: Thinker(stops=(6,), breaks=(6,)), "natural_stop"),
])
def test_a_letter_probe_at_the_same_thinking_count_is_reused(overrides, thinker, end) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=20, answer_probability=True, early_exit=overrides)
    record, steps, probes = play(policy, thinker())
    assert record.thinking_end == end and all(entry is not None for _, _, entry in probes)  # no read was asked
    last = record.probes[-1]
    assert last["thinking_tokens"] == record.thinking_tokens
    assert record.answer_read == {k: last[k] for k in READ_KEYS[:-1]} | {"tokens": 0, "seconds": 0.0, "reused": True}
    assert record.probe_tokens == sum(probe["tokens"] for probe in record.probes)


def test_a_probe_before_a_wait_the_model_stopped_right_after_is_not_reused() -> None:
    """Same thinking count, more text: the probe at the natural stop read the thinking without "Wait"."""
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=20, num_extensions=1, answer_probability=True,
                                      early_exit={"every": None, "threshold": 0.9})
    controller = SampleController(policy, CHOICES)
    controller.record_round(RoundOutput("x " * 5, 5, stopped=True))
    assert controller.next_step().phase == "probe"
    controller.record_probe(letters_read(0))  # 0.6: not settled, "Wait" follows
    assert controller.next_step().insert == "Wait"
    controller.record_round(RoundOutput("", 0, stopped=True))
    record, read = controller.record("p"), controller.next_step()
    assert record.thinking_end == "extensions_spent" and record.thinking_tokens == record.probes[-1]["thinking_tokens"]
    assert read.phase == "probe" and record.thinking == "x " * 5 + "Wait"
    controller.record_probe(letters_read(1))
    assert record.answer_read["reused"] is False and controller.next_step().phase == "answer"


def test_a_probe_at_an_earlier_count_is_not_reused() -> None:
    # Probes never stand at the cap: thinking to the budget needs a read of its own.
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=20, answer_probability=True,
                                      early_exit={"every": 8, "observe": True, "transitions": []})
    record, _, probes = play(policy, Thinker())
    assert [p["thinking_tokens"] for p in record.probes] == [8, 16] and record.thinking_tokens == 20
    assert [entry is None for _, _, entry in probes] == [False, False, True]
    assert record.answer_read["reused"] is False and record.answer_read["tokens"] == 7 + 2
    assert record.probe_tokens == 7 + 8


@pytest.mark.parametrize(("preset", "overrides", "choices"), [
    ("m1", {"answer_probability": True}, None),           # a free-form prompt: no letters to read
    ("no-think", {"answer_probability": True}, CHOICES),  # no thinking, no forced answer
    ("m1", {}, CHOICES),                                   # not asked
    ("think-tags", {"answer_probability": False, "early_exit": {"every": 4}}, CHOICES),
])
def test_no_read_without_letters_thinking_or_the_flag(preset, overrides, choices) -> None:
    policy = BudgetPolicy.from_preset(preset, **({"max_thinking_tokens": 12} | overrides))
    record, steps, probes = play(policy, Thinker(), choices=choices)
    assert record.answer_read is None and all(entry is not None for _, _, entry in probes)
    assert steps[-1].phase == "answer"


def test_a_sample_that_fails_while_its_answer_is_read_ends_there() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=4, answer_probability=True)
    controller = SampleController(policy, CHOICES)
    controller.record_round(RoundOutput("x " * 4, 4, stopped=False))
    assert controller.next_step().phase == "probe"
    with pytest.raises(RuntimeError, match="record_probe"):
        controller.record_round(RoundOutput("", 0, False))
    controller.fail("request failed")
    assert controller.done and controller.record("p").answer_read is None


def test_letter_shares_are_every_letters_renormalised_mass(default_model_dir) -> None:
    """Both readers, on random distributions: shares sum to 1, the answer is the top one (the first of
    a tie), a letter's spellings are summed, and a distribution without letters reads nothing."""
    from m1.engine.backends.base import load_tokenizer

    tokenizer = load_tokenizer(str(default_model_dir))
    letters = ("A", "B", "C", "D")
    reader = LetterReader(tokenizer, letters)
    spellings = {letter: [t for t, owner in reader.ids.items() if owner == letter] for letter in letters}
    assert all(len(ids) == 2 for ids in spellings.values())  # "A" and " A" are one token each here
    rng = random.Random(14)
    for case in range(50):
        mass = {letter: rng.choice([0.0, 0.0, rng.random(), 0.25]) for letter in letters}
        scale = rng.uniform(0.1, 1.0) / (sum(mass.values()) or 1.0)
        by_id = {spellings[l][0]: m * scale * 0.3 for l, m in mass.items()} | \
                {spellings[l][1]: m * scale * 0.7 for l, m in mass.items()}
        by_text = {letter: m * scale * 0.3 for letter, m in mass.items()} | \
                  {"Ġ" + letter: m * scale * 0.7 for letter, m in mass.items()} | {"the": 0.01}
        for read in (reader.from_ids(by_id), read_letter_strings(by_text, letters)):
            total = sum(mass.values())
            if total == 0:
                assert (read.answer, read.probability, read.letters, read.outside) == (None, None, None, 1.0)
                continue
            assert list(read.letters) == list(letters) and sum(read.letters.values()) == pytest.approx(1.0)
            assert read.letters == pytest.approx({letter: m / total for letter, m in mass.items()})
            best = max(mass.values())
            assert read.answer == next(letter for letter in letters if mass[letter] == best), case
            assert read.probability == read.letters[read.answer]
            assert read.outside == pytest.approx(1.0 - total * scale, abs=1e-9)


# ---------------------------------------------------------------------- on the transformers backend


def batch(backend, cases: list[dict], choices) -> tuple[list[str], list[BudgetPolicy], list]:
    """Every prompt under every case's policy, in one call (a policy per prompt)."""
    prompts, policies, letters = [], [], []
    for overrides in cases:
        policy = BudgetPolicy.from_preset("m1", **overrides)
        prompts += prompts_for(backend, policy)[:len(choices)]
        policies += [policy] * len(choices)
        letters += list(choices)
    return prompts, policies, letters


def with_and_without(backend, prompts, policies, choices):
    """Each prompt without and with the read, in one call (so they share batches): (plain, read) records."""
    reading = [policy.model_copy(update={"answer_probability": True}) for policy in policies]
    live = []
    records = backend.generate(prompts * 2, policies + reading, choices=choices * 2,
                               on_probe=lambda index, entry: live.append((index, entry)))
    for index, record in enumerate(records):
        assert record.error is None
        assert [entry for i, entry in live if i == index] == (record.probes or [])  # never the read
    return records[:len(prompts)], records[len(prompts):], reading


class Replay:
    """The next-token distribution of a transformers model after a prompt and more ids, in plain
    forwards (no m1 code): the prompt's cache is computed once and copied for each continuation."""

    def __init__(self, backend):
        self.backend, self.prompts = backend, {}

    def probs(self, prompt: str, more: list[int]):
        import copy

        import torch
        from transformers import DynamicCache

        model, device = self.backend.model, self.backend.device
        with torch.inference_mode():
            if prompt not in self.prompts:
                cache = DynamicCache(config=model.config)
                ids = self.backend.tokenizer.encode(prompt, add_special_tokens=False)
                model(input_ids=torch.tensor([ids], device=device), past_key_values=cache, use_cache=True)
                self.prompts[prompt] = cache
            logits = model(input_ids=torch.tensor([more], device=device),
                           past_key_values=copy.deepcopy(self.prompts[prompt]), use_cache=True).logits[0, -1]
        return torch.softmax(logits.float(), dim=-1)


def check_reads(backend, prompts, policies, choices, plain, records, *, tolerance: float = 1e-4,
                replayed: int | None = None) -> None:
    """Same tokens as without the read; each read (of the first `replayed` prompts, None: all) is
    the next-token distribution at the forced answer of the transformers `backend`'s model, replayed
    over the prompt and the thinking the trace holds (`tolerance`: for engines that read top logprobs)."""
    tokenizer, replay = backend.tokenizer, Replay(backend)
    for prompt, policy, letters, base, record in zip(prompts, policies, choices, plain, records):
        same_but_the_read(record, base)
        assert base.answer_read is None
        if not letters:
            assert record.answer_read is None
            continue
        read = record.answer_read
        insert = join_prefix(policy.think_start + record.thinking, policy.answer_after_budget)
        insert_ids = tokenizer.encode(insert, add_special_tokens=False)
        assert list(read) == READ_KEYS and read["read"] == "letters" and read["note"] is None
        reused = bool(record.probes) and record.probes[-1]["thinking_tokens"] == record.thinking_tokens
        assert read["reused"] is reused and read["tokens"] == (0 if reused else len(insert_ids))
        assert sum(read["letters"].values()) == pytest.approx(1.0) and read["letters"][read["answer"]] == \
            read["probability"] == max(read["letters"].values())
        if replayed is not None and prompt not in replay.prompts and len(replay.prompts) >= replayed:
            continue
        # The trace ends with the answer's prefix and the answer; everything before them is the thinking.
        answer_prefix = record.reply[:len(record.reply) - len(record.answer)]
        assert record.trace[-2] == ("inserted", tokenizer.encode(answer_prefix, add_special_tokens=False))
        probs = replay.probs(prompt, [token for _, piece in record.trace[:-2] for token in piece] + insert_ids)
        reader = LetterReader(tokenizer, letters)
        want = reader.from_ids({token: float(probs[token]) for token in reader.ids})
        assert read["letters"] == pytest.approx(want.letters, abs=tolerance)
        assert read["outside"] == pytest.approx(want.outside, abs=tolerance)
        assert read["answer"] == want.answer or want.letters[read["answer"]] == pytest.approx(want.probability,
                                                                                              abs=tolerance)


def test_the_read_changes_no_token_on_the_tiny_model(tiny_backend) -> None:
    """The tiny model never stops: thinking hits the budget, or early exit's probes (observed) come
    first; free-form prompts get no read; a batch of one reads what the full batch reads."""
    mixed = [letters if index % 2 == 0 else None for index, letters in enumerate(LETTERS)]
    cases = [{"max_thinking_tokens": 10, "max_answer_tokens": 3},
             {"max_thinking_tokens": 10, "max_answer_tokens": 3,
              "early_exit": {"every": 4, "observe": True, "transitions": []}}]
    prompts, policies, choices = batch(tiny_backend, cases, mixed)
    plain, records, reading = with_and_without(tiny_backend, prompts, policies, choices)
    check_reads(tiny_backend, prompts, reading, choices, plain, records)
    assert all(record.thinking_end == "budget_reached" for record in records)
    size = tiny_backend.batch_size
    try:
        tiny_backend.batch_size = 1
        _, alone, _ = with_and_without(tiny_backend, prompts, policies, choices)
    finally:
        tiny_backend.batch_size = size
    for record, single in zip(records, alone):
        same_but_the_read(record, single)
        assert (record.answer_read is None) == (single.answer_read is None)
        if record.answer_read is not None:
            assert record.answer_read["letters"] == pytest.approx(single.answer_read["letters"], abs=1e-4)


@pytest.mark.slow
def test_the_read_changes_no_token_on_the_default_model(smol_backend) -> None:
    """SmolLM2 stops at once: natural stops, "Wait" extensions spent, the budget, and early exit,
    each against the same request without the read (one question per case: all eight requests in one batch)."""
    answer = {"max_answer_tokens": 3}
    cases = [{"max_thinking_tokens": 24} | answer, {"max_thinking_tokens": 24, "num_extensions": 1} | answer,
             {"max_thinking_tokens": 4, "num_extensions": 2} | answer,
             # Its first probe stands at the natural stop before "Wait", 0 tokens in: any letter settles.
             {"max_thinking_tokens": 8, "num_extensions": 1, "early_exit": {"every": 8, "threshold": 0.01}} | answer]
    prompts, policies, choices = batch(smol_backend, cases, LETTERS[:1])
    plain, records, reading = with_and_without(smol_backend, prompts, policies, choices)
    check_reads(smol_backend, prompts, reading, choices, plain, records, replayed=1)
    assert [record.thinking_end for record in records] == ["natural_stop", "extensions_spent", "budget_reached",
                                                          "early_exit"]
    assert records[-1].answer_read["reused"] and not any(record.answer_read["reused"] for record in records[:-1])
