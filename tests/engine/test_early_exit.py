"""Early exit (adaptive thinking): when the controller probes and exits, and, on the real default
model through the transformers backend, that probes run on a side branch that never changes the
thinking.

The controller half needs no model: a scripted thinker plays the rounds and a scripted prober
answers the probes. The model half compares each run with the same greedy request without early
exit, token for token. SmolLM2 never thinks on its own, so "Wait" extensions make it think.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from m1.engine.controller import ProbeResult, RoundOutput, SampleController, join_prefix
from m1.engine.policy import BudgetPolicy, EarlyExit
from .test_hf_backend import QUESTIONS, assert_stream_marks_inserted_text, prompts_for


@dataclass
class Thinker:
    """A scripted model: `stops` are the thinking-token counts where it stops on its own,
    `breaks` those after which its text holds a blank line (a transition)."""

    stops: tuple[int, ...] = ()
    breaks: tuple[int, ...] = ()
    used: int = 0

    def round(self, max_new_tokens: int, pauses: tuple[str, ...]) -> RoundOutput:
        text, n = "", 0
        while n < max_new_tokens:
            if self.used in self.stops:  # once: after a "Wait" it goes on
                self.stops = tuple(s for s in self.stops if s != self.used)
                return RoundOutput(text, n, stopped=True)
            self.used, n = self.used + 1, n + 1
            if self.used in self.breaks:
                text += "so.\n\n"
                if "\n\n" in pauses:
                    return RoundOutput(text, n, stopped=False, paused=True)
            else:
                text += "x "
        return RoundOutput(text, n, stopped=False)


def run(policy: BudgetPolicy, thinker: Thinker, answers=lambda k: ("B", 0.5), choices=("A", "B", "C")):
    """Drive a controller to the end; `answers(k)` is the k-th probe's (answer, probability)."""
    controller = SampleController(policy, choices)
    steps = []
    while (step := controller.next_step()) is not None:
        steps.append(step)
        if step.phase == "probe":
            answer, probability = answers(sum(s.phase == "probe" for s in steps) - 1)
            read = "letters" if choices else "trial"
            controller.record_probe(ProbeResult(answer, probability, read, tokens=7, seconds=0.01,
                                                note="no logprobs" if probability is None else None))
        elif step.phase == "think":
            controller.record_round(thinker.round(step.max_new_tokens, step.pauses))
        else:
            controller.record_round(RoundOutput("B", 1, True))
    return controller.record("p"), steps


def probe_points(record) -> list[int]:
    return [probe["thinking_tokens"] for probe in record.probes]


@pytest.mark.parametrize(("every", "min_tokens", "min_thinking", "budget"),
                         [(16, 0, None, 64), (16, 20, None, 100), (7, 0, 30, 50), (64, 0, None, 64), (1, 3, None, 6)])
def test_probes_every_n_tokens_from_the_minimum_on_and_never_at_the_cap(every, min_tokens, min_thinking, budget):
    ee = {"every": every, "min_tokens": min_tokens, "transitions": []}
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=budget, min_thinking_tokens=min_thinking, early_exit=ee)
    record, steps = run(policy, Thinker())
    first = max(min_tokens, min_thinking or 0, 1)
    assert probe_points(record) == [t for t in range(first, budget) if t % every == 0]
    assert record.thinking_tokens == budget and record.thinking_end == "budget_reached"
    assert record.probe_tokens == 7 * len(record.probes)
    assert record.probe_seconds == pytest.approx(0.01 * len(record.probes))
    assert all(s.phase != "probe" or s.insert.endswith("Final Answer:") for s in steps)
    # The trace marks each probe where it read, between the thinking it saw and what came after.
    assert [kind for kind, _ in record.spans].count("probe") == len(record.probes)
    assert sum(length for _, length in record.spans) == len(record.thinking + record.reply)


def test_probe_step_is_the_forced_answer_on_a_side_branch():
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=40, early_exit={"every": 10, "probe_tokens": 5})
    controller = SampleController(policy, ("A", "B"))
    controller.record_round(RoundOutput("x " * 10, 10, stopped=False))
    step = controller.next_step()
    assert step.phase == "probe" and step.choices == ("A", "B") and step.max_new_tokens == 1
    assert step.insert == join_prefix(policy.think_start + "x " * 10, policy.answer_after_budget)
    with pytest.raises(RuntimeError, match="record_probe"):
        controller.record_round(RoundOutput("", 0, False))
    controller.record_probe(ProbeResult("A", 0.4, "letters", 7, 0.0))
    assert controller.next_step().phase == "think" and controller.thinking_text == "x " * 10
    with pytest.raises(RuntimeError, match="without a pending probe"):
        controller.record_probe(ProbeResult("A", 0.4, "letters", 7, 0.0))
    free_form = SampleController(policy)
    free_form.record_round(RoundOutput("x " * 10, 10, stopped=False))
    assert free_form.next_step().choices is None and free_form.next_step().max_new_tokens == 5


