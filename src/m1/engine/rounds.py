"""The round loop, written once: how a sample's `SampleController` is driven by any backend that
generates a round at a time (vLLM's offline and async engines, OpenAI-compatible servers).

A backend supplies only "generate this round" (and "read this probe"); `SampleRun` does the rest:
encode the step's insert, compute the round's limit so the answer always fits, cut the stop off
what came back, keep the context as token ids, record the round, stream live text, keep a trace.

    runs = start_runs(prompts, policy, tokenizer=tok, stops=StopMatcher(tok), max_context=4096)
    drive(runs, executor, on_done=...)        # sync: each sample's next round goes in as its last ends
    record = await arun(run, agenerate)       # async: one task per sample (the server)

`drive` schedules per sample: an executor is told about each request the moment its sample is
ready and hands back whichever finish first. An executor that runs everything it was given in
one batch (`wait` = one `LLM.generate`) is the old lock-step schedule, kept as a baseline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from m1.engine.backends.base import (
    OnText,
    StopMatcher,
    answer_reserve,
    decode_round,
    fail_if_prompt_too_long,
    per_prompt_policies,
    round_limit,
    round_lookahead,
)
from m1.engine.controller import GenerationRecord, ProbeResult, RoundOutput, SampleController, Step
from m1.engine.policy import BudgetPolicy

# A live-probe callback: (sample index, the probe's entry in `GenerationRecord.probes`).
OnProbe = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class RoundRequest:
    """One round (or probe) a backend must generate for sample `index`.

    `context` is every token id so far (for a probe: with the probe's insert on its side branch);
    `text` is the same as text, for servers that take no ids. At most `limit` tokens are generated
    and at most `keep` of them kept: the difference is the step's lookahead, only there to see a
    stop that began before `keep` complete (servers without ids, which cannot cut, ask for `keep`).
    """

    index: int
    step: Step
    context: list[int]
    text: str
    limit: int
    policy: BudgetPolicy
    inserted: int  # tokens of the step's insert (part of `context`)
    keep: int = 0  # 0: the same as `limit`
    speculative: bool = False  # sent beside a probe, before it is known whether thinking goes on

    def __post_init__(self) -> None:
        if not self.keep:
            object.__setattr__(self, "keep", self.limit)

    @property
    def is_probe(self) -> bool:
        return self.step.phase == "probe"

    @property
    def stops(self) -> tuple[str, ...]:
        """Strings that end the round: the step's stops, then its pauses (early exit's transitions)."""
        return self.step.stops + tuple(p for p in self.step.pauses if p not in self.step.stops)


@dataclass(frozen=True)
class Generated:
    """What a backend generated for a round: ids as the engine gave them (a stop's own tokens
    included) or, from servers without ids, the text and the server's token count."""

    ids: Sequence[int] | None
    stopped: bool  # a stop string, stop token or end-of-sequence ended it
    text: str = ""
    n_tokens: int | None = None
    # policy.answer_logprobs on an answer round: one `answer_logprobs` entry per id in `ids`
    logprobs: Sequence[dict[str, Any]] | None = None


