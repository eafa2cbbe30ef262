"""Run the server without the `m1` command (tests and benchmarks start it this way): the same
command and options as `m1 serve`.

    python -m m1.serving --model smollm2-135m --backend transformers --port 8000
    M1_API_KEY=secret python -m m1.serving --port 8000        # /v1 routes need "Authorization: Bearer secret"
"""

from __future__ import annotations

import typer

from m1.console import typer_markup_mode
from m1.serving.command import serve_command

if __name__ == "__main__":
    command = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=typer_markup_mode())
    command.command()(serve_command)
    command()