def test_transitions_pause_thinking_only_from_the_minimum_on():
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=60, early_exit={"every": None, "min_tokens": 10,
                                                                                "observe": True})
    record, steps = run(policy, Thinker(breaks=(4, 9, 13, 27, 41)))
    assert probe_points(record) == [13, 27, 41]
    thinks = [s for s in steps if s.phase == "think"]
    assert thinks[0].pauses == () and thinks[0].max_new_tokens == 10  # the minimum, then transitions count
    assert all(s.pauses == policy.transitions for s in thinks[1:])
    assert "\n\n" in policy.transitions and policy.extension_str in policy.transitions


@pytest.mark.parametrize(("threshold", "probabilities", "exit_at"),
                         [(0.9, [0.5, 0.89, 0.9, 0.99], 2), (0.3, [0.31], 0), (1.0, [0.99, 0.999], None),
                          (0.6, [0.2, 0.7], 1)])
def test_confidence_exits_at_the_first_probe_at_or_above_the_threshold(threshold, probabilities, exit_at):
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=8 * (len(probabilities) + 1),
                                      early_exit={"threshold": threshold, "every": 8})
    record, steps = run(policy, Thinker(), answers=lambda k: ("C", probabilities[k]))
    if exit_at is None:
        assert record.thinking_end == "budget_reached" and len(record.probes) == len(probabilities)
        return
    assert record.thinking_end == "early_exit" and len(record.probes) == exit_at + 1
    assert record.thinking_tokens == 8 * (exit_at + 1)
    assert steps[-1].phase == "answer" and steps[-1].insert == join_prefix(
        policy.think_start + record.thinking, policy.answer_after_budget)
    assert record.exit_rule == f"confidence >= {threshold:g}"


def test_a_confident_probe_without_an_answer_does_not_exit():
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=24, early_exit={"threshold": 0.5, "every": 8})
    record, _ = run(policy, Thinker(), answers=lambda k: (None, 0.9))
    assert record.thinking_end == "budget_reached" and len(record.probes) == 2


@pytest.mark.parametrize(("agree", "answers", "exit_at"),
                         [(2, "ABB", 2), (3, "ABBAAA", 5), (2, "ABCD", None), (2, "A--", None), (4, "CCCC", 3)])
def test_consistency_exits_when_the_last_probes_agree(agree, answers, exit_at):
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=8 * (len(answers) + 1),
                                      early_exit={"method": "consistency", "agree": agree, "every": 8})
    read = [None if a == "-" else a for a in answers]
    record, _ = run(policy, Thinker(), answers=lambda k: (read[k], 0.99))
    if exit_at is None:
        assert record.thinking_end == "budget_reached"
    else:
        assert record.thinking_end == "early_exit" and len(record.probes) == exit_at + 1


def test_observe_probes_but_never_exits():
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=40, num_extensions=1,
                                      early_exit={"every": 8, "threshold": 0.5, "observe": True})
    record, _ = run(policy, Thinker(stops=(20,)), answers=lambda k: ("A", 1.0))
    assert record.thinking_end == "budget_reached" and record.extensions_used == 1
    assert probe_points(record) == [8, 16, 20, 24, 32]  # the natural stop before "Wait" is probed too
    assert record.exit_rule.endswith("(observe only)")


def test_confidence_without_probabilities_falls_back_to_consistency():
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=64, early_exit={"every": 8, "threshold": 0.5})
    record, _ = run(policy, Thinker(), answers=lambda k: ("A", None), choices=None)
    assert record.thinking_end == "early_exit" and probe_points(record) == [8, 16]
    assert record.exit_rule.startswith("consistency of 2 probes") and "no logprobs" in record.exit_rule


def test_a_letter_read_without_letters_is_not_settled_and_keeps_the_rule():
    """Top logprobs that hold no option letter: the backend has probabilities, the answer is just unknown."""
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=32, early_exit={"every": 8, "threshold": 0.5})
    record, _ = run(policy, Thinker(), answers=lambda k: (None, None))
    assert record.thinking_end != "early_exit" and probe_points(record) == [8, 16, 24]
    assert record.exit_rule == "confidence >= 0.5"