class SampleRun:
    """One sample on its way through its rounds: all of the loop but the generating."""

    def __init__(self, index: int, prompt: str, policy: BudgetPolicy, *, tokenizer: Any, stops: StopMatcher,
                 max_context: int, prompt_ids: Sequence[int] | None = None, choices: Sequence[str] | None = None,
                 keep_trace: bool = False, on_text: OnText | None = None, on_probe: OnProbe | None = None,
                 stream_generated: bool = True):
        self.index, self.prompt, self.policy = index, prompt, policy
        self.tokenizer, self.stop_matcher, self.max_context = tokenizer, stops, max_context
        self.controller = SampleController(policy, tuple(choices) if choices else None)
        self.context = list(prompt_ids) if prompt_ids is not None else self.encode(prompt)
        self.text = prompt
        self.reserve = answer_reserve(tokenizer, policy)
        self._held: list[int] = []  # ids of a character the last round cut in two (see decode_round)
        self.keep_trace, self.on_text, self.on_probe = keep_trace, on_text, on_probe
        self.stream_generated = stream_generated  # False where the backend streams tokens itself
        fail_if_prompt_too_long(self.controller, len(self.context), self.reserve, max_context)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    @property
    def done(self) -> bool:
        return self.controller.done

    def record(self) -> GenerationRecord:
        return self.controller.record(self.prompt)

    def fail(self, message: str) -> None:
        self.controller.fail(message)

    def next_request(self) -> RoundRequest | None:
        """The next thing to generate, or None when the sample is finished."""
        while (step := self.controller.next_step()) is not None:
            insert_ids = self.encode(step.insert) if step.insert else []
            if step.phase == "probe":  # a side branch: the context itself does not change
                room = self.max_context - len(self.context) - len(insert_ids)
                return RoundRequest(self.index, step, self.context + insert_ids, self.text + step.insert,
                                    max(1, min(step.max_new_tokens, room)), self.policy, len(insert_ids))
            self._commit(step, insert_ids)
            request = self._round_request(step, insert_ids, self.context, self.text)
            if request is not None:
                return request
            self.controller.record_round(RoundOutput("", 0, False, ()), inserted_tokens=len(insert_ids))
        return None

    def speculate(self) -> RoundRequest | None:
        """While a probe runs: the thinking round that follows it if the answer has not settled.

        Sent at once beside the probe, it keeps the sample's place in the batch instead of waiting
        for the probe; `adopt` takes it on when the probe says "go on", and an exit discards it.
        """
        step = self.controller.resume_step
        if step is None:
            return None
        insert_ids = self.encode(step.insert) if step.insert else []
        request = self._round_request(step, insert_ids, self.context + insert_ids, self.text + step.insert)
        return None if request is None else dataclasses.replace(request, speculative=True)

    def adopt(self, request: RoundRequest) -> bool:
        """After the probe: is the speculative `request` the round the controller wants now?"""
        if self.controller.next_step() != request.step:
            return False
        self._commit(request.step, self.encode(request.step.insert) if request.step.insert else [])
        return True

    def _commit(self, step: Step, insert_ids: list[int]) -> None:
        """The step's insert joins the context (and the trace and the live text)."""
        self.context += insert_ids
        self.text += step.insert
        if self.keep_trace and insert_ids:
            self.controller.add_trace("inserted", insert_ids)
        if self.on_text is not None and step.insert:
            self.on_text(self.index, step.phase, step.insert, True)

    def _round_request(self, step: Step, insert_ids: list[int], context: list[int], text: str) -> RoundRequest | None:
        """The request for a round from `context` (None when the round may generate nothing)."""
        keep = round_limit(step, len(context), self.reserve, self.max_context)
        if keep == 0:
            return None
        limit = keep + round_lookahead(step, keep, len(context), self.reserve, self.max_context, self.stop_matcher)
        return RoundRequest(self.index, step, list(context), text, limit, self.policy, len(insert_ids), keep)

    def finish(self, request: RoundRequest, result: Generated | ProbeResult) -> None:
        if request.is_probe:
            assert isinstance(result, ProbeResult)
            entry = self.controller.record_probe(result)
            if self.on_probe is not None and entry is not None:  # early exit's probes, not the answer read
                self.on_probe(self.index, entry)
            return
        assert isinstance(result, Generated)
        step = request.step
        if result.ids is not None:
            ids, stopped, paused = self.kept(request, result)
            text, self._held = decode_round(self.tokenizer, self._held, ids, final=stopped or step.phase != "think")
            self.context += ids
            logprobs = None if result.logprobs is None else tuple(result.logprobs[:len(ids)])
            output = RoundOutput(text, len(ids), stopped, tuple(ids), paused, logprobs)
            if self.keep_trace:
                self.controller.add_trace("generated", ids)
        else:
            text, stopped, paused = result.text, result.stopped, False
            if stopped and any(pause and text.endswith(pause) for pause in step.pauses):
                stopped, paused = False, True  # the server kept the stop string: it was a pause
            else:
                for stop in step.stops:
                    if stopped and stop and text.endswith(stop):
                        text = text[: -len(stop)]
                        break
            count = result.n_tokens if result.n_tokens is not None else len(self.encode(text))
            output = RoundOutput(text, min(count, request.keep), stopped, None, paused)
        self.text += text
        if self.on_text is not None and self.stream_generated and text:
            self.on_text(self.index, step.phase, text, False)
        self.controller.record_round(output, inserted_tokens=request.inserted)


    def kept(self, request: RoundRequest, result: Generated) -> tuple[list[int], bool, bool]:
        """What a round keeps of the ids it generated: (ids, ended by a stop, ended by a pause).

        A stop's own tokens go, a pause's stay; a stop or pause that began past `keep` (in the
        lookahead) belongs to the next round, so the round is cut back to `keep` tokens.
        """
        step, ids, stopped = request.step, list(result.ids or ()), result.stopped
        keep = request.keep
        if not stopped:
            return ids[:keep], False, False
        cut = self.stop_matcher.match(ids, step.stops) if ids else None
        # A stop that begins at `keep` or later is the next round's: the probe point comes first, as
        # on the transformers backend, which never generates past a round's end but to finish a stop.
        if cut is not None:
            return (ids[:cut], True, False) if cut < keep or keep == request.limit else (ids[:keep], False, False)
        if step.pauses and self.stop_matcher.holds_pause(ids, step.pauses):
            return (ids, False, True) if len(ids) <= keep else (ids[:keep], False, False)
        # A stop the ids do not show (a server that strips it): it ended the round where the ids end.
        return (ids, True, False) if len(ids) < keep or keep == request.limit else (ids[:keep], False, False)


