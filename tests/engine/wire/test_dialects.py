"""Other servers' thinking fields (OpenAI's reasoning_effort, vLLM's, llama.cpp's, OpenRouter's)
→ the same `BudgetPolicy` as m1's own fields; two fields that disagree → a 400 naming both; the
effort table's files; the effort table `m1 report --effort-table` proposes from a sweep. No model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.data.errors import DataError
from m1.engine.wire.effort import (
    DEFAULT_EFFORT_TABLE,
    EFFORT_LEVELS,
    EffortTable,
    read_effort_table,
    write_effort_table,
)
from m1.engine.wire.errors import APIError
from m1.engine.wire.protocol import ChatRequest, CompletionRequest, Limits, build_policy, parse
from m1.evaluation.report.effort import propose_effort_table

TABLE = EffortTable.model_validate({"minimal": 16, "low": 32, "medium": {"thinking_budget": 64, "num_extensions": 2},
                                    "high": 128, "xhigh": 8192})
LIMITS = Limits(max_context=4096, max_thinking_tokens=4096, effort_table=TABLE)
# build_policy reads the tokenizer only for stop_token_ids and early-exit letters, which no test here sends
NO_TOKENIZER = None


def chat(**fields) -> ChatRequest:
    return parse(ChatRequest, {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def policy_of(limits: Limits = LIMITS, **fields):
    return build_policy(chat(**fields), limits, NO_TOKENIZER, chat=True)


def refused(**fields) -> APIError:
    with pytest.raises(APIError) as caught:
        policy_of(**fields)
    assert caught.value.status == 400
    return caught.value


# ------------------------------------------------------------------ every field and alias → one policy


@pytest.mark.parametrize(("fields", "same_as"), [
    ({"thinking_token_budget": 300}, {"thinking_budget": 300}),
    ({"thinking_budget_tokens": 300}, {"thinking_budget": 300}),
    ({"reasoning": {"max_tokens": 300}}, {"thinking_budget": 300}),
    ({"reasoning_effort": "minimal"}, {"thinking_budget": 16}),
    ({"reasoning_effort": "low"}, {"thinking_budget": 32}),
    ({"reasoning_effort": "medium"}, {"thinking_budget": 64, "num_extensions": 2}),
    ({"reasoning_effort": "high"}, {"thinking_budget": 128}),
    ({"reasoning_effort": "xhigh"}, {"thinking_budget": 4096}),  # 8192, capped at the server's limit
    ({"reasoning": {"effort": "low"}}, {"thinking_budget": 32}),
    ({"reasoning_effort": "none"}, {"budget_preset": "no-think"}),
    ({"reasoning": {"effort": "none"}}, {"budget_preset": "no-think"}),
    ({"reasoning": {"enabled": False}}, {"budget_preset": "no-think"}),
    ({"reasoning": {"enabled": True}}, {}),
    ({"reasoning": {"exclude": True, "max_tokens": 300}}, {"thinking_budget": 300}),
    # the same value under two names agrees
    ({"thinking_budget": 300, "thinking_token_budget": 300, "reasoning": {"max_tokens": 300}},
     {"thinking_budget": 300}),
    ({"reasoning_effort": "low", "reasoning": {"effort": "low", "enabled": True}}, {"thinking_budget": 32}),
    ({"reasoning_effort": "none", "reasoning": {"enabled": False}, "budget_preset": "no-think"},
     {"budget_preset": "no-think"}),
    ({"reasoning_effort": "low", "budget_preset": "think-tags"},
     {"thinking_budget": 32, "budget_preset": "think-tags"}),
    # m1's own fields refine a level, the table's K included
    ({"reasoning_effort": "medium", "num_extensions": 5, "min_thinking_tokens": 40},
     {"thinking_budget": 64, "num_extensions": 5, "min_thinking_tokens": 40}),
    ({"reasoning_effort": "low", "max_completion_tokens": 300}, {"thinking_budget": 32, "max_completion_tokens": 300}),
])
def test_every_dialect_field_is_the_same_policy_as_m1_s_own(fields, same_as) -> None:
    plan, expected = policy_of(**fields), policy_of(**same_as)
    assert (plan.policy, plan.preset) == (expected.policy, expected.preset)
    assert plan.hide_reasoning == bool(fields.get("reasoning", {}).get("exclude"))


def test_effort_without_a_table_uses_the_default_one() -> None:
    limits = Limits(max_context=1 << 15, max_thinking_tokens=1 << 15)
    for level in EFFORT_LEVELS[1:]:
        budget = getattr(DEFAULT_EFFORT_TABLE, level).thinking_budget
        assert policy_of(limits, reasoning_effort=level).policy.max_thinking_tokens == budget
    assert [getattr(DEFAULT_EFFORT_TABLE, level).thinking_budget for level in EFFORT_LEVELS[1:]] == [
        128, 512, 2048, 8192, 16384]


def test_completions_think_when_a_dialect_field_asks() -> None:
    def completion(**fields):
        return build_policy(parse(CompletionRequest, {"model": "m", "prompt": "x", **fields}), LIMITS, NO_TOKENIZER,
                            chat=False)

    assert completion().preset == "none"
    assert completion(reasoning_effort="low").policy == policy_of(thinking_budget=32).policy
    assert completion(thinking_token_budget=20).policy.max_thinking_tokens == 20
    assert completion(reasoning_effort="none").preset == "no-think"
    with pytest.raises(APIError) as caught:
        completion(reasoning={"exclude": True})
    assert caught.value.param == "reasoning.exclude"


# ------------------------------------------------------------------ two fields that disagree


@pytest.mark.parametrize(("fields", "names"), [
    ({"reasoning_effort": "low", "thinking_budget": 32}, ("reasoning_effort", "thinking_budget")),  # equal today
    ({"reasoning_effort": "high", "thinking_budget": "auto"}, ("reasoning_effort", "thinking_budget")),
    ({"thinking_budget": 100, "thinking_token_budget": 200}, ("thinking_budget", "thinking_token_budget")),
    ({"thinking_budget": 100, "thinking_budget_tokens": 200}, ("thinking_budget", "thinking_budget_tokens")),
    ({"thinking_token_budget": 100, "thinking_budget_tokens": 200},
     ("thinking_token_budget", "thinking_budget_tokens")),
    ({"thinking_budget": 100, "reasoning": {"max_tokens": 200}}, ("thinking_budget", "reasoning.max_tokens")),
    ({"reasoning_effort": "low", "reasoning": {"effort": "high"}}, ("reasoning_effort", "reasoning.effort")),
    ({"reasoning": {"effort": "low", "max_tokens": 100}}, ("reasoning.effort", "reasoning.max_tokens")),
    ({"reasoning_effort": "low", "reasoning": {"max_tokens": 100}}, ("reasoning_effort", "reasoning.max_tokens")),
    ({"reasoning_effort": "none", "thinking_budget": 100}, ("reasoning_effort", "thinking_budget")),
    ({"reasoning": {"enabled": False, "effort": "low"}}, ("reasoning.effort", "reasoning.enabled")),
    ({"reasoning": {"enabled": False}, "thinking_token_budget": 100}, ("thinking_token_budget", "reasoning.enabled")),
    ({"reasoning_effort": "none", "reasoning": {"enabled": True}}, ("reasoning_effort", "reasoning.enabled")),
    ({"reasoning_effort": "low", "budget_preset": "no-think"}, ("reasoning_effort", "budget_preset")),
    ({"thinking_budget_tokens": 50, "budget_preset": "no-think"}, ("thinking_budget_tokens", "budget_preset")),
    ({"reasoning_effort": "none", "budget_preset": "m1"}, ("reasoning_effort", "budget_preset")),
])
def test_fields_that_disagree_are_a_400_naming_both(fields, names) -> None:
    error = refused(**fields)
    assert all(name in error.message for name in names), error.message
    assert error.param in names and error.code == "conflicting_parameters"


# ------------------------------------------------------------------ each field's own checks


@pytest.mark.parametrize(("fields", "param", "says"), [
    ({"thinking_token_budget": 0}, "thinking_token_budget", "no-think"),
    ({"thinking_budget_tokens": -1}, "thinking_budget_tokens", "between 1 and 4096"),
    ({"reasoning": {"max_tokens": 5000}}, "reasoning.max_tokens", "between 1 and 4096"),
    ({"reasoning_effort": "none", "num_extensions": 2}, "num_extensions", 'reasoning_effort "none"'),
    ({"reasoning_effort": "low", "min_thinking_tokens": 40}, "min_thinking_tokens", "thinking budget"),
])
def test_each_field_is_range_checked_under_its_own_name(fields, param, says) -> None:
    error = refused(**fields)
    assert error.param == param and says in error.message, error.message


@pytest.mark.parametrize(("fields", "param"), [
    ({"reasoning_effort": "maximum"}, "reasoning_effort"),
    ({"reasoning_effort": 3}, "reasoning_effort"),
    ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
    ({"reasoning": {"exclude": "yes"}}, "reasoning.exclude"),
    ({"reasoning": "high"}, "reasoning"),
    ({"thinking_token_budget": "512"}, "thinking_token_budget"),
    ({"thinking_tokens_budget": 512}, "thinking_tokens_budget"),
])
def test_wrong_types_and_unknown_fields_stay_errors(fields, param) -> None:
    with pytest.raises(APIError) as caught:
        chat(**fields)
    assert caught.value.status == 400 and caught.value.param == param, caught.value.message


# ------------------------------------------------------------------ effort table files


@pytest.mark.parametrize(("text", "field", "says"), [
    ("low: 4096\n", "medium", "below low's 4096"),
    ("low: 0\n", "low.thinking_budget", "greater than 0"),
    ("low: {thinking_budget: 64, num_extensions: -1}\n", "low.num_extensions", "greater than or equal to 0"),
    ("low: true\n", "low", "valid dictionary"),
    ("lowest: 64\n", "lowest", "unknown key"),
    ("none: m1\n", "none", "no-think"),
    ("low: [64\n", "", "invalid YAML"),
    ("- 64\n", "", "mapping"),
])
def test_bad_effort_tables_name_the_file_and_the_field(tmp_path: Path, text: str, field: str, says: str) -> None:
    path = tmp_path / "effort.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_effort_table(path)
    assert str(path) in str(caught.value) and caught.value.problem.field == field and says in str(caught.value)


def test_effort_tables_read_from_yaml_json_and_their_own_output(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_effort_table(tmp_path / "missing.yaml")
    (tmp_path / "t.json").write_text(json.dumps({"high": 8192,
                                                 "medium": {"thinking_budget": 1024, "num_extensions": 1}}))
    table = read_effort_table(tmp_path / "t.json")
    assert table.medium.num_extensions == 1 and table.low == DEFAULT_EFFORT_TABLE.low
    assert read_effort_table(write_effort_table(table, tmp_path / "out.yaml", note="a\nb")) == table
    assert read_effort_table(Path(__file__).parents[3] / "configs/serve/effort_smollm2.yaml").level("none") is None


# ------------------------------------------------------------------ the table a sweep proposes


def mode(accuracy: float) -> dict:
    counts = {"items": 100, "correct": round(100 * accuracy), "accuracy": accuracy, "ci_low": 0.0, "ci_high": 1.0}
    return {"mode": "strict", "items": 100, "micro": counts, "sources": [],
            "macro": {"accuracy": accuracy, "ci_low": 0.0, "ci_high": 1.0, "sources": 1}}


def write_summary(root: Path, points: dict[str, float]) -> Path:
    """A metrics.json with these points' strict micro accuracy (reference mode reads 1.0: never used)."""
    rows = []
    for key, accuracy in points.items():
        budget = None if key == "nothink" else int(key[1:].split("_")[0])
        extensions = int(key.split("_K")[1].split("_")[0]) if "_K" in key else 0
        rows.append({"point": key, "budget": budget, "extensions": extensions, "strict": mode(accuracy),
                     "reference": mode(1.0), "usage": {}})
    root.mkdir(parents=True)
    (root / "metrics.json").write_text(json.dumps({"run": root.name, "model": "m", "points": rows}))
    return root