def test_no_second_probe_where_nothing_was_thought_since_the_last():
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100, num_extensions=1,
                                      early_exit={"every": None, "threshold": 0.9})
    controller = SampleController(policy, ("A", "B"))
    controller.record_round(RoundOutput("x\n\n", 5, stopped=False, paused=True))
    assert controller.next_step().phase == "probe"
    controller.record_probe(ProbeResult("A", 0.5, "letters", 7, 0.0))
    controller.record_round(RoundOutput("", 0, stopped=True))  # a natural stop right after the transition
    assert controller.next_step().phase == "think" and controller.next_step().insert == "Wait"
    assert len(controller.record("p").probes) == 1 and controller.record("p").extensions_used == 1


@pytest.mark.parametrize(("settled", "extensions", "next_phase"), [(False, 1, "think"), (True, 0, "answer")])
def test_an_extension_counts_only_when_thinking_resumes_after_its_probe(settled, extensions, next_phase):
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100, num_extensions=2,
                                      early_exit={"every": None, "threshold": 0.9})
    controller = SampleController(policy, ("A", "B"))
    controller.record_round(RoundOutput("x " * 5, 5, stopped=True))
    assert controller.next_step().phase == "probe" and controller.record("p").extensions_used == 0
    controller.record_probe(ProbeResult("A", 0.95 if settled else 0.5, "letters", 7, 0.0))
    step = controller.next_step()
    assert step.phase == next_phase and controller.record("p").extensions_used == extensions
    if not settled:
        assert step.insert == policy.extension_str  # "x " ends in a space: no second separator
    else:
        assert controller.record("p").thinking_end == "early_exit"


def test_no_probe_below_the_minimum_even_at_a_natural_stop():
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=80, num_extensions=5, min_thinking_tokens=30,
                                      early_exit={"every": 16, "threshold": 0.01})
    record, _ = run(policy, Thinker(stops=(10, 25, 40)), answers=lambda k: ("A", 1.0))
    assert record.extensions_used == 2 and probe_points(record) == [32]
    assert record.thinking_end == "early_exit" and record.thinking_tokens == 32


