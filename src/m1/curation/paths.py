"""Paths in curation configs: `${shared_data}` stands for the real data folder.

    resolve_path("${shared_data}/pools/pubmedqa/ori_pqal.json", key="ingest.pools.1.path")

`${shared_data}` is replaced by `m1.data.suite.shared_data_dir()` ($M1_SHARED_DATA, else
`../shared/data` beside the working tree), so a preset works from any checkout without editing.
Any other relative path is relative to the directory `m1 curate run` is started from, like every
other m1 config. A placeholder that cannot be resolved, or a file that is not there, is an error
naming the config key.
"""

from __future__ import annotations

from pathlib import Path

from m1.data.errors import DataError
from m1.data.suite import shared_data_dir

SHARED_DATA = "${shared_data}"


def resolve_path(value: str | Path, *, key: str, must_exist: bool = True) -> Path:
    text = str(value)
    if SHARED_DATA in text:
        shared = shared_data_dir()
        if shared is None:
            raise DataError.at("config", "", key, f"{text} needs the shared data folder, which was not found",
                               "put it at ../shared/data or set M1_SHARED_DATA")
        text = text.replace(SHARED_DATA, str(shared))
    path = Path(text).expanduser()
    if must_exist and not path.exists():
        raise DataError.at("config", "", key, f"{path} does not exist", "check the path in the config")
    return path
