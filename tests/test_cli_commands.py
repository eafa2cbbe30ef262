"""Every reporting command offers --json, the stable form for scripts (plain output may change)."""

from __future__ import annotations

import typer.main

from m1.cli import app

# Commands that report nothing a script would parse: a server runs until stopped (m1 view has /api/ for scripts).
NOT_REPORTING = {"serve", "view"}


def commands(group, prefix: str = "") -> dict[str, object]:
    found = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found |= commands(command, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


def test_every_reporting_command_has_json() -> None:
    every = commands(typer.main.get_command(app))
    assert {"data validate", "score", "eval", "report", "curate run", "curate status", "train"} <= set(every)
    missing = [name for name, command in every.items()
               if name not in NOT_REPORTING and not any("--json" in p.opts for p in command.params)]
    assert not missing, f"commands without --json: {missing}"
