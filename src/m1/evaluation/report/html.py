"""report.html: one self-contained page (figures embedded as PNG, no request leaves the file),
rendered from the Jinja2 templates in `templates/` with autoescaping on, so that no label, source
name or run directory can break the markup.

    text = render_html(runs, "strict", tables, figures, notes, sections)

`templates/report.html.j2` lays out the sections; `macros.html.j2` draws a table and a figure;
`style.css` and `check.js` are inlined (the script records load errors on <body> for the
browser test).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from m1 import __version__
from m1.evaluation.report.document import DrawnFigure, Section
from m1.evaluation.report.items import TRACE_HEAD, TRACE_TAIL, SampledItem
from m1.evaluation.report.load import RunResult
from m1.evaluation.report.tables import Tables
from m1.evaluation.report.text import view_command
from m1.evaluation.trace import probability


@functools.cache
def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # Every value is escaped (the inlined .css and .js hold none); a name the template misspells
    # is an error, not an empty cell.
    env = Environment(loader=PackageLoader("m1.evaluation.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.globals["probability"] = probability
    return env


def render_html(runs: Sequence[RunResult], mode: str, tables: Tables, figures: Sequence[DrawnFigure],
                notes: Sequence[str], sections: Sequence[Section] = (), view: str = "",
                items: Sequence[SampledItem] = ()) -> str:
    """`view`: the address of `m1 view` that table links go to ("" writes no links); `items`: the
    sample of items shown with their traces."""
    template = _environment().get_template("report.html.j2")
    return template.render(title=", ".join(run.label for run in runs), runs=runs, mode=mode, tables=tables,
                           figures=figures, notes=notes, sections=sections, view=view.rstrip("/"),
                           view_command=view_command(runs), items=items, trace_limit=TRACE_HEAD + TRACE_TAIL,
                           generated=f"{time.strftime('%Y-%m-%d %H:%M')} by m1 {__version__}")
