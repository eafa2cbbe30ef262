"""Shared pieces of the benchmark scripts: the real evaluation suite from the shared data folder."""

from __future__ import annotations

import sys

from m1.data.items import MCQItem
from m1.data.suite import SUITE_FILE_NAME, load_suite, shared_data_dir


def suite_items(sources: list[str] | None = None) -> dict[str, list[MCQItem]]:
    """The real suite's items by source (all sources, or `sources`); exits with a message if it is absent."""
    shared = shared_data_dir()
    if shared is None:
        sys.exit("the real data was not found: put the shared data at ../shared/data or set M1_SHARED_DATA")
    return load_suite(shared / "eval" / SUITE_FILE_NAME, sources=sources)


def medqa_items(count: int) -> list[MCQItem]:
    """The first `count` MedQA test items of the real suite."""
    return suite_items(["MedQA_USLME_test"])["MedQA_USLME_test"][:count]
