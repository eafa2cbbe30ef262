"""Runners: where requests meet a backend. Both drive the engine's `SampleController`, so a
request's budget means exactly what it means in `m1 eval`.

- `BatchingRunner` (transformers): dynamic batching. One worker thread takes requests from a
  queue, waits a short window (`batch_window_ms`) for up to `max_batch_size` of them, and runs one
  `generate` with one policy per request, sorted by prompt length so that the backend's forward
  groups (`batch_size` rows) pad little. Each request is answered as soon as its own sample
  finishes, but a new request joins only the next batch: it may wait for the slowest sample of
  the batch in progress. A client that leaves before its batch starts is dropped; one that leaves
  during the batch is generated to the end and discarded (the backend has no way to cancel one
  sample of a batch). A request for n choices is n jobs queued as one item: they always share a
  batch (and the backend prefills their prompt once), even when that batch is larger than
  `max_batch_size`.
- `AsyncVLLMRunner` (vLLM): the engine's `AsyncVLLMBackend` (vLLM's `AsyncLLM`, continuous
  batching). Each request is one asyncio task running the engine's round loop, every round one
  request of token ids, exactly like the offline vLLM backend; a client that leaves cancels its
  task, which aborts its round in the engine. A request's n choices are n tasks started together
  once their prompt has been encoded into vLLM's prefix cache (one forward): requests that enter the
  engine in the same step would each encode it.

Both push events to the request's asyncio queue: `("text", phase, piece)` while generating and
`("probe", entry)` after each early-exit probe (both only for streaming requests), then
`("done", record)` or `("error", message)`. The transformers worker runs in its own thread, so it
hands events over with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from m1.engine.backends.base import load_tokenizer
from m1.engine.backends.hf import TransformersBackend
from m1.engine.backends.vllm_async import AsyncVLLMBackend
from m1.engine.controller import GenerationRecord
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy
from m1.engine.wire.errors import APIError

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
        self._queue: queue.Queue[list[Job] | None] = queue.Queue()  # a request's jobs, together
        self._thread = threading.Thread(target=self._work, name="m1-batcher", daemon=True)
        self.batches = self.batched_requests = self.largest_batch = 0

    async def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 30)

    def submit(self, job: Job) -> None:
        self.submit_all([job])

    def submit_all(self, jobs: list[Job]) -> None:
        """Jobs that run in one batch (a request's n choices): queued as one item, never split."""
        if self._queue.qsize() >= self.max_queue:
            raise busy(self.max_queue)
        self._queue.put(jobs)

    def stats(self) -> dict[str, Any]:
        return {"waiting": self._queue.qsize(), "batches": self.batches, "batched_requests": self.batched_requests,
                "largest_batch": self.largest_batch,
                "mean_batch_size": round(self.batched_requests / self.batches, 2) if self.batches else None}

    def _work(self) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)
        carried: list[Job] | None = None  # a request that did not fit the last batch: it opens the next
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is None:
                return
            batch, stopping = list(first), False
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch_size:
                try:
                    jobs = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if jobs is None:
                    stopping = True
                    break
                if len(batch) + len(jobs) > self.max_batch_size:
                    carried = jobs  # a request's choices stay together
                    break
                batch.extend(jobs)
            # Identical prompts (a request's choices) sort side by side, so they share a forward group.
            live = sorted((job for job in batch if not job.cancelled.is_set()),
                          key=lambda job: (len(job.prompt.ids), job.prompt.ids))
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
        started = time.perf_counter()
        try:
            self.backend.generate([job.prompt for job in batch], [job.policy for job in batch],
                                  on_text=on_text if streaming else None, on_done=on_done,
                                  choices=[job.choices for job in batch], on_probe=on_probe if streaming else None)
        except Exception as err:  # noqa: BLE001 - one failed batch must not stop the worker
            log.exception("batch of %d failed", len(batch))
            for index, job in enumerate(batch):
                if index not in finished:
                    job.emit(("error", f"generation failed: {type(err).__name__}"))
        log.debug("batch of %d in %.2fs", len(batch), time.perf_counter() - started)


