"""`m1 serve` (and `python -m m1.serving`) is one typer command whose options are the parameters
of `m1.serving.serve`, with the same defaults: loopback, and the API key only from the environment.
The serving tests start real servers through it (`ServerProcess`)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from m1.cli import app
from m1.serving import app as serving_app

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # help pages wrap to the terminal; every option name must fit on its line


# What `serve` takes by name (its **backend_options are for Python callers only).
PARAMETERS = {name: p for name, p in inspect.signature(serving_app.serve).parameters.items()
              if p.kind is not inspect.Parameter.VAR_KEYWORD}


def option_names() -> set[str]:
    command = typer.main.get_command(app).commands["serve"]
    return {name for param in command.params for name in param.opts}


def test_every_serve_parameter_is_an_option() -> None:
    expected = {"--" + name.replace("_", "-") for name in PARAMETERS}
    assert option_names() == expected
    assert "--api-key" not in option_names()  # a key on the command line would sit in ps and shell history


def test_help_is_typer_s_page_with_every_option() -> None:
    result = runner.invoke(app, ["serve", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and "serve [OPTIONS]" in result.output
    for name in PARAMETERS:
        assert f"--{name.replace('_', '-')} " in result.output, name
    assert "[default: 127.0.0.1]" in result.output and "[default: M1_API_KEY]" in result.output


@pytest.mark.timeout(120)  # on a command that ignores the patch, a real server would start
def test_defaults_are_the_library_s(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(serving_app, "serve", lambda *args, **kwargs: calls.append((args, kwargs)))
    assert runner.invoke(app, ["serve"]).exit_code == 0
    args, kwargs = calls[0]
    received = dict(zip(PARAMETERS, args)) | kwargs
    assert received == {name: p.default for name, p in PARAMETERS.items()}
    assert received["host"] == "127.0.0.1"

    result = runner.invoke(app, ["serve", "--backend", "vllm", "--port", "9001", "--max-context", "512",
                                 "--batch-window-ms", "2.5", "--default-preset", "no-think"])
    assert result.exit_code == 0, result.output
    args, kwargs = calls[1]
    received = dict(zip(PARAMETERS, args)) | kwargs
    assert (received["backend"], received["port"], received["max_context"], received["batch_window_ms"],
            received["default_preset"]) == ("vllm", 9001, 512, 2.5, "no-think")


@pytest.mark.parametrize(("option", "value"), [("--backend", "llamacpp"), ("--port", "eighty"),
                                               ("--default-preset", "deep"), ("--log-level", "loud")])
def test_a_bad_option_value_is_refused_by_name(option: str, value: str) -> None:
    result = runner.invoke(app, ["serve", option, value], env=WIDE)
    assert result.exit_code == 2 and option in result.output


def test_a_refused_setting_is_one_line_and_status_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):
        raise ValueError("only the transformers backend takes max_batch_size")

    monkeypatch.setattr(serving_app, "serve", refuse)
    result = runner.invoke(app, ["serve", "--backend", "vllm", "--max-batch-size", "4"], env=WIDE)
    assert result.exit_code == 2 and "only the transformers backend takes max_batch_size" in result.output


def test_python_m_m1_serving_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "m1.serving", "--help"], capture_output=True, text=True,
                            env=os.environ | WIDE, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m m1.serving [OPTIONS]" in result.stdout
    for name in option_names():
        assert f"{name} " in result.stdout, name
