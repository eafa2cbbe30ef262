"""`m1 label-domains`: give every item an evaluation run would select one of the 76 MeSH
qualifiers, through the curation classify stage, and write the labels file a run reads.

    m1 label-domains configs/domains/local.yaml per_source=5
    config = load_config(DomainsConfig, "configs/domains/local.yaml", ["per_source=5"])
    summary = label_domains(config)     # writes runs/domains/local.jsonl

The items are chosen exactly as `m1 eval` chooses them from the same `data`, `sources`,
`per_source`, `seed` and `limit` (`m1.evaluation.runner.select_items`), so a labels file made with
an eval config's selection covers that run. Labelling is `m1.curation.classify.DomainClassifier`
run by `m1.curation.stage.run_stage` in `<out_dir>/<name>/`:

    config.yaml        the resolved config
    classify/          the stage's kept.jsonl, dropped.jsonl, manifest.json (resumes row by row)
    cache/             every classifier reply, by request (a re-run or a larger selection pays
                       only for requests it has not made before)

The stage's upstream fingerprint is the selected items' content, so a different selection redoes
the stage (from the reply cache) instead of reusing labels of other items. The labels file
(`m1.evaluation.domains.labels`) is rewritten atomically from the stage's rows at the end of
every run that finishes; items the stage dropped (`classify.fallback: drop`) are left unlabelled.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from m1.config import dump_config
from m1.console import make_console
from m1.curation.classify import ClassifyConfig, DomainClassifier
from m1.curation.stage import kept_rows, progress_bar, run_stage
from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.evaluation.config import EvalConfig
from m1.evaluation.domains.labels import label_line, write_labels
from m1.evaluation.runner import resolve_data, select_items
from m1.io import atomic_write_text

STAGE_DIR, CONFIG_FILE = "classify", "config.yaml"


class DomainsConfig(BaseModel):
    """One `m1 label-domains` run: which items (as `m1 eval` selects them), the classifier, where to write."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="the work folder's and labels file's name")
    data: str | None = Field(None, description="as in m1 eval: an m1 evaluation file; default: the real suite")
    sources: list[str] | None = Field(None, description="as in m1 eval")
    per_source: int | None = Field(None, gt=0, description="as in m1 eval")
    limit: int | None = Field(None, gt=0, description="as in m1 eval")
    seed: int = Field(42, description="as in m1 eval: the per-source sample's seed")
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    out_dir: str = Field("runs/domains", description="work folder: <out_dir>/<name>/")
    out: str | None = Field(None, description="the labels file; default <out_dir>/<name>.jsonl")

    @property
    def work_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @property
    def labels_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.out_dir) / f"{self.name}.jsonl"

    def selection(self) -> EvalConfig:
        """An eval config with this selection: the one definition of which items a run takes."""
        return EvalConfig(data=self.data, sources=self.sources, per_source=self.per_source, limit=self.limit,
                          seed=self.seed)


def selected_items(config: DomainsConfig) -> tuple[list[MCQItem], Path, str]:
    """The items `m1 eval` would take with this selection, the data file, and which file it is."""
    selection = config.selection()
    path, note = resolve_data(selection)
    items = select_items(selection, path)
    if not items:
        raise DataError.at(path, "", "sources", "no items selected", "check sources=, per_source= and limit=")
    return items, path, note


def label_domains(config: DomainsConfig, console: Console | None = None) -> dict[str, Any]:
    """Classify (or resume classifying) the selected items, write the labels file; returns a summary."""
    console = console or make_console()
    items, data_path, note = selected_items(config)
    console.print(note, markup=False)
    rows = [{"uid": item.uid, "source": item.source, "question": item.question, "options": item.options}
            for item in items]
    work_dir = config.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work_dir / CONFIG_FILE, dump_config(config))
    stage = DomainClassifier(config.classify, work_dir)
    stage_dir = work_dir / STAGE_DIR
    with progress_bar(console) as progress:
        task = progress.add_task(f"{config.name}: {STAGE_DIR}", total=len(rows))

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        manifest = run_stage(stage, rows, stage_dir, upstream=_content_fingerprint(rows), progress=advance)
        advance(manifest["rows_in"], manifest["rows_in"])  # a stage finished earlier reports nothing itself

    domains = {row["uid"]: row["domain"] for row in kept_rows(stage_dir)}
    lines = [label_line(item.uid, item.source, domains[item.uid]) for item in items if item.uid in domains]
    sha256 = write_labels(config.labels_path, lines)
    named = Counter(line["name"] for line in lines)
    return {"file": str(config.labels_path), "sha256": sha256, "data": str(data_path), "items": len(items),
            "labelled": len(lines), "unlabelled": [item.uid for item in items if item.uid not in domains],
            "methods": dict(Counter(line["method"] for line in lines).most_common()),
            "flagged": sum(line["flagged"] for line in lines),
            "domains": dict(sorted(named.items(), key=lambda pair: (-pair[1], pair[0]))),
            "stage": str(stage_dir), "seconds": manifest["seconds"],
            # This process's requests: zero when every label came from the stage or the reply cache.
            "client": stage.client.stats()}


def _content_fingerprint(rows: list[dict[str, Any]]) -> str:
    blob = json.dumps(rows, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
