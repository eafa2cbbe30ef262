"""Ingest: training pools → rows with stable uids, options shuffled per row, and the training prompt.

    ingest = Ingest(IngestConfig(pools=[PoolConfig(path="${shared_data}/pools/headqa_en/train_HEAD_EN.json"),
                                        PoolConfig(hub="medmcqa")]), run_dir)
    rows = ingest.candidates()                       # every row read, valid or not
    run_stage(ingest, rows, run_dir / "01_ingest", upstream=ingest.input_fingerprint())

A pool is a local file read by the foundation loaders (`headqa`, `pubmedqa`, `huatuo-demo`, our own
`items` JSONL/CSV/Parquet) or one of the paper's Hub datasets (`medqa`, `medmcqa`, `pubmedqa`,
`headqa`, optionally from local `data_files` in the Hub's schema). Nothing read is silently lost:
every row becomes a candidate, and the ones that cannot be used leave with a reason in the funnel:

- `invalid row`                  the loader rejected it; the detail names file, row, field and fix
- `PubMedQA test split`          its PMID is in the official test half (`test_split`), which is
                                 never training data
- `refers to an absent image`    HEAD-QA questions about a picture the dataset does not include
- `repeated uid`                 the same source row reached ingest twice (a pool listed twice)
- `over the pool limit`          not drawn in the pool's seeded sample of `limit` rows (demos)

A kept row follows the shared row schema: `uid`, `source`, `pool`, `question`, `options` (shuffled),
`answer_idx`, `answer`, `prompt` (`sft_prompt`: the exact user message of training and evaluation),
`metadata` (the original fields, plus `original_answer_idx` and `option_order`). The HuatuoGPT-o1
demo pool already has reasoning chains, which become `row["teacher"]` (model "huatuo-demo").

Options are shuffled with a random generator seeded by (seed, uid) for each row, so a row's option
order never depends on which rows came before it (the reference used one shared generator in row
order, so adding a pool reshuffled every later row).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from m1.curation.paths import resolve_path
from m1.curation.sft_format import sft_prompt
from m1.curation.stage import Drop, Outcome, Row, SetStage
from m1.data.errors import RowProblem
from m1.data.hub import HUB_POOLS, convert_rows
from m1.data.items import OPTION_LETTERS, MCQItem, make_uid
from m1.data.loaders import LoadResult, load_items, read_json
from m1.io import md5_file

LocalFormat = Literal["headqa", "pubmedqa", "huatuo-demo", "items"]
HubName = Literal["medqa", "medmcqa", "pubmedqa", "headqa"]
HUATUO_TEACHER = "huatuo-demo"


class PoolConfig(BaseModel):
    """One training pool: a local file, or one of the paper's Hub datasets."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="label in the funnel; default: the Hub name or the file's stem")
    path: str | None = Field(None, description="a local file; `${shared_data}` is the shared data folder")
    format: LocalFormat | None = Field(None, description="the local file's format (detected when omitted)")
    hub: HubName | None = Field(None, description="one of the paper's Hub pools (SPEC §2)")
    data_files: str | list[str] | None = Field(None, description="Hub pool rows from local files in the Hub schema")
    split: str | None = Field(None, description="Hub split (default: the pool's training split)")
    revision: str | None = None
    source: str | None = Field(None, description="source label for the rows (default: the loader's)")
    test_split: str | None = Field(None, description="PubMedQA: file of test PMIDs, which are left out")
    limit: int | None = Field(None, gt=0, description="keep a seeded sample of this many usable rows")

    @model_validator(mode="after")
    def _one_origin(self) -> PoolConfig:
        if (self.path is None) == (self.hub is None):
            raise ValueError("a pool needs exactly one of 'path' (a local file) or 'hub' "
                             "(medqa, medmcqa, pubmedqa, headqa)")
        if self.hub is None and (self.data_files is not None or self.split or self.revision):
            raise ValueError("'data_files', 'split' and 'revision' apply to Hub pools only")
        if self.hub is not None and self.format is not None:
            raise ValueError("'format' applies to local files; a Hub pool's schema is known")
        return self

    @property
    def label(self) -> str:
        return self.name or self.hub or Path(self.path or "").stem


