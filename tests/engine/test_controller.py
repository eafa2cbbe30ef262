"""Budget semantics pinned on the controller alone (no model): every backend inherits them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from m1.engine.controller import RoundOutput, SampleController, join_extension, join_prefix
from m1.engine.policy import BudgetPolicy


def drive(policy: BudgetPolicy, rounds: list[tuple[str, int, bool]]) -> tuple[SampleController, list]:
    """Feed scripted round outputs; return the controller and the steps it asked for."""
    controller = SampleController(policy)
    steps = []
    for text, n_tokens, stopped in rounds:
        step = controller.next_step()
        assert step is not None, "controller finished before the script did"
        steps.append(step)
        controller.record_round(RoundOutput(text, min(n_tokens, step.max_new_tokens), stopped), inserted_tokens=len(step.insert.split()))
    return controller, steps


def test_natural_stop_without_forcing() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100)
    controller, steps = drive(policy, [("I think it is B.\n", 6, True), ("\nAnswer: B", 4, True)])
    record = controller.record("p")
    assert [s.phase for s in steps] == ["think", "answer"]
    assert steps[0].max_new_tokens == 100 and steps[0].stops == ("<|im_start|>", "<|im_end|>")
    assert steps[1].insert == "<|im_start|>answer"
    assert record.thinking_end == "natural_stop"
    assert (record.thinking_tokens, record.answer_tokens, record.extensions_used) == (6, 4, 0)
    assert record.reply == "<|im_start|>answer\nAnswer: B"
    assert controller.done and controller.next_step() is None


def test_budget_hit_forces_final_answer_prefix() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=8)
    controller, steps = drive(policy, [("one two three four five six seven eight", 8, False), (" C", 1, True)])
    record = controller.record("p")
    assert record.thinking_end == "budget_reached"
    assert steps[1].insert == "\n<|im_start|>answer\nFinal Answer:"
    assert record.thinking_tokens == 8


def test_budget_prefix_adds_no_second_newline() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=4)
    _, steps = drive(policy, [("a b c\n", 4, False), ("C", 1, True)])
    assert steps[1].insert == "<|im_start|>answer\nFinal Answer:"


def test_each_wait_round_gets_only_what_is_left_of_its_own_budget() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=20, num_extensions=2)
    controller, steps = drive(policy, [("first", 7, True), ("second", 5, True), ("third", 3, True), ("B", 1, True)])
    assert [s.max_new_tokens for s in steps[:3]] == [20, 13, 8]
    assert [s.insert for s in steps[:3]] == ["", " Wait", " Wait"]
    record = controller.record("p")
    assert record.extensions_used == 2
    assert record.thinking_end == "extensions_spent"
    assert record.thinking_tokens == 15
    assert record.thinking == "first Waitsecond Waitthird"


def test_wait_round_that_hits_budget_ends_thinking() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=10, num_extensions=5)
    controller, steps = drive(policy, [("a", 4, True), ("b c d e f g", 6, False), ("B", 1, True)])
    record = controller.record("p")
    assert record.thinking_end == "budget_reached" and record.extensions_used == 1
    assert record.thinking_tokens == 10
    assert steps[-1].phase == "answer"


def test_minimum_thinking_extends_until_reached() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100, num_extensions=5, min_thinking_tokens=10)
    controller, _ = drive(policy, [("a", 4, True), ("b", 4, True), ("c", 4, True), ("B", 1, True)])
    record = controller.record("p")
    assert record.extensions_used == 2  # 4 -> 8 -> 12 >= 10
    assert record.thinking_end == "natural_stop"


def test_minimum_not_reached_when_extensions_run_out() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100, num_extensions=1, min_thinking_tokens=50)
    controller, _ = drive(policy, [("a", 1, True), ("b", 1, True), ("B", 1, True)])
    record = controller.record("p")
    assert record.extensions_used == 1 and record.thinking_end == "extensions_spent"


def test_immediate_stop_like_the_default_model() -> None:
    # SmolLM2 ends its thinking at once; the prompt's marker ends in a newline, so "Wait" needs no space.
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=50, num_extensions=1)
    controller, steps = drive(policy, [("", 0, True), ("Hmm.", 2, True), ("B", 1, True)])
    assert steps[1].insert == "Wait"
    assert controller.record("p").thinking == "WaitHmm."


@pytest.mark.parametrize(
    ("text", "expected"),
    [("the answer is B", " Wait"), ("the answer is B.", " Wait"), ("so ", "Wait"), ("so\n", "Wait"),
     ("done\n\n", "Wait"), ("", " Wait"), ("(B)", " Wait"), ("x\t", "Wait")],
)
def test_exactly_one_separator_before_wait(text: str, expected: str) -> None:
    inserted = join_extension(text, "Wait")
    assert inserted == expected
    joined = text + inserted
    before = joined[: -len("Wait")]
    assert before == text or before == text + " "
    assert not (text and text[-1].isspace() and inserted.startswith(" "))


def test_prefix_joining() -> None:
    assert join_prefix("abc", "\nX") == "\nX"
    assert join_prefix("abc\n", "\nX") == "X"
    assert join_prefix("abc", "X") == "X"


def test_no_think_preset_answers_directly() -> None:
    policy = BudgetPolicy.from_preset("no-think", max_answer_tokens=30)
    controller, steps = drive(policy, [("The answer is C.", 5, True)])
    record = controller.record("p")
    assert steps[0].phase == "answer" and steps[0].max_new_tokens == 30
    assert record.thinking_end == "no_thinking" and record.reply == "The answer is C."


def test_think_tags_preset_markers() -> None:
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=10)
    _, steps = drive(policy, [("hmm", 2, True), ("B", 1, True)])
    assert steps[0].stops == ("</think>",)
    assert steps[1].insert == "</think>\n\n"


def test_backend_overshoot_is_refused() -> None:
    controller = SampleController(BudgetPolicy.from_preset("m1", max_thinking_tokens=5))
    with pytest.raises(RuntimeError, match="allowed 5"):
        controller.record_round(RoundOutput("x", 6, False))


def test_failed_sample_reports_error() -> None:
    controller = SampleController(BudgetPolicy())
    controller.fail("prompt too long")
    assert controller.done and controller.record("p").error == "prompt too long"


@pytest.mark.parametrize(
    "bad",
    [{"max_thinking_tokens": 0}, {"max_thinking_tokens": -5}, {"num_extensions": -1}, {"max_answer_tokens": 0},
     {"min_thinking_tokens": 200, "max_thinking_tokens": 100}, {"extension_str": ""}, {"unknown_key": 1}],
)
def test_bad_policy_values_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        BudgetPolicy.from_preset("m1", **bad)


def test_unknown_preset_names_choices() -> None:
    with pytest.raises(ValueError, match="m1, think-tags, no-think"):
        BudgetPolicy.from_preset("s1")


def test_a_temperature_below_the_greedy_threshold_is_greedy() -> None:
    from m1.engine.policy import GREEDY_BELOW, Sampling

    assert Sampling(temperature=5e-324).temperature == Sampling(temperature=GREEDY_BELOW / 2).temperature == 0.0
    assert Sampling(temperature=GREEDY_BELOW).temperature == GREEDY_BELOW


# max_total_tokens: thinking + answer together (OpenAI's max_completion_tokens, Anthropic's max_tokens).


def test_total_cap_ends_thinking_before_the_thinking_budget() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=50, max_answer_tokens=40, max_total_tokens=30)
    controller, steps = drive(policy, [("long thought", 30, False)])
    record = controller.record("p")
    assert steps[0].max_new_tokens == 30
    assert record.thinking_end == "budget_reached"
    assert (record.answer_tokens, record.answer_end, record.answer, record.reply) == (0, "length", "", "")
    assert controller.done and controller.next_step() is None


@pytest.mark.parametrize(("thought", "room"), [(6, 14), (12, 8), (19, 1)])
def test_the_answer_gets_what_thinking_left_of_the_total(thought: int, room: int) -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100, max_answer_tokens=16, max_total_tokens=20)
    controller, steps = drive(policy, [("t", thought, True), ("B", 1, True)])
    assert steps[1].max_new_tokens == min(16, room)
    assert controller.record("p").answer_tokens == 1


def test_wait_rounds_share_the_total_cap() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100, num_extensions=3, max_total_tokens=12)
    _, steps = drive(policy, [("a", 5, True), ("b", 5, True), ("c", 2, False)])
    assert [s.max_new_tokens for s in steps] == [12, 7, 2]


def test_no_think_answer_is_capped_by_the_total() -> None:
    policy = BudgetPolicy.from_preset("no-think", max_answer_tokens=64, max_total_tokens=10)
    assert SampleController(policy).next_step().max_new_tokens == 10


def test_a_minimum_above_the_total_cap_is_refused() -> None:
    with pytest.raises(ValidationError, match="min_thinking_tokens \\(40\\) exceeds max_total_tokens \\(30\\)"):
        BudgetPolicy.from_preset("m1", min_thinking_tokens=40, max_total_tokens=30)


def spans_text(record, kind: str) -> list[str]:
    """The pieces of `thinking + reply` that `record.spans` marks as `kind`."""
    text, position, pieces = record.thinking + record.reply, 0, []
    for span_kind, length in record.spans:
        if span_kind == kind:
            pieces.append(text[position:position + length])
        position += length
    return pieces


def test_spans_cover_every_character_and_mark_what_was_inserted() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=20, num_extensions=2)
    controller, _ = drive(policy, [("first", 7, True), ("second", 5, True), ("third", 3, True), (" B", 1, True)])
    record = controller.record("p")
    assert sum(length for _, length in record.spans) == len(record.thinking + record.reply)
    assert spans_text(record, "inserted") == [" Wait", " Wait", "<|im_start|>answer"]
    assert spans_text(record, "generated") == ["first", "second", "third", " B"]
    assert [kind for kind, _ in record.spans] == ["generated", "inserted"] * 3 + ["generated"]


def test_spans_of_a_no_think_answer_and_an_answer_cut_by_the_total_cap() -> None:
    controller, _ = drive(BudgetPolicy.from_preset("no-think"), [("B", 1, True)])
    assert controller.record("p").spans == [["generated", 1]]
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=100, max_total_tokens=5)
    controller, _ = drive(policy, [("a b c d e", 5, False)])
    record = controller.record("p")
    assert record.reply == "" and record.spans == [["generated", len("a b c d e")]]