def test_a_sweep_proposes_the_documented_rule(tmp_path: Path) -> None:
    run = write_summary(tmp_path / "sweep", {
        "nothink": 0.9, "B128_K0": 0.50, "B256_K0": 0.60, "B512_K0": 0.69, "B1024_K0": 0.71, "B2048_K0": 0.72,
        "B4096_K0": 0.72, "B8192_K0": 0.70,
        # not fixed budgets without Wait rounds: never read
        "B256_K2": 0.99, "B512_K0_EE1": 0.99, "B512_K0_N4": 0.99, "B512_K0_S1": 0.99})
    proposal = propose_effort_table(run)
    # best 0.72 at 2048 (and 4096: the smaller wins); within 2 %: ≥ 0.7056; within 5 %: ≥ 0.684
    assert {level: proposal.table.level(level).thinking_budget for level in EFFORT_LEVELS[1:]} == {
        "minimal": 128, "low": 512, "medium": 1024, "high": 2048, "xhigh": 8192}
    assert proposal.rows[0] == ("none", None, None) and ("low", 512, 0.69) in proposal.rows
    assert all(getattr(proposal.table, level).num_extensions is None for level in EFFORT_LEVELS[1:])


def test_a_flat_sweep_puts_every_middle_level_at_its_smallest_budget(tmp_path: Path) -> None:
    table = propose_effort_table(write_summary(tmp_path / "flat", {"B64_K0": 0.0, "B32_K0": 0.0})).table
    assert [table.level(level).thinking_budget for level in EFFORT_LEVELS[1:]] == [32, 32, 32, 32, 64]


