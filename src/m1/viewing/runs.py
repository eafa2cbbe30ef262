"""The run directories `m1 view` opens: checked, named apart, with their grid points and labels.

    runs = open_runs(["runs/base", "runs/tuned"])    # DataError naming a folder that is not a run
    runs[0].name, runs[0].points, runs[0].finished()
    domains, note = run_domains(runs[0])             # uid -> MeSH domain (when labelled), or why none

A run directory is what `m1 eval` writes (`m1.evaluation.store`): `run.json`, `config.yaml` and
`items.jsonl` must be there (a run whose predictions are still being written is a run). Each run
is named by its folder; two runs with the same folder name get the parent folder in front, and a
grid point is `<run name>:<point key>` everywhere in the viewer: `m1.evaluation.view_links`' rules,
which the static report's links use too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1.config import load_config
from m1.data.errors import DataError
from m1.evaluation.config import EvalConfig, GridPoint
from m1.evaluation.domains import load_labels
from m1.evaluation.view_links import run_names
from m1.io import sha256_file

RUN_FILES = ("run.json", "config.yaml", "items.jsonl")
NOT_A_RUN_FIX = "pass a run directory written by `m1 eval` (runs/<name>)"


@dataclass(frozen=True)
class Run:
    """An opened run directory: its unique name, config and grid points (in the config's order)."""

    root: Path
    name: str
    config: EvalConfig
    points: tuple[GridPoint, ...]

    def info(self) -> dict[str, Any]:
        """run.json as it is now (its `finished` is set when the run's scoring is written)."""
        return read_run_json(self.root)

    def finished(self) -> bool:
        return bool(self.info().get("finished"))


def read_run_json(root: Path) -> dict[str, Any]:
    path = root / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError.at(path, "", "", f"not readable as JSON ({err})", NOT_A_RUN_FIX) from None
    if not isinstance(info, dict) or "identity" not in info:
        raise DataError.at(path, "", "identity", "not the run.json of an m1 eval run", NOT_A_RUN_FIX)
    return info


def check_run(root: Path) -> None:
    """Raise a DataError naming `root` and what it lacks, unless it is a run directory."""
    if not root.is_dir():
        raise DataError.at(root, "", "", "no such folder" if not root.exists() else "not a folder", NOT_A_RUN_FIX)
    missing = [file for file in RUN_FILES if not (root / file).is_file()]
    if missing:
        raise DataError.at(root, "", "", f"not an m1 eval run: {', '.join(missing)} missing", NOT_A_RUN_FIX)


def open_run(path: str | Path, name: str | None = None) -> Run:
    """Check that `path` is a run directory and read its config."""
    root = Path(path)
    check_run(root)
    read_run_json(root)
    config = load_config(EvalConfig, root / "config.yaml")
    return Run(root, name or root.name, config, tuple(config.grid_points()))


def open_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Several runs, each with a name no other has (the folder, else parent/folder, else a number)."""
    roots = [Path(path) for path in paths]
    return [open_run(root, name) for root, name in zip(roots, run_names(roots))]


def run_domains(run: Run) -> tuple[Mapping[str, str], str | None]:
    """uid -> MeSH domain from the labels file run.json records, and a note when there is none to
    show or the file changed since the run recorded it (None when the labels are the run's)."""
    recorded = run.info().get("domains")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("file"), str):
        return {}, None
    path = Path(recorded["file"])
    if not path.is_file():
        return {}, f"the run's labels file {path} is not there (domains are not shown)"
    try:
        labels = load_labels(path)
    except DataError as err:
        return {}, f"the run's labels file cannot be read: {err}"
    note = None if recorded.get("sha256") == sha256_file(path) else (
        f"the labels file {path} changed since the run recorded it (its domains are shown as they are now)")
    return labels.names, note
