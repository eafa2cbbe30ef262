"""Ingest: pools → rows; bad rows leave with reasons, option order is per row, limits are seeded."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from m1.curation.ingest import Ingest, IngestConfig, PoolConfig
from m1.curation.sft_format import sft_prompt
from m1.curation.stage import Drop, dropped_rows, run_stage

GOOD = [
    {"source": "Toy", "question": f"Question number {i} about pharmacology?",
     "options": {"A": f"drug {i}a", "B": f"drug {i}b", "C": f"drug {i}c", "D": f"drug {i}d"}, "answer_idx": "B"}
    for i in range(12)
]


def write_items(path: Path, rows: list[dict], extra_lines: tuple[str, ...] = ()) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "".join(extra_lines), encoding="utf-8")
    return path


def ingest(*pools: PoolConfig, **settings) -> tuple[list[dict], list]:
    stage = Ingest(IngestConfig(pools=list(pools), **settings))
    rows = stage.candidates()
    return rows, stage.process_all(rows)


def test_bad_rows_are_dropped_with_file_row_and_field(tmp_path: Path) -> None:
    bad_answer = GOOD[0] | {"question": "Which one?", "answer_idx": "E"}
    path = write_items(tmp_path / "pool.jsonl", GOOD[:3] + [bad_answer], ("{not json\n",))
    stage = Ingest(IngestConfig(pools=[PoolConfig(path=str(path))]))
    manifest = run_stage(stage, stage.candidates(), tmp_path / "01_ingest", upstream=stage.input_fingerprint())

    assert manifest["rows_in"] == 5 and manifest["rows_out"] == 3
    assert manifest["dropped"] == {"invalid row": 2}
    details = sorted(row["detail"] for row in dropped_rows(tmp_path / "01_ingest"))
    assert "pool.jsonl, row 4, field 'answer_idx'" in details[0] and "'E' is not one of the options" in details[0]
    assert "pool.jsonl, row 5" in details[1] and "malformed JSON" in details[1]


def test_options_are_shuffled_per_row_independently_of_other_rows(tmp_path: Path) -> None:
    first = write_items(tmp_path / "first.jsonl", GOOD[:6])
    second = write_items(tmp_path / "second.jsonl", [row | {"source": "Other"} for row in GOOD[6:]])
    _, alone = ingest(PoolConfig(path=str(second)))
    _, after_another_pool = ingest(PoolConfig(path=str(first)), PoolConfig(path=str(second)))

    by_uid = {row["uid"]: row for row in after_another_pool}
    for row in alone:
        assert row["options"] == by_uid[row["uid"]]["options"]  # order depends on (seed, uid) only
        assert row["options"][row["answer_idx"]] == row["answer"]
        assert row["prompt"] == sft_prompt(row["question"], row["options"])
        assert row["metadata"]["original_answer_idx"] == "B"
    orders = Counter(row["metadata"]["option_order"] for row in after_another_pool)
    assert len(orders) > 3  # really shuffled, not one permutation for all

    _, reseeded = ingest(PoolConfig(path=str(second)), seed=7)
    assert [row["options"] for row in reseeded] != [row["options"] for row in alone]


def test_limit_draws_a_seeded_sample_and_says_so(tmp_path: Path) -> None:
    path = write_items(tmp_path / "pool.jsonl", GOOD)
    _, outcomes = ingest(PoolConfig(path=str(path), limit=5))
    _, again = ingest(PoolConfig(path=str(path), limit=5))
    kept = [o["uid"] for o in outcomes if not isinstance(o, Drop)]
    assert len(kept) == 5 and kept == [o["uid"] for o in again if not isinstance(o, Drop)]
    drops = [o for o in outcomes if isinstance(o, Drop)]
    assert {d.reason for d in drops} == {"over the pool limit"} and len(drops) == 7


def test_a_pool_listed_twice_is_not_read_twice(tmp_path: Path) -> None:
    path = write_items(tmp_path / "pool.jsonl", GOOD[:4])
    rows, outcomes = ingest(PoolConfig(name="one", path=str(path)), PoolConfig(name="two", path=str(path)))
    assert len({row["uid"] for row in rows}) == 8  # uids stay unique for the stage base
    assert Counter(o.reason for o in outcomes if isinstance(o, Drop)) == {"repeated uid": 4}


def test_pool_config_errors() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'path'"):
        PoolConfig()
    with pytest.raises(ValidationError, match="Hub pools only"):
        PoolConfig(path="x.json", data_files="y.jsonl")
    with pytest.raises(ValidationError, match="used twice"):
        IngestConfig(pools=[PoolConfig(path="a/x.json"), PoolConfig(path="b/x.json")])


@pytest.mark.slow
def test_real_pools_pubmedqa_split_headqa_images_and_huatuo_chains(shared_data: Path) -> None:
    pools = shared_data / "pools"
    rows, outcomes = ingest(
        PoolConfig(path=str(pools / "pubmedqa/ori_pqal.json"),
                   test_split=str(pools / "pubmedqa/test_ground_truth.json")),
        PoolConfig(path=str(pools / "headqa_en/train_HEAD_EN.json")),
        PoolConfig(path=str(pools / "huatuo_demo/demo_data.json")),
    )
    reasons = Counter((row["pool"], o.reason) for row, o in zip(rows, outcomes) if isinstance(o, Drop))
    assert reasons == {("ori_pqal", "PubMedQA test split"): 500, ("train_HEAD_EN", "refers to an absent image"): 68}
    kept = [o for o in outcomes if not isinstance(o, Drop)]
    assert Counter(row["source"] for row in kept) == {"PubMedQA": 500, "HeadQA": 2589, "HuatuoDemo": 198}
    chain = next(row for row in kept if row["source"] == "HuatuoDemo")
    assert chain["teacher"]["model"] == "huatuo-demo" and chain["teacher"]["reasoning"] and chain["teacher"]["content"]
    assert len({row["uid"] for row in kept}) == len(kept)


def test_hub_pools_from_local_files_in_the_hub_schema(fixtures: Path, tmp_path: Path) -> None:
    hub = fixtures / "hub"
    test_split = tmp_path / "test.json"
    pubmedqa_ids = [str(json.loads(line)["pubid"]) for line in (hub / "pubmedqa.jsonl").read_text().splitlines()]
    test_split.write_text(json.dumps({pubmedqa_ids[0]: "yes"}))
    rows, outcomes = ingest(*(PoolConfig(hub=name, data_files=str(hub / f"{name}.jsonl"))
                              for name in ("medqa", "medmcqa", "headqa")),
                            PoolConfig(hub="pubmedqa", data_files=str(hub / "pubmedqa.jsonl"),
                                       test_split=str(test_split)))
    kept = [o for o in outcomes if not isinstance(o, Drop)]
    assert Counter(row["source"] for row in kept) == {"MedQA": 2, "MedMCQA": 2, "HeadQA": 2, "PubMedQA": 1}
    assert [o.reason for o in outcomes if isinstance(o, Drop)] == ["PubMedQA test split"]
    assert all(row["options"][row["answer_idx"]] == row["answer"] for row in kept)
