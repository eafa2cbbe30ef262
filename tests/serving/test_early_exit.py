"""Early exit through `m1 serve`: the request's `early_exit` object and `thinking_budget: "auto"` →
the policy and probe choices, bad settings → a 400 naming the field, `usage.m1`'s account of the
probes, probe chunks that OpenAI clients read past, `--early-exit`; and one end-to-end request
stream through the official `openai` client against the shared server (real default model).

    PYTHONPATH=src .venv/bin/python -m pytest tests/serving/test_early_exit.py -q
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from m1.data.errors import DataError
from m1.engine.controller import ProbeResult, RoundOutput, SampleController
from m1.engine.policy import BudgetPolicy, EarlyExit
from m1.serving.app import create_app
from m1.serving.command import read_early_exit
from m1.engine.wire.errors import APIError
from m1.engine.wire.protocol import ChatRequest, CompletionRequest, EarlyExitRequest, Limits, Plan, build_policy, parse
from m1.engine.wire.responses import chunk, usage

from .conftest import MODEL, SERVER_EARLY_EXIT

LIMITS = Limits(max_context=4096, max_thinking_tokens=4096)
SERVER_DEFAULT = EarlyExit(method="consistency", agree=3, every=32)
WITH_DEFAULT = replace(LIMITS, default_early_exit=SERVER_DEFAULT)
MESSAGES = [{"role": "user", "content": "Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C"}]


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from m1.engine.backends.base import load_tokenizer

    return load_tokenizer(str(default_model_dir))


def plan_for(tokenizer, fields: dict, *, limits: Limits = LIMITS, chat: bool = True) -> Plan:
    body = {"model": "m", **({"messages": MESSAGES} if chat else {"prompt": "x"}), **fields}
    return build_policy(parse(ChatRequest if chat else CompletionRequest, body), limits, tokenizer, chat=chat)


def test_the_request_object_carries_every_early_exit_field() -> None:
    assert set(EarlyExitRequest.model_fields) == set(EarlyExit.model_fields) | {"choices"}


@pytest.mark.parametrize("settings", [
    {},
    {"method": "confidence", "threshold": 0.8, "every": 16, "min_tokens": 32, "probe_tokens": 8},
    {"method": "consistency", "agree": 3, "every": None, "transitions": ["Wait", "\n\n"], "observe": True},
    {"threshold": 1, "transitions": []},
])
def test_early_exit_fields_map_onto_the_policy(tokenizer, settings: dict) -> None:
    plan = plan_for(tokenizer, {"thinking_budget": 256, "max_tokens": 16, "early_exit": settings})
    assert plan.policy.early_exit == EarlyExit(**settings) and plan.policy.max_thinking_tokens == 256
    assert plan.choices is None  # free-form trial answers


def test_choices_go_to_the_probes_and_their_one_step_needs_no_answer_room(tokenizer) -> None:
    letters = ["A", "B", "C", "D", "E"]
    plan = plan_for(tokenizer, {"max_tokens": 4, "early_exit": {"choices": letters, "probe_tokens": 64}})
    assert plan.choices == tuple(letters) and plan.policy.early_exit == EarlyExit(probe_tokens=64)


def test_auto_is_the_server_default_with_the_request_fields_over_it(tokenizer) -> None:
    plan = plan_for(tokenizer, {"thinking_budget": "auto"}, limits=WITH_DEFAULT)
    assert plan.policy.early_exit == SERVER_DEFAULT
    assert plan.policy.max_thinking_tokens == min(BudgetPolicy().max_thinking_tokens, LIMITS.max_thinking_tokens)
    plan = plan_for(tokenizer, {"thinking_budget": "auto", "early_exit": {"agree": 2, "choices": ["A", "B"]}},
                    limits=WITH_DEFAULT)
    assert plan.policy.early_exit == SERVER_DEFAULT.model_copy(update={"agree": 2}) and plan.choices == ("A", "B")
    completion = plan_for(tokenizer, {"thinking_budget": "auto"}, limits=WITH_DEFAULT, chat=False)
    assert completion.preset == LIMITS.default_preset and completion.policy.early_exit == SERVER_DEFAULT


def test_a_default_trial_answer_length_shrinks_to_the_answer_budget(tokenizer) -> None:
    default = EarlyExit.model_fields["probe_tokens"].default
    for max_tokens in (1, default - 1, default, default + 5):
        for fields, limits in (({"early_exit": {}}, LIMITS), ({"thinking_budget": "auto"}, WITH_DEFAULT)):
            plan = plan_for(tokenizer, {"max_tokens": max_tokens, **fields}, limits=limits)
            assert plan.policy.early_exit.probe_tokens == min(default, max_tokens)


def test_an_early_exit_object_alone_makes_a_completion_think(tokenizer) -> None:
    plan = plan_for(tokenizer, {"early_exit": {"every": 8}}, chat=False)
    assert plan.preset == LIMITS.default_preset and plan.policy.thinking and plan.policy.early_exit.every == 8


def test_auto_without_a_server_default_says_how_to_configure_it(tokenizer) -> None:
    with pytest.raises(APIError) as caught:
        plan_for(tokenizer, {"thinking_budget": "auto"})
    assert caught.value.status == 400 and caught.value.param == "thinking_budget"
    assert "--early-exit" in caught.value.message


BAD = [
    # (request fields, the field the 400 names)
    ({"early_exit": {"threshold": 0}}, "early_exit.threshold"),
    ({"early_exit": {"threshold": 1.5}}, "early_exit.threshold"),
    ({"early_exit": {"threshold": "0.9"}}, "early_exit.threshold"),
    ({"early_exit": {"threshold": None}}, "early_exit.threshold"),
    ({"early_exit": {"method": "vote"}}, "early_exit.method"),
    ({"early_exit": {"agree": 1}}, "early_exit.agree"),
    ({"early_exit": {"every": 0}}, "early_exit.every"),
    ({"early_exit": {"every": 8.0}}, "early_exit.every"),
    ({"early_exit": {"every": None, "transitions": []}}, "early_exit"),
    ({"early_exit": {"transitions": [""]}}, "early_exit.transitions"),
    ({"early_exit": {"transitions": ["x"] * 9}}, "early_exit.transitions"),
    ({"early_exit": {"transitions": "Wait"}}, "early_exit.transitions"),
    ({"early_exit": {"min_tokens": -1}}, "early_exit.min_tokens"),
    ({"early_exit": {"min_tokens": 257}}, "early_exit.min_tokens"),  # above the thinking budget of 256
    ({"early_exit": {"probe_tokens": 0}}, "early_exit.probe_tokens"),
    ({"early_exit": {"probe_tokens": 17}}, "early_exit.probe_tokens"),  # above max_tokens 16
    ({"early_exit": {"observe": 1}}, "early_exit.observe"),
    ({"early_exit": {"choice": ["A", "B"]}}, "early_exit.choice"),
    ({"early_exit": {"choices": ["A"]}}, "early_exit.choices"),
    ({"early_exit": {"choices": []}}, "early_exit.choices"),
    ({"early_exit": {"choices": ["A", "B", "A"]}}, "early_exit.choices"),
    ({"early_exit": {"choices": ["A", "Vitamin C"]}}, "early_exit.choices"),  # not one token
    ({"early_exit": {"choices": "AB"}}, "early_exit.choices"),
    ({"early_exit": ["confidence"]}, "early_exit"),
    ({"early_exit": {}, "budget_preset": "no-think", "thinking_budget": None}, "early_exit"),  # no answer prefix
    ({"thinking_budget": "Auto"}, "thinking_budget"),
    ({"early_exit": {}, "stream_probes": True}, "stream_probes"),  # not streaming
    ({"stream": True, "stream_probes": True}, "stream_probes"),  # no early exit
    ({"stream_probes": "yes"}, "stream_probes"),
]


@pytest.mark.parametrize(("fields", "param"), BAD, ids=[param + "-" + json.dumps(f)[:40] for f, param in BAD])
def test_bad_early_exit_settings_are_a_400_naming_the_field(tokenizer, fields: dict, param: str) -> None:
    with pytest.raises(APIError) as caught:
        plan_for(tokenizer, {"thinking_budget": 256, "max_tokens": 16, **fields}, limits=WITH_DEFAULT)
    assert caught.value.status == 400 and caught.value.param == param
    assert param.rsplit(".", 1)[-1] in caught.value.message


def record_of(policy: BudgetPolicy, probabilities: list[float]):
    """Drive the engine's controller as a backend would: think rounds of what it asks for, and
    letter probes that read `probabilities` in turn (the rest: 0.5)."""
    controller = SampleController(policy, ("A", "B"))
    read = iter(probabilities)
    while (step := controller.next_step()) is not None:
        if step.phase == "probe":
            controller.record_probe(ProbeResult("B", next(read, 0.5), "letters", tokens=3, seconds=0.01))
        elif step.phase == "think":
            controller.record_round(RoundOutput("x " * step.max_new_tokens, step.max_new_tokens, False))
        else:
            controller.record_round(RoundOutput("B", 1, True))
    return controller.record("prompt")


@pytest.mark.parametrize("probabilities", [[0.6, 0.95], [0.99], [0.6, 0.7, 0.8], []])
def test_usage_reports_the_probes_and_the_budget_left_at_exit(probabilities: list[float]) -> None:
    budget, every, threshold = 64, 16, 0.9
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=budget,
                                      early_exit={"every": every, "threshold": threshold})
    record = record_of(policy, probabilities)
    block = usage([record], 10, policy, "m1")
    m1 = block["m1"]
    settled = next((i for i, p in enumerate(probabilities) if p >= threshold), None)
    probes = settled + 1 if settled is not None else budget // every - 1  # none at B: thinking is over
    assert m1["probes"] == len(m1["trajectory"]) == probes
    assert [entry["thinking_tokens"] for entry in m1["trajectory"]] == [every * (i + 1) for i in range(probes)]
    assert m1["probe_tokens"] == 3 * probes and m1["probe_seconds"] == pytest.approx(0.01 * probes)
    assert m1["thinking_end"] == ("early_exit" if settled is not None else "budget_reached")
    assert m1["tokens_saved"] == (budget - every * probes if settled is not None else 0)
    assert m1["exit_rule"] == f"confidence >= {threshold:g}"
    # Probes are not generated output: completion_tokens is still thinking + answer.
    assert block["completion_tokens"] == m1["thinking_tokens"] + m1["answer_tokens"]


def test_usage_without_early_exit_has_no_probes() -> None:
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=32)
    m1 = usage([record_of(policy, [])], 10, policy, "m1")["m1"]
    assert (m1["probes"], m1["probe_tokens"], m1["tokens_saved"], m1["exit_rule"], m1["trajectory"]) == (
        0, 0, 0, None, None)


def test_a_probe_chunk_is_an_openai_chunk_with_an_empty_delta() -> None:
    from openai.types.chat import ChatCompletionChunk

    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=32, early_exit={"every": 16})
    entry = record_of(policy, [0.3]).probes[0]
    body = json.loads(json.dumps(chunk("chatcmpl-1", MODEL, chat=True, m1={"probe": entry})))
    parsed = ChatCompletionChunk.model_validate(body)  # the client's own type, validated strictly
    assert parsed.choices[0].delta.content is None and parsed.choices[0].finish_reason is None
    assert parsed.model_extra["m1"]["probe"] == entry
    completion = chunk("cmpl-1", MODEL, chat=False, m1={"probe": entry})
    assert completion["choices"][0]["text"] == "" and completion["m1"]["probe"] == entry


def test_early_exit_option_reads_json_or_a_file(tmp_path) -> None:
    settings = {"method": "consistency", "agree": 3, "every": 32, "transitions": ["Wait"]}
    assert read_early_exit(json.dumps(settings)) == EarlyExit(**settings)
    path = tmp_path / "early_exit.yaml"
    path.write_text("method: consistency\nagree: 3\nevery: 32\ntransitions: [Wait]\n")
    assert read_early_exit(str(path)) == EarlyExit(**settings)


@pytest.mark.parametrize(("value", "says"), [
    ('{"method": "confidence",}', "not a JSON object"),
    ('{"choices": ["A", "B"]}', "unknown key 'choices'"),
    ('{"threshold": 2}', "threshold"),
    ("no/such/early_exit.yaml", "not found"),
])
def test_a_bad_early_exit_option_names_the_option_and_key(value: str, says: str) -> None:
    with pytest.raises(DataError) as caught:
        read_early_exit(value)
    assert says in str(caught.value) and ("--early-exit" in str(caught.value) or value in str(caught.value))


def test_a_default_early_exit_needs_a_preset_it_can_probe() -> None:
    with pytest.raises(ValueError, match="forced-answer prefix"):
        create_app(None, served_model=MODEL, default_preset="no-think", early_exit=EarlyExit())


@pytest.mark.slow
def test_probes_stream_live_and_add_up_to_usage(client) -> None:
    """One request on the real default model: `auto` (the shared server's `--early-exit`, a
    confidence of 0.5 over two letters, which the first probe always reaches) with the prompt's
    letters, probes streamed; the same request unstreamed; and observe mode, whose probes must not
    change the thinking or the answer."""
    extra = {"thinking_budget": "auto", "num_extensions": 2, "early_exit": {"choices": ["A", "B"]}}
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 8}
    streamed, reasoning, content, last = [], "", "", None
    for piece in client.chat.completions.create(stream=True, extra_body={**extra, "stream_probes": True}, **kwargs):
        if (piece.model_extra or {}).get("m1"):
            assert piece.choices[0].delta.content is None  # a client that reads only the text reads past it
            streamed.append(piece.model_extra["m1"]["probe"])
        elif piece.choices:
            reasoning += (piece.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
            content += piece.choices[0].delta.content or ""
            last = piece
    m1 = last.usage.model_extra["m1"]
    assert streamed == m1["trajectory"] and m1["probes"] == len(streamed) == 1
    probe = streamed[0]
    assert probe["read"] == "letters" and probe["answer"] in ("A", "B") and probe["probability"] >= 0.5
    assert m1["thinking_end"] == "early_exit" and m1["thinking_tokens"] == probe["thinking_tokens"]
    assert m1["tokens_saved"] == m1["thinking_budget"] - m1["thinking_tokens"] > 0
    assert m1["probe_tokens"] == probe["tokens"] and last.usage.completion_tokens == (
        m1["thinking_tokens"] + m1["answer_tokens"])
    assert m1["exit_rule"] == f"confidence >= {SERVER_EARLY_EXIT['threshold']:g}"

    whole = client.chat.completions.create(extra_body=extra, **kwargs)
    assert (whole.choices[0].message.reasoning_content, whole.choices[0].message.content) == (reasoning, content)
    def timeless(block: dict) -> dict:  # all but the probes' wall time
        return {**block, "probe_seconds": None,
                "trajectory": [{**entry, "seconds": None} for entry in block["trajectory"]]}

    assert timeless(whole.usage.model_extra["m1"]) == timeless(m1)

    plain = {"thinking_budget": 24, "num_extensions": 2}
    watched = client.chat.completions.create(
        extra_body={**plain, "early_exit": {"observe": True, "every": 8, "probe_tokens": 4}}, **kwargs)
    unwatched = client.chat.completions.create(extra_body=plain, **kwargs)
    observed = watched.usage.model_extra["m1"]
    assert observed["probes"] > 0 and observed["tokens_saved"] == 0 and observed["thinking_end"] != "early_exit"
    assert all(entry["read"] == "trial" for entry in observed["trajectory"])
    assert watched.choices[0].message.reasoning_content == unwatched.choices[0].message.reasoning_content
    assert watched.choices[0].message.content == unwatched.choices[0].message.content
