"""The thinking engine: generate thinking, then an answer, under a per-sample thinking budget.

    from m1.engine import BudgetPolicy, load_backend, render_prompt
    backend = load_backend("transformers", "smollm2-135m")
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=1024, num_extensions=2)
    records = backend.generate([render_prompt(backend.tokenizer, question, options, policy)], policy)

Backends (by name, from `m1.engine.registry`): `transformers` (reference, CPU/GPU), `vllm`
(offline engine, tensor/data parallel), `openai` (any OpenAI-compatible completions endpoint). All of them drive the same
`SampleController`, so budget semantics are identical everywhere.
"""

from __future__ import annotations

from m1.engine.controller import GenerationRecord
from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt
from m1.engine.registry import BACKENDS, backend_names, load_backend

__all__ = ["BACKENDS", "BudgetPolicy", "GenerationRecord", "backend_names", "load_backend", "render_prompt"]
