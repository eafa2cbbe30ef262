"""The transformers backend: batched thinking with budgets, continued from the KV cache.

    backend = TransformersBackend("smollm2-135m", batch_size=16)
    records = backend.generate(prompts, BudgetPolicy.from_preset("m1", max_thinking_tokens=512, num_extensions=2))

Why a decode loop of our own instead of `model.generate`: budget forcing changes each sample's
course in the middle of generation (cut the stop string, append "Wait", go on; later append the
answer prefix). Doing that with repeated `generate` calls means re-encoding the prompt and the
thinking so far, or waiting for the slowest sample of the batch at every round. Here every step
feeds exactly one token per active sample into a shared `DynamicCache`: either a token the
model sampled or the next token of text the controller inserted. The prompt and the thinking
are encoded once; samples move through their phases independently; a finished sample leaves the
batch at once (its rows are dropped from the cache).

Left padding is expressed with the attention mask and explicit position ids. When a stop string
spans several tokens, the tokens of it already in the cache are masked out, so the model never
sees them again (position ids count only visible tokens).

Early exit's probes run on a side branch: the probing samples' rows of the cache are copied, the
forced-answer prefix goes in as one multi-token forward for all samples probing at that step, and
the answer is read from its last position (the option letters' probabilities, or a short greedy
trial answer decoded on the branch). The branch is then dropped, so the thinking goes on from the
cache exactly as it was, with no prompt encoded twice. The answer read of `answer_probability`
(after thinking, before the answer) is such a probe too, and the answer goes on from the cache.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from m1.engine.backends.base import (
    OnText,
    StopMatcher,
    TextStream,
    answer_reserve,
    decode_round,
    fail_if_prompt_too_long,
    load_tokenizer,
    logprob_entry,
    per_prompt_policies,
    round_limit,
    round_lookahead,
)
from m1.engine.controller import GenerationRecord, ProbeResult, RoundOutput, SampleController, Step
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy
from m1.engine.probe import LetterReader, read_trial
from m1.engine.rounds import OnProbe

# What `_next_token` answers for a sample whose next step is a probe: the batch runs its probes
# together, then asks again.
_PROBE = object()


@dataclass
class _Sample:
    index: int
    prompt: str
    controller: SampleController
    answer_reserve: int  # tokens kept free in the context for the answer prefix and answer
    generator: Any = None
    step: Step | None = None
    queue: deque[int] = field(default_factory=deque)
    round_ids: list[int] = field(default_factory=list)
    round_columns: list[int] = field(default_factory=list)  # cache columns holding round_ids
    round_logprobs: list[dict[str, Any]] = field(default_factory=list)  # answer rounds, when the policy asks
    round_limit: int = 0
    lookahead: int = 0  # tokens past round_limit allowed only to finish a stop begun before it
    held: list[int] = field(default_factory=list)  # a character the last round cut in two (decode_round)
    inserted: int = 0
    visible: int = 0  # tokens the model attends to: the next position id
    holes: list[int] = field(default_factory=list)  # cache columns to mask before the next step
    paused: bool = False  # the last sampled token completed one of the step's pauses
    probe_ids: list[int] = field(default_factory=list)  # the pending probe's insert
    stream: TextStream | None = None
    on_probe: Callable[[dict[str, Any]], None] | None = None


class TransformersBackend:
    """Reference backend on CPU or GPU through Hugging Face transformers."""

    name = "transformers"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        batch_size: int = 16,
        device: str | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        max_context: int | None = None,
        revision: str | None = None,
        keep_trace: bool = False,
    ):
        import torch
        from transformers import AutoModelForCausalLM

        path = resolve_model(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code, revision=revision)
        loaded = AutoModelForCausalLM.from_pretrained(
            path, dtype=_torch_dtype(dtype, device), trust_remote_code=trust_remote_code, revision=revision
        ).to(device)
        self._setup(model, loaded, tokenizer, batch_size=batch_size, max_context=max_context, keep_trace=keep_trace)

    @classmethod
    def from_objects(cls, model: Any, tokenizer: Any, **options: Any) -> TransformersBackend:
        """Wrap a model and tokenizer already in memory (tests, notebooks, a model being trained)."""
        backend = cls.__new__(cls)
        tokenizer.padding_side = "left"
        backend._setup(getattr(model, "name_or_path", "in-memory"), model, tokenizer, **options)
        return backend

    def _setup(self, name: str, model: Any, tokenizer: Any, *, batch_size: int = 16,
               max_context: int | None = None, keep_trace: bool = False) -> None:
        self.model_name = name
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.keep_trace = keep_trace
        config_limit = getattr(model.config, "max_position_embeddings", None) or 32768
        self.max_context = min(max_context or config_limit, config_limit)
        self.stops = StopMatcher(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._readers: dict[tuple[str, ...], LetterReader] = {}

    # ------------------------------------------------------------------ public

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
        """One record per prompt, in order; a prompt that cannot run gets a record with `error`.

        `policy` is one policy for all prompts or one per prompt (a server batches requests that
        each bring their own budget). `choices` gives each prompt's option letters (None for a
        free-form prompt), which early exit's probes read; `on_probe(index, entry)` sees each probe.
        """
        policies = per_prompt_policies(prompts, policy)
        if choices is not None and len(choices) != len(prompts):
            raise ValueError(f"{len(choices)} choice lists for {len(prompts)} prompts")
        letters = [tuple(c) if c else None for c in choices] if choices is not None else [None] * len(prompts)
        records: list[GenerationRecord | None] = [None] * len(prompts)
        for start in range(0, len(prompts), self.batch_size):
            chunk = list(range(start, min(start + self.batch_size, len(prompts))))
            for index, record in self._generate_batch(chunk, prompts, policies, letters, on_text, on_probe):
                records[index] = record
                if on_done is not None:
                    on_done(index, record)
        return [r for r in records if r is not None]

    # ------------------------------------------------------------------ the decode loop

    def _generate_batch(self, indices: list[int], prompts: Sequence[str], policies: Sequence[BudgetPolicy],
                        letters: Sequence[tuple[str, ...] | None], on_text: OnText | None, on_probe: OnProbe | None):
        import torch
        from transformers import DynamicCache

        samples: list[_Sample] = []
        for index in indices:
            policy = policies[index]
            ids = self.encode(prompts[index])
            sample = _Sample(index, prompts[index], SampleController(policy, letters[index]),
                             answer_reserve(self.tokenizer, policy), _generator(policy))
            if on_text is not None:
                sample.stream = TextStream(self.tokenizer, lambda phase, text, inserted, i=index: on_text(i, phase, text, inserted))
            if on_probe is not None:
                sample.on_probe = lambda entry, i=index: on_probe(i, entry)
            fail_if_prompt_too_long(sample.controller, len(ids), sample.answer_reserve, self.max_context)
            samples.append(sample)
            sample.queue.extend(ids)  # the prompt is fed as the first "insert"

        finished = [s for s in samples if s.controller.done]
        active = [s for s in samples if not s.controller.done]
        yield from ((s.index, s.controller.record(prompts[s.index])) for s in finished)
        if not active:
            return

        # Prefill: every distinct prompt once, left-padded. Samples of one prompt (a server request
        # for n choices) then copy its cache row, so the prompt is encoded once for all of them.
        distinct: dict[tuple[int, ...], int] = {}
        rows = []
        for s in active:
            rows.append(distinct.setdefault(tuple(s.queue), len(distinct)))
            s.visible = len(s.queue)
            s.queue.clear()
            self._begin_step(s)
        longest = max(len(prompt) for prompt in distinct)
        input_ids = torch.full((len(distinct), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(distinct), longest), dtype=torch.long)
        for row, prompt in enumerate(distinct):
            input_ids[row, longest - len(prompt):] = torch.tensor(prompt)
            mask[row, longest - len(prompt):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            logits = self._forward(input_ids, mask, positions, cache)
            if len(distinct) < len(active):
                copies = torch.tensor(rows, dtype=torch.long)
                cache.batch_select_indices(copies.to(self.device))
                mask, logits = mask[copies], logits[copies.to(logits.device)]
            while active:
                choices = self._next_tokens(active, logits, cache, mask)
                next_tokens: list[int] = []
                sampled: list[bool] = []
                still: list[int] = []
                for row, s in enumerate(active):
                    choice = choices[row]
                    if choice is None:
                        yield s.index, s.controller.record(s.prompt)
                        continue
                    next_tokens.append(choice[0])
                    sampled.append(choice[1])
                    still.append(row)
                if not still:
                    break
                if len(still) < len(active):
                    keep = torch.tensor(still, dtype=torch.long)
                    cache.batch_select_indices(keep.to(self.device))
                    mask = mask[keep]
                    active = [active[row] for row in still]
                column = mask.shape[1]
                mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
                for row, s in enumerate(active):
                    for hole in s.holes:  # stop-string tokens already in the cache: hide them
                        mask[row, hole] = 0
                    s.holes = []
                    if sampled[row]:
                        s.round_columns.append(column)
                positions = torch.tensor([[s.visible] for s in active], dtype=torch.long)
                for s in active:
                    s.visible += 1
                logits = self._forward(torch.tensor(next_tokens, dtype=torch.long).unsqueeze(1), mask, positions, cache)

    def _next_tokens(self, active: list[_Sample], logits, cache, mask) -> list[tuple[int, bool] | None]:
        """Each sample's next token; samples that reach a probe first run it (all together), then go on."""
        choices: list[Any] = [None] * len(active)
        waiting = list(range(len(active)))
        while waiting:
            for row in waiting:
                choices[row] = self._next_token(active[row], logits[row])
            waiting = [row for row in waiting if choices[row] is _PROBE]
            if waiting:
                self._probe(waiting, active, cache, mask)
        return choices

    def _forward(self, input_ids, mask, positions, cache):
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float()

    # ------------------------------------------------------------------ per-sample logic

    def _begin_step(self, s: _Sample) -> None:
        step = s.controller.next_step()
        s.step = step
        s.round_ids, s.round_columns, s.round_logprobs, s.paused = [], [], [], False
        if step is None:
            return
        insert_ids = self.encode(step.insert) if step.insert else []
        if step.phase == "probe":  # a side branch (`_probe`): nothing joins the context
            s.probe_ids = insert_ids
            return
        s.queue.extend(insert_ids)
        if self.keep_trace and insert_ids:
            s.controller.add_trace("inserted", insert_ids)
        s.inserted = len(insert_ids)
        s.round_limit = round_limit(step, s.visible + len(insert_ids), s.answer_reserve, self.max_context)
        s.lookahead = round_lookahead(step, s.round_limit, s.visible + len(insert_ids), s.answer_reserve,
                                      self.max_context, self.stops)
        if s.stream is not None:
            s.stream.insert(step.phase, step.insert)

    def _next_token(self, s: _Sample, logits) -> tuple[int, bool] | None:
        """(token to feed next, whether the model sampled it), or None when the sample is done."""
        while True:
            if s.queue:
                return s.queue.popleft(), False
            step = s.step
            if step is None:
                return None
            if step.phase == "probe":
                return _PROBE
            if s.paused:
                self._end_round(s, stopped=False, kept=len(s.round_ids))
                continue
            if len(s.round_ids) >= s.round_limit:
                within = len(s.round_ids) < s.round_limit + s.lookahead
                if not (within and self.stops.partial(s.round_ids, step.stops)):
                    self._cut_back(s)
                    continue
                # Look ahead: a stop that began before the round's end may still complete.
            token = _pick(logits, s.controller.policy, s.generator)
            s.round_ids.append(token)
            if step.phase == "answer" and s.controller.policy.answer_logprobs is not None:
                s.round_logprobs.append(self._logprobs(logits, token, s.controller.policy.answer_logprobs))
            stop_at = self.stops.match(s.round_ids, step.stops)
            if stop_at is None:
                if len(s.round_ids) > s.round_limit:
                    return token, True  # lookahead: not shown, and a transition here is the next round's
                if s.stream is not None:
                    s.stream.push(step.phase, token, step.stops)
                # A transition ends the round once this token is in the cache (the next call).
                s.paused = bool(step.pauses) and self.stops.holds_pause(s.round_ids, step.pauses)
                return token, True
            if stop_at > s.round_limit:  # it began in the lookahead: the next round will meet it again
                self._cut_back(s)
                continue
            # The stop string starts at round_ids[stop_at]: those tokens never count; any of them
            # already in the cache are masked out.
            s.holes = s.round_columns[stop_at:]
            self._end_round(s, stopped=True, kept=stop_at)

    def _end_round(self, s: _Sample, *, stopped: bool, kept: int) -> None:
        kept_ids = s.round_ids[:kept]
        text, s.held = decode_round(self.tokenizer, s.held, kept_ids, final=stopped or s.step.phase != "think")
        if self.keep_trace:
            s.controller.add_trace("generated", kept_ids)
        logprobs = tuple(s.round_logprobs[:kept]) if s.step.phase == "answer" and \
            s.controller.policy.answer_logprobs is not None else None
        output = RoundOutput(text, len(kept_ids), stopped, tuple(kept_ids), paused=s.paused and not stopped,
                             logprobs=logprobs)
        s.controller.record_round(output, inserted_tokens=s.inserted)
        if s.stream is not None:
            s.stream.end_round(text)
        # Tokens cut (a stop string, a lookahead) are no longer visible; the next position follows the kept ones.
        s.visible -= len(s.round_columns[kept:])
        self._begin_step(s)

    def _cut_back(self, s: _Sample) -> None:
        """End a round at its limit, hiding what the lookahead generated past it (greedy makes it again)."""
        s.holes = s.round_columns[s.round_limit:]
        self._end_round(s, stopped=False, kept=min(len(s.round_ids), s.round_limit))

    # ------------------------------------------------------------------ probes (early exit)

    def _probe(self, rows: list[int], active: list[_Sample], cache, mask) -> None:
        """Read the answer of each sample in `rows` on a side branch of the cache, then drop the branch.

        The answer prefix of every probing sample goes in as one forward (left-padded among
        them); letter probes read its last position, trial probes decode greedily from there.
        """
        import torch

        started = time.perf_counter()
        samples = [active[row] for row in rows]
        branch = _fork(cache, rows, len(active), self.device)
        branch_mask = mask[rows]
        for i, s in enumerate(samples):
            for hole in s.holes:  # a stop cut just before this probe is not part of the context
                branch_mask[i, hole] = 0
        longest = max(len(s.probe_ids) for s in samples)
        input_ids = torch.full((len(samples), longest), self.pad_id, dtype=torch.long)
        insert_mask = torch.zeros((len(samples), longest), dtype=torch.long)
        positions = torch.zeros((len(samples), longest), dtype=torch.long)
        for i, s in enumerate(samples):
            n = len(s.probe_ids)
            input_ids[i, longest - n:] = torch.tensor(s.probe_ids, dtype=torch.long)
            insert_mask[i, longest - n:] = 1
            positions[i] = (s.visible + torch.arange(longest) - (longest - n)).clamp(min=s.visible)
        branch_mask = torch.cat([branch_mask, insert_mask], dim=1)
        logits = self._forward(input_ids, branch_mask, positions, branch)
        shared = (time.perf_counter() - started) / len(samples)

        results: dict[int, ProbeResult] = {}
        trials: list[int] = []
        for i, s in enumerate(samples):
            if s.step.choices:
                probs = torch.softmax(logits[i], dim=-1)
                reader = self._letter_reader(s.step.choices)
                read = reader.from_ids({t: float(probs[t]) for t in reader.ids})
                results[i] = ProbeResult.from_letters(read, len(s.probe_ids), shared)
            else:
                trials.append(i)
        if trials:
            results.update(self._trial_answers(trials, samples, logits, branch, branch_mask, positions[:, -1] + 1,
                                               shared))
        for i, s in enumerate(samples):
            entry = s.controller.record_probe(results[i])
            if s.on_probe is not None and entry is not None:  # early exit's probes, not the answer read
                s.on_probe(entry)
            self._begin_step(s)

    def _trial_answers(self, trials: list[int], samples: list[_Sample], logits, branch, branch_mask, positions,
                       shared: float) -> dict[int, ProbeResult]:
        """Free-form probes: a greedy trial answer on the branch, its mean token probability (DEER)."""
        import torch

        started = time.perf_counter()
        if len(trials) < len(samples):
            keep = torch.tensor(trials, dtype=torch.long)
            branch.batch_select_indices(keep.to(self.device))
            logits, branch_mask, positions = logits[keep], branch_mask[keep], positions[keep]
        steps = [samples[i].step for i in trials]
        # The branch must fit the context like any other tokens (the answer reserve holds the prefix).
        limits = [max(0, min(step.max_new_tokens, self.max_context - samples[i].visible - len(samples[i].probe_ids)))
                  for i, step in zip(trials, steps)]
        ids: list[list[int]] = [[] for _ in trials]
        probs: list[list[float]] = [[] for _ in trials]
        made = [0 for _ in trials]  # tokens each trial generated, its stop included
        done = [limit == 0 for limit in limits]
        while not all(done):
            feed = []
            for j, step in enumerate(steps):
                if not done[j]:
                    distribution = torch.softmax(logits[j], dim=-1)
                    token = int(torch.argmax(distribution))
                    ids[j].append(token)
                    probs[j].append(float(distribution[token]))
                    cut = self.stops.match(ids[j], step.stops)
                    if cut is not None:
                        # The stop's first token counts: how sure the model is that the answer ends there.
                        made[j] = len(ids[j])
                        del ids[j][cut:], probs[j][cut + 1:]
                    done[j] = cut is not None or len(ids[j]) >= limits[j]
                # A finished trial needs no more logits: it is fed padding, masked out.
                feed.append(self.pad_id if done[j] else ids[j][-1])
            if all(done):
                break
            column = torch.tensor([[0 if finished else 1] for finished in done], dtype=torch.long)
            branch_mask = torch.cat([branch_mask, column], dim=1)
            logits = self._forward(torch.tensor(feed, dtype=torch.long).unsqueeze(1), branch_mask,
                                   positions.unsqueeze(1), branch)
            positions = positions + 1
        each = (time.perf_counter() - started) / len(trials)
        results = {}
        for j, i in enumerate(trials):
            text = self.tokenizer.decode(ids[j], skip_special_tokens=False)
            answer, probability = read_trial(text, probs[j], None)
            generated = max(made[j], len(ids[j]))
            results[i] = ProbeResult(answer, probability, "trial", len(samples[i].probe_ids) + generated,
                                     shared + each)
        return results

    def _logprobs(self, logits, token: int, top: int) -> dict[str, Any]:
        """The picked token's entry: log-probabilities of the model's own distribution (before
        temperature and top-p, as vLLM's raw logprobs), read beside the pick, never changing it."""
        import torch

        logprobs = torch.log_softmax(logits.float(), dim=-1)
        best = torch.topk(logprobs, top) if top else None
        pairs = list(zip(best.indices.tolist(), best.values.tolist())) if best is not None else []
        return logprob_entry(self.tokenizer, token, float(logprobs[token]), pairs)

    def _letter_reader(self, letters: tuple[str, ...]) -> LetterReader:
        if letters not in self._readers:
            self._readers[letters] = LetterReader(self.tokenizer, letters)
        return self._readers[letters]

    def encode(self, text: str) -> list[int]:
        """Token ids of a text as the backend feeds it (no special tokens added); servers override it."""
        return self.tokenizer.encode(text, add_special_tokens=False)