class AsyncVLLMRunner:
    """vLLM's async engine (`m1.engine.backends.vllm_async`), one asyncio task per request."""

    backend_name = "vllm"

    def __init__(self, model: str, *, max_queue: int = 256, **backend_options: Any):
        self.backend = AsyncVLLMBackend(model, **backend_options)
        self.tokenizer = self.backend.tokenizer
        self.max_queue = max_queue
        self.running: set[Job] = set()

    @property
    def max_context(self) -> int:
        return self.backend.max_context

    async def start(self) -> None:
        await self.backend.start()

    async def stop(self) -> None:
        for job in list(self.running):
            job.cancel()
        self.backend.shutdown()

    def submit(self, job: Job) -> None:
        self.submit_all([job])

    def submit_all(self, jobs: list[Job]) -> None:
        """A request's jobs (its n choices) start together, once their prompt is in the prefix cache:
        it is encoded once, and every choice's rounds go on from it."""
        if len(self.running) + len(jobs) > max(self.max_queue, len(jobs)):
            raise busy(self.max_queue)
        loop = asyncio.get_running_loop()
        prefill = None
        if len(jobs) > 1:
            prefill = loop.create_task(self.backend.prefill(jobs[0].prompt.ids, request_id=f"{jobs[0].id}-prefill"))
        for job in jobs:
            self.running.add(job)
            job.task = loop.create_task(self._run(job, prefill))
            job.task.add_done_callback(lambda _task, job=job: self.running.discard(job))

    def stats(self) -> dict[str, Any]:
        return {"running": len(self.running)}

    async def _run(self, job: Job, prefill: asyncio.Task | None = None) -> None:
        if prefill is not None:
            try:
                await asyncio.shield(prefill)  # a job cancelled meanwhile leaves it to the others
            except asyncio.CancelledError:
                return
            except Exception:  # noqa: BLE001 - only a saving: the job encodes its prompt itself
                log.warning("prefill for request %s failed; its choices encode the prompt themselves", job.id)

        def on_text(_index: int, phase: str, text: str, _inserted: bool) -> None:
            job.emit(("text", phase, text))

        def on_probe(_index: int, entry: dict[str, Any]) -> None:
            job.emit(("probe", entry))

        try:
            record = await self.backend.generate_one(job.prompt, job.policy, request_id=job.id, choices=job.choices,
                                                     on_text=on_text if job.stream else None,
                                                     on_probe=on_probe if job.stream else None)
        except asyncio.CancelledError:
            return  # the client left; the round in flight was aborted by vLLM
        except Exception as err:  # noqa: BLE001 - one failed request must not stop the server
            log.exception("request %s failed", job.id)
            job.emit(("error", f"generation failed: {type(err).__name__}"))
            return
        job.emit(("error", record.error) if record.error else ("done", record))


async def tagged_events(jobs: Sequence[Job]) -> AsyncIterator[tuple[int, tuple]]:
    """Every job's events as (job's index, event), in the order they come, until each job's last
    ("done" or "error"). One job's are its queue as it is."""
    if len(jobs) == 1:
        while True:
            event = await jobs[0].events.get()
            yield 0, event
            if event[0] in ("done", "error"):
                return
    merged: asyncio.Queue = asyncio.Queue()

    async def forward(index: int, job: Job) -> None:
        while True:
            event = await job.events.get()
            merged.put_nowait((index, event))
            if event[0] in ("done", "error"):
                return

    forwarders = [asyncio.ensure_future(forward(index, job)) for index, job in enumerate(jobs)]
    try:
        for _ in range(len(jobs)):
            while (item := await merged.get())[1][0] not in ("done", "error"):
                yield item
            yield item
    finally:
        for task in forwarders:
            task.cancel()


def make_runner(backend: str, model: str, **options: Any):
    if backend == "transformers":
        return BatchingRunner(model, **options)
    if backend == "vllm":
        return AsyncVLLMRunner(model, **options)
    raise ValueError(f"m1 serve runs on the transformers or vllm backend, not {backend!r}")
