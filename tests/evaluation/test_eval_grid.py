"""`m1 eval`'s early-exit axis: grid keys, run identity, the settings' validation at config load
(before any model loads), and the fields early exit adds to prediction rows and token usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from m1.config import load_config
from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.engine.controller import GenerationRecord
from m1.engine.policy import EarlyExit
from m1.evaluation.config import EvalConfig
from m1.evaluation.results import token_usage
from m1.evaluation.runner import prediction_row

REPO = Path(__file__).resolve().parents[2]
EXITING = "{method: confidence, threshold: 0.9, every: 64}"
OBSERVING = "{method: consistency, agree: 3, every: 32, observe: true}"


def config(*overrides: str, path: Path | None = None) -> EvalConfig:
    return load_config(EvalConfig, path, list(overrides))


def test_keys_name_every_axis_and_fixed_points_keep_theirs() -> None:
    grid = config("grid.max_thinking_tokens=[64, 256]", "grid.num_extensions=[0, 2]",
                  f"grid.early_exit=[null, {EXITING}, {OBSERVING}]",
                  "grid.prompt_suffix=['Answer.', 'Think, then answer.']")
    points = grid.grid_points()
    assert len(points) == 2 * 2 * 3 * 2 and len({p.key for p in points}) == len(points)
    fixed = [p.key for p in points if p.early_exit is None]
    assert fixed == [p.key for p in config("grid.max_thinking_tokens=[64, 256]", "grid.num_extensions=[0, 2]",
                                           "grid.prompt_suffix=['Answer.', 'Think, then answer.']").grid_points()]
    assert "B64_K2_S1" in fixed and "B256_K0" in fixed
    by_key = {p.key: p for p in points}
    assert by_key["B64_K0_EE1"].early_exit == EarlyExit(method="confidence", threshold=0.9, every=64)
    assert by_key["B256_K2_EE2_S1"].early_exit.observe and by_key["B256_K2_EE2_S1"].suffix == "Think, then answer."
    for point in points:
        policy = grid.policy_for(point)
        assert policy.early_exit == point.early_exit
        assert (policy.max_thinking_tokens, policy.num_extensions) == (point.budget, point.extensions)
        assert point.fixed.key in by_key and point.fixed.early_exit is None
        assert (point.fixed.budget, point.fixed.extensions, point.fixed.suffix_index) == (
            point.budget, point.extensions, point.suffix_index)
    # Numbers count the early-exit settings only, wherever null stands in the list.
    late_null = config(f"grid.early_exit=[{EXITING}, null, {OBSERVING}]", "grid.max_thinking_tokens=[64]")
    assert [p.key for p in late_null.grid_points()] == ["B64_K0_EE1", "B64_K0", "B64_K0_EE2"]


def test_identity_without_early_exit_is_what_it_was_before_the_axis() -> None:
    # Identities m1 computed for these presets before grid.early_exit existed: a run started then
    # must find its directory again (RunStore refuses a directory whose identity differs).
    before = {"budget_sweep": "853e510941", "budget_forcing": "e509bfb815", "baselines": "0811e6f439"}
    for name, identity in before.items():
        preset = REPO / "configs" / "eval" / f"{name}.yaml"
        assert config(path=preset).identity() == identity
        assert config("grid.early_exit=[null]", path=preset).identity() == identity
    sweep = REPO / "configs" / "eval" / "budget_sweep.yaml"
    exiting = config(f"grid.early_exit=[null, {EXITING}]", path=sweep).identity()
    other = config("grid.early_exit=[null, {method: confidence, threshold: 0.8, every: 64}]", path=sweep).identity()
    assert len({exiting, other, before["budget_sweep"]}) == 3


@pytest.mark.parametrize(("overrides", "field", "says"), [
    (["grid.early_exit=[null, {threshold: 1.5}]"], "grid.early_exit.1.threshold", "less than or equal to 1"),
    (["grid.early_exit=[null, {threshold: 0}]"], "grid.early_exit.1.threshold", "greater than 0"),
    (["grid.early_exit=[null, {every: 0}]"], "grid.early_exit.1.every", "greater than or equal to 1"),
    (["grid.early_exit=[{method: vote}]"], "grid.early_exit.0.method", "'confidence' or 'consistency'"),
    (["grid.early_exit=[{every: null, transitions: []}]"], "grid.early_exit.0", "time to probe"),
    (["grid.early_exit=[null, {thresh: 0.5}]"], "grid.early_exit.1.thresh", "valid keys: agree, every, method"),
    (["grid.early_exit=[null, null]"], "grid.early_exit", "may appear once"),
    (["grid.early_exit=[]"], "grid.early_exit", "at least one setting"),
    (["preset=no-think", f"grid.early_exit=[null, {EXITING}]"], "grid.early_exit[1]", "answer prefix"),
    (["policy.early_exit={threshold: 0.9}"], "grid.early_exit", "not in policy"),
    # A policy that fails on its own is blamed on the policy, also beside early exit.
    ([f"grid.early_exit=[{EXITING}]", "policy.min_thinking_tokens=100000"], "policy: min_thinking_tokens",
     "exceeds max_thinking_tokens"),
])
def test_bad_settings_are_refused_at_load_naming_the_field(overrides: list[str], field: str, says: str) -> None:
    # The model does not exist: the error must come from validation, before anything loads.
    with pytest.raises(DataError) as caught:
        config("model=/no/such/model", *overrides)
    message = str(caught.value)
    assert field in message and says in message


ITEM = MCQItem(uid="q1", source="Sample_Basic", question="Which organ?", options={"A": "Liver", "B": "Kidney",
               "C": "Heart"}, answer_idx="B", answer="Kidney")


def test_rows_carry_probes_only_with_early_exit() -> None:
    grid = config(f"grid.early_exit=[null, {EXITING}]", "grid.max_thinking_tokens=[128]")
    fixed, exiting = grid.grid_points()
    plain = GenerationRecord(prompt="p", thinking="t", reply="B", thinking_tokens=128, answer_tokens=2,
                             thinking_end="budget_reached", answer_end="stop")
    row = prediction_row(ITEM, fixed, plain, 1.0)
    assert not {"probes", "probe_tokens", "probe_seconds", "exit_rule"} & set(row)
    trajectory = [{"thinking_tokens": 64, "answer": "A", "probability": 0.6, "outside": 0.1, "read": "letters",
                   "tokens": 9, "seconds": 0.01, "note": None},
                  {"thinking_tokens": 96, "answer": "B", "probability": 0.93, "outside": 0.05, "read": "letters",
                   "tokens": 9, "seconds": 0.0125, "note": None}]
    probed = GenerationRecord(prompt="p", thinking="t", reply="B", thinking_tokens=96, answer_tokens=2,
                              thinking_end="early_exit", answer_end="stop", probes=trajectory, probe_tokens=18,
                              probe_seconds=0.0225, exit_rule="confidence >= 0.9")
    row = prediction_row(ITEM, exiting, probed, 1.0)
    assert row["probes"] == trajectory and row["probe_tokens"] == 18 and row["exit_rule"] == "confidence >= 0.9"
    assert row["probe_seconds"] == pytest.approx(0.0225)
    assert set(prediction_row(ITEM, exiting, probed, 1.0)) - set(prediction_row(ITEM, fixed, plain, 1.0)) == {
        "probes", "probe_tokens", "probe_seconds", "exit_rule"}

    never = GenerationRecord(prompt="p", thinking="t", reply="A", thinking_tokens=128, answer_tokens=2,
                             thinking_end="budget_reached", answer_end="stop", probes=trajectory[:1],
                             probe_tokens=9, probe_seconds=0.01, exit_rule="confidence >= 0.9")
    rows = [prediction_row(ITEM, exiting, record, 1.0) for record in (probed, never)]
    usage = token_usage(rows)
    assert usage["probes_mean"] == pytest.approx(1.5) and usage["probe_tokens_mean"] == pytest.approx(13.5)
    assert usage["probe_seconds_mean"] == pytest.approx(0.01625) and usage["early_exit_rate"] == 0.5
    assert "early_exit_rate" not in token_usage([prediction_row(ITEM, fixed, plain, 1.0)])
