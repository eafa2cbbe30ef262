"""Runners: where requests meet a backend. Both drive the engine's `SampleController`, so a
request's budget means exactly what it means in `m1 eval`.

- `BatchingRunner` (transformers): dynamic batching. One worker thread takes requests from a
  queue, waits a short window (`batch_window_ms`) for up to `max_batch_size` of them, and runs one
  `generate` with one policy per request, sorted by prompt length so that the backend's forward
  groups (`batch_size` rows) pad little. Each request is answered as soon as its own sample
  finishes, but a new request joins only the next batch: it may wait for the slowest sample of
  the batch in progress. A client that leaves before its batch starts is dropped; one that leaves
  during the batch is generated to the end and discarded (the backend has no way to cancel one
  sample of a batch).
- `AsyncVLLMRunner` (vLLM): vLLM's `AsyncLLM` (continuous batching, its engine core in a child
  process). Each request runs the controller's rounds as an asyncio task: every round is one
  request of token ids with that round's `max_tokens`, exactly like the offline vLLM backend;
  a client that leaves cancels its task, which aborts its round in the engine.

Both push events to the request's asyncio queue: `("text", phase, piece)` while generating (only
for streaming requests), `("probe", entry)` after each early-exit probe (streaming requests), then `("done", record)` or `("error", message)`. The transformers worker
runs in its own thread, so it hands events over with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from m1.engine.backends.base import (
    StopMatcher,
    TextStream,
    answer_reserve,
    fail_if_prompt_too_long,
    load_tokenizer,
    round_limit,
    with_sample_seed,
)
from m1.engine.backends.hf import TransformersBackend
from m1.engine.controller import GenerationRecord, RoundOutput, SampleController
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy
from m1.serving.errors import APIError

log = logging.getLogger("m1.serving")


class PromptText(str):
    """A prompt's text carrying the token ids it was counted (or sent) as, so no backend re-tokenises it."""

    ids: tuple[int, ...]

    def __new__(cls, text: str, ids: Sequence[int]) -> PromptText:
        obj = super().__new__(cls, text)
        obj.ids = tuple(ids)
        return obj