@pytest.mark.parametrize(("early_exit", "field"), [({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"),
                                                   ({"every": 0}, "every"), ({"agree": 1}, "agree"),
                                                   ({"method": "vote"}, "method"), ({"every": None, "transitions": []}, "every"),
                                                   ({"probe_tokens": 0}, "probe_tokens"), ({"tresh": 0.9}, "tresh")])
def test_bad_early_exit_settings_name_the_field(early_exit, field):
    with pytest.raises(ValidationError, match=field):
        BudgetPolicy.from_preset("m1", early_exit=early_exit)


def test_early_exit_needs_a_preset_with_an_answer_prefix():
    with pytest.raises(ValidationError, match="early_exit.*answer_after_budget.*no-think"):
        BudgetPolicy.from_preset("no-think", early_exit={"method": "consistency"})


# ---------------------------------------------------------------------- on the real default model

LETTERS = [list(options) for _, options in QUESTIONS]
FORCED = {"max_thinking_tokens": 48, "num_extensions": 6, "max_answer_tokens": 6}


@pytest.fixture(scope="module")
def plain(smol_backend):
    """The same greedy requests without early exit: what every probed run must reproduce."""
    policy = BudgetPolicy.from_preset("m1", **FORCED)
    return smol_backend.generate(prompts_for(smol_backend, policy), policy)


def generate(backend, early_exit, choices=LETTERS, on_text=None, **overrides):
    policy = BudgetPolicy.from_preset("m1", **(FORCED | overrides), early_exit=early_exit)
    seen = []
    records = backend.generate(prompts_for(backend, policy), policy, choices=choices, on_text=on_text,
                               on_probe=lambda index, entry: seen.append((index, entry)))
    for index, record in enumerate(records):
        assert record.error is None
        assert [entry for i, entry in seen if i == index] == record.probes  # each shown as it happened
        check_trajectory(record, policy)
    return policy, records


def check_trajectory(record, policy: BudgetPolicy) -> None:
    points = probe_points(record)
    assert points == sorted(points) and all(policy.first_probe_at <= t < policy.max_thinking_tokens for t in points)
    assert record.thinking_tokens <= policy.max_thinking_tokens and len(record.thinking_ids) == record.thinking_tokens
    assert record.probe_tokens == sum(probe["tokens"] for probe in record.probes)
    assert record.probe_seconds == pytest.approx(sum(probe["seconds"] for probe in record.probes), abs=1e-3)
    for probe in record.probes:
        assert probe["tokens"] > 0 and probe["seconds"] >= 0
        assert probe["probability"] is None or 0.0 <= probe["probability"] <= 1.0 + 1e-6
        assert probe["outside"] is None or 0.0 <= probe["outside"] <= 1.0
    if record.thinking_end == "early_exit":
        assert record.thinking_tokens >= policy.first_probe_at
        assert record.reply.startswith(join_prefix(policy.think_start + record.thinking, policy.answer_after_budget))
        assert record.answer_end in {"stop", "length"}


@pytest.mark.slow
def test_observed_probes_never_change_the_thinking(smol_backend, plain):
    # After a forced "Wait" this model writes "Wait, what…" but no blank lines: "," is a transition it uses.
    policy, records = generate(smol_backend, {"every": 16, "observe": True, "transitions": ["\n\n", ","]})
    for base, record in zip(plain, records):
        assert record.thinking_ids == base.thinking_ids and record.answer_ids == base.answer_ids
        assert record.thinking_end == base.thinking_end and record.probes
        assert all(probe["read"] == "letters" and probe["outside"] is not None for probe in record.probes)
        assert record.probe_tokens > 0 and record.thinking_tokens == base.thinking_tokens
    # Transitions pause the thinking: some probes stand right after one, off the 16-token grid.
    decode = smol_backend.tokenizer.decode
    at_transitions = [t for record in records for t in probe_points(record)
                      if t % 16 and decode(record.thinking_ids[:t]).endswith(",")]
    assert at_transitions


def test_a_batch_mixing_letter_and_trial_probes_thinks_as_without_them(tiny_backend):
    """The tiny model never stops: probes on the 4-token grid, letters and trial answers side by side."""
    budget = {"max_thinking_tokens": 14, "max_answer_tokens": 3}
    plain_policy = BudgetPolicy.from_preset("m1", **budget)
    base = tiny_backend.generate(prompts_for(tiny_backend, plain_policy), plain_policy)
    mixed = [letters if index % 2 == 0 else None for index, letters in enumerate(LETTERS)]
    early_exit = {"every": 4, "observe": True, "probe_tokens": 3, "transitions": []}
    policy, records = generate(tiny_backend, early_exit, choices=mixed, **budget)
    tokenizer = tiny_backend.tokenizer
    for index, (plain_record, record) in enumerate(zip(base, records)):
        assert record.thinking_ids == plain_record.thinking_ids and record.answer_ids == plain_record.answer_ids
        assert [probe["read"] for probe in record.probes] == ["trial" if index % 2 else "letters"] * 3
        for probe in record.probes:  # the answer prefix after the thinking so far, then at most 3 trial tokens
            thinking = tokenizer.decode(record.thinking_ids[:probe["thinking_tokens"]])
            prefix = len(tokenizer.encode(join_prefix(policy.think_start + thinking, policy.answer_after_budget),
                                          add_special_tokens=False))
            assert probe["tokens"] - prefix in ({0} if probe["read"] == "letters" else {0, 1, 2, 3})
    size = tiny_backend.batch_size
    try:
        tiny_backend.batch_size = 1
        _, alone = generate(tiny_backend, early_exit, choices=mixed, **budget)
    finally:
        tiny_backend.batch_size = size
    numbers = ("seconds", "probability", "outside", "letters")
    strip = [[{k: v for k, v in probe.items() if k not in numbers} for probe in record.probes] for record in records]
    assert strip == [[{k: v for k, v in probe.items() if k not in numbers} for probe in record.probes]
                     for record in alone]
    for record, single in zip(records, alone):
        for probe, same in zip(record.probes, single.probes):
            assert probe["probability"] == pytest.approx(same["probability"], abs=1e-4)
            assert (probe["letters"] is None) == (same["letters"] is None) == (probe["read"] == "trial")
            if probe["letters"] is not None:  # every letter's share, summing to 1, the top one the answer's
                assert probe["letters"] == pytest.approx(same["letters"], abs=1e-4)
                assert sum(probe["letters"].values()) == pytest.approx(1.0)
                assert probe["letters"][probe["answer"]] == probe["probability"] == max(probe["letters"].values())


@pytest.mark.slow
@pytest.mark.parametrize(("early_exit", "choices", "read"),
                         [({"method": "consistency", "every": 16, "transitions": [], "min_tokens": 8}, LETTERS, "letters"),
                          ({"threshold": 0.05, "every": 12, "probe_tokens": 4, "min_tokens": 8}, None, "trial")])
def test_an_exit_keeps_the_thinking_up_to_it_token_for_token(smol_backend, plain, early_exit, choices, read):
    pieces = []
    policy, records = generate(smol_backend, early_exit, choices=choices, on_text=lambda *piece: pieces.append(piece))
    assert any(record.thinking_end == "early_exit" and record.thinking_tokens >= 8 for record in records)
    for base, record in zip(plain, records):
        assert record.thinking_ids == base.thinking_ids[:record.thinking_tokens]
        assert all(probe["read"] == read for probe in record.probes)
        if record.thinking_end != "early_exit":
            assert record.thinking_ids == base.thinking_ids and record.answer_ids == base.answer_ids
    assert_stream_marks_inserted_text(records, policy, pieces)  # no probe's text ever joins the stream


@pytest.mark.slow
def test_no_probe_and_no_exit_below_the_minimum_on_the_model(smol_backend):
    policy, records = generate(smol_backend, {"method": "consistency", "every": 8}, min_thinking_tokens=24)
    assert any(record.probes for record in records)
    for record in records:
        assert all(t >= 24 for t in probe_points(record))
        assert record.thinking_end == "extensions_spent" or record.thinking_tokens >= 24


def split_stop_policies(backend) -> tuple[list[str], BudgetPolicy, BudgetPolicy]:
    """Prompts, and a policy whose thinking ends on a multi-token stop string, without and with a
    probe after every token: probe points then fall inside the stop, the case a round boundary must
    not split. The stop is cut from what the model writes unforced, so it really occurs."""
    # The default model stops at once; after this extension it writes on.
    base = BudgetPolicy.from_preset("m1", max_thinking_tokens=16, max_answer_tokens=4, num_extensions=1,
                                    extension_str="Let me analyze each option.\n")
    prompts = prompts_for(backend, base)[:2]
    written = backend.generate(prompts, base)[0].thinking_ids
    encode = backend.tokenizer.encode
    stop = next(text for start in range(2, len(written) - 3)
                if len(encode(text := backend.tokenizer.decode(written[start:start + 3]), add_special_tokens=False)) > 1
                and text.strip())
    plain = base.model_copy(update={"think_stops": (*base.think_stops, stop)})
    probed = plain.model_copy(update={"early_exit": EarlyExit(every=1, observe=True, transitions=())})
    return prompts, plain, probed


def test_a_probe_point_inside_a_multi_token_stop_does_not_split_it(smol_backend) -> None:
    prompts, plain, probed = split_stop_policies(smol_backend)
    expected = smol_backend.generate(prompts, plain)
    assert expected[0].thinking_end == "extensions_spent"  # the stop did end the first prompt's thinking
    assert 0 < expected[0].thinking_tokens < plain.max_thinking_tokens
    for record, want in zip(smol_backend.generate(prompts, probed, choices=LETTERS[:len(prompts)]), expected):
        assert (record.thinking_ids, record.answer_ids, record.thinking_end) == \
            (want.thinking_ids, want.answer_ids, want.thinking_end)
        assert record.probes and all(p["thinking_tokens"] <= want.thinking_tokens for p in record.probes)


@pytest.mark.parametrize("text", ["x² + ü", "∆ pressure", "肺炎 pneumonia", "naïve 😷 mask"])
def test_rounds_cut_anywhere_rebuild_the_text_exactly(default_model_dir, text: str) -> None:
    """Probe points cut rounds at any token, also inside a character that spans two tokens."""
    from m1.engine.backends.base import decode_round, load_tokenizer

    tokenizer = load_tokenizer(str(default_model_dir))
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert any("\ufffd" in tokenizer.decode([token]) for token in ids)  # the case is really there
    for cut in range(1, len(ids)):
        first, held = decode_round(tokenizer, [], ids[:cut], final=False)
        second, held = decode_round(tokenizer, held, ids[cut:], final=True)
        assert first + second == text and not held


def test_transitions_inside_a_thinking_stop_are_refused() -> None:
    with pytest.raises(ValidationError, match="early_exit.transitions: '</' is part of the thinking stop"):
        BudgetPolicy.from_preset("think-tags", early_exit={"transitions": ["</"]})


@pytest.mark.parametrize(("generated", "stopped", "want"), [
    (["a", "b", "STOP"], True, (["a", "b"], True, False)),              # a stop inside the round
    (["a", "b", "c", "d", "STOP"], True, (["a", "b", "c", "d"], False, False)),  # it began at keep: next round's
    (["a", "b"], True, (["a", "b"], True, False)),                      # a server stripped the stop, inside the round
    (["a", "b", "c", "d", "e"], True, (["a", "b", "c", "d"], False, False)),  # ... stripped, in the lookahead
    (["a", "b", "c", "d", "e", "f"], False, (["a", "b", "c", "d"], False, False)),  # the lookahead cut back
])
def test_a_round_keeps_what_belongs_to_it(default_model_dir, generated, stopped, want) -> None:
    """`SampleRun.kept` on a round of keep 4 with a lookahead of 2, whatever the engine returned."""
    from m1.engine.backends.base import StopMatcher, load_tokenizer
    from m1.engine.controller import Step
    from m1.engine.rounds import Generated, RoundRequest, SampleRun

    tokenizer = load_tokenizer(str(default_model_dir))
    words = {"a": " one", "b": " two", "c": " three", "d": " four", "e": " five", "f": " six", "STOP": "<|im_end|>"}
    ids = {key: tokenizer.encode(text, add_special_tokens=False)[0] for key, text in words.items()}
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=64, early_exit={"every": 4})
    run = SampleRun(0, "prompt", policy, tokenizer=tokenizer, stops=StopMatcher(tokenizer), max_context=4096)
    step = Step("think", "", 4, policy.think_stops, lookahead=60)
    request = RoundRequest(0, step, [], "", 6, policy, 0, keep=4)
    kept, was_stopped, paused = run.kept(request, Generated([ids[g] for g in generated], stopped))
    assert (kept, was_stopped, paused) == ([ids[w] for w in want[0]], want[1], want[2])


class ScriptedEngine:
    """A round executor that hands back everything submitted, in submission order or reversed, so a
    speculative round can come back before or after the probe it was sent beside."""

    def __init__(self, tokenizer, reverse: bool, confident_from: int):
        self.word = tokenizer.encode(" word", add_special_tokens=False)[0]
        self.reverse, self.confident_from, self.queue = reverse, confident_from, []
        self.speculative = 0

    def submit(self, request) -> None:
        self.queue.append(request)
        self.speculative += request.speculative

    @property
    def pending(self) -> int:
        return len(self.queue)

    def wait(self):
        from m1.engine.rounds import Generated

        batch, self.queue = self.queue, []
        results = []
        for request in batch:
            if request.is_probe:
                thought = len(request.context)
                settled = thought >= self.confident_from
                results.append((request, ProbeResult("A", 0.99 if settled else 0.4, "letters", request.inserted, 0.0)))
            else:
                results.append((request, Generated([self.word] * request.keep, False)))
        return results[::-1] if self.reverse else results


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("observe", [False, True])
def test_a_speculative_round_beside_each_probe_changes_no_record(default_model_dir, reverse, observe) -> None:
    from m1.engine.backends.base import StopMatcher, load_tokenizer
    from m1.engine.rounds import drive, start_runs

    tokenizer = load_tokenizer(str(default_model_dir))
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=40, max_answer_tokens=3,
                                      early_exit={"every": 8, "transitions": (), "observe": observe})
    prompt = "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n<|im_start|>think\n"
    start = len(tokenizer.encode(prompt, add_special_tokens=False))
    options = dict(tokenizer=tokenizer, stops=StopMatcher(tokenizer), max_context=4096, choices=[("A", "B")])
    engine = ScriptedEngine(tokenizer, reverse, start + 24)
    [record] = drive(start_runs([prompt], policy, **options), engine)
    assert engine.speculative == len(record.probes)  # every probe went in with the round after it
    assert [probe["thinking_tokens"] for probe in record.probes] == ([8, 16, 24, 32] if observe else [8, 16, 24])
    if observe:
        assert (record.thinking_tokens, record.thinking_end) == (40, "budget_reached")
    else:  # the round sent beside the settling probe was dropped: thinking ends at the probe
        assert (record.thinking_tokens, record.thinking_end) == (24, "early_exit")
    assert record.thinking_ids == [tokenizer.encode(" word", add_special_tokens=False)[0]] * record.thinking_tokens
    assert record.answer_tokens == 3 and record.error is None