def start_runs(prompts: Sequence[str], policy: BudgetPolicy | Sequence[BudgetPolicy], *,
               choices: Sequence[Sequence[str] | None] | None = None, **options: Any) -> list[SampleRun]:
    """One `SampleRun` per prompt, with each prompt's own policy and seed (see `per_prompt_policies`)."""
    policies = per_prompt_policies(prompts, policy)
    if choices is not None and len(choices) != len(prompts):
        raise ValueError(f"{len(choices)} choice lists for {len(prompts)} prompts")
    return [SampleRun(index, prompt, sample_policy, choices=choices[index] if choices else None,
                      prompt_ids=getattr(prompt, "ids", None), **options)
            for index, (prompt, sample_policy) in enumerate(zip(prompts, policies))]


class RequestFailed(Exception):
    """A sample's request failed in a way the executor has already described: the record's error as it stands."""


class RoundExecutor(Protocol):
    """What a synchronous backend provides to `drive`."""

    def submit(self, request: RoundRequest) -> None:
        """Start generating `request` (or queue it)."""

    def wait(self) -> list[tuple[RoundRequest, Generated | ProbeResult | BaseException]]:
        """Block until at least one submitted request is finished; return the finished ones.

        A per-sample failure comes back as an exception (that sample fails, the rest go on); an
        exception raised here ends the whole call."""

    @property
    def pending(self) -> int:
        """Submitted requests not returned yet."""


def drive(runs: Sequence[SampleRun], executor: RoundExecutor,
          on_done: Callable[[SampleRun], None] | None = None) -> list[GenerationRecord]:
    """Run every sample to the end, each sample's next request submitted as soon as its last ends.

    A probe goes in together with the thinking round that follows it (`SampleRun.speculate`), so a
    sample never idles while its answer is read; the round's result waits for the probe's verdict,
    and is dropped if the sample exits there.
    """
    ahead: dict[int, RoundRequest] = {}  # a sample's speculative round, in flight
    # Its result, back before the probe's, with the request as the executor returns it (which may
    # differ from the one submitted: a server without pauses gets them left out).
    early: dict[int, tuple[RoundRequest, Any]] = {}
    adopted: set[int] = set()

    def advance(run: SampleRun) -> None:
        request = run.next_request()
        if request is None:
            if on_done is not None:
                on_done(run)
            return
        executor.submit(request)
        if request.is_probe and (following := run.speculate()) is not None:
            ahead[run.index] = following
            executor.submit(following)

    def settle(run: SampleRun, request: RoundRequest, result: Any) -> None:
        if isinstance(result, RequestFailed):
            run.fail(str(result))
        elif isinstance(result, BaseException):
            run.fail(f"request failed: {type(result).__name__}: {result}")
        else:
            run.finish(request, result)

    for run in runs:
        advance(run)
    while executor.pending:
        for request, result in executor.wait():
            run = runs[request.index]
            if request.speculative:  # at most one per sample is ever in flight
                if run.index not in ahead:
                    continue  # the probe said exit (or the sample failed): the round is not needed
                if run.index not in adopted:
                    early[run.index] = (request, result)  # the probe is still out
                    continue
                del ahead[run.index]
                adopted.discard(run.index)
                settle(run, request, result)
                advance(run)
                continue
            settle(run, request, result)
            following = ahead.get(run.index)
            if following is not None:
                if not run.done and run.adopt(following):
                    if run.index in early:
                        del ahead[run.index]
                        settle(run, *early.pop(run.index))
                    else:
                        adopted.add(run.index)
                        continue  # its round is in flight: advance when it is back
                else:
                    del ahead[run.index]
                    early.pop(run.index, None)
            advance(run)
    return [run.record() for run in runs]


async def arun(run: SampleRun, agenerate: Callable[[RoundRequest], Awaitable[Generated | ProbeResult]]) -> GenerationRecord:
    """The same loop for one sample as an asyncio task (the server's vLLM engine)."""
    while (request := run.next_request()) is not None:
        run.finish(request, await agenerate(request))
    return run.record()