@dataclass(eq=False)
class Job:
    """One request on its way through a runner."""

    id: str
    prompt: PromptText
    policy: BudgetPolicy
    stream: bool
    loop: asyncio.AbstractEventLoop
    choices: tuple[str, ...] | None = None  # the prompt's option letters: early-exit probes read them
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task | None = None

    def emit(self, event: tuple) -> None:
        """Hand an event to the request's coroutine; safe from any thread."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop has closed: the server is shutting down
            pass

    def cancel(self) -> None:
        self.cancelled.set()
        if self.task is not None:
            self.task.cancel()


def busy(limit: int) -> APIError:
    return APIError(503, f"the server is busy ({limit} requests waiting); retry later", type="server_busy",
                    code="server_busy")


class _TransformersServingBackend(TransformersBackend):
    """The transformers backend, fed the ids a `PromptText` carries instead of re-encoding it."""

    def encode(self, text: str) -> list[int]:
        ids = getattr(text, "ids", None)
        return list(ids) if ids is not None else super().encode(text)


class BatchingRunner:
    """Dynamic batching on the transformers backend (see the module docstring)."""

    backend_name = "transformers"

    def __init__(self, model: str, *, max_batch_size: int = 16, batch_window_ms: float = 15.0,
                 max_queue: int = 256, torch_threads: int | None = None, **backend_options: Any):
        import torch

        # On CPU, leave a core to the HTTP loop and the clients: OpenMP threads that spin-wait on a
        # busy machine were measured 10x slower on 2 cores (2 threads: 16 s, 1 thread: 1.4 s for 16 tokens).
        self.torch_threads = torch_threads or max(1, (os.cpu_count() or 2) - 1)
        torch.set_num_threads(self.torch_threads)
        # Rows per forward pass. A round's requests are sorted by prompt length and run in groups of
        # this many, so a short prompt is not padded to the longest one of all: on CPU, prefill
        # dominates short replies, and 16 mixed MedQA prompts ran faster as two sorted groups of 8
        # (20.5 s) than as one batch (28.5 s) or one at a time (26.7 s).
        backend_options.setdefault("batch_size", min(8, max_batch_size))
        self.backend = _TransformersServingBackend(model, keep_trace=True, **backend_options)
        self.tokenizer = load_tokenizer(resolve_model(model))  # the event loop's own copy; the worker has the backend's
        self.max_context = self.backend.max_context
        self.max_batch_size, self.window, self.max_queue = max_batch_size, batch_window_ms / 1000, max_queue
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="m1-batcher", daemon=True)
        self.batches = self.batched_requests = self.largest_batch = 0

    async def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 30)

    def submit(self, job: Job) -> None:
        if self._queue.qsize() >= self.max_queue:
            raise busy(self.max_queue)
        self._queue.put(job)

    def stats(self) -> dict[str, Any]:
        return {"waiting": self._queue.qsize(), "batches": self.batches, "batched_requests": self.batched_requests,
                "largest_batch": self.largest_batch,
                "mean_batch_size": round(self.batched_requests / self.batches, 2) if self.batches else None}

    def _work(self) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = [first], False
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch_size:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            live = sorted((job for job in batch if not job.cancelled.is_set()), key=lambda job: len(job.prompt.ids))
            if live:
                self._run(live)
            if stopping:
                return

    def _run(self, batch: list[Job]) -> None:
        self.batches += 1
        self.batched_requests += len(batch)
        self.largest_batch = max(self.largest_batch, len(batch))
        finished: set[int] = set()

        def on_text(index: int, phase: str, text: str, _inserted: bool) -> None:
            job = batch[index]
            if job.stream and not job.cancelled.is_set():
                job.emit(("text", phase, text))

        def on_probe(index: int, entry: dict[str, Any]) -> None:
            job = batch[index]
            if job.stream and not job.cancelled.is_set():
                job.emit(("probe", entry))

        def on_done(index: int, record: GenerationRecord) -> None:
            finished.add(index)
            batch[index].emit(("error", record.error) if record.error else ("done", record))

        streaming = any(job.stream for job in batch)
        probing = {"choices": [job.choices for job in batch], "on_probe": on_probe if streaming else None} \
            if any(job.policy.early_exit for job in batch) else {}
        started = time.perf_counter()
        try:
            self.backend.generate([job.prompt for job in batch], [job.policy for job in batch],
                                  on_text=on_text if streaming else None, on_done=on_done, **probing)
        except Exception as err:  # noqa: BLE001 - one failed batch must not stop the worker
            log.exception("batch of %d failed", len(batch))
            for index, job in enumerate(batch):
                if index not in finished:
                    job.emit(("error", f"generation failed: {type(err).__name__}"))
        log.debug("batch of %d in %.2fs", len(batch), time.perf_counter() - started)


class AsyncVLLMRunner:
    """vLLM's async engine, one controller loop per request (see the module docstring)."""

    backend_name = "vllm"

    def __init__(self, model: str, *, max_queue: int = 256, dtype: str = "auto", max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, enable_prefix_caching: bool = True, trust_remote_code: bool = False,
                 engine_options: dict[str, Any] | None = None):
        import torch

        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            from m1.engine.backends.vllm import apply_cpu_defaults

            # As on transformers, leave a core to this process (HTTP, tokenising, the round loop): with
            # every core bound, a round on a busy 2-core machine was measured 3.5x slower.
            cores = os.cpu_count() or 1
            if cores > 1:
                os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 2}" if cores > 2 else "0")
            apply_cpu_defaults()
        path = resolve_model(model)
        self.options: dict[str, Any] = {
            "model": path, "tokenizer": path, "trust_remote_code": trust_remote_code,
            "tensor_parallel_size": tensor_parallel_size,
            # float32 and eager mode on CPU, as the offline backend measured.
            "dtype": dtype if dtype != "auto" or on_gpu else "float32",
            "enforce_eager": not on_gpu, "enable_prefix_caching": enable_prefix_caching,
            "disable_log_stats": True,
        }
        if max_model_len is not None:
            self.options["max_model_len"] = max_model_len
        self.options.update(engine_options or {})
        self.tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
        self.max_queue = max_queue
        self.engine: Any = None
        self.max_context = max_model_len or 0
        self.running: set[Job] = set()
        self._round_ids = itertools.count()

    async def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**self.options))
        self.max_context = self.engine.model_config.max_model_len
        self.engine_tokenizer = self.engine.get_tokenizer()
        self.stops = StopMatcher(self.engine_tokenizer)

    async def stop(self) -> None:
        for job in list(self.running):
            job.cancel()
        if self.engine is not None:
            self.engine.shutdown()

    def submit(self, job: Job) -> None:
        if len(self.running) >= self.max_queue:
            raise busy(self.max_queue)
        self.running.add(job)
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        job.task.add_done_callback(lambda _task: self.running.discard(job))

    def stats(self) -> dict[str, Any]:
        return {"running": len(self.running)}

    async def _run(self, job: Job) -> None:
        try:
            record = await self._sample(job)
        except asyncio.CancelledError:
            return  # the client left; the round in flight was aborted by vLLM
        except Exception as err:  # noqa: BLE001 - one failed request must not stop the server
            log.exception("request %s failed", job.id)
            job.emit(("error", f"generation failed: {type(err).__name__}"))
            return
        job.emit(("error", record.error) if record.error else ("done", record))

    async def _sample(self, job: Job) -> GenerationRecord:
        policy = with_sample_seed(job.policy, job.prompt)  # the same seed the offline backends derive
        controller = SampleController(policy)
        context = list(job.prompt.ids)
        reserve = answer_reserve(self.engine_tokenizer, policy)
        fail_if_prompt_too_long(controller, len(context), reserve, self.max_context)
        while (step := controller.next_step()) is not None:
            insert_ids = self._encode(step.insert) if step.insert else []
            context += insert_ids
            if insert_ids:
                controller.add_trace("inserted", insert_ids)
            if job.stream and step.insert:
                job.emit(("text", step.phase, step.insert))
            limit = round_limit(step, len(context), reserve, self.max_context)
            if limit == 0:
                controller.record_round(RoundOutput("", 0, False, ()), inserted_tokens=len(insert_ids))
                continue
            kept, stopped = await self._round(job, policy, context, step.phase, step.stops, limit)
            context += kept
            controller.add_trace("generated", kept)
            text = self.engine_tokenizer.decode(kept, skip_special_tokens=False)
            controller.record_round(RoundOutput(text, len(kept), stopped, tuple(kept)), inserted_tokens=len(insert_ids))
        return controller.record(job.prompt)

    async def _round(self, job: Job, policy: BudgetPolicy, context: list[int], phase: str, stops: tuple[str, ...],
                     limit: int) -> tuple[list[int], bool]:
        """One round: generate up to `limit` tokens; (kept ids with the stop cut, whether a stop ended it)."""
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = self._sampling(policy, stops, limit)
        params.output_kind = RequestOutputKind.DELTA if job.stream else RequestOutputKind.FINAL_ONLY
        stream = TextStream(self.engine_tokenizer, lambda p, t, _inserted: job.emit(("text", p, t))) if job.stream else None
        # Tokens that may turn out to be (the start of) a stop are shown only once the round ends.
        hold = 1 + max((len(self._encode(s)) for s in stops), default=0)
        ids: list[int] = []
        finish, shown = None, 0
        request_id = f"{job.id}-{next(self._round_ids)}"
        async for output in self.engine.generate(TokensPrompt(prompt_token_ids=list(context)), params, request_id):
            completion = output.outputs[0]
            if job.stream:
                ids.extend(completion.token_ids)
                while stream is not None and shown < len(ids) - hold:
                    stream.push(phase, ids[shown], stops)
                    shown += 1
            else:
                ids = list(completion.token_ids)
            finish = completion.finish_reason
        stopped = finish == "stop"
        kept = self.stops.strip(ids, stops) if stopped else ids
        if stream is not None:
            for token in kept[shown:]:
                stream.push(phase, token, stops)
            stream.end_round(self.engine_tokenizer.decode(kept, skip_special_tokens=False))
        return kept, stopped

    def _sampling(self, policy: BudgetPolicy, stops: tuple[str, ...], limit: int):
        from vllm import SamplingParams

        sampling = policy.sampling
        single = [ids[0] for ids in (self._encode(s) for s in stops) if len(ids) == 1]
        return SamplingParams(
            max_tokens=limit, temperature=sampling.temperature, top_p=sampling.top_p,
            seed=None if sampling.temperature == 0 else sampling.seed,
            stop=[s for s in stops if len(self._encode(s)) > 1] or None, stop_token_ids=single or None,
            include_stop_str_in_output=False, skip_special_tokens=False,
        )

    def _encode(self, text: str) -> list[int]:
        return self.engine_tokenizer.encode(text, add_special_tokens=False)


def make_runner(backend: str, model: str, **options: Any):
    if backend == "transformers":
        return BatchingRunner(model, **options)
    if backend == "vllm":
        return AsyncVLLMRunner(model, **options)
    raise ValueError(f"m1 serve runs on the transformers or vllm backend, not {backend!r}")
