"""What a request may ask for, and how it becomes a prompt and a `BudgetPolicy`.

Request bodies are parsed strictly: unknown fields, wrong types and values out of range are a
400 naming the field (`param`), never silently ignored. OpenAI fields the server does not
implement (tools, penalties, best_of > 1, …) are accepted only at their neutral value.
Before any of that, `decode_body` reads only plain JSON (RFC 8259) and turns anything else into a
400 saying what is wrong: bytes that are not UTF-8, bad syntax, NaN/Infinity, numbers a double
cannot hold, integer literals over `MAX_INT_DIGITS`, lone surrogate escapes, nesting deeper than
`MAX_DEPTH`.

The m1 fields, on both endpoints:

    thinking_budget      max thinking tokens (B), 1 … the server's limit (the context window unless
                         set lower); default 8,192 (the preset's), capped at that limit; "auto": that
                         default with the server's default early exit (`m1 serve --early-exit`)
    num_extensions       "Wait" rounds (K) when thinking stops on its own, 0 … the server's limit
    extension_str        the string appended for each extension ("Wait")
    min_thinking_tokens  keep extending while thinking is shorter than this (≤ thinking_budget)
    budget_preset        m1 | think-tags | no-think
    early_exit           adaptive thinking (SPEC §8), an object: `EarlyExit`'s fields (method,
                         threshold, agree, every, transitions, min_tokens ≤ thinking_budget,
                         probe_tokens ≤ max_tokens, observe), over `EarlyExit`'s defaults or, with
                         "auto", over the server's; plus `choices`, the option letters of a
                         multiple-choice prompt (["A", "B", …]), so that probes read the letters'
                         probabilities; without it probes decode a short trial answer (a default
                         probe_tokens shrinks to max_tokens)
    stream_probes        with stream: true, each probe is also sent as a chunk of its own (empty
                         delta) whose `m1.probe` is the probe's entry of `usage.m1.trajectory`
    vote                 majority | weighted, with n > 1: the choices' answers voted on
                         (`m1.scoring.vote`), in `usage.m1.vote`. With the prompt's option letters
                         (`choices`, or `early_exit.choices`) each choice's answer is the letter its
                         reply gives (strict extraction); without them, its whole answer, normalised.
                         weighted weighs each choice by its letter's probability, read once thinking
                         ends (BudgetPolicy.answer_probability): it needs the letters and a preset
                         that thinks
    choices              the prompt's option letters (["A", "B", …]) for vote; early_exit.choices
                         are the same letters (send either, or the same in both). With a vote they
                         also serve early exit's probes

OpenAI's sampling fields: `n` (1 … `Limits.max_samples`, 16) choices, each its own
sample: choice i draws with `choice_policy(policy, i)`'s seed (choice 0 with the request's own, so
n = 1 is the same draw as ever); the n share one batch and their prompt's prefill. With temperature
0 the n choices are one greedy draw n times (accepted, as OpenAI does; `usage.m1.identical` says so).
`logprobs` (chat: true, with `top_logprobs` 0 … 20 alternatives; completions: the count 0 … 20)
gives each generated ANSWER token's log-probability (the thinking's and inserted text's are not in
it): the model's own distribution before temperature and top-p, as vLLM's raw logprobs.

Early exit needs a preset with a forced-answer prefix (m1, think-tags): a probe appends it.

Other dialects' thinking fields, on both endpoints, each the same `BudgetPolicy` as m1's own
(`thinking_request` resolves them all):

    reasoning_effort       OpenAI: none | minimal | low | medium | high | xhigh; a level's thinking
                           budget (and "Wait" rounds, where set) comes from the server's effort
                           table (`m1 serve --effort-table FILE`; default `effort.DEFAULT_EFFORT_TABLE`:
                           128, 512, 2048, 8192, 16384, capped at the server's limit); none: no thinking
    thinking_token_budget  vLLM: the thinking budget, as thinking_budget
    thinking_budget_tokens llama.cpp server: the same
    reasoning              OpenRouter: {"effort": a level, "max_tokens": a budget, "exclude": true
                           (chat: reasoning_content null and not streamed; usage still counts it),
                           "enabled": false (no thinking)}

Two of these (or thinking_budget, or a budget_preset saying the opposite) that disagree are a 400
naming both; the same budget or level under two names is accepted. A level and a budget together
always disagree: the level's budget is the server's to change.

`max_tokens` is the answer budget; `max_completion_tokens` (OpenAI's meaning) caps thinking and
answer together instead: thinking stops at it if the thinking budget has not stopped it first, and
the answer gets what is left (none when thinking used it all: empty content, finish_reason
"length"). One or the other, not both. `stop` adds answer stop strings to the preset's.
/v1/chat/completions always thinks (the server's default preset unless `budget_preset` says
otherwise). /v1/completions is a plain completion, as any OpenAI client expects, unless the
request names a preset or sets any thinking field; then the prompt (rendered by the client, ending
with the preset's thinking marker) goes through the same thinking machinery.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from m1.engine.policy import PRESETS, BudgetPolicy, EarlyExit, Sampling
from m1.engine.probe import LetterReader
from m1.engine.wire.effort import DEFAULT_EFFORT_TABLE, EffortName, EffortTable
from m1.engine.wire.errors import bad_request
from m1.scoring.vote import METHODS as VOTE_METHODS

MAX_STOPS = 4
MAX_STOP_CHARS = 128
MAX_EXTENSION_CHARS = 128
MAX_TRANSITIONS = 8  # early exit's transitions end thinking rounds, like stop strings
MAX_CHOICES = 26
MAX_SEED = 2**32 - 1  # engines hash it with the prompt into a per-sample seed (with_sample_seed)
# No valid field nests deeper than 4 levels (body → messages → message → content part); the
# interpreter's own limit (RecursionError) moves between Python versions, this one does not.
MAX_DEPTH = 16
# No valid integer field comes near 20 digits. Read longer literals only up to this, rather than
# by Python's int-string limit, which a library may lift (converting 1 MB of digits takes seconds).
MAX_INT_DIGITS = 100

# OpenAI fields m1 serve does not implement, and the values that mean "not asked for".
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "best_of": (None, 1), "echo": (None, False), "suffix": (None, ""), "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0), "logit_bias": (None, {}), "tools": (None, []), "tool_choice": (None, "none"),
    "functions": (None, []), "function_call": (None, "none"), "parallel_tool_calls": (None, False),
    "response_format": (None, {"type": "text"}), "audio": (None,), "modalities": (None, ["text"]),
    "prediction": (None,), "web_search_options": (None,), "service_tier": (None, "auto"),
    "store": (None, False), "verbosity": (None,),
}
# Metadata that changes nothing about generation.
IGNORED = ("user", "metadata", "prompt_cache_key", "safety_identifier")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: StrictBool = False


class TextPart(_Strict):
    type: Literal["text"]
    text: StrictStr


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[TextPart]
    # An assistant message sent back as the client received it: its thinking is not rendered
    # (the chat template has no place for it), and the empty fields of an OpenAI reply are allowed.
    reasoning_content: StrictStr | None = None
    name: None = None  # templates have no place for it either; refused rather than dropped
    refusal: None = None
    tool_calls: None = None
    function_call: None = None
    audio: None = None
    annotations: None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "\n".join(p.text for p in self.content)


class EarlyExitRequest(_Strict):
    """The `early_exit` object: `EarlyExit`'s fields, type-checked strictly here and range-checked by
    `EarlyExit` itself, plus the prompt's option letters. A field left out is not set (`every: null`
    is: probe at transitions only)."""

    method: StrictStr | None = None
    threshold: StrictFloat | StrictInt | None = None
    agree: StrictInt | None = None
    every: StrictInt | None = None
    transitions: list[StrictStr] | None = None
    min_tokens: StrictInt | None = None
    probe_tokens: StrictInt | None = None
    observe: StrictBool | None = None
    choices: list[StrictStr] | None = None


class ReasoningRequest(_Strict):
    """OpenRouter's `reasoning` object: an effort level or a token budget (one of them), whether
    the reply shows the reasoning (`exclude`), and `enabled` (false: no thinking)."""

    effort: EffortName | None = None
    max_tokens: StrictInt | None = None
    exclude: StrictBool | None = None
    enabled: StrictBool | None = None


class M1Fields(_Strict):
    """m1's fields that shape a thinking phase, the same in every dialect's request (OpenAI's and
    Anthropic's); each dialect has its own way of naming the budget itself."""

    num_extensions: StrictInt | None = None
    extension_str: StrictStr | None = None
    min_thinking_tokens: StrictInt | None = None
    budget_preset: StrictStr | None = None
    early_exit: EarlyExitRequest | None = None
    stream_probes: StrictBool | None = None


class _Common(M1Fields):
    model: StrictStr
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None  # OpenAI's cap on thinking + answer together
    temperature: StrictFloat | StrictInt | None = None
    top_p: StrictFloat | StrictInt | None = None
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    # m1 (with M1Fields)
    thinking_budget: StrictInt | Literal["auto"] | None = None
    # Other dialects' thinking fields, resolved with m1's own by `thinking_request`
    reasoning_effort: EffortName | None = None  # OpenAI
    thinking_token_budget: StrictInt | None = None  # vLLM
    thinking_budget_tokens: StrictInt | None = None  # llama.cpp server
    reasoning: ReasoningRequest | None = None  # OpenRouter
    n: StrictInt | None = None  # choices, each its own sample (OpenAI's field)
    vote: StrictStr | None = None
    choices: list[StrictStr] | None = None  # the prompt's option letters, for vote
    # vLLM's names, so that clients written for vLLM (m1's OpenAI backend) work unchanged
    stop_token_ids: list[StrictInt] | None = None
    skip_special_tokens: StrictBool | None = None
    include_stop_str_in_output: StrictBool | None = None


class CompletionRequest(_Common):
    prompt: StrictStr | list[StrictInt] | list[StrictStr] | list[list[StrictInt]]
    return_token_ids: StrictBool | None = None
    logprobs: StrictInt | None = None  # the legacy API's: top alternatives per answer token


class ChatRequest(_Common):
    messages: list[ChatMessage]
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None


def field_names(kind: type[BaseModel]) -> frozenset[str]:
    """Every field name of a request model and of the models nested in it (how `parse` tells a
    field in an error's location from pydantic's names for the branches of a union)."""
    names: set[str] = set()
    pending, seen = [kind], set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        names.update(model.model_fields)
        annotations = [field.annotation for field in model.model_fields.values()]
        while annotations:
            annotation = annotations.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                pending.append(annotation)
            annotations.extend(get_args(annotation))
    return frozenset(names)


# m1's fields that refine a thinking phase (the budget fields of every dialect are `thinking_request`'s)
THINKING_FIELDS = ("num_extensions", "extension_str", "min_thinking_tokens", "early_exit")


@dataclass(frozen=True)
class Limits:
    """What the server allows; set from `serve(...)` options and the model."""

    max_context: int
    max_thinking_tokens: int
    max_extensions: int = 64
    default_max_tokens: int = 1024
    default_preset: str = "m1"
    default_early_exit: EarlyExit | None = None  # what thinking_budget "auto" asks for
    effort_table: EffortTable | None = None  # reasoning_effort's budgets (None: DEFAULT_EFFORT_TABLE)
    max_samples: int = 16  # n: choices one request may ask for


@dataclass(frozen=True)
class Plan:
    """What a request asks of the engine: its policy, its preset's name ("none" for a plain
    completion) and the option letters early-exit probes read (None: free-form trial answers)."""

    policy: BudgetPolicy
    preset: str
    choices: tuple[str, ...] | None = None
    hide_reasoning: bool = False  # OpenRouter's reasoning.exclude: thinking runs and is counted, not shown
    n: int = 1  # choices to draw (`choice_policy(policy, i)` each)
    vote: str | None = None  # "majority" | "weighted" over the choices' answers
    logprobs: int | None = None  # None: not asked; k: the answer tokens' logprobs with k alternatives


JSON_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
              type(None): "null"}


