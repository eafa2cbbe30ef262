"""Select: draw the final training set (m1k) from the kept rows, or an ablation sample.

    stage = Select(SelectConfig(method="m1k", n=1000, seed=42), run_dir)

Methods (all without replacement, all seeded, all deterministic for a given input):
- `m1k`          the paper's sampler: pick a domain uniformly among those with rows left, then a
                 source uniformly among that domain's sources with rows left, then a row uniformly;
                 repeat. Small domains and sources are thereby over-represented on purpose: the
                 set is diverse rather than proportional. Domains are `row["domain"]["code"]`.
- `domain-only`  the same without the source level: a domain uniformly, then a row in it.
- `random`       n rows uniformly.
- `hard-random`  n rows uniformly from the hardest `hard_fraction` of the input (at least n rows),
                 hardest meaning: more base models answered wrong (`row["difficulty"]["n_wrong"]`),
                 then a longer teacher reasoning (s1's proxy for difficulty) among equals.

Asking for more rows than there are takes them all, with a note in the manifest. The stage's
manifest (`extra`) lists the selected uids in the order they were drawn, and the counts by source
and domain; the rows not drawn leave with the reason `not selected`.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from m1.curation.stage import Drop, Outcome, Row, SetStage
from m1.data.errors import DataError

SelectMethod = Literal["m1k", "domain-only", "random", "hard-random"]
UNCLASSIFIED = "unclassified"


class SelectConfig(BaseModel):
    """How many rows the final set has and how they are drawn."""

    model_config = ConfigDict(extra="forbid")

    method: SelectMethod = "m1k"
    n: int = Field(1000, gt=0)
    seed: int = 42
    hard_fraction: float = Field(0.5, gt=0.0, le=1.0, description="hard-random draws from this hardest share")


def domain_of(row: Row) -> str:
    domain = row.get("domain")
    return str(domain["code"]) if isinstance(domain, dict) and domain.get("code") is not None else UNCLASSIFIED


def hardness(row: Row) -> tuple[int, int]:
    difficulty = row.get("difficulty") or {}
    teacher = row.get("teacher") or {}
    return int(difficulty.get("n_wrong") or 0), len(teacher.get("reasoning") or "")


def _draw_from_groups(groups: dict[str, dict[str, list[int]]], n: int, rng: random.Random) -> list[int]:
    """Domain, then source, then row, uniformly at each level among what is left."""
    remaining = {domain: {source: list(rows) for source, rows in by_source.items()}
                 for domain, by_source in sorted(groups.items())}
    drawn: list[int] = []
    while len(drawn) < n and remaining:
        domain = rng.choice(sorted(remaining))
        sources = remaining[domain]
        source = rng.choice(sorted(sources))
        rows = sources[source]
        drawn.append(rows.pop(rng.randrange(len(rows))))
        if not rows:
            del sources[source]
        if not sources:
            del remaining[domain]
    return drawn


def draw(rows: list[Row], method: SelectMethod, n: int, seed: int, hard_fraction: float = 0.5) -> list[int]:
    """Positions of the rows drawn, in draw order."""
    rng = random.Random(seed)
    if method == "random":
        return rng.sample(range(len(rows)), min(n, len(rows)))
    if method == "hard-random":
        ranked = sorted(range(len(rows)), key=lambda i: (hardness(rows[i]), -i), reverse=True)
        hardest = ranked[:max(n, math.ceil(hard_fraction * len(rows)))]
        return rng.sample(sorted(hardest), min(n, len(hardest)))
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for position, row in enumerate(rows):
        level = row["source"] if method == "m1k" else ""
        groups[domain_of(row)][level].append(position)
    return _draw_from_groups(groups, n, rng)


class Select(SetStage):
    """Keeps the drawn rows; the rest are `not selected`."""

    name = "select"
    version = "1"

    def __init__(self, config: SelectConfig, run_dir: Path | None = None):
        self.config = config
        self.run_dir = run_dir
        self._report: dict[str, Any] = {}

    def params(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        return self._report  # a set stage runs whole in one process: its own figures are complete

    def process_all(self, rows: list[Row]) -> list[Outcome]:
        config = self.config
        unclassified = sum(1 for row in rows if domain_of(row) == UNCLASSIFIED)
        if config.method in ("m1k", "domain-only") and rows and unclassified == len(rows):
            raise DataError.at("config", "", "select.method",
                               f"method {config.method} draws by domain, but no row has one",
                               "add a classify section before select, or use method random")
        drawn = draw(rows, config.method, config.n, config.seed, config.hard_fraction)
        chosen = [rows[position] for position in drawn]
        notes = []
        if config.n > len(rows):
            notes.append(f"asked for {config.n} rows but only {len(rows)} are available: all are taken")
        if unclassified and config.method in ("m1k", "domain-only"):
            notes.append(f"{unclassified} rows have no domain and are drawn as one domain '{UNCLASSIFIED}'")
        self._report = {
            "method": config.method, "requested": config.n, "selected": len(chosen), "notes": notes,
            "by_source": dict(Counter(row["source"] for row in chosen).most_common()),
            "by_domain": dict(sorted(Counter(domain_of(row) for row in chosen).items())),
            "selected_uids": [row["uid"] for row in chosen],
        }
        selected = set(drawn)
        return [row if position in selected else Drop("not selected", f"{config.method} sample of {config.n}")
                for position, row in enumerate(rows)]