def _fork(cache, rows: list[int], batch: int, device):
    """A side branch of the cache holding `rows`: it grows and is dropped, the cache stays as it was.

    Cache layers replace their tensors when they grow (torch.cat), never write into them, so the
    branch's own layer objects may start from the same tensors: probing every row copies nothing
    (the first forward's concatenation copies, as every decode step does); a subset of rows is
    selected, which copies those rows.
    """
    import torch

    branch = copy.copy(cache)
    branch.layers = [copy.copy(layer) for layer in cache.layers]
    if len(rows) < batch:
        branch.batch_select_indices(torch.tensor(rows, dtype=torch.long, device=device))
    return branch


def _pick(logits, policy: BudgetPolicy, generator) -> int:
    import torch

    sampling = policy.sampling
    if sampling.temperature == 0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)  # float32: bf16/fp16 overflow
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        sorted_probs[(cumulative - sorted_probs) > sampling.top_p] = 0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs.cpu(), 1, generator=generator).item())


def _generator(policy: BudgetPolicy):
    """A per-sample RNG (its seed is the sample's own, see `per_prompt_policies`)."""
    import torch

    if policy.sampling.temperature == 0:
        return None
    generator = torch.Generator()
    generator.manual_seed(policy.sampling.seed or 0)
    return generator


def _torch_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        # float32 on CPU: bf16 matmuls are slow on most CPUs and the default model is tiny.
        return torch.float32 if device == "cpu" else torch.bfloat16
    return getattr(torch, dtype)