@pytest.mark.parametrize("points", [{"B512_K0": 0.5, "B1024_K2": 0.6, "nothink": 0.4}, {"nothink": 0.4}])
def test_a_run_without_a_sweep_is_refused_naming_it(tmp_path: Path, points) -> None:
    with pytest.raises(DataError) as caught:
        propose_effort_table(write_summary(tmp_path / "short-run", points))
    assert "short-run" in str(caught.value) and "at least 2 budgets" in str(caught.value)


def test_serve_refuses_a_bad_effort_table_before_loading_a_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from m1.cli import app

    path = tmp_path / "effort.yaml"
    path.write_text("high: 64\n", encoding="utf-8")  # below medium's default 2048
    result = CliRunner().invoke(app, ["serve", "--effort-table", str(path)])
    assert result.exit_code == 2 and str(path) in result.output
    assert "below medium's 2048" in result.output


# ------------------------------------------------------------------ budgets against the server's limits


@pytest.mark.parametrize("fields", [{"thinking_budget": 64}, {"thinking_token_budget": 64},
                                    {"reasoning_effort": "high"}, {"reasoning": {"max_tokens": 64}}])
def test_asking_for_thinking_on_a_no_think_server_default_is_refused(fields) -> None:
    limits = Limits(max_context=4096, max_thinking_tokens=4096, default_preset="no-think")
    with pytest.raises(APIError) as caught:
        policy_of(limits, **fields)
    assert caught.value.status == 400 and "default preset 'no-think'" in caught.value.message
    assert caught.value.param == next(iter(fields)) or caught.value.param.startswith("reasoning")
    assert policy_of(limits, reasoning_effort="none").preset == "no-think"  # turning it off is no fault


def test_a_minimum_above_max_completion_tokens_names_the_minimum() -> None:
    err = refused(max_completion_tokens=10, min_thinking_tokens=100, thinking_budget=500)
    assert err.param == "min_thinking_tokens" and "max_completion_tokens" in err.message


def test_an_effort_level_s_wait_rounds_are_capped_at_the_server_s_limit() -> None:
    limits = Limits(max_context=4096, max_thinking_tokens=4096, max_extensions=1, effort_table=TABLE)
    assert policy_of(limits, reasoning_effort="medium").policy.num_extensions == 1  # the table says 2
