"""m1's console: plain lines never wrap off a terminal, whatever the width or the path printed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from m1.console import make_console

LONG_LINE = "/" + "/".join(["a-rather-long-folder-name"] * 12) + "/HLE_biomed.jsonl: 103 valid items, valid"


def test_plain_line_is_not_wrapped_off_a_terminal() -> None:
    out = io.StringIO()
    console = make_console(file=out, width=40)
    console.print(LONG_LINE)
    console.print("[green]styled[/] and :x: as written")
    assert out.getvalue() == LONG_LINE + "\nstyled and :x: as written\n"


def test_terminal_still_wraps_at_its_width() -> None:
    out = io.StringIO()
    console = make_console(file=out, width=40, force_terminal=True, color_system=None)
    console.print(LONG_LINE)
    assert len(out.getvalue().splitlines()) > 1


def test_the_decision_follows_the_stream_at_print_time() -> None:
    # typer's CliRunner swaps sys.stdout after m1.cli made its console at import time.
    console = make_console(width=40)
    saved = sys.stdout
    sys.stdout = capture = io.StringIO()
    try:
        console.print(LONG_LINE)
    finally:
        sys.stdout = saved
    assert capture.getvalue() == LONG_LINE + "\n"


def test_cli_status_line_whole_from_a_long_path_and_narrow_columns(shared_data: Path, tmp_path: Path) -> None:
    """The failure a fresh clone in a long folder met: `m1 data validate` through a pipe, COLUMNS=60."""
    deep = tmp_path.joinpath(*(["a-long-folder-name-[with]-brackets"] * 6))
    deep.mkdir(parents=True)
    target = deep / "HLE_biomed.jsonl"
    target.symlink_to(shared_data / "eval/reasoningeval/HLE_biomed.jsonl")
    assert len(str(target)) > 150
    env = os.environ | {"COLUMNS": "60"}
    done = subprocess.run([sys.executable, "-m", "m1.cli", "data", "validate", str(target)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{target}: 103 valid items, valid\n"


def test_usage_errors_are_plain_text_off_a_terminal(tmp_path: Path) -> None:
    """typer's boxed error panels wrap at the terminal width; off a terminal m1 asks for plain click text."""
    env = os.environ | {"COLUMNS": "40"}
    done = subprocess.run([sys.executable, "-m", "m1.cli", "ask", "q", "--preset", "s1"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2
    assert "Error: Invalid value for '--preset': " in done.stderr and "╭" not in done.stderr
    assert "'s1' is not one of 'm1', 'think-tags', 'no-think'." in done.stderr
