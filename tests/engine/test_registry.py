"""One registry of backend names: every place that takes a backend name accepts exactly its names."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from m1.cli import app
from m1.engine.client import ClientConfig
from m1.engine.registry import BACKENDS, backend_names, check_backend
from m1.evaluation.config import EvalConfig


def test_every_entry_names_an_importable_backend_class() -> None:
    import importlib

    for name, spec in BACKENDS.items():
        module, _, attribute = spec.target.partition(":")
        cls = getattr(importlib.import_module(module), attribute)
        assert cls.name == name


def test_in_process_backends_are_a_subset() -> None:
    assert set(backend_names(in_process=True)) < set(backend_names())
    assert "openai" not in backend_names(in_process=True)


@pytest.mark.parametrize("name", backend_names())
def test_eval_config_takes_every_registered_name(name: str) -> None:
    assert EvalConfig(backend=name).backend == name


def test_unknown_names_are_refused_everywhere_with_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of transformers, vllm, openai"):
        EvalConfig(backend="tgi")
    with pytest.raises(ValueError, match="choose one of transformers, vllm$"):
        check_backend("openai", in_process=True)
    with pytest.raises(ValueError, match="local curation client has no backend 'openai'"):
        ClientConfig(kind="local", backend="openai", model="m")
    for command in (["serve", "--backend", "openai"], ["ask", "q", "--backend", "tgi"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2
        assert "choose one of" in result.output
