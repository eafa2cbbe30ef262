"""`m1 eval`'s samples axis and calibration, without a model: grid keys, run identity, validation
at load, per-sample seeds, the run directory's per-sample resume and wall time, and what scoring
writes for points with several samples per item (rows written by hand, as a run writes them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from m1.config import load_config
from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.engine.controller import GenerationRecord
from m1.evaluation.config import EvalConfig, GridPoint, sample_seed
from m1.evaluation.results import answer_confidence, read_tokens, score_run, token_usage
from m1.evaluation.runner import pending_predictions, prediction_row
from m1.evaluation.store import RunStore
from m1.scoring import build_report, prediction_from_record

REPO = Path(__file__).resolve().parents[2]
PRESETS = REPO / "configs" / "eval"
SAMPLING = "policy.sampling={temperature: 0.7, top_p: 0.95}"


def config(*overrides: str, path: Path | None = None) -> EvalConfig:
    return load_config(EvalConfig, path, list(overrides))


def test_keys_name_the_sample_count_between_early_exit_and_suffix() -> None:
    grid = config(SAMPLING, "grid.max_thinking_tokens=[64]", "grid.samples=[1, 4]",
                  "grid.early_exit=[null, {method: consistency, agree: 2, every: 32}]",
                  "grid.prompt_suffix=['Answer.', 'Think, then answer.']")
    keys = [p.key for p in grid.grid_points()]
    assert keys == ["B64_K0", "B64_K0_S1", "B64_K0_N4", "B64_K0_N4_S1",
                    "B64_K0_EE1", "B64_K0_EE1_S1", "B64_K0_EE1_N4", "B64_K0_EE1_N4_S1"]
    for point in grid.grid_points():
        assert point.fixed.samples == point.samples and point.fixed.early_exit is None
        assert point.fixed.key in keys
    # One sample per item: the keys a grid had before the axis existed.
    assert [p.key for p in config(SAMPLING, "grid.max_thinking_tokens=[64]", "grid.samples=[1]").grid_points()] == [
        p.key for p in config(SAMPLING, "grid.max_thinking_tokens=[64]").grid_points()] == ["B64_K0"]
    assert GridPoint(None, 0, "x", 2, samples=3).key == "nothink_N3_S2"


def test_identity_of_old_style_configs_is_unchanged() -> None:
    # Identities that m1 computed on main before grid.samples and calibration existed.
    before = {"budget_sweep": "853e510941", "budget_forcing": "e509bfb815", "baselines": "0811e6f439",
              "quick_demo": "832db1397b", "adaptive": "bd92e21382"}
    for name, identity in before.items():
        assert config(path=PRESETS / f"{name}.yaml").identity() == identity
        assert config("grid.samples=[1]", "calibration=true", path=PRESETS / f"{name}.yaml").identity() == identity
    assert config().identity() == "297663109c"
    demo = PRESETS / "quick_demo.yaml"
    changed = {config("calibration=false", path=demo).identity(),
               config(SAMPLING, "grid.samples=[1, 4]", path=demo).identity(),
               config(SAMPLING, "grid.samples=[1, 2]", path=demo).identity()}
    assert len(changed | {before["quick_demo"]}) == 4
    # Sampled runs drew with other seeds before per-sample seeds (main: c6866e9b53): they must not resume.
    sampled = config("policy.sampling.temperature=0.7", path=demo).identity()
    assert sampled not in {"c6866e9b53", before["quick_demo"]}


@pytest.mark.parametrize(("overrides", "says"), [
    (["grid.samples=[4]"], ["grid.samples", "policy.sampling.temperature"]),
    (["grid.samples=[1, 2]", "policy.sampling.temperature=0"], ["grid.samples", "policy.sampling.temperature"]),
    (["grid.samples=[0]"], ["grid.samples", "1 or more"]),
    (["grid.samples=[]"], ["grid.samples", "1 or more"]),
    ([SAMPLING, "grid.samples=[4, 4]"], ["grid.samples", "may appear once"]),
    (["policy.answer_probability=true"], ["calibration", "not policy.answer_probability"]),
    ([SAMPLING, "policy.sampling.seed=3"], ["policy.sampling.seed", "seed="]),
])
def test_bad_sample_settings_are_refused_at_load(overrides: list[str], says: list[str]) -> None:
    with pytest.raises(DataError) as caught:
        config("model=/no/such/model", *overrides)
    assert all(part in str(caught.value) for part in says)


def test_each_sample_has_its_own_seed_and_greedy_points_keep_theirs() -> None:
    seeds = {sample_seed(42, f"q{u}", s) for u in range(50) for s in range(8)}
    assert len(seeds) == 400 and all(0 <= seed < 2 ** 31 for seed in seeds)
    digest = hashlib.sha256("42\x1fq7\x1f3".encode()).digest()  # the documented recipe
    assert sample_seed(42, "q7", 3) == int.from_bytes(digest[:4], "big") >> 1 != sample_seed(43, "q7", 3)

    sampled = config(SAMPLING, "grid.samples=[1, 4]", "seed=5")
    point = sampled.grid_points()[1]
    base = sampled.policy_for(point)
    assert base.answer_probability and base.sampling.temperature == 0.7
    drawn = [sampled.sample_policy(base, "q1", s) for s in range(4)]
    assert [p.sampling.seed for p in drawn] == [sample_seed(5, "q1", s) for s in range(4)]
    assert all(p.model_copy(update={"sampling": base.sampling}) == base for p in drawn)
    greedy = config("calibration=false")
    policy = greedy.policy_for(greedy.grid_points()[0])
    assert greedy.sample_policy(policy, "q1", 0) is policy and not policy.answer_probability


ITEMS = [MCQItem(uid=f"q{n}", source=source, question=f"Question {n}?", options={"A": "x", "B": "y", "C": "z"},
                 answer_idx="B", answer="y") for n, source in enumerate(["S1", "S1", "S2"])]


def record(reply: str, thinking: int, letters: dict[str, float] | None = None, read: bool = True) -> GenerationRecord:
    answer_read = None if not read else {"answer": None, "probability": None, "letters": letters, "outside": 0.0,
                                         "read": "letters", "tokens": 1, "seconds": 0.01, "note": None,
                                         "reused": False}
    return GenerationRecord(prompt="p", thinking="t", reply=reply, thinking_tokens=thinking, answer_tokens=3,
                            thinking_end="budget_reached", answer_end="stop", answer_read=answer_read)


def test_rows_carry_the_answer_read_and_the_sample_number() -> None:
    grid = config(SAMPLING, "grid.max_thinking_tokens=[64]", "grid.samples=[1, 3]")
    single, several = grid.grid_points()
    plain = GenerationRecord(prompt="p", reply="B", thinking_tokens=5, answer_tokens=2)
    assert not {"answer_read", "sample"} & set(prediction_row(ITEMS[0], single, plain, 1.0))
    read = record("Final Answer: B", 64, {"A": 0.2, "B": 0.7, "C": 0.1})
    row = prediction_row(ITEMS[0], several, read, 1.0, sample=2)
    assert row["answer_read"] == read.answer_read and row["sample"] == 2
    assert prediction_row(ITEMS[0], single, read, 1.0)["answer_read"] == read.answer_read

    assert answer_confidence(row, "B") == 0.7 and answer_confidence(row, None) == 0.0
    assert answer_confidence(prediction_row(ITEMS[0], single, plain, 1.0), "B") is None
    assert answer_confidence(prediction_row(ITEMS[0], single, record("B", 4, None), 1.0), "B") is None
    assert read_tokens(row) == 1 and read_tokens(prediction_row(ITEMS[0], single, plain, 1.0)) == 0
    row["answer_read"] |= {"reused": True}  # the last early-exit probe's read: paid for as a probe
    assert read_tokens(row) == 0

    finished = {("q0", 0), ("q0", 2), ("q2", 1)}
    assert [(i.uid, s) for i, s in pending_predictions(several, ITEMS, finished)] == [
        ("q0", 1), ("q1", 0), ("q1", 1), ("q1", 2), ("q2", 0), ("q2", 2)]
    assert [(i.uid, s) for i, s in pending_predictions(single, ITEMS, finished)] == [("q1", 0), ("q2", 0)]


def test_token_usage_counts_every_sample_of_an_item() -> None:
    point = config(SAMPLING, "grid.max_thinking_tokens=[64]", "grid.samples=[2]").grid_points()[0]
    rows = [prediction_row(item, point, record("B", thinking), 1.0, sample)
            for item, thinking in zip(ITEMS[:2], (10, 30)) for sample in range(2)]
    rows[1] |= {"probes": [], "probe_tokens": 4, "probe_seconds": 0.0, "exit_rule": None}
    usage = token_usage(rows)
    # Per item: both samples' thinking + answer (+ probes): (13 + 17) and (33 + 33), averaged.
    assert usage["total_tokens_mean"] == pytest.approx((13 + 17 + 33 + 33) / 2)
    assert usage["thinking_tokens_mean"] == pytest.approx(20)


def store_with(tmp_path: Path, grid: EvalConfig) -> RunStore:
    store = RunStore.open(grid.model_copy(update={"out_dir": str(tmp_path), "name": "run"}))
    store.save_items(ITEMS)
    return store


def test_store_resumes_per_sample_in_item_then_sample_order(tmp_path: Path) -> None:
    grid = config(SAMPLING, "grid.max_thinking_tokens=[64]", "grid.samples=[3]")
    point = grid.grid_points()[0]
    store = store_with(tmp_path, grid)
    # Finished out of order (batches, a resumed run), one written twice around a crash.
    for uid, sample in [("q2", 1), ("q0", 2), ("q0", 0), ("q2", 1), ("q1", 0)]:
        store.append_prediction(point, {"uid": uid, "sample": sample, "reply": f"{uid}/{sample}"})
    path = store.predictions_path(point)
    with path.open("a") as handle:
        handle.write('{"uid": "q1", "sample": 1, "rep')  # cut short by kill -9
    assert store.finished(point) == {("q2", 1), ("q0", 2), ("q0", 0), ("q1", 0)}
    assert [(r["uid"], r["sample"]) for r in store.predictions(point)] == [("q0", 0), ("q0", 2), ("q1", 0), ("q2", 1)]
    store.repair(point)
    store.append_prediction(point, {"uid": "q1", "sample": 1, "reply": "q1/1"})
    assert ("q1", 1) in store.finished(point) and len(store.predictions(point)) == 5

    assert store.seconds_per_generation(point) is None  # never timed: unknown, not zero
    store.record_timing(point, 1.25, 4)
    store.record_timing(point, 0.5, 2)
    assert store.seconds_per_generation(point) == pytest.approx(1.75 / 6)
    lines = [json.loads(line) for line in (store.point_dir(point) / "timing.jsonl").read_text().splitlines()]
    assert lines == [{"seconds": 1.25, "generations": 4}, {"seconds": 0.5, "generations": 2}]


def test_scoring_a_sampled_point_keeps_every_sample(tmp_path: Path) -> None:
    grid = config(SAMPLING, "grid.max_thinking_tokens=[64]", "grid.samples=[1, 2]")
    single, several = grid.grid_points()
    store = store_with(tmp_path, grid)
    letters = {"A": 0.1, "B": 0.6, "C": 0.3}
    replies = {"q0": ["Final Answer: B", "Final Answer: A"], "q1": ["Final Answer: C", "no idea"],
               "q2": ["Final Answer: B", "Final Answer: B"]}
    for item in ITEMS:
        for sample in (1, 0):  # finished out of order
            generated = record(replies[item.uid][sample], 20 + sample, letters)
            store.append_prediction(several, prediction_row(item, several, generated, 1.0, sample))
        store.append_prediction(single, prediction_row(item, single, record(replies[item.uid][0], 20, read=False), 1.0))
    store.record_timing(several, 3.0, 6)
    store.record_timing(single, 1.5, 3)

    summary = score_run(grid, store, [single, several], ITEMS)
    entries = {entry["point"]: entry for entry in summary["points"]}
    assert entries["B64_K0"]["samples"] == 1 and entries["B64_K0_N2"]["samples"] == 2
    usage = entries["B64_K0_N2"]["usage"]
    assert usage["wall_seconds"] == 3.0 and usage["wall_seconds_per_item"] == pytest.approx(1.0)
    assert usage["total_tokens_mean"] == pytest.approx(20 + 3 + 21 + 3)
    # Summarised by its majority vote: one answer per item, so the interval counts items.
    voted = entries["B64_K0_N2"]["strict"]
    assert voted["micro"]["items"] == 3 and set(voted["rules"]) <= {"majority_vote", "no_answer"}
    # The budget audit counts every sample as one generation.
    assert entries["B64_K0_N2"]["audit"]["generations"] == 6 and entries["B64_K0"]["audit"]["generations"] == 3

    scored = [json.loads(line) for line in (store.point_dir(several) / "scored.jsonl").read_text().splitlines()]
    assert [(r["uid"], r["sample"]) for r in scored] == [(i.uid, s) for i in ITEMS for s in (0, 1)]
    by_key = {(r["uid"], r["sample"]): r for r in scored}
    assert by_key[("q0", 1)]["strict_letter"] == "A" and by_key[("q0", 1)]["confidence_strict"] == 0.1
    assert by_key[("q1", 1)]["strict_letter"] is None and by_key[("q1", 1)]["confidence_strict"] == 0.0
    assert by_key[("q2", 0)]["confidence_reference"] == 0.6 and by_key[("q2", 0)]["tokens"] == 23
    assert all(r["read_tokens"] == 1 for r in scored)  # the read is not in "tokens"

    # A one-sample point scores as it always has: its rows, as m1 score reads them, and no sample field.
    plain = [json.loads(line) for line in (store.point_dir(single) / "scored.jsonl").read_text().splitlines()]
    assert all("sample" not in r and r["confidence_strict"] is None and r["read_tokens"] == 0 for r in plain)
    rows = [prediction_from_record("x", n, r) for n, r in enumerate(store.predictions(single), start=1)]
    report = build_report(rows)
    assert entries["B64_K0"]["strict"] == report.modes["strict"].to_dict()
    assert entries["B64_K0"]["reference"] == report.modes["reference"].to_dict()
    metrics = json.loads((store.point_dir(several) / "metrics.json").read_text())
    assert metrics["samples"] == 2 and metrics["usage"] == usage

    store.predictions_path(several).write_text("".join(
        line + "\n" for line in store.predictions_path(several).read_text().splitlines()[:-1]))
    with pytest.raises(DataError, match=r"1 of 6 predictions missing \(the first: uid q2, sample 0\)"):
        score_run(grid, store, [single, several], ITEMS)


def test_compute_optimal_preset_crosses_every_axis() -> None:
    preset = config(path=PRESETS / "compute_optimal.yaml")
    points = preset.grid_points()
    assert len(points) == 3 * 2 * 2 * 2 and len({p.key for p in points}) == 24
    assert {p.samples for p in points} == {1, 4} and "B128_K2_EE1_N4" in {p.key for p in points}
    assert preset.model == "smollm2-135m" and preset.backend == "vllm" and preset.calibration
    policy = preset.policy_for(points[-1])
    assert (policy.sampling.temperature, policy.sampling.top_p) == (0.7, 0.95)
    assert (policy.min_thinking_tokens, policy.max_answer_tokens, policy.preset) == (32, 24, "think-tags")
    assert policy.early_exit.method == "consistency" and policy.early_exit.every == 32
