"""What both documents (report.html, report.md) are made of beside the tables: drawn figures, and
the sections of issue 14 (accuracy against compute, answer flips, calibration, domains), each a
heading with its figures, tables and notes, present only when the runs have its data."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from m1.evaluation.report.tables import TableData


@dataclass(frozen=True)
class DrawnFigure:
    """A figure as the documents show it: saved as `stem`.png/.svg, embedded from its PNG bytes."""

    stem: str
    title: str
    caption: str
    png: bytes

    @property
    def png_base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Section:
    title: str
    intro: str = ""
    figures: list[DrawnFigure] = field(default_factory=list)
    tables: list[TableData] = field(default_factory=list)
