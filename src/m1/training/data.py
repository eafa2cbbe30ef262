"""SFT records in, chat conversations out: read, check, hold out, sample.

    records = load_records(DataSettings(path="runs/curate/huatuo-demo/sft.jsonl"))
    train, held_out = split_held_out(records, held_out=0.1, seed=42)

A record is what curation's render stage writes, `{uid, source, domain, prompt, reasoning, answer,
messages, text}`, from a JSONL or Parquet file, a `datasets` folder (`save_to_disk`) or a Hugging
Face dataset id. Training reads `messages` (user turn, then the assistant turn in the m1 format);
a record without `messages` but with `prompt`, `reasoning` and `answer` is rendered with
`m1.curation.sft_format`. A bad row stops the run with its file, row, field and the fix.

Held-out records are chosen by a hash of (seed, uid), not by row position, so the same records
stay out however the file is ordered or grown.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1.curation.sft_format import sft_messages
from m1.data.errors import DataError
from m1.training.config import DataSettings

ROLES = ("system", "user", "assistant")
FIX = "records come from `m1 curate` (render stage); each needs `messages` or prompt, reasoning and answer"


@dataclass(frozen=True)
class SFTRecord:
    uid: str
    messages: list[dict[str, str]]


def read_rows(settings: DataSettings) -> tuple[str, list[dict[str, Any]]]:
    """(where the rows came from, the raw rows) for a file, a `datasets` folder or a Hub id."""
    path = Path(settings.path)
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return str(path), _read_jsonl(path)
    if path.is_file() and path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return str(path), pq.read_table(path).to_pylist()
    if path.is_dir():
        from datasets import DatasetDict, load_from_disk

        dataset = load_from_disk(str(path))
        if isinstance(dataset, DatasetDict):
            if settings.split not in dataset:
                raise DataError.at(path, "", "split", f"no split {settings.split!r}",
                                   f"choose one of {', '.join(dataset)}")
            dataset = dataset[settings.split]
        return str(path), dataset.to_list()
    looks_like_hub_id = not path.exists() and not path.suffix and settings.path.count("/") == 1
    if not looks_like_hub_id:
        problem = "not a JSONL/Parquet file or a datasets folder" if path.exists() else "not found"
        raise DataError.at(path, "", "data.path", problem,
                           "point data.path at the render stage's sft.jsonl, sft.parquet or sft_dataset/, "
                           "or at a Hugging Face dataset id (owner/name)")
    from datasets import load_dataset

    return f"hf://{settings.path}", load_dataset(settings.path, split=settings.split).to_list()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError.at(path, number, "", f"invalid JSON: {err.msg}", FIX) from None
            if not isinstance(row, dict):
                raise DataError.at(path, number, "", "a line must hold one JSON object", FIX)
            rows.append(row)
    return rows


def record_from_row(row: dict[str, Any], where: str, number: int) -> SFTRecord:
    uid = str(row.get("uid") or f"row-{number}")
    messages = row.get("messages")
    if messages is None:
        missing = [key for key in ("prompt", "reasoning", "answer") if not isinstance(row.get(key), str)]
        if missing:
            raise DataError.at(where, number, missing[0], "no `messages`, and no text to render them from", FIX)
        return SFTRecord(uid, sft_messages(row["prompt"], row["reasoning"], row["answer"]))
    if not isinstance(messages, list) or not messages:
        raise DataError.at(where, number, "messages", "must be a non-empty list of {role, content}", FIX)
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise DataError.at(where, number, f"messages[{index}]",
                               f"each message needs a role ({'/'.join(ROLES)}) and text content", FIX)
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise DataError.at(where, number, "messages", "the last message must be a non-empty assistant turn",
                           "the assistant turn is what the model learns to write")
    return SFTRecord(uid, [{"role": m["role"], "content": m["content"]} for m in messages])


def load_records(settings: DataSettings) -> list[SFTRecord]:
    where, rows = read_rows(settings)
    if not rows:
        raise DataError.at(where, "", "", "no records", FIX)
    records = [record_from_row(row, where, number) for number, row in enumerate(rows, 1)]
    seen: dict[str, int] = {}
    for number, record in enumerate(records, 1):
        if record.uid in seen:
            raise DataError.at(where, number, "uid", f"uid {record.uid!r} repeats row {seen[record.uid]}",
                               "deduplicate the records (m1 curate does)")
        seen[record.uid] = number
    return records


def split_held_out(records: list[SFTRecord], held_out: float, seed: int) -> tuple[list[SFTRecord], list[SFTRecord]]:
    """(train, held out): a fraction (< 1) or a count (>= 1) of records, by hash of (seed, uid)."""
    count = round(held_out * len(records)) if held_out < 1 else int(held_out)
    if count >= len(records):
        raise DataError.at("config", "", "data.held_out", f"holds out {count} of {len(records)} records, "
                           "leaving none to train on", "hold out fewer")
    rank = sorted(records, key=lambda r: hashlib.sha1(f"{seed}:{r.uid}".encode()).hexdigest())
    chosen = {r.uid for r in rank[:count]}
    return [r for r in records if r.uid not in chosen], [r for r in records if r.uid in chosen]


def sample_records(records: list[SFTRecord], limit: int | None, seed: int) -> list[SFTRecord]:
    """At most `limit` records, a seeded sample in file order."""
    if limit is None or limit >= len(records):
        return records
    keep = set(random.Random(seed).sample(range(len(records)), limit))
    return [r for index, r in enumerate(records) if index in keep]
