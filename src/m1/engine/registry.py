"""The backend registry: every engine backend m1 knows, by name, in one place.

    from m1.engine.registry import BACKENDS, backend_names, check_backend, load_backend
    backend = load_backend("vllm", "smollm2-135m", tensor_parallel_size=2)

Configs (`m1 eval`, curation's local clients), `m1 ask` and `m1 serve` validate their backend
names here, so adding a backend means adding one entry below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BackendSpec:
    name: str
    target: str  # "module:Class" of the backend, imported only when it is loaded
    summary: str
    in_process: bool  # runs the model in this process: it can be served and be a local curation client


BACKENDS: dict[str, BackendSpec] = {spec.name: spec for spec in (
    BackendSpec("transformers", "m1.engine.backends.hf:TransformersBackend",
                "Hugging Face transformers, CPU or GPU (the reference)", True),
    BackendSpec("vllm", "m1.engine.backends.vllm:VLLMBackend",
                "vLLM's offline engine (tensor/data parallel, Ray)", True),
    BackendSpec("openai", "m1.engine.backends.openai:OpenAIBackend",
                "any OpenAI-compatible completions endpoint (vLLM, SGLang, m1 serve)", False),
    BackendSpec("chat", "m1.engine.backends.chat:ChatBackend",
                "a chat API that enforces its own thinking budget (OpenAI, Anthropic, vLLM, llama.cpp dialects)", False),
)}


def backend_names(*, in_process: bool = False) -> tuple[str, ...]:
    return tuple(name for name, spec in BACKENDS.items() if spec.in_process or not in_process)


def check_backend(name: str, *, in_process: bool = False, purpose: str = "m1") -> str:
    """`name` if it is a known backend (one that runs in this process, if asked), else a ValueError."""
    allowed = backend_names(in_process=in_process)
    if name not in allowed:
        raise ValueError(f"{purpose} has no backend {name!r}; choose one of {', '.join(allowed)}")
    return name


def load_backend(name: str, model: str = "smollm2-135m", **options: Any):
    """A ready backend of the given name; options go to its constructor."""
    module, _, attribute = BACKENDS[check_backend(name)].target.partition(":")
    return getattr(importlib.import_module(module), attribute)(model, **options)
