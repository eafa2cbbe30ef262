"""The difficulty filter: several base models answer each item, the strict scorer decides, and
`keep` chooses which items survive, against a real HTTP server (`fault_server.py`). The same
stage against `m1 serve` is in test_distill_served.py."""

from __future__ import annotations

import re

import pytest

from m1.engine.client import ClientConfig
from m1.curation.difficulty import DifficultyConfig, DifficultyFilter
from m1.curation.stage import dropped_rows, kept_rows, run_stage

from .fault_server import FaultServer
from .servers import synthetic_rows

ROWS = synthetic_rows(8)  # row i's answer is "ABCD"[i % 4]


def answer(body) -> str:
    """"strong" solves even-numbered items and boxes a wrong letter on odd ones; "weak" never commits."""
    number = int(re.search(r"Question number (\d+)", body["messages"][0]["content"]).group(1))
    if body["model"] == "weak":
        return "Based on the question, it is hard to say."  # the reference grader would guess B here
    letter = "ABCD"[number % 4] if number % 2 == 0 else "ABCD"[(number + 1) % 4]
    return f"\\boxed{{{letter}}}"


def models(server: FaultServer, *names: str) -> list[ClientConfig]:
    return [ClientConfig(model=name, base_url=server.base_url, max_tokens=32, timeout=5, max_retries=1,
                         backoff_initial=0.01, backoff_max=0.02) for name in names]


@pytest.mark.parametrize("keep, kept_count", [("all_wrong", 4), ("any_wrong", 8), ("none", 8)])
def test_keep_decides_which_items_survive(tmp_path, keep, kept_count):
    with FaultServer(schedule=lambda body: ["ok"], answer=answer) as server:
        config = DifficultyConfig(models=models(server, "strong", "weak"), keep=keep, batch_size=3)
        manifest = run_stage(DifficultyFilter(config, tmp_path), ROWS, tmp_path / "difficulty", upstream="u")
    kept = {row["uid"]: row for row in kept_rows(tmp_path / "difficulty")}
    assert manifest["rows_out"] == kept_count
    if keep == "all_wrong":
        assert manifest["dropped"] == {"solved by strong": 4}
        assert set(kept) == {f"row{i:03d}" for i in (1, 3, 5, 7)}
    record = kept["row001"]["difficulty"]
    assert record["n_wrong"] == 2
    strong = record["models"]["strong"]
    assert strong | {"graders": None} == {"reply": "\\boxed{C}", "letter": "C", "rule": "boxed_letter",
                                          "correct": False, "finish_reason": "stop", "graders": None}
    assert set(strong["graders"]) == {"strict", "reference", "notebook"}
    weak = record["models"]["weak"]
    assert weak["letter"] is None and not weak["correct"] and weak["graders"]["reference"]["letter"] is not None
    report = manifest["extra"]["models"]
    assert report["strong"]["solved"] == 4 and report["weak"]["solved"] == 0
    if keep == "all_wrong":  # dropped rows keep what the models said
        solved = dropped_rows(tmp_path / "difficulty")[0]["row"]["difficulty"]
        assert solved["models"]["strong"]["correct"] and solved["n_wrong"] == 1
    assert report["strong"]["replies"] == report["weak"]["replies"] == 8


def test_the_notebook_grader_counts_a_first_letter_as_a_solve(tmp_path):
    """The paper's difficulty notebook: "Based on…" solves every item whose answer is B."""
    with FaultServer(schedule=lambda body: ["ok"], answer=answer) as server:
        strict = run_stage(DifficultyFilter(DifficultyConfig(models=models(server, "weak")), tmp_path), ROWS,
                           tmp_path / "strict", upstream="u")
        notebook = run_stage(DifficultyFilter(DifficultyConfig(models=models(server, "weak"), grader="notebook"),
                                              tmp_path), ROWS, tmp_path / "notebook", upstream="u")
    assert strict["rows_out"] == 8
    assert notebook["dropped"] == {"solved by weak": 2}  # rows 1 and 5: answer B
    assert sorted(row["uid"] for row in dropped_rows(tmp_path / "notebook")) == ["row001", "row005"]
    assert notebook["extra"]["models"]["weak"]["solved"] == 2


def test_a_model_that_cannot_answer_drops_the_row_with_its_reason(tmp_path):
    def schedule(body):
        return ["500"] * 5 if "number 0:" in body["messages"][0]["content"] else ["ok"]

    with FaultServer(schedule=schedule, answer=answer) as server:
        config = DifficultyConfig(models=models(server, "weak"))
        manifest = run_stage(DifficultyFilter(config, tmp_path), ROWS[:2], tmp_path / "difficulty", upstream="u")
    assert manifest["dropped"] == {"base model weak failed: api error after 1 retries: 500": 1}
    assert [row["uid"] for row in dropped_rows(tmp_path / "difficulty")] == ["row000"]


def test_the_same_model_twice_is_refused():
    with pytest.raises(ValueError, match="listed twice"):
        DifficultyConfig(models=[ClientConfig(model="m"), ClientConfig(model="m", temperature=0.5)])
