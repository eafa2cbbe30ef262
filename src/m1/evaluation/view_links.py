"""Links into `m1 view`: the names it gives runs and grid points, and the URLs of its item lists and
item pages, so that the static report can link its tables to the traces behind them.

    names = run_names([Path("runs/base"), Path("runs/tuned")])   # ["base", "tuned"]
    items_url(point=point_name("base", "B128_K4"), correct="false", source="MedMCQA_validation")
    items_url([("run", "base"), ("run", "tuned")], page="2")      # pairs where a name repeats
    item_url("fb37799a017d17a7", runs=["base"])                  # "/items/fb37799a017d17a7?run=base"

The parameters are the ones `m1.viewing.query` reads (its header lists them and what they mean);
the links are paths, put after the address `m1 view` prints (`VIEW_URL` by default: m1 view
listens on `VIEW_PORT` when it is free). A test opens every link the report writes in a real
`m1 view`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote, urlencode

VIEW_PORT = 8765
VIEW_URL = f"http://127.0.0.1:{VIEW_PORT}"


def run_names(roots: Sequence[Path]) -> list[str]:
    """Each run's name in `m1 view`: its folder, or parent/folder where two folders share a name;
    the same folder twice, or parents of the same name too, are numbered."""
    folders = [Path(root).resolve() for root in roots]
    names = [f"{folder.parent.name}/{folder.name}" if [f.name for f in folders].count(folder.name) > 1
             else folder.name for folder in folders]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def point_name(run: str, key: str) -> str:
    """A grid point as m1 view names it: `<run name>:<point key>`."""
    return f"{run}:{key}"


def items_url(pairs: Iterable[tuple[str, str | None]] = (), **params: str | None) -> str:
    """The item list with these filters: `pairs` (a name may repeat, as run= does), then `params`;
    None values left out, in the order given."""
    return "/items" + _query([*pairs, *params.items()])


def item_url(uid: str, runs: Iterable[str] = (), **params: str | None) -> str:
    """One item's page, with only these runs' columns (every run's when none is named) and its
    `params` (point: the point whose traces it opens; mode)."""
    return f"/items/{quote(uid, safe='')}" + _query([*(("run", run) for run in runs), *params.items()])


def _query(pairs: Iterable[tuple[str, str | None]]) -> str:
    query = urlencode([(name, value) for name, value in pairs if value is not None])
    return f"?{query}" if query else ""
