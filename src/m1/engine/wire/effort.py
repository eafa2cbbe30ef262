"""OpenAI's `reasoning_effort` levels as m1 thinking budgets: the per-model effort table.

    table = read_effort_table("configs/serve/effort_smollm2.yaml")    # m1 serve --effort-table FILE
    table.budget("low", max_thinking_tokens=1024), table.level("low").num_extensions
    write_effort_table(table, Path("effort.yaml"), note="from run X")  # what m1 report --effort-table writes

A level is a thinking budget (B) and, optionally, the "Wait" rounds (K) a request at that level
gets; `none` is always the no-think preset (no thinking phase at all). A file gives each level
either a number (the budget) or an object with `thinking_budget` and `num_extensions`; levels it
leaves out keep the defaults below, and budgets must not fall from one level to the next
(minimal ≤ low ≤ medium ≤ high ≤ xhigh). A request's own `num_extensions` and
`min_thinking_tokens` refine its level; a budget above the server's largest thinking budget
(`m1 serve --max-thinking-tokens`, the context window by default) is capped at it.

The default table, and why:

    none      no thinking (the no-think preset)
    minimal   128    inside the 0–256 regime where medical accuracy first moves (SPEC §8, arXiv 2508.12140)
    low       512    the end of the 256–512 regime, past which gains are slower
    medium    2048
    high      8192   the presets' own default budget (m1's evaluation default)
    xhigh     16384  twice that, for long problems; usually capped by the context window

Accuracy grows roughly with log(budget) (SPEC §8), so each step is a factor of 4 (two log2 steps)
and the levels sit at roughly even accuracy steps. These are guesses for a model nobody has swept;
`m1 report RUN --effort-table` proposes a table from a model's own budget sweep
(`m1.evaluation.report.effort`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator

from m1.config import load_config

EFFORT_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh")
THINKING_LEVELS = EFFORT_LEVELS[1:]  # the levels that think, from the smallest budget up
EffortName = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class EffortLevel(BaseModel):
    """What one level asks for: a thinking budget and, if set, its "Wait" rounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thinking_budget: StrictInt = Field(gt=0, description="max thinking tokens (B) at this level")
    num_extensions: StrictInt | None = Field(None, ge=0, description='"Wait" rounds (K); unset: the preset\'s')


def _level(budget: int) -> EffortLevel:
    return EffortLevel(thinking_budget=budget)


class EffortTable(BaseModel):
    """`reasoning_effort` level → thinking budget; the defaults are the documented table above."""

    # Defaults are validated too, so a file that raises one level above the next default is caught.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    none: Literal["no-think"] = "no-think"  # written out so a file reads as the whole table; nothing else is valid
    minimal: EffortLevel = _level(128)
    low: EffortLevel = _level(512)
    medium: EffortLevel = _level(2048)
    high: EffortLevel = _level(8192)
    xhigh: EffortLevel = _level(16384)

    @field_validator(*THINKING_LEVELS, mode="before")
    @classmethod
    def _a_number_is_a_budget(cls, value: Any) -> Any:
        return {"thinking_budget": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator(*THINKING_LEVELS[1:])
    @classmethod
    def _budgets_do_not_fall(cls, value: EffortLevel, info: ValidationInfo) -> EffortLevel:
        below = THINKING_LEVELS[THINKING_LEVELS.index(info.field_name) - 1]
        previous = info.data.get(below)  # absent when that level failed its own check
        if previous is not None and value.thinking_budget < previous.thinking_budget:
            raise ValueError(f"{info.field_name}'s thinking_budget {value.thinking_budget} is below {below}'s "
                             f"{previous.thinking_budget}: budgets must not fall from minimal to xhigh")
        return value

    def level(self, name: str) -> EffortLevel | None:
        """The level's settings; None for `none` (no thinking)."""
        return None if name == "none" else getattr(self, name)

    def budget(self, name: str, max_thinking_tokens: int) -> int:
        """A thinking level's budget, capped at the server's largest."""
        return min(getattr(self, name).thinking_budget, max_thinking_tokens)

    def to_file(self) -> dict[str, Any]:
        """The table as a file holds it: a budget per level, an object where a level sets its K."""
        data: dict[str, Any] = {"none": self.none}
        for name in THINKING_LEVELS:
            entry = getattr(self, name)
            data[name] = entry.thinking_budget if entry.num_extensions is None else entry.model_dump()
        return data


DEFAULT_EFFORT_TABLE = EffortTable()


def read_effort_table(path: str | Path) -> EffortTable:
    """A YAML or JSON effort table, or a `DataError` naming the file and the level that is wrong."""
    return load_config(EffortTable, path)


def write_effort_table(table: EffortTable, path: Path, *, note: str = "") -> Path:
    """Write `table` as YAML that `read_effort_table` (and `m1 serve --effort-table`) reads back;
    `note` becomes the comment at its top (where the table came from)."""
    header = "".join(f"# {line}\n" for line in note.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(table.to_file(), sort_keys=False), encoding="utf-8")
    return path
