"""Early exit in `m1 eval`'s summary and `m1 report`: a run directory written row by row through the
runner's own row builder and scoring, with probe trajectories shaped like the engine's, then the
comparison with the fixed budget, the settling curves, the tables and the figure checked against
numbers worked out from how the rows were made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="m1 report needs matplotlib: pip install matplotlib")

from m1.data.items import MCQItem
from m1.engine.controller import GenerationRecord
from m1.evaluation.config import EvalConfig, GridConfig, GridPoint
from m1.evaluation.paired import mcnemar_exact
from m1.evaluation.report import (
    MICRO,
    answer_settling_figure,
    budget_series,
    load_runs,
    settling_points,
    write_report,
)
from m1.evaluation.results import score_run
from m1.evaluation.runner import prediction_row
from m1.evaluation.store import RunStore

OPTIONS = {"A": "Liver", "B": "Kidney", "C": "Heart", "D": "Lung"}
SIZES = {"MedQA_USLME_test": 10, "PubMedQA_test": 8, "GPQA_Medical_test": 5}
EVERY = 64
EXITING = {"method": "confidence", "threshold": 0.9, "every": EVERY}
OBSERVING = EXITING | {"observe": True}
# Which items (by index within their source) each arm gets right. Early exit loses item 0 and
# wins items the fixed budget misses: in MedQA it is right on 1–6 where the fixed budget is right
# on 0–4, so 2 items are right only with early exit (5, 6) and 1 only at the fixed budget (0).
FIXED_RIGHT = {"MedQA_USLME_test": set(range(0, 5)), "PubMedQA_test": set(range(0, 4)), "GPQA_Medical_test": {0, 1}}
EXIT_RIGHT = {"MedQA_USLME_test": set(range(1, 7)), "PubMedQA_test": set(range(0, 4)), "GPQA_Medical_test": {1, 2, 3}}


def items() -> list[MCQItem]:
    return [MCQItem(uid=f"{source}-{i}", source=source, question=f"Question {i} of {source}?", options=OPTIONS,
                    answer_idx="A", answer="Liver")
            for source, size in SIZES.items() for i in range(size)]


def settles_at(index: int) -> int:
    """Item `index` of a source: its probes give the final letter from this many thinking tokens on."""
    return EVERY * (index + 1)


def record(point: GridPoint, index: int, right: bool) -> GenerationRecord:
    """What the engine records for one item: fixed points think to the budget; probing points probe
    every EVERY tokens (a wrong letter, then the final one from `settles_at` on), and an exiting
    point ends thinking at the first probe that gives the final letter."""
    letter = "A" if right else "B"
    reply = f"\\boxed{{{letter}}}"
    budget = point.budget
    if point.early_exit is None:
        return GenerationRecord(prompt="", thinking="...", answer=reply, reply=reply, thinking_tokens=budget,
                                answer_tokens=5, thinking_end="budget_reached", answer_end="stop")
    exits = not point.early_exit.observe and settles_at(index) < budget
    used = settles_at(index) if exits else budget
    # The controller does not probe at the budget itself: thinking ends there.
    probes = [{"thinking_tokens": t, "answer": letter if t >= settles_at(index) else "C",
               "probability": 0.95 if t >= settles_at(index) else 0.5, "outside": 0.02, "read": "letters",
               "tokens": 9, "seconds": 0.004, "note": None}
              for t in range(EVERY, used + (1 if exits else 0), EVERY) if t < budget]
    return GenerationRecord(prompt="", thinking="...", answer=reply, reply=reply, thinking_tokens=used,
                            answer_tokens=5, thinking_end="early_exit" if exits else "budget_reached",
                            answer_end="stop", probes=probes, probe_tokens=9 * len(probes),
                            probe_seconds=0.004 * len(probes), exit_rule="confidence >= 0.9")


def make_run(root: Path, name: str, budgets: list[int], settings: list[dict | None]) -> Path:
    config = EvalConfig(model="some/model", name=name, out_dir=str(root), preset="m1", seed=3,
                        grid=GridConfig(max_thinking_tokens=budgets, early_exit=settings))
    store = RunStore.open(config)
    chosen = items()
    store.save_items(chosen)
    points = config.grid_points()
    for point in points:
        for item in chosen:
            index = int(item.uid.rsplit("-", 1)[1])
            right = index in (FIXED_RIGHT if point.early_exit is None or point.early_exit.observe else EXIT_RIGHT)[item.source]
            store.append_prediction(point, prediction_row(item, point, record(point, index, right), 0.1))
    store.write_summary(score_run(config, store, points, chosen))
    return store.root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), "adaptive", [256, 1024], [None, EXITING, OBSERVING])


@pytest.fixture(scope="module")
def report(run: Path, tmp_path_factory: pytest.TempPathFactory):
    return write_report([run], tmp_path_factory.mktemp("report"))


def exit_tokens(source: str, budget: int) -> list[int]:
    return [settles_at(i) if settles_at(i) < budget else budget for i in range(SIZES[source])]


def test_summary_pairs_each_early_exit_point_with_its_fixed_budget(run: Path) -> None:
    summary = json.loads((run / "metrics.json").read_text())
    comparisons = {c["point"]: c for c in summary["early_exit"]["comparisons"]}
    assert "McNemar" in summary["early_exit"]["method"] and "bootstrap" in summary["early_exit"]["method"]
    assert set(comparisons) == {"B256_K0_EE1", "B256_K0_EE2", "B1024_K0_EE1", "B1024_K0_EE2"}
    exiting = comparisons["B256_K0_EE1"]
    assert exiting["fixed"] == "B256_K0" and exiting["early_exit"]["threshold"] == 0.9
    assert [s["source"] for s in exiting["sources"]] == list(SIZES)

    for group in exiting["sources"]:
        source = group["source"]
        tokens = exit_tokens(source, 256)
        assert group["items"] == SIZES[source]
        assert group["thinking_tokens_fixed"] == 256
        assert group["thinking_tokens_early_exit"] == pytest.approx(sum(tokens) / len(tokens))
        assert group["tokens_saved_pct"] == pytest.approx(100 * (1 - sum(tokens) / len(tokens) / 256))
        assert group["early_exit_rate"] == pytest.approx(sum(t < 256 for t in tokens) / len(tokens))
        a_only = len(EXIT_RIGHT[source] - FIXED_RIGHT[source])
        b_only = len(FIXED_RIGHT[source] - EXIT_RIGHT[source])
        for mode in ("strict", "reference"):  # boxed letters: both graders read the same
            paired = group[mode]
            assert (paired["a_only"], paired["b_only"]) == (a_only, b_only)
            assert paired["difference"] == pytest.approx((a_only - b_only) / SIZES[source])
            assert paired["p_value"] == pytest.approx(mcnemar_exact(a_only, b_only))
            assert paired["ci_low"] <= paired["difference"] <= paired["ci_high"]
    # MedQA by hand: right only with early exit 5, 6; only at the fixed budget 0.
    medqa = exiting["sources"][0]["strict"]
    assert (medqa["a_only"], medqa["b_only"], medqa["difference"]) == (2, 1, pytest.approx(0.1))

    overall = exiting["overall"]
    assert overall["items"] == sum(SIZES.values())
    assert (overall["strict"]["a_only"], overall["strict"]["b_only"]) == (2 + 0 + 2, 1 + 0 + 1)
    # Observing never exits and thinks as the fixed budget does: nothing saved, nothing changed.
    observed = comparisons["B1024_K0_EE2"]["overall"]
    assert observed["tokens_saved_pct"] == 0 and observed["early_exit_rate"] == 0
    assert observed["strict"]["difference"] == 0 and observed["strict"]["p_value"] == 1.0

    points = {p["point"]: p for p in summary["points"]}
    assert "early_exit" not in points["B256_K0"] and "probe_tokens_mean" not in points["B256_K0"]["usage"]
    assert points["B256_K0_EE1"]["early_exit"] == json.loads(json.dumps(
        GridConfig(early_exit=[EXITING]).early_exit[0].model_dump(mode="json")))
    assert points["B1024_K0_EE1"]["usage"]["early_exit_rate"] == pytest.approx(
        sum(t < 1024 for s in SIZES for t in exit_tokens(s, 1024)) / sum(SIZES.values()))


def test_settling_curves_follow_the_probe_trajectories(run: Path) -> None:
    point = next(p for p in json.loads((run / "metrics.json").read_text())["points"] if p["point"] == "B256_K0_EE2")
    curves = point["settling"]
    assert curves["observe"] and curves["thinking_tokens"] == list(range(0, 257, 4))
    for source, size in SIZES.items():
        # Item j's probes give its final letter from 64·(j+1) tokens on; probes stop below the budget
        # (256), where every item's thinking is over.
        expected = [(size if t >= 256 else min(size, t // EVERY, 3)) / size for t in curves["thinking_tokens"]]
        assert curves["strict"]["sources"][source] == pytest.approx(expected, abs=1e-4)
    total = sum(SIZES.values())
    assert curves["strict"]["overall"] == pytest.approx(
        [sum(size if t >= 256 else min(size, t // EVERY, 3) for size in SIZES.values()) / total
         for t in curves["thinking_tokens"]], abs=1e-4)


def test_report_tables_show_the_comparison(report, run: Path) -> None:
    markdown = report.markdown.read_text()
    section = markdown.split("## Early exit versus fixed budget, all items")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| B256_K0_EE1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    tokens = [t for s in SIZES for t in exit_tokens(s, 256)]
    assert cells[:4] == ["B256_K0_EE1", "B256_K0", "confidence ≥ 0.9, every 64, transitions", str(len(tokens))]
    assert cells[4:7] == ["256", f"{sum(tokens) / len(tokens):.0f}", f"{100 * (1 - sum(tokens) / len(tokens) / 256):.1f}"]
    fixed_right = sum(len(v) for v in FIXED_RIGHT.values())
    exit_right = sum(len(v) for v in EXIT_RIGHT.values())
    assert cells[9] == f"{100 * fixed_right / 23:.1f} → {100 * exit_right / 23:.1f}"
    assert cells[10].startswith(f"{100 * (exit_right - fixed_right) / 23:+.1f} (")
    assert cells[11] == f"{mcnemar_exact(4, 2):.3g}"
    assert "| B1024_K0_EE2 | B1024_K0 | confidence ≥ 0.9, every 64, transitions (observe) | 23 | 1024 | 1024 | 0.0 |" in section
    by_source = markdown.split("## Early exit versus fixed budget by source — adaptive")[1].split("\n## ")[0]
    medqa = next(line for line in by_source.splitlines() if line.startswith("| B256_K0_EE1 | MedQA_USLME_test |"))
    assert medqa.split("|")[10].strip().startswith("+10.0 (")
    assert "| B256_K0_EE1 | all items | 23 |" in by_source
    html_text = report.html.read_text()
    assert "Early exit versus fixed budget, all items" in html_text and "Answer settling" in html_text


def test_report_draws_the_settling_figure_from_observe_points(report, run: Path) -> None:
    stems = sorted({path.stem for path in report.figures})
    assert stems == ["accuracy_vs_budget", "accuracy_vs_compute", "answer_settling", "thinking_tokens"]
    assert report.html.read_text().count("<img src='data:image/png;base64,") == 4
    [result] = load_runs([run])
    assert [p.key for p in settling_points(result)] == ["B256_K0_EE2", "B1024_K0_EE2"]
    figure = answer_settling_figure([result], list(SIZES) + [MICRO], "strict")
    overall_axis = figure.axes[len(SIZES)]
    lines = {line.get_label(): line for line in overall_axis.get_lines()}
    line = lines["B256_K0_EE2: confidence ≥ 0.9, every 64, transitions (observe)"]
    x = list(line.get_xdata())
    assert x[0] == 4 and x[-1] == 256  # 0 tokens has no place on a log axis
    point = next(p for p in result.points if p.key == "B256_K0_EE2")
    assert list(line.get_ydata()) == pytest.approx([100 * s for s in point.settling["strict"]["overall"][1:]])
    # Budget curves: one line each for the fixed budget and both early-exit settings.
    assert [series.label for series in budget_series([result])[0]] == ["adaptive", "adaptive EE1", "adaptive EE2"]


def test_without_observe_points_the_exiting_points_are_drawn(tmp_path: Path) -> None:
    path = make_run(tmp_path, "exiting", [256], [None, EXITING])
    [result] = load_runs([path])
    assert [p.key for p in settling_points(result)] == ["B256_K0_EE1"]
    paths = write_report([path], tmp_path / "report")
    assert "answer_settling" in {p.stem for p in paths.figures}
    fixed_only = write_report([make_run(tmp_path, "fixed", [256], [None])], tmp_path / "fixed-report")
    assert "answer_settling" not in {p.stem for p in fixed_only.figures}
    assert "Early exit" not in fixed_only.markdown.read_text() and fixed_only.early_exit == {}


def test_an_early_exit_point_without_its_fixed_budget_is_listed_not_compared(tmp_path: Path) -> None:
    path = make_run(tmp_path, "alone", [256], [EXITING])
    summary = json.loads((path / "metrics.json").read_text())
    [comparison] = summary["early_exit"]["comparisons"]
    assert comparison["point"] == "B256_K0_EE1" and comparison["fixed"] is None and "overall" not in comparison
    markdown = write_report([path], tmp_path / "report").markdown.read_text()
    assert "Not compared (the grid has no fixed point of the same cap): B256_K0_EE1." in markdown


def test_report_command_json_holds_the_comparisons(run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from m1.cli import app

    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["early_exit"]["adaptive"] == json.loads((run / "metrics.json").read_text())["early_exit"]
