"""The paper's four training pools, loaded from the Hugging Face Hub into `MCQItem`s.

    items = load_hub_pool("medmcqa")                      # openlifescienceai/medmcqa, train split
    items = load_hub_pool("medqa", data_files="x.jsonl")  # same schema from local files (offline)

Each pool is a declaration (`HubPool`): its Hub id and config, and the loader format of that
dataset's rows, whose converter lives once in the format registry (`m1.data.loaders.FORMATS`). So
the same code serves rows from the Hub, local files written in the Hub's schema (which is how the
tests run here, where the Hub cannot be reached) and the same files given to `m1 data`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.data.loaders import FORMATS
from m1.data.rows import LoadResult, validate_rows


@dataclass(frozen=True)
class HubPool:
    name: str
    hub_id: str
    config: str | None
    split: str
    format: str  # the loader format of the dataset's rows (its converter lives in the registry)
    source: str


HUB_POOLS: dict[str, HubPool] = {
    pool.name: pool
    for pool in (
        HubPool("medqa", "GBaker/MedQA-USMLE-4-options", None, "train", "eval-jsonl", "MedQA"),
        HubPool("medmcqa", "openlifescienceai/medmcqa", None, "train", "medmcqa", "MedMCQA"),
        HubPool("pubmedqa", "qiaojin/PubMedQA", "pqa_labeled", "train", "pubmedqa-hub", "PubMedQA"),
        HubPool("headqa", "openlifescienceai/headqa", None, "train", "headqa-hub", "HeadQA"),
    )
}


def convert_rows(pool: str, rows: Iterable[dict[str, Any]], *, where: str, skip_invalid: bool = False) -> LoadResult:
    """Validate rows in a pool's Hub schema into a `LoadResult` (errors name `where` and the row)."""
    if pool not in HUB_POOLS:
        raise DataError.at(where, "", "", f"unknown pool {pool!r}", f"use one of: {', '.join(HUB_POOLS)}")
    declared = HUB_POOLS[pool]
    records = ((str(index), row) for index, row in enumerate(rows))
    raw_rows = FORMATS[declared.format].rows_from(Path(where), records, declared.source)
    return validate_rows(Path(where), f"hub:{pool}", raw_rows, skip_invalid)


def load_hub_pool(
    pool: str,
    *,
    split: str | None = None,
    data_files: str | Path | list[str] | None = None,
    revision: str | None = None,
    skip_invalid: bool = False,
) -> list[MCQItem]:
    """Load a training pool from the Hub (or from local files in its schema) as items."""
    import datasets  # imported here: only curation needs it, and it is slow to import

    declared = HUB_POOLS.get(pool)
    if declared is None:
        raise DataError.at(pool, "", "", f"unknown pool {pool!r}", f"use one of: {', '.join(HUB_POOLS)}")
    if data_files is not None:
        files = [str(f) for f in data_files] if isinstance(data_files, list) else str(data_files)
        dataset = datasets.load_dataset("json", data_files=files, split="train")
        where = ", ".join(files) if isinstance(files, list) else files
    else:
        dataset = datasets.load_dataset(declared.hub_id, declared.config, split=split or declared.split,
                                        revision=revision)
        where = f"hf://{declared.hub_id}" + (f"/{declared.config}" if declared.config else "")
    return convert_rows(pool, dataset, where=where, skip_invalid=skip_invalid).items
