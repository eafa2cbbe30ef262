"""`m1 ask` on the real default model: streamed thinking and answer, token accounting, early exit's
live probes, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from m1.cli import app

runner = CliRunner()
QUESTION = ["ask", "Which vitamin deficiency causes scurvy?", "-o", "A=Vitamin A", "-o", "B=Vitamin C"]


@pytest.mark.slow
def test_ask_streams_and_accounts(default_model_dir) -> None:
    """The README's first command: the default model answers, and inserted text is marked as such."""
    result = runner.invoke(app, QUESTION + ["--budget", "32", "--wait", "2", "--answer-tokens", "16"])
    assert result.exit_code == 0, result.output
    assert "preset think-tags (the model's default" in result.output
    assert "── think ──" in result.output and "── answer ──" in result.output
    assert result.output.count("«inserted:  Wait»") == 2
    assert "extensions 2/2" in result.output and "/32 tokens" in result.output
    answer = result.output.split("── answer ──", 1)[1].split("\nthinking ", 1)[0]
    generated = answer.replace("«inserted: </think>⏎⏎»", "").strip()
    assert answer.strip().startswith("«inserted: </think>") and generated  # the model wrote an answer
    assert "chosen option: " in result.output and "reference grader: " in result.output


@pytest.mark.slow
def test_ask_m1_preset_shows_its_answer_marker_as_inserted(default_model_dir) -> None:
    """After the m1 markers this model writes (almost) nothing: what is shown is marked as m1's text."""
    args = QUESTION + ["--preset", "m1", "--budget", "8", "--answer-tokens", "8"]
    shown = runner.invoke(app, args)
    record = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert shown.exit_code == 0, shown.output
    assert "preset m1 (as asked)" in shown.output
    prefix = record["reply"][: len(record["reply"]) - len(record["answer"])]  # what m1 inserted
    assert prefix and "<|im_start|>answer" in prefix
    answer_shown = shown.output.split("── answer ──", 1)[1].split("\nthinking ", 1)[0].strip()
    assert answer_shown == ("«inserted: " + prefix.replace("\n", "⏎") + "»" + record["answer"]).strip()


@pytest.mark.slow
def test_ask_json_record(default_model_dir) -> None:
    result = runner.invoke(app, QUESTION + ["--budget", "8", "--wait", "3", "--answer-tokens", "4", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["thinking_tokens"] <= 8
    assert record["thinking_end"] in {"budget_reached", "extensions_spent", "natural_stop"}
    assert record["preset"] == "think-tags" and record["prompt"].endswith("<think>\n")


@pytest.mark.slow
def test_ask_early_exit_shows_each_probe_and_the_tokens_saved(default_model_dir) -> None:
    args = QUESTION + ["--budget", "24", "--wait", "2", "--answer-tokens", "4", "--early-exit", "consistency",
                       "--every", "8"]
    shown = runner.invoke(app, args)
    record = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert shown.exit_code == 0, shown.output
    assert record["probes"] and all(probe["read"] == "letters" for probe in record["probes"])
    assert record["probe_tokens"] == sum(probe["tokens"] for probe in record["probes"])
    lines = [line for line in shown.output.splitlines() if line.startswith("«probe at ")]
    assert lines == [f"«probe at {p['thinking_tokens']} thinking tokens: {p['answer']!r}, p={p['probability']:.2f} "
                     f"(mass elsewhere {p['outside']:.2f})»" for p in record["probes"]]
    saved = 24 - record["thinking_tokens"] if record["thinking_end"] == "early_exit" else 0
    assert (f"{saved} thinking tokens saved of 24; {len(record['probes'])} probes, "
            f"{record['probe_tokens']} probe tokens") in shown.output


@pytest.mark.parametrize(("args", "words"), [(["--budget", "0"], "max_thinking_tokens"),
                                             (["--wait", "-1"], "num_extensions"),
                                             (["--answer-tokens", "0"], "max_answer_tokens"),
                                             (["--preset", "s1"], "is not one of"),
                                             (["-o", "Vitamin C"], "is not an option"),
                                             (["--early-exit", "confidence", "--threshold", "1.5"], "threshold"),
                                             (["--early-exit", "consistency", "--every", "0"], "every"),
                                             (["--early-exit", "vote"], "is not one of"),
                                             (["--agree", "3"], "only apply with --early-exit"),
                                             (["--early-exit", "confidence", "--preset", "no-think"],
                                              "answer_after_budget")])
def test_ask_bad_input_is_explained(args: list[str], words: str) -> None:
    result = runner.invoke(app, QUESTION + args)
    assert result.exit_code != 0
    assert words in result.output
