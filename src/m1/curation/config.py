"""`CurationConfig`: one `m1 curate` run, a section per stage; a section left out skips its stage.

    config = load_config(CurationConfig, "configs/curate/huatuo_demo.yaml", ["select.n=100"])

Stages run in the paper's order (SPEC §3), each only when its section is present (`dedup: {}` runs
it with its defaults):

    ingest → dedup → decontaminate → difficulty → distill → verify → decontaminate_final
           → classify → select → render

`decontaminate_final` is the second decontamination the paper ran, after verify and against the
final evaluation file; it takes the same settings as `decontaminate`. Paths may start with
`${shared_data}` (see `m1.curation.paths`). Unknown keys are rejected with the key and the file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from m1.curation.classify import ClassifyConfig
from m1.curation.decontaminate import DecontamConfig
from m1.curation.dedup import DedupConfig
from m1.curation.difficulty import DifficultyConfig
from m1.curation.distill import DistillConfig
from m1.curation.ingest import IngestConfig
from m1.curation.render import RenderConfig
from m1.curation.select import SelectConfig
from m1.curation.verify import VerifyConfig

# Config sections that are stages, in pipeline order, with the number of their directory.
STAGE_SECTIONS: tuple[str, ...] = ("ingest", "dedup", "decontaminate", "difficulty", "distill", "verify",
                                   "decontaminate_final", "classify", "select", "render")


class CurationConfig(BaseModel):
    """One curation run: its name, where it is written, and the stages' settings."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="the run's folder name")
    out_dir: str = Field("runs/curate", description="runs are written to <out_dir>/<name>/")
    ingest: IngestConfig
    dedup: DedupConfig | None = None
    decontaminate: DecontamConfig | None = None
    difficulty: DifficultyConfig | None = None
    distill: DistillConfig | None = None
    verify: VerifyConfig | None = None
    decontaminate_final: DecontamConfig | None = None
    classify: ClassifyConfig | None = None
    select: SelectConfig | None = None
    render: RenderConfig | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def enabled_sections(self) -> list[str]:
        return [section for section in STAGE_SECTIONS if getattr(self, section) is not None]


def stage_dir_name(section: str) -> str:
    """`03_decontaminate`, `07_decontaminate-final`: numbered by the stage's place in the full pipeline,
    so a directory keeps its name whichever other stages a config leaves out."""
    return f"{STAGE_SECTIONS.index(section) + 1:02d}_{section.replace('_', '-')}"
