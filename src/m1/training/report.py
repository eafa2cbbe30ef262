"""The training report of a run: loss curve, tokens, time, length policy, probe, config.

    paths = write_report(run_dir / "report", summary, trainer.state.log_history)
    # report/report.json   everything, machine-readable
    # report/report.md     the same for people
    # report/loss.png      training loss per step, held-out loss before training and at each evaluation
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1.io import atomic_write_bytes, atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    markdown: Path
    figure: Path


def loss_points(log_history: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(training loss, held-out loss) as (step, value) pairs from the Trainer's log history."""
    train = [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e and "step" in e]
    held_out = [(int(e["step"]), float(e["eval_loss"])) for e in log_history if "eval_loss" in e and "step" in e]
    return train, held_out


def loss_figure(log_history: list[dict[str, Any]], title: str) -> bytes:
    from matplotlib.figure import Figure

    train, held_out = loss_points(log_history)
    figure = Figure(figsize=(6.4, 3.8), layout="constrained")
    axis = figure.subplots()
    if train:
        axis.plot(*zip(*train), label="training loss", color="tab:blue", linewidth=1.2)
    if held_out:
        axis.plot(*zip(*held_out), label="held-out loss", color="tab:orange", marker="o", linewidth=1.2)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss (assistant tokens)")
    axis.set_title(title, fontsize="medium")
    axis.grid(alpha=0.3)
    if train or held_out:
        axis.legend(frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def markdown_summary(summary: dict[str, Any]) -> str:
    lines = [f"# Training report: {summary['model']}", "",
             f"- run: `{summary['output_dir']}`; final model: `{summary['final_model']}`",
             f"- steps: {summary['global_step']} in {summary['train_seconds']:.0f} s "
             f"({summary['epochs_done']:.2f} epochs); input tokens seen: {summary['input_tokens_seen']:,}",
             f"- training loss: first {_fmt(summary['first_train_loss'])}, last {_fmt(summary['last_train_loss'])}"]
    held = summary.get("held_out_loss", {})
    if held:
        lines.append(f"- held-out loss: before {_fmt(held.get('before'))}, after {_fmt(held.get('after'))} "
                     f"({summary['held_out_records']} records)")
    probe = summary.get("probe", {})
    for when in ("before", "after"):
        if when in probe:
            result = probe[when]
            lines.append(f"- writes the m1 format unforced, {when} training: {result['following']} of "
                         f"{result['items']} ({100 * result['rate']:.0f} %)")
    lines += ["", "## Length policy", "", "| split | in | out | within | truncated | trimmed | dropped | tokens | loss tokens |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for split, report in summary["lengths"].items():
        lines.append(f"| {split} | {report['records_in']} | {report['records_out']} | {report['within_limit']} | "
                     f"{report['truncated']} | {report['trimmed']} | {report['dropped_total']} | {report['tokens']:,} | "
                     f"{report['loss_tokens']:,} |")
    lines += ["", f"policy `{summary['lengths']['train']['policy']}` at max_length "
                  f"{summary['lengths']['train']['max_length']}; drop reasons: "
                  f"{json.dumps({s: r['dropped'] for s, r in summary['lengths'].items()})}",
              "", "![loss](loss.png)", "", "## Config", "", "```yaml", summary["config_yaml"].rstrip(), "```", ""]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def write_report(folder: Path, summary: dict[str, Any], log_history: list[dict[str, Any]]) -> ReportPaths:
    folder.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(folder / "report.json", folder / "report.md", folder / "loss.png")
    atomic_write_bytes(paths.figure, loss_figure(log_history, f"{summary['model']} — {summary['output_dir']}"))
    atomic_write_json(paths.json, summary | {"log_history": log_history})
    atomic_write_text(paths.markdown, markdown_summary(summary))
    return paths
