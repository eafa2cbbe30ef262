"""The consoles every m1 command prints through.

    from m1.console import make_console
    console = make_console()            # stdout
    err_console = make_console(stderr=True)

Why not a bare `rich.console.Console`: when stdout is not a terminal (a pipe, CI, `subprocess`,
typer's CliRunner) rich still wraps text at `$COLUMNS` or 80 characters, so a status line that
holds a long path comes out broken over two lines, and what a script reads depends on the
terminal width and the folder a clone lives in. An m1 console decides per print, from the stream
it writes to at that moment: on a terminal it behaves like rich; anywhere else plain lines are
never wrapped (tables keep their layout). Colours and styles are dropped off a terminal by rich
itself. Emoji codes are never expanded, so a path like `runs/:x:/` prints as written.

Scripts that parse m1's output should use `--json`, which every reporting command has.
Typer's own pages (usage errors, --help) follow the same rule through `typer_markup_mode`: boxed
and coloured on a terminal, plain click text anywhere else.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console


class M1Console(Console):
    """A rich console that never soft-wraps plain lines when it is not writing to a terminal."""

    # rich reads `self.soft_wrap` on every print; the stream may change between prints (typer's
    # test runner swaps sys.stdout), so the answer is computed each time rather than stored.
    @property  # type: ignore[override]
    def soft_wrap(self) -> bool:
        return self._soft_wrap or not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value


def make_console(stderr: bool = False, **options: Any) -> Console:
    """A console for m1's output (stderr=True for errors and notes)."""
    options.setdefault("emoji", False)
    return M1Console(stderr=stderr, **options)


def typer_markup_mode() -> str | None:
    """`rich_markup_mode` for m1's typer apps: rich panels only when a person is reading."""
    return "rich" if sys.stdout.isatty() and sys.stderr.isatty() else None
