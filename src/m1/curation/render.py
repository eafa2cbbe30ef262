"""Render: rows with teacher reasoning → SFT records, exported as JSONL, Parquet and a `datasets` folder.

    stage = Render(RenderConfig(), run_dir)                 # text in SPEC §4's Qwen2.5 rendering
    stage = Render(RenderConfig(tokenizer="smollm2-135m"), run_dir)   # that model's chat template
    files = export_records(records, run_dir, RenderConfig())           # sft.jsonl, sft.parquet, sft_dataset/

A record is `{uid, source, domain, prompt, reasoning, answer, messages, text}`: `prompt` is the user
turn (the same message used at evaluation), `reasoning` and `answer` the teacher's thinking and
final reply, `messages` the chat form for TRL (assistant-only loss), `text` the whole rendered
conversation (`m1.curation.sft_format`). A row leaves with a reason when it cannot teach anything:
`no teacher output`, `truncated teacher output` (finish_reason "length": the reasoning stops
mid-thought, which the reference never checked), `empty reasoning`, `empty answer`.

`push_to_hub` uploads the `datasets` form to a Hub dataset repository (token from $HF_TOKEN).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from m1.curation.sft_format import sft_messages, sft_text
from m1.curation.stage import Drop, Outcome, Row, RowStage
from m1.io import atomic_write_bytes, atomic_write_text

ExportFormat = Literal["jsonl", "parquet", "datasets"]
RECORD_FIELDS = ("uid", "source", "domain", "prompt", "reasoning", "answer", "messages", "text")
OUTPUT_STEM = "sft"


class RenderConfig(BaseModel):
    """The SFT text format and where the records go."""

    model_config = ConfigDict(extra="forbid")

    tokenizer: str | None = Field(None, description="model name/path whose chat template renders `text` "
                                                    "(default: SPEC §4's Qwen2.5 rendering)")
    formats: list[ExportFormat] = Field(default_factory=lambda: ["jsonl", "parquet", "datasets"], min_length=1)
    push_to_hub: str | None = Field(None, description="a Hub dataset repo id to upload to (token from $HF_TOKEN)")
    private: bool = True


class Render(RowStage):
    """Turns a row with teacher output into one SFT record."""

    name = "render"
    version = "1"
    batch_size = 256

    def __init__(self, config: RenderConfig, run_dir: Path | None = None):
        self.config = config
        self.run_dir = run_dir
        self._tokenizer: Any = None

    def params(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", include={"tokenizer"})

    def tokenizer(self) -> Any:
        if self.config.tokenizer is not None and self._tokenizer is None:
            from m1.engine.backends.base import load_tokenizer
            from m1.engine.default_model import resolve_model

            self._tokenizer = load_tokenizer(resolve_model(self.config.tokenizer))
        return self._tokenizer

    def process(self, row: Row) -> Outcome:
        teacher = row.get("teacher")
        if not isinstance(teacher, dict):
            return Drop("no teacher output", "the row has no `teacher` section (run distill first)")
        if teacher.get("finish_reason") == "length":
            return Drop("truncated teacher output", f"finish_reason=length from {teacher.get('model')}")
        reasoning = (teacher.get("reasoning") or "").strip()
        answer = (teacher.get("content") or "").strip()
        if not reasoning:
            return Drop("empty reasoning", f"teacher {teacher.get('model')} returned no reasoning")
        if not answer:
            return Drop("empty answer", f"teacher {teacher.get('model')} returned no final answer")
        domain = row.get("domain")
        return {
            "uid": row["uid"],
            "source": row["source"],
            "domain": domain.get("name") if isinstance(domain, dict) else None,
            "prompt": row["prompt"],
            "reasoning": reasoning,
            "answer": answer,
            "messages": sft_messages(row["prompt"], reasoning, answer),
            "text": sft_text(row["prompt"], reasoning, answer, tokenizer=self.tokenizer()),
        }


def _parquet_bytes(records: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), buffer)
    return buffer.getvalue()


def _save_dataset(records: list[dict[str, Any]], folder: Path) -> None:
    """`datasets.save_to_disk`, written beside the target and swapped in, so a crash leaves the old one."""
    import datasets

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    datasets.Dataset.from_list(records).save_to_disk(str(staging))
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)


def export_records(records: list[dict[str, Any]], out_dir: Path, config: RenderConfig) -> dict[str, str]:
    """Write the records in every configured format; returns {format: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = [{field: record[field] for field in RECORD_FIELDS} for record in records]
    written: dict[str, str] = {}
    if "jsonl" in config.formats:
        path = out_dir / f"{OUTPUT_STEM}.jsonl"
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        written["jsonl"] = str(path)
    if "parquet" in config.formats:
        path = out_dir / f"{OUTPUT_STEM}.parquet"
        atomic_write_bytes(path, _parquet_bytes(records))
        written["parquet"] = str(path)
    if "datasets" in config.formats:
        path = out_dir / f"{OUTPUT_STEM}_dataset"
        _save_dataset(records, path)
        written["datasets"] = str(path)
    return written


def push_to_hub(records: list[dict[str, Any]], repo_id: str, *, private: bool = True) -> str:
    """Upload the records as a Hub dataset; the token comes from $HF_TOKEN (or the Hub login)."""
    import datasets

    dataset = datasets.Dataset.from_list([{field: record[field] for field in RECORD_FIELDS} for record in records])
    dataset.push_to_hub(repo_id, private=private, token=os.environ.get("HF_TOKEN"))
    return f"https://huggingface.co/datasets/{repo_id}"
