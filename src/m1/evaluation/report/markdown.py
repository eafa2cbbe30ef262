"""report.md: the summary and every table as GitHub Markdown, linking the figures' PNG and SVG
files beside it, to paste into a README or a pull request.

    text = render_markdown(runs, "strict", tables, figures, notes, sections)
    render_markdown_table(summary_table(runs, "strict"))      # one table

Every text that reaches the file (titles, cells, notes, run labels, uids) goes through `escape`:
"&", "<" and ">" become HTML entities, so that a label or uid cannot put HTML into a page that
renders the Markdown, and "|" is escaped, so that it cannot end a table cell.
"""

from __future__ import annotations

from collections.abc import Sequence

from m1.evaluation.report.document import DrawnFigure, Section
from m1.evaluation.report.load import RunResult
from m1.evaluation.report.tables import Tables, TableData


# "&" first among the entities, so that the others' "&" stays; a line break would end a table row.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\n": " "})


def escape(text: str) -> str:
    """`text` as Markdown shows it literally, within a table cell or anywhere else."""
    return text.translate(_ESCAPES)


def render_markdown_table(table: TableData) -> str:
    lines = ["| " + " | ".join(escape(h) for h in table.header) + " |",
             "|" + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.header))) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(runs: Sequence[RunResult], mode: str, tables: Tables, figures: Sequence[DrawnFigure],
                    notes: Sequence[str], sections: Sequence[Section] = ()) -> str:
    # No code spans around labels: a backtick in one would end the span, and entities show raw inside.
    listed = ", ".join(f"{escape(run.label)} ({escape(run.model)})" for run in runs)
    lines = ["# m1 evaluation report", "",
             f"{len(runs)} run(s): {listed}; {mode} extraction. Accuracy in % with its 95 % interval.", ""]

    def add(table: TableData, level: str = "##") -> None:
        lines.extend([f"{level} {escape(table.title)}", "", render_markdown_table(table), ""])
        if table.note:
            lines.extend([escape(table.note), ""])

    def show(drawn: DrawnFigure) -> None:
        title = escape(drawn.title)
        lines.extend([f"### {title}", "", f"![{title}]({drawn.stem}.png)", "",
                      f"{escape(drawn.caption)} ([SVG]({drawn.stem}.svg))", ""])

    add(tables.summary)
    lines.extend(f"{escape(note)}\n" for note in notes)
    if figures:
        lines.extend(["## Figures", ""])
        for drawn in figures:
            show(drawn)
    for section in sections:
        lines.extend([f"## {escape(section.title)}", ""] + ([escape(section.intro), ""] if section.intro else []))
        for drawn in section.figures:
            show(drawn)
        for table in section.tables:
            add(table, "###")
    for table in tables.sources + tables.no_answer:
        add(table)
    add(tables.usage)
    for table in tables.early_exit:
        add(table)
    if tables.paper is not None:
        add(tables.paper)
    return "\n".join(lines).rstrip() + "\n"
