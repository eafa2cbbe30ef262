"""Display segments of a prediction row: the controller's own records (driven with scripted rounds
and probes) become thinking and reply segments that mark what was inserted, where each probe read
and where early exit ended thinking (also over randomly drawn policies and rounds); rows without
usable spans, or with probe entries that are not objects, are shown unmarked or unread, saying why."""

from __future__ import annotations

import random

from m1.engine.controller import GenerationRecord, ProbeResult, RoundOutput, SampleController
from m1.engine.policy import PRESETS, BudgetPolicy, EarlyExit
from m1.evaluation.trace import Segment, probability, segments, trace_note


def record_of(policy: BudgetPolicy, script: list) -> GenerationRecord:
    """Run the controller on a script: (text, tokens, stopped) rounds and (answer, probability) probes."""
    controller = SampleController(policy, choices=("A", "B", "C"))
    for entry in script:
        step = controller.next_step()
        assert step is not None, "the controller finished before the script did"
        if step.phase == "probe":
            answer, probability = entry
            controller.record_probe(ProbeResult(answer, probability, "letters", 3, 0.01, letters={answer: probability}))
        else:
            text, tokens, stopped = entry
            controller.record_round(RoundOutput(text, min(tokens, step.max_new_tokens), stopped))
    assert controller.done
    return controller.record("prompt")


def row_of(record: GenerationRecord) -> dict:
    row = {"thinking": record.thinking, "reply": record.reply, "thinking_end": record.thinking_end,
           "spans": record.spans}
    return row | ({"probes": record.probes} if record.probes is not None else {})


def kinds(found: list[Segment]) -> list[tuple[str, str, str]]:
    return [(s.part, s.kind, s.text) for s in found]


def test_waits_and_the_answer_prefix_are_inserted_text_in_their_parts() -> None:
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=50, num_extensions=1)
    row = row_of(record_of(policy, [("It is B.", 4, True), ("Hmm, C.", 4, True), ("\nC. Heart", 3, True)]))
    assert trace_note(row) is None
    assert kinds(segments(row)) == [("thinking", "generated", "It is B."), ("thinking", "inserted", " Wait"),
                                    ("thinking", "generated", "Hmm, C."), ("reply", "inserted", "</think>\n\n"),
                                    ("reply", "generated", "\nC. Heart")]
    assert "".join(s.text for s in segments(row)) == row["thinking"] + row["reply"]


def test_probes_carry_their_entries_and_the_exit_ends_the_thinking() -> None:
    early = EarlyExit(method="confidence", threshold=0.9, every=4)
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=40, early_exit=early)
    record = record_of(policy, [("one two ", 4, False), ("A", 0.5), ("three four", 4, False), ("C", 0.95),
                                (" C", 1, True)])
    assert record.thinking_end == "early_exit"
    found = segments(row_of(record))
    assert [(s.part, s.kind) for s in found] == [
        ("thinking", "generated"), ("thinking", "probe"), ("thinking", "generated"), ("thinking", "probe"),
        ("thinking", "exit"), ("reply", "inserted"), ("reply", "generated")]
    probes = [s for s in found if s.kind == "probe"]
    assert [(s.number, s.probe["answer"], s.probe["probability"]) for s in probes] == [(0, "A", 0.5), (1, "C", 0.95)]
    assert found[5].text == "\n<|im_start|>answer\nFinal Answer:"
    assert found[1].to_dict()["probe"]["thinking_tokens"] == 4


def test_a_span_across_the_end_of_the_thinking_is_cut_there() -> None:
    row = {"thinking": "abc", "reply": "de", "spans": [["generated", 5]]}
    assert kinds(segments(row)) == [("thinking", "generated", "abc"), ("reply", "generated", "de")]


