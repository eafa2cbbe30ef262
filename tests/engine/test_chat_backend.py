"""The chat backend against a real HTTP server that plays a reasoning API (tests/curation/fault_server.py):
each dialect's request fields, the thinking in all its forms, both counts, cost, cache, retries,
refusals at config time, and the budget audit catching a server that overshoots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.config import load_config
from m1.data.errors import DataError
from m1.engine.backends.chat import ChatBackend
from m1.engine.client import parse_completion
from m1.engine.policy import BudgetPolicy
from m1.evaluation.audit import HONOURED, NOT_ENFORCED
from m1.evaluation.config import EvalConfig
from m1.evaluation.runner import BUNDLED_SAMPLE, run_eval

from curation.fault_server import FaultServer

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Which vitamin deficiency causes scurvy?\nA. A\nB. C"}]


def backend(dialect: str, tmp_path: Path, **options) -> ChatBackend:
    return ChatBackend("hosted-model", dialect=dialect, base_url="http://127.0.0.1:9/v1", cache_dir=tmp_path, **options)


def test_each_dialect_sends_the_budget_in_its_own_field(tmp_path: Path) -> None:
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=64, max_answer_tokens=32)
    assert backend("openai", tmp_path).request_fields(policy, "low") == {
        "reasoning_effort": "low", "max_completion_tokens": 96, "temperature": 0.0, "top_p": 1.0}
    assert backend("openai", tmp_path, send_sampling=False).request_fields(policy, "high", send_budget=False) == {
        "reasoning_effort": "high"}
    assert backend("anthropic", tmp_path, send_sampling=False).request_fields(policy) == {
        "max_tokens": 96, "thinking": {"type": "enabled", "budget_tokens": 64}}
    assert backend("vllm", tmp_path, send_sampling=False, think_prefill="<think>\n").request_fields(policy) == {
        "max_tokens": 96, "thinking_token_budget": 64, "continue_final_message": True, "add_generation_prompt": False}
    assert backend("llamacpp", tmp_path, send_sampling=False, max_total_tokens=500).request_fields(policy) == {
        "max_tokens": 500, "thinking_budget_tokens": 64}
    no_think = BudgetPolicy.from_preset("no-think", max_answer_tokens=32)
    assert backend("anthropic", tmp_path, send_sampling=False).request_fields(no_think) == {
        "max_tokens": 32, "thinking": {"type": "disabled"}}
    sampled = policy.model_copy(update={"sampling": policy.sampling.model_copy(update={"temperature": 0.7, "seed": 5})})
    assert backend("vllm", tmp_path).request_fields(sampled)["seed"] == 5
    assert "seed" not in backend("anthropic", tmp_path).request_fields(sampled)  # Anthropic has no seed
    with pytest.raises(ValueError, match="think_prefill.*openai"):
        backend("openai", tmp_path, think_prefill="<think>\n")
    with pytest.raises(ValueError, match="unknown dialect 'gemini'"):
        backend("gemini", tmp_path)


def test_thinking_is_read_in_every_form_and_counted_twice(tmp_path: Path, default_model_dir: Path) -> None:
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=16, max_answer_tokens=8)
    plans = {"question 0": ["ok"], "question 1": ["think_tags"], "question 2": ["truncated"],
             "question 3": ["no_reasoning"]}
    with FaultServer(schedule=lambda body: plans[body["messages"][0]["content"]]) as server:
        chat = ChatBackend("smollm2-135m", dialect="vllm", base_url=server.base_url, cache_dir=tmp_path,
                           price_input_per_million=1.0, price_output_per_million=2.0)
        prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(4)]
        field, tags, cut, plain = chat.generate(prompts, policy)
    assert field.thinking.startswith("Let me think") and "\\boxed" in field.reply and field.api["thinking_closed"]
    assert field.api["thinking_count"] == "provider" and field.thinking_tokens == field.api["reported_thinking_tokens"]
    recount = len(chat.tokenizer.encode(field.thinking, add_special_tokens=False))
    assert field.api["recounted_thinking_tokens"] == recount  # m1's own count, the model's tokenizer
    assert tags.thinking.startswith("Let me think") and "<think>" not in tags.reply
    assert cut.answer_end == "length" and cut.api["finish_reason"] == "length" and cut.api["thinking_closed"] is False
    assert plain.thinking == "" and plain.thinking_end == "no_thinking"
    usage = field.api["usage"]
    assert field.api["cost"] == pytest.approx((usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6)
    assert sum(length for _kind, length in field.spans) == len(field.thinking + field.reply)


def test_an_unclosed_prefilled_thinking_never_closed(tmp_path: Path) -> None:
    """With think_prefill a server without a reasoning parser returns the thinking inline; no end tag: cut."""
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=16, max_answer_tokens=8)
    with FaultServer(schedule=lambda body: ["ok"], answer=lambda body: "still thinking and") as server:
        chat = ChatBackend("hosted", dialect="vllm", base_url=server.base_url, cache_dir=tmp_path,
                           think_prefill="<think>\n")
        (record,) = chat.generate([MESSAGES], policy)
        sent = server.bodies[0]
    assert sent["messages"][-1] == {"role": "assistant", "content": "<think>\n"} and sent["continue_final_message"]
    # The fault server's reply has a reasoning field, so that is the thinking; the answer is the content.
    assert record.thinking.startswith("Let me think") and record.reply == "still thinking and"
    closed = parse_completion({"choices": [{"message": {"content": "<think>\nhalf a thought"}, "finish_reason": "length"}]})
    assert closed["thinking_closed"] is False and closed["reasoning"] == "half a thought"


def test_anthropic_dialect_reads_thinking_blocks(tmp_path: Path) -> None:
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=20, max_answer_tokens=8)
    with FaultServer(schedule=lambda body: ["ok"], overshoot=3) as server:
        chat = ChatBackend("claude-x", dialect="anthropic", base_url=server.root_url, api_key_env="M1_TEST_NO_KEY",
                           cache_dir=tmp_path, send_sampling=False)
        (record,) = chat.generate([MESSAGES], policy)
        sent = server.bodies[0]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 20} and sent["max_tokens"] == 28
    assert record.thinking == " ".join(["think"] * 23) and record.thinking_tokens == 23
    assert record.api["reported_thinking_tokens"] == 23 and record.api["recounted_thinking_tokens"] is None
    assert record.api["thinking_count"] == "provider" and "\\boxed" in record.reply


def test_retries_then_answers_and_a_failure_fails_only_its_item(tmp_path: Path) -> None:
    policy = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=8, max_answer_tokens=8)
    plans = {"q0": ["429", "ok"], "q1": ["500", "ok"], "q2": ["400"]}
    with FaultServer(schedule=lambda body: plans[body["messages"][0]["content"]]) as server:
        chat = ChatBackend("hosted", dialect="openai", base_url=server.base_url, cache_dir=tmp_path, max_retries=2)
        records = chat.generate([[{"role": "user", "content": f"q{i}"}] for i in range(3)], policy)
    assert [r.error is None for r in records] == [True, True, False]
    assert "400" in records[2].error and records[2].api["thinking_count"] == "none"
    assert chat.client.stats()["retries"] == 2


def eval_overrides(server: FaultServer, tmp_path: Path, name: str, **extra: str) -> list[str]:
    options = {"model": "smollm2-135m", "backend": "chat", "data": str(BUNDLED_SAMPLE), "limit": "3",
               "out_dir": str(tmp_path), "name": name, "grid.max_thinking_tokens": "[8, 16]",
               "policy.max_answer_tokens": "16",
               "backend_options": json.dumps({"dialect": "vllm", "base_url": server.base_url,
                                              "api_key_env": "M1_TEST_CHAT_KEY",
                                              "price_input_per_million": 2.0, "price_output_per_million": 8.0})} | extra
    return [f"{k}={v}" for k, v in options.items()]


@pytest.mark.parametrize("overshoot, verdict", [(4, NOT_ENFORCED), (0, HONOURED)])
def test_the_audit_catches_a_server_that_overshoots(tmp_path: Path, monkeypatch, default_model_dir: Path,
                                                    overshoot: int, verdict: str) -> None:
    monkeypatch.setenv("M1_TEST_CHAT_KEY", "sk-secret-never-written")
    with FaultServer(schedule=lambda body: ["ok"], overshoot=overshoot) as server:
        config = load_config(EvalConfig, None, eval_overrides(server, tmp_path, "hosted"))
        summary = run_eval(config)
        sent = len(server.bodies)
        assert run_eval(config)["points"] == summary["points"] and len(server.bodies) == sent  # a rerun pays nothing
    assert sent == 6 and not config.calibration  # the letter read needs logprobs: off for chat by default
    for point in summary["points"]:
        audit = point["audit"]
        assert audit["verdict"] == verdict and audit["generations"] == 3
        assert audit["thinking_tokens_max"] == point["budget"] + overshoot
        assert audit["count_compared"] == 3 and audit["cost"]["total"] > 0
        assert (audit["overshoot_max"] == overshoot) if overshoot else audit["overshoot_max"] is None
        rows = [json.loads(line) for line in (tmp_path / "hosted" / "points" / point["point"] / "predictions.jsonl")
                .read_text().splitlines()]
        assert {row["thinking_count"] for row in rows} == {"provider"}
        assert all(row["reported_thinking_tokens"] == point["budget"] + overshoot for row in rows)
    for path in (tmp_path / "hosted").rglob("*"):
        if path.is_file():
            assert b"sk-secret-never-written" not in path.read_bytes(), path  # the key is never written


def test_what_a_dialect_cannot_send_is_refused_at_config_time() -> None:
    def refused(*overrides: str) -> str:
        with pytest.raises(DataError) as caught:
            load_config(EvalConfig, None, ["backend=chat", "grid.max_thinking_tokens=[64]", *overrides])
        return str(caught.value)

    vllm = "backend_options={dialect: vllm}"
    assert "grid.num_extensions" in refused(vllm, "grid.num_extensions=[0, 2]") and "vllm dialect" in refused(
        vllm, "grid.num_extensions=[2]")
    assert "policy.min_thinking_tokens" in refused(vllm, "policy.min_thinking_tokens=10")
    assert "grid.early_exit" in refused(vllm, "grid.early_exit=[{method: confidence}]")
    assert "calibration" in refused("backend_options={dialect: anthropic}", "calibration=true")
    assert "grid.effort" in refused(vllm, "grid.effort=[low]")
    assert "no option temperature" in refused("backend_options={temperature: 0.5}")
    assert "unknown dialect" in refused("backend_options={dialect: gemini}")
    assert "grid.effort" in refused("backend=transformers", "grid.effort=[low]")
    assert "null needs an effort" in refused("grid.max_thinking_tokens=[null]")


def test_effort_grid_keys_and_identity() -> None:
    config = load_config(EvalConfig, None, ["backend=chat", "grid.max_thinking_tokens=[null, 1024]",
                                            "grid.effort=[low, high]"])
    assert [p.key for p in config.grid_points()] == ["Elow", "Ehigh", "B1024_K0_Elow", "B1024_K0_Ehigh"]
    plain = load_config(EvalConfig, None, ["grid.max_thinking_tokens=[64]"])
    assert "effort" not in json.dumps(plain.model_dump()["grid"]) or plain.grid.effort == [None]
    assert [p.key for p in plain.grid_points()] == ["B64_K0"]


def test_the_hosted_preset_validates_and_switches_dialect_by_override() -> None:
    preset = REPO / "configs" / "eval" / "hosted_example.yaml"
    config = load_config(EvalConfig, preset)
    assert config.backend == "chat" and config.backend_options["dialect"] == "openai"
    assert config.backend_options["base_url"].startswith("https://") and config.backend_options["api_key_env"]
    assert [p.effort for p in config.grid_points()] == ["low", "medium", "high"]
    assert config.backend_options["price_output_per_million"] > 0 and not config.calibration
    claude = load_config(EvalConfig, preset, [
        "model=claude-sonnet-4-5", "grid.effort=[null]", "grid.max_thinking_tokens=[1024, 4096]",
        'backend_options={dialect: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_API_KEY, '
        "send_sampling: false, price_input_per_million: 3.0, price_output_per_million: 15.0}"])
    assert [p.key for p in claude.grid_points()] == ["B1024_K0", "B4096_K0"]