class IngestConfig(BaseModel):
    """Which pools enter the pipeline and how their rows are prepared."""

    model_config = ConfigDict(extra="forbid")

    pools: list[PoolConfig] = Field(min_length=1)
    seed: int = 42
    shuffle_options: bool = True
    drop_image_questions: bool = Field(True, description="drop HEAD-QA questions whose image is absent")

    @model_validator(mode="after")
    def _unique_labels(self) -> IngestConfig:
        labels = [pool.label for pool in self.pools]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"pool name {repeated[0]!r} is used twice; give each pool its own 'name'")
        return self


def shuffled(row: Row, seed: int) -> Row:
    """The row with its options in an order drawn from (seed, uid), the answer letter following."""
    rng = random.Random(f"{seed}:{row['uid']}")
    order = list(row["options"])
    rng.shuffle(order)
    options = {OPTION_LETTERS[i]: row["options"][old] for i, old in enumerate(order)}
    answer_idx = OPTION_LETTERS[order.index(row["answer_idx"])]
    metadata = row["metadata"] | {"original_answer_idx": row["answer_idx"], "option_order": "".join(order)}
    return row | {"options": options, "answer_idx": answer_idx, "metadata": metadata}


def _data_files(pool: PoolConfig, key: str) -> list[Path]:
    if pool.data_files is None:
        return []
    names = pool.data_files if isinstance(pool.data_files, list) else [pool.data_files]
    return [resolve_path(name, key=f"{key}.data_files") for name in names]


def _item_row(item: MCQItem, pool: str) -> Row:
    row: Row = {"uid": item.uid, "source": item.source, "pool": pool, "question": item.question,
                "options": dict(item.options), "answer_idx": item.answer_idx, "answer": item.answer,
                "metadata": dict(item.metadata)}
    if item.metadata.get("reasoning") and "response" in item.metadata:
        # The HuatuoGPT-o1 demo rows come with a reasoning chain and a final response already.
        row["teacher"] = {"reasoning": item.metadata["reasoning"], "content": item.metadata["response"],
                          "finish_reason": "stop", "model": HUATUO_TEACHER}
    return row


def _problem_row(problem: RowProblem, source: str, pool: str) -> Row:
    return {"uid": make_uid(f"invalid:{pool}", f"{problem.file}:{problem.row}:{problem.field}"),
            "source": source, "pool": pool, "invalid": problem.to_dict()}


