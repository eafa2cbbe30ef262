"""The model-facing stages against a real OpenAI-compatible server: `m1 serve` on loopback with the
default model (SmolLM2-135M), one process for this module, guarded by an API key.

Difficulty, distill, verify and classify run on a handful of real HeadQA items; the rows carry
what each stage promises, usage is accounted, a second run is all cache hits with zero requests,
and the API key appears in no file and no log."""

from __future__ import annotations

import csv

import pytest

from m1.curation.classify import ClassifyConfig, DomainClassifier
from m1.engine.client import ClientConfig
from m1.curation.difficulty import DifficultyConfig, DifficultyFilter
from m1.curation.distill import Distill, DistillConfig
from m1.curation.stage import dropped_rows, kept_rows, run_stage
from m1.curation.verify import TeacherCorrectFilter, VerifyConfig

from .servers import MODEL, headqa_rows, m1_server

pytestmark = pytest.mark.slow

SECRET = "sk-served-8d1f3a5c7e9b2d4f6a8c0e1b3d5f7a9c"


@pytest.fixture(scope="module")
def server(default_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("m1-serve") / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("M1_API_KEY", SECRET)  # m1 serve then requires it on every /v1 request
        process = m1_server(log)
    with process:
        yield process


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("M1_TEST_API_KEY", SECRET)


@pytest.fixture(scope="module")
def rows(shared_data):
    return headqa_rows(shared_data, 4)


def served(server, **fields) -> ClientConfig:
    return ClientConfig(model=MODEL, base_url=server.base_url, api_key_env="M1_TEST_API_KEY", timeout=300,
                        max_retries=1, backoff_initial=0.01, **fields)


def short_rubric(shared_data, folder):
    """All 76 qualifiers with scope notes cut to a few words: the real rubric is ~3,300 tokens,
    too slow to read on a CPU for every test run; the mechanics are the same."""
    source = shared_data / "mesh" / "qualifier_scope_note.tsv"
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    path = folder / "short_rubric.tsv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows({**row, "Scope Notes": " ".join(row["Scope Notes"].split()[2:6])} for row in rows)
    return path


def stages(server, run_dir, rubric):
    # SmolLM2 stops thinking at once unless pushed: a minimum plus extensions make it think, and
    # a budget it reaches makes the answer start with "Final Answer:" (never empty).
    thinking = {"thinking_budget": 24, "min_thinking_tokens": 24, "num_extensions": 4}
    return {
        "difficulty": DifficultyFilter(DifficultyConfig(
            models=[served(server, max_tokens=16, extra_body={"budget_preset": "no-think"})], keep="none"), run_dir),
        "distill": Distill(DistillConfig(teacher=served(server, max_tokens=32, extra_body=thinking), workers=4), run_dir),
        "verify": TeacherCorrectFilter(VerifyConfig(), run_dir),
        "classify": DomainClassifier(ClassifyConfig(
            client=served(server, max_tokens=12, extra_body={"budget_preset": "no-think"}), rubric_path=rubric,
            workers=2), run_dir),
    }


def run_all(server, run_dir, rows, rubric, upstream):
    manifests, current = {}, rows
    for name, stage in stages(server, run_dir, rubric).items():
        rows_in = current if name != "classify" else rows[:2]  # the rubric is the slowest prompt
        manifests[name] = run_stage(stage, rows_in, run_dir / name, upstream=upstream)
        current = kept_rows(run_dir / name) if name != "verify" else current
    return manifests


def test_the_stages_run_on_a_real_server_and_a_rerun_pays_nothing(server, rows, shared_data, tmp_path):
    rubric = short_rubric(shared_data, tmp_path)
    run_dir = tmp_path / "run"
    first = run_all(server, run_dir, rows, rubric, upstream="first")

    difficulty = kept_rows(run_dir / "difficulty")
    assert len(difficulty) == 4 and first["difficulty"]["rows_out"] == 4
    for row in difficulty:
        result = row["difficulty"]["models"][MODEL]
        assert set(result) == {"reply", "letter", "rule", "correct", "finish_reason", "graders"}
        assert row["difficulty"]["n_wrong"] == (0 if result["correct"] else 1)

    distilled = kept_rows(run_dir / "distill")
    for row in dropped_rows(run_dir / "distill"):
        assert row["reason"] in ("teacher reply truncated (finish_reason=length)", "teacher reply has no reasoning",
                                 "teacher reply has no final answer")
    assert distilled, "the served model should give at least one usable trace"
    teacher_stats = first["distill"]["extra"]["teacher"]
    for row in distilled:
        teacher = row["teacher"]
        assert teacher["reasoning"].strip() and teacher["content"].startswith("Final Answer:")
        assert teacher["finish_reason"] == "stop" and teacher["model"] == MODEL and not teacher["cached"]
        assert 0 < teacher["usage"]["reasoning_tokens"] <= 24 < teacher["usage"]["prompt_tokens"]
    assert teacher_stats["replies"] == teacher_stats["requests"] == 4 and teacher_stats["cache_hits"] == 0
    assert teacher_stats["reasoning_tokens"] >= sum(r["teacher"]["usage"]["reasoning_tokens"] for r in distilled)

    verified = first["verify"]
    assert verified["rows_in"] == len(distilled) and verified["extra"]["judged"] == len(distilled)

    classified = kept_rows(run_dir / "classify")
    assert len(classified) == 2
    for row in classified:
        domain = row["domain"]
        assert len(domain["code"]) == 2 and 0 <= int(domain["code"]) <= 75 and domain["name"]
        assert domain["method"] in ("llm", "fallback") and domain["flagged"] == (domain["method"] == "fallback")

    # The same requests again, under a new upstream so every stage is redone: all from the run's cache.
    second = run_all(server, run_dir, rows, rubric, upstream="second")
    for name, key in (("difficulty", None), ("distill", "teacher"), ("classify", "client")):
        extra = second[name]["extra"]
        stats = extra["models"][MODEL] if key is None else extra[key]
        assert stats["requests"] == 0 and stats["replies"] == 0 and stats["cache_hits"] > 0, name
    assert all(row["teacher"]["cached"] for row in kept_rows(run_dir / "distill"))

    leaked = [path for path in tmp_path.rglob("*") if path.is_file() and SECRET in path.read_text(errors="replace")]
    assert not leaked and SECRET not in server.log()