class _NotPlainJSON(ValueError):
    """A body json.loads would read, but that RFC 8259 JSON or this server does not allow."""


def _refuse_constant(name: str) -> Any:
    raise _NotPlainJSON(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotPlainJSON(f"the number {literal[:32]} is out of range for a double")
    return value


def _bounded_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _NotPlainJSON(f"an integer has {digits} digits (at most {MAX_INT_DIGITS} are read)")
    return int(literal)


def _check_tree(data: Any) -> None:
    """Nesting depth and strings, walked without recursion (the body may nest as deep as the decoder let it)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise _NotPlainJSON("a string holds a lone surrogate escape (such as \\ud800), "
                                        "which is not Unicode text") from None
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise _NotPlainJSON(f"it nests deeper than {MAX_DEPTH} levels")
            children = [*value, *value.values()] if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)


def decode_body(raw: bytes) -> dict[str, Any]:
    """The JSON object a request body holds, or a 400 saying why the body is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise bad_request(f"request body is not UTF-8 text (byte {err.start} is {raw[err.start]:#04x})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
        _check_tree(data)
    except RecursionError:
        raise bad_request(f"request body is not accepted: it nests deeper than {MAX_DEPTH} levels") from None
    except _NotPlainJSON as err:
        raise bad_request(f"request body is not accepted: {err}") from None
    except ValueError as err:  # json.JSONDecodeError, with the position of the fault
        raise bad_request(f"request body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise bad_request(f"request body must be a JSON object, not {JSON_NAMES[type(data)]}")
    return data


def parse(kind: type[BaseModel], data: dict[str, Any], *, neutral_values: dict[str, tuple[Any, ...]] = NEUTRAL,
          ignored: tuple[str, ...] = IGNORED) -> Any:
    """The request model, or a 400 naming the first bad field. `neutral_values` and `ignored` are the
    dialect's fields accepted only at a neutral value and those dropped (OpenAI's by default)."""
    data = dict(data)
    for name, neutral in neutral_values.items():
        if name in data:
            value = data.pop(name)
            if not any(value == ok and type(value) is type(ok) or (value is None and ok is None) for ok in neutral):
                raise bad_request(f"{name} is not supported by m1 serve (only {json.dumps(neutral[-1])} is accepted)",
                                  name, "unsupported_parameter")
    for name in ignored:
        data.pop(name, None)
    try:
        return kind.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        # Of a union's failed branches, the one that got furthest names the field best.
        first = max((e for e in errors if e["loc"][:1] == errors[0]["loc"][:1]), key=lambda e: len(e["loc"]))
        # Keep field names and list positions; drop pydantic's names for the branches of a union.
        loc = first["loc"]
        names = field_names(kind)
        param = ".".join(str(part) for index, part in enumerate(loc)
                         if isinstance(part, int) or part in names
                         or (first["type"] == "extra_forbidden" and index == len(loc) - 1)) or None
        if first["type"] == "extra_forbidden":
            raise bad_request(f"unknown field {param!r}", param, "unknown_parameter") from None
        if first["type"] == "missing":
            raise bad_request(f"{param} is required", param, "missing_parameter") from None
        raise bad_request(f"{param}: {first['msg']}", param) from None


def check_range(value: int | float | None, param: str, low: float, high: float, *, what: str = "") -> None:
    if value is not None and not low <= value <= high:
        raise bad_request(f"{param} must be between {low:g} and {high:g}{what}; got {value}", param)


def stop_strings(request: _Common, tokenizer: Any) -> tuple[str, ...]:
    """`stop` and `stop_token_ids` as stop strings (the engine matches single-token stops by id)."""
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > MAX_STOPS:
        raise bad_request(f"stop takes at most {MAX_STOPS} strings; got {len(stops)}", "stop")
    for stop in stops:
        if not stop or len(stop) > MAX_STOP_CHARS:
            raise bad_request(f"each stop string must have 1 to {MAX_STOP_CHARS} characters", "stop")
    for token in request.stop_token_ids or []:
        if not 0 <= token < len(tokenizer):
            raise bad_request(f"stop_token_ids: {token} is not a token id of this model", "stop_token_ids")
        stops.append(tokenizer.decode([token], skip_special_tokens=False))
    return tuple(dict.fromkeys(stops))


def validation_problem(err: ValidationError) -> tuple[tuple[Any, ...], str]:
    """(where, what) of a pydantic error's first problem, without pydantic's "Value error, " prefix."""
    first = err.errors()[0]
    cause = first.get("ctx", {}).get("error")
    return first["loc"], str(cause) if isinstance(cause, Exception) else first["msg"]


@dataclass(frozen=True)
class Thinking:
    """What a request's thinking fields, in every dialect, ask for (`thinking_request`)."""

    budget: int | Literal["auto"] | None = None  # None: the preset's default, capped at the server's limit
    preset: str | None = None  # "no-think" when a field turned thinking off
    num_extensions: int | None = None  # the effort level's K, where the table sets one
    hide_reasoning: bool = False
    asked: tuple[str, ...] = ()  # the fields that asked for thinking (or for none), as sent
    off_by: str | None = None  # the field that turned thinking off, as the errors name it


def _conflict(first: tuple[str, Any], second: tuple[str, Any], why: str) -> Exception:
    (name_a, value_a), (name_b, value_b) = first, second
    return bad_request(f"{name_a} ({json.dumps(value_a)}) and {name_b} ({json.dumps(value_b)}) disagree: {why}; "
                       "send one of them", name_b, "conflicting_parameters")


def thinking_request(request: _Common, limits: Limits) -> Thinking:
    """The thinking budget a request asks for, from whichever dialect's fields it uses.

    Budgets: m1's `thinking_budget`, vLLM's `thinking_token_budget`, llama.cpp's
    `thinking_budget_tokens`, OpenRouter's `reasoning.max_tokens`: each 1 … the server's limit,
    all the same B. Levels: OpenAI's `reasoning_effort` and OpenRouter's `reasoning.effort`, looked
    up in the server's effort table (`Limits.effort_table`, else `DEFAULT_EFFORT_TABLE`; capped at
    the server's limit); "none" turns thinking off (the no-think preset), as does OpenRouter's
    `reasoning.enabled: false`. `reasoning.exclude: true` hides the reasoning from the reply
    (usage still counts it).

    Two fields are never resolved by a silent choice: budgets that differ, levels that differ, a
    level together with a budget (even one that equals the level's budget today, since the table
    is the server's and may change), thinking turned off together with a budget or a thinking level,
    or a `budget_preset` that says the opposite, are a 400 naming both (`param` the second).
    The same budget (or level) sent under two names is accepted: the fields agree.
    """
    budgets: list[tuple[str, Any]] = []
    for name, value in (("thinking_budget", request.thinking_budget),
                        ("thinking_token_budget", request.thinking_token_budget),
                        ("thinking_budget_tokens", request.thinking_budget_tokens),
                        ("reasoning.max_tokens", request.reasoning and request.reasoning.max_tokens)):
        if value is None:
            continue
        if value != "auto":
            check_range(value, name, 1, limits.max_thinking_tokens,
                        what="" if name == "thinking_budget" else " (the server's thinking budget limit; "
                        "send budget_preset \"no-think\" for no thinking)")
        budgets.append((name, value))
    levels = [(name, value) for name, value in (("reasoning_effort", request.reasoning_effort),
                                                ("reasoning.effort", request.reasoning and request.reasoning.effort))
              if value is not None]
    for kind in (budgets, levels):
        for other in kind[1:]:
            if other[1] != kind[0][1]:
                raise _conflict(kind[0], other, "they ask for different thinking budgets")
    if budgets and levels:
        raise _conflict(levels[0], budgets[0], "a level looks its budget up in the server's effort table, a budget "
                                               "sets it")
    enabled = request.reasoning.enabled if request.reasoning is not None else None
    said = [*budgets, *levels, *([("reasoning.enabled", enabled)] if enabled is not None else [])]
    # Each field's answer to "think?": a budget and a thinking level say yes, "none" and enabled false say no.
    yes = [field for field in said if field[1] not in ("none", False)]
    no = [field for field in said if field[1] in ("none", False)]
    if yes and no:
        raise _conflict(no[0], yes[0], "one turns thinking off, the other asks for it")
    preset = PRESETS.get(request.budget_preset or "")
    if preset is not None and said:
        thinks = preset.get("thinking") is not False
        if thinks != bool(yes):
            raise _conflict(("budget_preset", request.budget_preset), (yes or no)[0],
                            "one names a preset without thinking, the other asks for thinking" if yes else
                            "one names a preset that thinks, the other turns thinking off")
    hide = bool(request.reasoning and request.reasoning.exclude)
    asked = tuple(name for name, _ in said)
    if no:
        return Thinking(preset="no-think", hide_reasoning=hide, asked=asked,
                        off_by=f"{no[0][0]} {json.dumps(no[0][1])}")
    if budgets:
        return Thinking(budgets[0][1], hide_reasoning=hide, asked=asked)
    if levels:
        table = limits.effort_table or DEFAULT_EFFORT_TABLE
        level = table.level(levels[0][1])
        return Thinking(table.budget(levels[0][1], limits.max_thinking_tokens), num_extensions=level.num_extensions,
                        hide_reasoning=hide, asked=asked)
    return Thinking(hide_reasoning=hide, asked=asked)


def build_policy(request: _Common, limits: Limits, tokenizer: Any, *, chat: bool) -> Plan:
    """The budget policy a request asks for, every value range-checked, with its preset's name and
    probe choices."""
    if request.skip_special_tokens:
        raise bad_request("skip_special_tokens=true is not supported: text is returned as generated",
                          "skip_special_tokens")
    if request.include_stop_str_in_output:
        raise bad_request("include_stop_str_in_output=true is not supported", "include_stop_str_in_output")
    check_range(request.max_tokens, "max_tokens", 1, limits.max_context)
    check_range(request.max_completion_tokens, "max_completion_tokens", 1, limits.max_context)
    if request.max_tokens is not None and request.max_completion_tokens is not None:
        raise bad_request("max_tokens and max_completion_tokens disagree on what is capped: send max_tokens for "
                          "the answer alone or max_completion_tokens for thinking + answer together, not both",
                          "max_completion_tokens")
    check_range(request.temperature, "temperature", 0, 2)
    if request.top_p is not None and not 0 < request.top_p <= 1:
        raise bad_request(f"top_p must be in (0, 1]; got {request.top_p}", "top_p")
    check_range(request.seed, "seed", 0, MAX_SEED)
    thinking = thinking_request(request, limits)
    if thinking.hide_reasoning and not chat:
        raise bad_request("reasoning.exclude is for /v1/chat/completions, where reasoning_content is apart from the "
                          "answer; a completion's text is the whole continuation", "reasoning.exclude")
    auto = thinking.budget == "auto"
    check_range(request.num_extensions, "num_extensions", 0, limits.max_extensions)
    if request.extension_str is not None and not 0 < len(request.extension_str) <= MAX_EXTENSION_CHARS:
        raise bad_request(f"extension_str must have 1 to {MAX_EXTENSION_CHARS} characters", "extension_str")

    asked_thinking = [*thinking.asked, *(name for name in THINKING_FIELDS if getattr(request, name) is not None)]
    preset = request.budget_preset or thinking.preset
    if preset is None and (chat or asked_thinking):
        preset = limits.default_preset
    if preset is not None and preset not in PRESETS:
        raise bad_request(f"unknown budget_preset {preset!r}; choose one of {', '.join(PRESETS)}", "budget_preset")
    stops = stop_strings(request, tokenizer)
    sampling = Sampling(
        temperature=0.0 if request.temperature is None else float(request.temperature),
        top_p=1.0 if request.top_p is None else float(request.top_p),
        seed=request.seed if request.seed is not None else 0,
    )
    total = request.max_completion_tokens
    max_tokens = request.max_tokens or total or limits.default_max_tokens
    if preset is None:
        # A plain completion: no thinking phase; stops are the request's own (and end of sequence).
        plain = BudgetPolicy.from_preset("no-think", answer_stops=stops, max_answer_tokens=max_tokens,
                                         sampling=sampling)
        check_stream_probes(request, None)
        return sample_plan(request, limits, tokenizer, Plan(plain, "none"))

    base = PRESETS[preset]
    # Early exit on such a preset gets the engine's own reason below.
    # The fields that turned thinking off are the reason, not the fault; any other thinking field is.
    turned_off = thinking.asked if thinking.off_by else ()
    not_for_no_think = [name for name in asked_thinking if name != "early_exit" and name not in turned_off]
    if base.get("thinking") is False and not_for_no_think:
        if thinking.off_by and request.budget_preset is None:
            by = thinking.off_by
        elif request.budget_preset is None:
            by = f"this server's default preset {preset!r} (send a thinking budget_preset such as 'm1')"
        else:
            by = "budget_preset 'no-think'"
        raise bad_request(f"{not_for_no_think[0]} has no effect with {by}", not_for_no_think[0])
    budget = (None if auto else thinking.budget) or min(BudgetPolicy().max_thinking_tokens,
                                                                limits.max_thinking_tokens)
    if request.min_thinking_tokens is not None:
        cap, what = (budget, " (the thinking budget)") if not total or total >= budget else (
            total, " (max_completion_tokens, which caps thinking too)")
        check_range(request.min_thinking_tokens, "min_thinking_tokens", 0, cap, what=what)
    overrides: dict[str, Any] = {
        "max_thinking_tokens": budget,
        "max_answer_tokens": max_tokens,
        "sampling": sampling,
        "answer_stops": tuple(dict.fromkeys(BudgetPolicy.from_preset(preset).answer_stops + stops)),
        # Thinking and answer share it: thinking stops at it, the answer gets what is left.
        "max_total_tokens": total,
    }
    if thinking.num_extensions is not None:  # the effort level's; the request's own num_extensions refines it
        overrides["num_extensions"] = min(thinking.num_extensions, limits.max_extensions)  # as B is capped
    for name, field in (("num_extensions", "num_extensions"), ("extension_str", "extension_str"),
                        ("min_thinking_tokens", "min_thinking_tokens")):
        if getattr(request, name) is not None:
            overrides[field] = getattr(request, name)
    choices = probe_choices(request.early_exit, tokenizer)
    early_exit = early_exit_settings(request, limits, preset, budget, max_tokens, free_form=choices is None)
    check_stream_probes(request, early_exit)
    if early_exit is not None:
        overrides["early_exit"] = early_exit
    try:
        plan = Plan(BudgetPolicy.from_preset(preset, **overrides), preset, choices,
                    hide_reasoning=thinking.hide_reasoning)
    except ValueError as err:  # anything the checks above missed is still the request's fault
        raise bad_request(f"these budget settings are not valid: {err}", "budget_preset") from None
    return sample_plan(request, limits, tokenizer, plan)


def early_exit_settings(request: _Common, limits: Limits, preset: str, budget: int, max_tokens: int, *,
                        free_form: bool) -> EarlyExit | None:
    """The request's early exit: its `early_exit` fields over `EarlyExit`'s defaults, or over the
    server's default with thinking_budget "auto"; None when it asks for neither."""
    asked = request.early_exit
    if request.thinking_budget == "auto":
        if limits.default_early_exit is None:
            raise bad_request(
                'thinking_budget "auto" asks for the server\'s default early exit, and this server has none: '
                "start it with --early-exit (e.g. m1 serve --early-exit '{\"method\": \"confidence\", "
                '"threshold": 0.9}\'), or send an integer thinking_budget and an early_exit object', "thinking_budget")
        settings = limits.default_early_exit.model_dump()
    elif asked is None:
        return None
    else:
        settings = {}
    if asked is not None:
        settings |= {name: getattr(asked, name) for name in asked.model_fields_set if name != "choices"}
    if free_form and not (asked and "probe_tokens" in asked.model_fields_set):
        # A trial answer is generated in the room kept for the answer: a default length shrinks to fit it.
        settings["probe_tokens"] = min(settings.get("probe_tokens", EarlyExit.model_fields["probe_tokens"].default),
                                       max_tokens)
    for transition in settings.get("transitions") or ():
        if not 0 < len(transition) <= MAX_STOP_CHARS:
            raise bad_request(f"each early_exit.transitions string must have 1 to {MAX_STOP_CHARS} characters",
                              "early_exit.transitions")
    if len(settings.get("transitions") or ()) > MAX_TRANSITIONS:
        raise bad_request(f"early_exit.transitions takes at most {MAX_TRANSITIONS} strings", "early_exit.transitions")
    try:
        early_exit = EarlyExit(**settings)
    except ValidationError as err:
        loc, problem = validation_problem(err)
        param = ".".join(["early_exit", *map(str, loc[:1])])  # () for a rule across fields: the object
        raise bad_request(f"{param}: {problem}", param) from None
    try:
        BudgetPolicy.from_preset(preset, early_exit=early_exit)
    except ValidationError as err:  # the preset has no forced-answer prefix for the probe
        raise bad_request(validation_problem(err)[1], "early_exit") from None
    check_range(early_exit.min_tokens, "early_exit.min_tokens", 0, budget, what=" (the thinking budget)")
    if free_form:
        check_range(early_exit.probe_tokens, "early_exit.probe_tokens", 1, max_tokens, what=" (max_tokens)")
    return early_exit


def probe_choices(asked: EarlyExitRequest | None, tokenizer: Any, *,
                  param: str = "early_exit.choices") -> tuple[str, ...] | None:
    """`early_exit.choices` (or the vote's `choices`), checked: 2 to `MAX_CHOICES` distinct letters,
    each readable as one token."""
    if asked is None or asked.choices is None:
        return None
    letters = asked.choices
    if not 2 <= len(letters) <= MAX_CHOICES:
        raise bad_request(f"{param} takes 2 to {MAX_CHOICES} option letters; got {len(letters)}", param)
    if len(set(letters)) < len(letters):
        raise bad_request(f"{param} holds a letter twice", param)
    readable = set(LetterReader(tokenizer, letters).ids.values())
    for letter in letters:
        if letter not in readable:
            raise bad_request(f"{param}: {letter!r} is not one token of this model (as {letter!r} or "
                              f"{' ' + letter!r}), so a probe cannot read its probability; use the prompt's option "
                              "letters (A, B, C, …)", param)
    return tuple(letters)


MAX_TOP_LOGPROBS = 20  # OpenAI's limit


def sample_plan(request: _Common, limits: Limits, tokenizer: Any, plan: Plan) -> Plan:
    """The plan with what the request asks of its samples: `n` choices, a `vote` over them (with the
    prompt's option letters, `choices`), and the answer tokens' logprobs; every value checked."""
    n = 1 if request.n is None else request.n
    if not 1 <= n <= limits.max_samples:
        raise bad_request(f"n must be between 1 and {limits.max_samples} (this server's limit on choices per "
                          f"request); got {n}", "n")
    policy, letters = plan.policy, plan.choices
    if request.choices is not None:
        if request.vote is None:
            raise bad_request("choices are the option letters a vote reads; send them with vote (early exit's "
                              "probes take theirs as early_exit.choices)", "choices")
        letters = probe_choices(EarlyExitRequest(choices=request.choices), tokenizer, param="choices")
        if plan.choices is not None and plan.choices != letters:
            raise bad_request("choices and early_exit.choices disagree: they are the same prompt's option letters; "
                              "send one of them, or the same letters in both", "choices")
    if request.vote is not None:
        if request.vote not in VOTE_METHODS:
            raise bad_request(f"unknown vote {request.vote!r}; choose one of {', '.join(VOTE_METHODS)}", "vote")
        if n < 2:
            raise bad_request("vote needs n > 1: it chooses among several choices", "vote")
        if request.vote == "weighted":
            if letters is None:
                raise bad_request("vote 'weighted' weighs each choice by its answer letter's probability: send "
                                  "the prompt's option letters as choices (e.g. [\"A\", \"B\", \"C\"]), or use "
                                  "vote 'majority'", "vote")
            if not (policy.thinking and policy.answer_after_budget):
                raise bad_request("vote 'weighted' reads the letters at the forced answer after thinking, and "
                                  f"budget_preset {plan.preset!r} does not think: use a thinking preset or vote "
                                  "'majority'", "vote")
            policy = policy.model_copy(update={"answer_probability": True})
    logprobs = answer_logprobs(request)
    if logprobs is not None:
        policy = policy.model_copy(update={"answer_logprobs": logprobs})
    return replace(plan, policy=policy, choices=letters, n=n, vote=request.vote, logprobs=logprobs)


def answer_logprobs(request: _Common) -> int | None:
    """Chat `logprobs: true` (+ `top_logprobs: k`) or completions `logprobs: k` as k; None when not asked."""
    if isinstance(request, ChatRequest):
        top = request.top_logprobs
        if top is not None and not request.logprobs:
            raise bad_request("top_logprobs needs logprobs: true", "top_logprobs")
        check_range(top, "top_logprobs", 0, MAX_TOP_LOGPROBS)
        return (top or 0) if request.logprobs else None
    if isinstance(request, CompletionRequest):
        check_range(request.logprobs, "logprobs", 0, MAX_TOP_LOGPROBS)
        return request.logprobs
    return None


def check_stream_probes(request: _Common, early_exit: EarlyExit | None) -> None:
    if request.stream_probes and not request.stream:
        raise bad_request("stream_probes needs stream: true (without streaming the probes are in "
                          "usage.m1.trajectory)", "stream_probes")
    if request.stream_probes and early_exit is None:
        raise bad_request('stream_probes needs early exit: send an early_exit object or thinking_budget "auto"',
                          "stream_probes")


def fit_answer_budget(policy: BudgetPolicy, prompt_tokens: int, prefix_tokens: int, limits: Limits,
                      *, explicit: bool, param: str) -> BudgetPolicy:
    """Check that the prompt leaves room for the answer; an unset `max_tokens` shrinks to fit.

    The room needed is what every backend reserves: the longest answer prefix plus `max_tokens`.
    """
    room = limits.max_context - prompt_tokens - prefix_tokens
    if not explicit and 0 < room < policy.max_answer_tokens:
        return policy.model_copy(update={"max_answer_tokens": room})
    if policy.max_answer_tokens > room:
        raise bad_request(
            f"the prompt is {prompt_tokens} tokens; with room for the answer ({prefix_tokens} tokens of answer "
            f"prefix + max_tokens {policy.max_answer_tokens}) it exceeds the context window of "
            f"{limits.max_context} tokens", param, "context_length_exceeded")
    return policy


def completion_prompt(request: CompletionRequest, tokenizer: Any) -> tuple[str, list[int] | None]:
    """(prompt text, prompt ids when the client sent ids) for /v1/completions: one prompt per request."""
    prompt = request.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise bad_request(f"one prompt per request; got {len(prompt)}", "prompt")
        prompt = prompt[0]
    if not prompt:
        raise bad_request("prompt is empty", "prompt")
    if isinstance(prompt, str):
        return prompt, None
    for token in prompt:
        if not 0 <= token < len(tokenizer):
            raise bad_request(f"prompt: {token} is not a token id of this model", "prompt")
    return tokenizer.decode(prompt, skip_special_tokens=False), list(prompt)


def chat_messages(request: ChatRequest) -> list[dict[str, str]]:
    if not request.messages:
        raise bad_request("messages is empty", "messages")
    # OpenAI's "developer" role is a system message for every template m1 serves.
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in request.messages]