class Ingest(SetStage):
    """Reads the pools and prepares each usable row (see the module docstring)."""

    name = "ingest"
    version = "1"

    def __init__(self, config: IngestConfig, run_dir: Path | None = None):
        self.config = config
        self.run_dir = run_dir

    def params(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    # ----------------------------------------------------------------- reading

    def _files(self, index: int, pool: PoolConfig) -> list[Path]:
        key = f"ingest.pools.{index}"
        files = []
        if pool.path is not None:
            files.append(resolve_path(pool.path, key=f"{key}.path"))
        files += _data_files(pool, key)
        if pool.test_split is not None:
            files.append(resolve_path(pool.test_split, key=f"{key}.test_split"))
        return files

    def input_fingerprint(self) -> str:
        """What the input files hold (their digests) and which Hub datasets are read: ingest's upstream."""
        parts: list[Any] = []
        for index, pool in enumerate(self.config.pools):
            parts.append([[path.name, md5_file(path)] for path in self._files(index, pool)])
            if pool.hub and pool.data_files is None:
                declared = HUB_POOLS[pool.hub]
                parts.append([declared.hub_id, declared.config, pool.split or declared.split, pool.revision])
        return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:16]

    def _load(self, index: int, pool: PoolConfig) -> LoadResult:
        key = f"ingest.pools.{index}"
        if pool.path is not None:
            path = resolve_path(pool.path, key=f"{key}.path")
            return load_items(path, format=pool.format, source=pool.source, skip_invalid=True)
        import datasets  # only Hub pools need it, and it is slow to import

        declared = HUB_POOLS[pool.hub]
        if pool.data_files is not None:
            files = [str(path) for path in _data_files(pool, key)]
            dataset = datasets.load_dataset("json", data_files=files, split="train")
            where = ", ".join(files)
        else:
            dataset = datasets.load_dataset(declared.hub_id, declared.config, split=pool.split or declared.split,
                                            revision=pool.revision)
            where = f"hf://{declared.hub_id}" + (f"/{declared.config}" if declared.config else "")
        result = convert_rows(pool.hub, dataset, where=where, skip_invalid=True)
        if pool.source:
            result.items = [item.model_copy(update={"source": pool.source}) for item in result.items]
        return result

    def candidates(self) -> list[Row]:
        """Every row of every pool, in config order; unusable ones are marked for `process_all`."""
        rows: list[Row] = []
        seen: dict[str, str] = {}
        for index, pool in enumerate(self.config.pools):
            result = self._load(index, pool)
            source = pool.source or (result.items[0].source if result.items else pool.label)
            rows += [_problem_row(problem, source, pool.label) for problem in result.problems]
            for item in result.items:
                row = _item_row(item, pool.label)
                if row["uid"] in seen:
                    row = row | {"uid": f"{row['uid']}#{pool.label}", "repeat_of": seen[row["uid"]]}
                else:
                    seen[row["uid"]] = pool.label
                rows.append(row)
        return rows

    # ----------------------------------------------------------------- deciding

    def _test_pmids(self) -> dict[str, set[str]]:
        found = {}
        for index, pool in enumerate(self.config.pools):
            if pool.test_split is not None:
                path = resolve_path(pool.test_split, key=f"ingest.pools.{index}.test_split")
                found[pool.label] = {str(pmid) for pmid in read_json(path)}
        return found

    def _unusable(self, row: Row, test_pmids: dict[str, set[str]]) -> Drop | None:
        if "invalid" in row:
            return Drop("invalid row", RowProblem(**row["invalid"]).describe())
        if "repeat_of" in row:
            return Drop("repeated uid", f"the same source row is already read from pool {row['repeat_of']}")
        pmid = str(row["metadata"].get("pmid", ""))
        if pmid and pmid in test_pmids.get(row["pool"], ()):
            return Drop("PubMedQA test split", f"PMID {pmid} is in the official test split")
        if self.config.drop_image_questions and row["metadata"].get("image"):
            return Drop("refers to an absent image", f"image {row['metadata']['image']}")
        return None

    def process_all(self, rows: list[Row]) -> list[Outcome]:
        test_pmids = self._test_pmids()
        outcomes: list[Outcome] = [self._unusable(row, test_pmids) or row for row in rows]
        usable_by_pool: dict[str, list[int]] = defaultdict(list)
        for position, outcome in enumerate(outcomes):
            if not isinstance(outcome, Drop):
                usable_by_pool[rows[position]["pool"]].append(position)
        for pool in self.config.pools:
            usable = usable_by_pool.get(pool.label, [])
            if pool.limit is None or len(usable) <= pool.limit:
                continue
            # Each pool's sample depends only on (seed, pool, its rows), like the suite's samples.
            chosen = set(random.Random(f"{self.config.seed}:{pool.label}").sample(usable, pool.limit))
            for position in usable:
                if position not in chosen:
                    outcomes[position] = Drop("over the pool limit",
                                              f"pool {pool.label} keeps a sample of {pool.limit}")
        return [outcome if isinstance(outcome, Drop) else self._prepare(outcome) for outcome in outcomes]

    def _prepare(self, row: Row) -> Row:
        if self.config.shuffle_options:
            row = shuffled(row, self.config.seed)
        return row | {"prompt": sft_prompt(row["question"], row["options"])}