def test_rows_without_usable_spans_are_unmarked_and_say_why() -> None:
    old = {"thinking": "abc", "reply": "de", "thinking_end": "early_exit"}
    assert "predates traces" in trace_note(old)
    assert kinds(segments(old)) == [("thinking", "unmarked", "abc"), ("thinking", "exit", ""),
                                    ("reply", "unmarked", "de")]
    failed = {"thinking": "", "reply": "", "error": "prompt too long", "spans": [["generated", 7]]}
    assert "cover 7 characters and its text has 0" in trace_note(failed) and segments(failed) == []
    for spans in ([["typed", 5]], [["generated", -1], ["generated", 6]], [["probe", 2], ["generated", 3]],
                  [["generated", True]], "generated", [["generated"]]):
        row = {"thinking": "abc", "reply": "de", "spans": spans}
        assert "malformed" in trace_note(row), spans
        assert [s.kind for s in segments(row)] == ["unmarked", "unmarked"]


def test_a_probe_mark_without_an_entry_has_none() -> None:
    row = {"thinking": "ab", "reply": "", "spans": [["generated", 2], ["probe", 0]], "probes": []}
    assert segments(row)[-1] == Segment("probe", "thinking", "", None, 0)


def test_probe_entries_that_are_not_objects_are_malformed() -> None:
    spans = [["generated", 2], ["probe", 0], ["probe", 0]]
    for probes in ([1, "A"], "AB", {"answer": "A"}, 3):
        found = segments({"thinking": "ab", "reply": "", "spans": spans, "probes": probes})
        assert [(s.probe, s.number) for s in found[1:]] == [(None, 0), (None, 1)], probes
        assert [s.to_dict()["probe"] for s in found[1:]] == [None, None]
    found = segments({"thinking": "ab", "reply": "", "spans": spans, "probes": [[1], {"answer": "B"}]})
    assert [s.probe for s in found[1:]] == [None, {"answer": "B"}]


def test_a_probability_is_shown_only_when_it_is_a_number() -> None:
    assert [probability({"probability": value}) for value in (0.25, 1, "high", "0.5", True, None, [0.5],
                                                              float("nan"), float("inf"))] == [
        0.25, 1.0, None, None, None, None, None, None, None]
    assert probability(None) is None and probability({}) is None


def random_policy(draw: random.Random) -> BudgetPolicy | None:
    """A preset with budgets, Waits, early exit and a total cap drawn at random (None: a mix the
    policy refuses)."""
    preset = draw.choice(sorted(PRESETS))
    options: dict = {}
    if PRESETS[preset].get("thinking", True) is not False:
        options = {"max_thinking_tokens": draw.choice([4, 8, 20, 50]), "num_extensions": draw.choice([0, 1, 2])}
        if draw.random() < 0.5:
            options["early_exit"] = EarlyExit(every=draw.choice([None, 3, 5]), threshold=draw.choice([0.5, 0.9]),
                                              method=draw.choice(["confidence", "consistency"]),
                                              observe=draw.random() < 0.2, transitions=None)
        if draw.random() < 0.2:
            options["max_total_tokens"] = draw.choice([10, 30])
    try:
        return BudgetPolicy.from_preset(preset, **options)
    except ValueError:
        return None


def test_drawn_generations_are_covered_by_their_segments() -> None:
    """Whatever the controller did, the segments are the row's text in order, one probe mark per
    entry, and the inserted text is what the controller inserted."""
    draw, checked = random.Random(16), 0
    while checked < 300:
        policy = random_policy(draw)
        if policy is None:
            continue
        controller = SampleController(policy, ("A", "B", "C", "D") if draw.random() < 0.7 else None)
        inserted = ""
        while (step := controller.next_step()) is not None:
            if step.phase == "probe":
                controller.record_probe(ProbeResult(draw.choice("AB"), draw.random(), "letters", 1, 0.0))
                continue
            inserted += step.insert or ""
            n = draw.randint(0, step.max_new_tokens)
            text = " ".join(draw.choice(["x", "y\n", "Wait", "z"]) for _ in range(n))
            stopped = draw.random() < 0.4 or (n < step.max_new_tokens and draw.random() < 0.5)
            controller.record_round(RoundOutput(text, n, stopped))
        row = row_of(controller.record("p"))
        assert trace_note(row) is None, row
        found = segments(row)
        assert "".join(s.text for s in found) == row["thinking"] + row["reply"]
        assert [s.probe for s in found if s.kind == "probe"] == (row.get("probes") or [])
        assert "".join(s.text for s in found if s.kind == "inserted") == inserted
        checked += 1
