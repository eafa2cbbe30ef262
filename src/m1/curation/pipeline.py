"""The curation recipe: build the configured stages, run (or resume) them in order, export the set.

    config = load_config(CurationConfig, "configs/curate/huatuo_demo.yaml")
    run_dir = run_pipeline(config)            # runs/curate/huatuo-demo/
    status(run_dir)["stages"]                 # the funnel: rows in/out and drop reasons per stage

A run directory holds `config.yaml` (the resolved config; it names environment variables for API
keys, never the keys), one `NN_<stage>/` directory per stage (kept.jsonl, dropped.jsonl,
manifest.json; see `m1.curation.stage`), and, when the config renders, the SFT set as `sft.jsonl`,
`sft.parquet` and `sft_dataset/` with `outputs.json` describing them.

Running the same config again skips every finished stage and resumes a stage that was cut short
from the rows it had not finished. Changing a stage's settings changes its fingerprint and every
later stage's (fingerprints chain), so exactly the affected stages are redone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from m1.config import dump_config, load_config
from m1.curation.classify import DomainClassifier
from m1.curation.config import CurationConfig, stage_dir_name
from m1.curation.decontaminate import Decontaminate
from m1.curation.dedup import Deduplicate
from m1.curation.difficulty import DifficultyFilter
from m1.curation.distill import Distill
from m1.curation.ingest import Ingest
from m1.curation.render import Render, export_records, push_to_hub
from m1.curation.select import Select
from m1.curation.stage import Stage, kept_rows, progress_bar, read_manifest, run_stage, summarize
from m1.curation.verify import TeacherCorrectFilter
from m1.data.errors import DataError
from m1.io import atomic_write_json, atomic_write_text

CONFIG_FILE, OUTPUTS_FILE = "config.yaml", "outputs.json"

BUILDERS: dict[str, Callable[[Any, Path], Stage]] = {
    "ingest": Ingest,
    "dedup": Deduplicate,
    "decontaminate": Decontaminate,
    "difficulty": DifficultyFilter,
    "distill": Distill,
    "verify": TeacherCorrectFilter,
    "decontaminate_final": lambda config, run_dir: Decontaminate(config, run_dir, name="decontaminate-final",
                                                                 config_key="decontaminate_final"),
    "classify": DomainClassifier,
    "select": Select,
    "render": Render,
}


def build_stages(config: CurationConfig, run_dir: Path) -> list[tuple[str, Stage]]:
    """(section, stage) for every section present in the config, in pipeline order."""
    return [(section, BUILDERS[section](getattr(config, section), run_dir)) for section in config.enabled_sections()]


def run_pipeline(config: CurationConfig, console: Console | None = None) -> Path:
    """Run or resume every configured stage; returns the run directory."""
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, dump_config(config))
    stages = build_stages(config, run_dir)
    ingest = stages[0][1]
    assert isinstance(ingest, Ingest)
    upstream = ingest.input_fingerprint()
    previous: Path | None = None
    with progress_bar(console) as progress:
        for section, stage in stages:
            stage_dir = run_dir / stage_dir_name(section)
            fingerprint = stage.fingerprint(upstream)
            manifest = read_manifest(stage_dir)
            task = progress.add_task(stage_dir.name, total=None)
            if manifest and manifest.get("fingerprint") == fingerprint and manifest.get("finished"):
                progress.update(task, total=manifest["rows_in"], completed=manifest["rows_in"],
                                description=f"{stage_dir.name} (done)")
            else:
                rows = ingest.candidates() if previous is None else kept_rows(previous)
                progress.update(task, total=len(rows), completed=0)

                def advance(done: int, total: int, task: Any = task) -> None:
                    progress.update(task, completed=done, total=total)

                # Whole-set stages report progress themselves; row stages through run_stage.
                if hasattr(stage, "progress"):
                    stage.progress = advance
                run_stage(stage, rows, stage_dir, upstream=upstream, progress=advance)
            upstream, previous = fingerprint, stage_dir
    if config.render is not None and previous is not None:
        export_outputs(config, run_dir, previous, upstream)
    return run_dir


def export_outputs(config: CurationConfig, run_dir: Path, render_dir: Path, fingerprint: str) -> dict[str, Any]:
    """Write the rendered records in every format (once per render fingerprint) and push if asked."""
    assert config.render is not None
    wanted = {"fingerprint": fingerprint, "formats": config.render.formats, "push_to_hub": config.render.push_to_hub}
    outputs_path = run_dir / OUTPUTS_FILE
    existing = json.loads(outputs_path.read_text(encoding="utf-8")) if outputs_path.exists() else {}
    up_to_date = {key: existing.get(key) for key in wanted} == wanted
    if up_to_date and all(Path(path).exists() for path in existing["files"].values()):
        return existing
    records = kept_rows(render_dir)
    outputs = wanted | {"records": len(records), "files": export_records(records, run_dir, config.render)}
    if config.render.push_to_hub:
        outputs["hub"] = push_to_hub(records, config.render.push_to_hub, private=config.render.private)
    atomic_write_json(outputs_path, outputs)
    return outputs


def status(run_dir: str | Path) -> dict[str, Any]:
    """The funnel of a run, finished or not: one entry per configured stage, plus the outputs."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.exists():
        raise DataError.at(run_dir, "", "", "not a curation run (no config.yaml)",
                           "pass a directory written by m1 curate run, e.g. runs/curate/<name>")
    config = load_config(CurationConfig, config_path)
    stages = []
    rows_in: int | None = None
    for section in config.enabled_sections():
        stage_dir = run_dir / stage_dir_name(section)
        summary = summarize(section.replace("_", "-"), stage_dir, rows_in)
        stages.append(summary.as_dict() | {"dir": stage_dir.name})
        rows_in = summary.rows_out if summary.state == "done" else None
    outputs_path = run_dir / OUTPUTS_FILE
    outputs = json.loads(outputs_path.read_text(encoding="utf-8")) if outputs_path.exists() else None
    # Outputs count only when they were written from the rendered rows the run now has.
    if not (outputs and stages[-1]["name"] == "render" and outputs["fingerprint"] == stages[-1]["fingerprint"]):
        outputs = None
    return {"run": str(run_dir), "name": config.name, "stages": stages, "outputs": outputs}
