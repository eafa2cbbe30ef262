"""The run directory: everything an evaluation produced, written so that a crash loses nothing.

    runs/<name>/
      config.yaml            the resolved config (secrets never written)
      run.json               identity hash, m1 version, created/finished times, the labels file
                             and its sha256 (with domains=)
      items.jsonl            the sampled items, in order
      points/<key>/predictions.jsonl   one line per finished item (per item and sample when N > 1),
                                       appended and fsynced
      points/<key>/timing.jsonl        one line per generate call: {"seconds", "generations"}
      points/<key>/scored.jsonl        per prediction: letter, rule and confidence in both modes
      points/<key>/metrics.json        both modes' metrics, token use, timing
      metrics.json           every grid point's summary, for reports

`predictions.jsonl` is in the schema `m1 score` reads; rows of points with several samples per
item also carry `"sample"` (0-based), and a prediction is the pair (uid, sample), sample 0 for
rows without one. A line cut short by `kill -9` is ignored when resuming, and its prediction is
generated again. Opening a run directory that holds a different
config is refused, so results of two configs never mix.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from m1 import __version__
from m1.config import dump_config
from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.evaluation.config import EvalConfig, GridPoint
from m1.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl_tolerant


class RunStore:
    def __init__(self, root: Path, config: EvalConfig):
        self.root, self.config = root, config

    @classmethod
    def open(cls, config: EvalConfig) -> RunStore:
        """Create the run directory, or reopen it when it holds the same config."""
        root = Path(config.out_dir) / config.run_name()
        run_file = root / "run.json"
        if run_file.exists():
            existing = json.loads(run_file.read_text())
            if existing.get("identity") != config.identity():
                raise DataError.at(root, "", "identity",
                                   f"this run directory holds a different config ({existing.get('identity')})",
                                   "choose another name= or out_dir=, or delete the old run")
        else:
            root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(root / "config.yaml", dump_config(_without_secrets(config)))
            domains = {"domains": config.domains_file()} if config.domains is not None else {}
            atomic_write_json(run_file, {"identity": config.identity(), "m1_version": __version__,
                                         "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None} | domains)
        return cls(root, config)

    # ------------------------------------------------------------------ items

    def save_items(self, items: list[MCQItem]) -> None:
        path = self.root / "items.jsonl"
        if not path.exists():
            atomic_write_text(path, "".join(json.dumps(item.model_dump(), ensure_ascii=False) + "\n" for item in items))

    # ------------------------------------------------------------------ predictions

    def point_dir(self, point: GridPoint) -> Path:
        return self.root / "points" / point.key

    def predictions_path(self, point: GridPoint) -> Path:
        return self.point_dir(point) / "predictions.jsonl"

    def finished(self, point: GridPoint) -> set[tuple[str, int]]:
        """The (uid, sample) pairs that have a complete row."""
        return {prediction_key(row) for row in read_jsonl_tolerant(self.predictions_path(point))}

    def append_prediction(self, point: GridPoint, row: dict[str, Any]) -> None:
        append_jsonl(self.predictions_path(point), [row])

    def predictions(self, point: GridPoint) -> list[dict[str, Any]]:
        """Finished rows, one per (uid, sample) (a line written twice around a crash counts once),
        in item order (items.jsonl), then sample order, whatever order they finished in."""
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for row in read_jsonl_tolerant(self.predictions_path(point)):
            rows.setdefault(prediction_key(row), row)
        position = {row["uid"]: number for number, row in enumerate(read_jsonl_tolerant(self.root / "items.jsonl"))}
        return sorted(rows.values(), key=lambda row: (position.get(row["uid"], len(position)), row.get("sample", 0)))

    # ------------------------------------------------------------------ wall time

    def record_timing(self, point: GridPoint, seconds: float, generations: int) -> None:
        append_jsonl(self.point_dir(point) / "timing.jsonl",
                     [{"seconds": round(seconds, 6), "generations": generations}])

    def seconds_per_generation(self, point: GridPoint) -> float | None:
        """The point's generation time per generation, over the generate calls that finished (a call
        cut short by a crash has no line, and neither are its rows counted here); None for a point
        generated before m1 timed points (unknown, not zero)."""
        rows = list(read_jsonl_tolerant(self.point_dir(point) / "timing.jsonl"))
        generations = sum(row["generations"] for row in rows)
        return sum(row["seconds"] for row in rows) / generations if generations else None

    def repair(self, point: GridPoint) -> None:
        """Drop a final line cut short by a crash, so that appends start on a fresh line."""
        path = self.predictions_path(point)
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                atomic_write_text(path, data[: data.rfind(b"\n") + 1].decode("utf-8"))

    # ------------------------------------------------------------------ results

    def write_point_results(self, point: GridPoint, scored: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        directory = self.point_dir(point)
        atomic_write_text(directory / "scored.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in scored))
        atomic_write_json(directory / "metrics.json", metrics)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.root / "metrics.json", summary)
        run_file = self.root / "run.json"
        info = json.loads(run_file.read_text())
        info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        # The labels the scores were broken down by this time (a later run may re-score with others).
        info.pop("domains", None)
        if "domains" in summary:
            info["domains"] = {"file": summary["domains"]["file"], "sha256": summary["domains"]["sha256"]}
        atomic_write_json(run_file, info)


def prediction_key(row: dict[str, Any]) -> tuple[str, int]:
    """What a predictions row answers: (uid, sample), sample 0 for rows of one-sample points."""
    return row["uid"], row.get("sample", 0)


def _without_secrets(config: EvalConfig) -> EvalConfig:
    options = {k: ("***" if "key" in k.lower() else v) for k, v in config.backend_options.items()}
    return config.model_copy(update={"backend_options": options})
