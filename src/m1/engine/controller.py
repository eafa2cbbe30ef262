"""The budget controller: the per-sample state machine that every backend drives.

A backend asks `SampleController.next_step()` what to do, carries it out (append the step's
`insert` text as tokens, then generate at most `max_new_tokens` tokens until one of `stops`),
and reports what came out with `record_round()`. The controller alone decides when thinking ends,
when "Wait" is appended, which answer prefix follows and how tokens are counted, so the
semantics are identical on every backend and tested once:

- thinking never exceeds B generated tokens: each round may generate only what is left of this
  sample's own budget (the original used the batch minimum, so samples overshot B);
- inserted text (extension strings, answer prefixes) is counted apart from generated tokens;
- exactly one separator stands between the thinking so far and the extension string;
- each sample reports its thinking and answer tokens, extensions used, and why thinking ended;
- with `policy.early_exit`, thinking rounds also end at probe points (every N tokens, right after
  a transition string, at a natural stop that would be extended): the controller then asks for a
  `probe` step, which the backend runs on a side branch (its insert and output never join the
  context) and reports with `record_probe()`; the controller alone decides whether the answer has
  settled and thinking ends (`early_exit`), never below the minimum, never past B;
- with `policy.answer_probability` (a prompt with option letters, a preset that thinks), once
  thinking ends for any reason one more letter `probe` step reads the answer at the forced-answer
  prefix before the answer is generated (or the last early-exit probe, taken at the same thinking
  count, is reused): `GenerationRecord.answer_read`, the answer's probability for calibration. It is
  instrumentation: it changes no token of the thinking or the answer, and its cost is kept apart
  from the probes'.

    controller = SampleController(policy)
    while (step := controller.next_step()) is not None:
        ...append step.insert, generate...
        controller.record_round(RoundOutput(text=..., n_tokens=..., stopped=...), inserted_tokens=n)
        # or, for step.phase == "probe": entry = controller.record_probe(ProbeResult(...))
        #   (entry: the early-exit probe's trajectory entry, for a live display; None for the answer read)
    record = controller.record(prompt)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from m1.engine.policy import BudgetPolicy

if TYPE_CHECKING:
    from m1.engine.probe import LetterRead

ThinkingEnd = Literal["natural_stop", "budget_reached", "extensions_spent", "context_full", "no_thinking",
                      "early_exit"]
SpanKind = Literal["generated", "inserted", "probe"]


@dataclass(frozen=True)
class Step:
    """One round for a backend: append `insert`, then generate up to `max_new_tokens`.

    A think round also ends, with the text kept, right after any of `pauses` (early exit's
    transition strings). A `probe` step is a side branch: the backend appends `insert` to a copy of
    the context, reads the answer (`choices`: the option letters' next-token probabilities; no
    choices: a greedy trial answer of at most `max_new_tokens`), reports a `ProbeResult` and
    discards the branch.
    """

    phase: Literal["think", "answer", "probe"]
    insert: str
    max_new_tokens: int
    stops: tuple[str, ...]
    pauses: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    # Tokens a backend may generate past `max_new_tokens`, within the budget, only to see whether a
    # stop string that began before it completes: a round cut at a probe point must not split a
    # multi-token stop (`</think>`), or thinking would differ from the same run without probes.
    lookahead: int = 0
    # A probe that reads the answer's letters for calibration (policy.answer_probability), not
    # early exit's: a backend that knows it can read no probabilities may answer it without a request.
    answer_read: bool = False


@dataclass(frozen=True)
class RoundOutput:
    """What one round generated: the text before any stop string and its token count.

    `stopped` is True when a stop string (or end-of-sequence) ended the round and False when it
    ran out of tokens. `token_ids` are the kept generated ids where the backend has them.
    """

    text: str
    n_tokens: int
    stopped: bool
    token_ids: tuple[int, ...] | None = None
    paused: bool = False  # a think round that ended right after one of the step's pauses (kept in text)
    # policy.answer_logprobs: one entry per kept generated token of an answer round (see GenerationRecord)
    logprobs: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What a probe read: the answer, its probability, and what the probe cost.

    `probability` is the answer's share of the option letters' probability (`outside`: the mass
    the next token put elsewhere, `letters`: every letter's share) or a trial answer's mean token
    probability; None where the backend could not read probabilities (then only `consistency` can
    use the probe).
    """

    answer: str | None
    probability: float | None
    read: Literal["letters", "trial"]
    tokens: int  # tokens the probe fed and generated on its side branch
    seconds: float
    outside: float | None = None
    note: str | None = None  # why the backend read it the way it did (e.g. no logprobs from the server)
    letters: dict[str, float] | None = None

    @classmethod
    def from_letters(cls, read: LetterRead, tokens: int, seconds: float) -> ProbeResult:
        """A letter read (`m1.engine.probe`) as a probe's result."""
        return cls(read.answer, read.probability, "letters", tokens, seconds, read.outside, letters=read.letters)


@dataclass
class GenerationRecord:
    """The full account of one sample."""

    prompt: str
    thinking: str = ""
    answer: str = ""
    reply: str = ""  # the answer prefix that was inserted plus the generated answer: what is scored
    thinking_tokens: int = 0
    answer_tokens: int = 0
    inserted_tokens: int = 0
    extensions_used: int = 0
    thinking_end: ThinkingEnd | None = None
    answer_end: Literal["stop", "length"] | None = None
    error: str | None = None
    thinking_ids: list[int] | None = None
    answer_ids: list[int] | None = None
    # Every token the sample appended after its prompt, in order, as (kind, ids) with kind
    # "inserted" or "generated": filled by backends that see ids, when asked (tests, audits).
    trace: list[tuple[str, list[int]]] | None = None
    # Early exit: the answer trajectory, one entry per probe (thinking tokens so far, answer,
    # probability, …), and what the probes cost, counted apart from thinking. None without early exit.
    probes: list[dict[str, Any]] | None = None
    probe_tokens: int = 0
    probe_seconds: float = 0.0
    exit_rule: str | None = None  # the rule that decided, e.g. "confidence >= 0.9"
    # answer_probability: the letter read at the forced answer once thinking ended, {"answer",
    # "probability", "letters", "outside", "read", "tokens", "seconds", "note", "reused"}; its cost
    # is not in probe_tokens/probe_seconds. None unless asked, with option letters and thinking.
    answer_read: dict[str, Any] | None = None
    # policy.answer_logprobs: per generated answer token {"token": text, "logprob": float, "top":
    # [[token text, logprob], ...] (the k most likely, best first)}. None unless asked (and on
    # backends that cannot read them: the OpenAI-compatible one).
    answer_logprobs: list[dict[str, Any]] | None = None
    # Where each character of `thinking + reply` came from, in order, as [kind, characters]: kind
    # "generated" (the model wrote it) or "inserted" (a "Wait", the answer prefix), and a
    # zero-length "probe" where the next early-exit probe in `probes` read the answer. Filled by
    # the controller for every backend; a trace explorer marks inserted text with it.
    spans: list[list[Any]] = field(default_factory=list)
    # A native-budget API's account (the chat backend): what was asked ({dialect, budget, effort,
    # field}), the provider's and m1's thinking counts and which one thinking_tokens is, whether the
    # thinking closed, finish_reason, cost, usage, cached. None on backends that run m1's own loop.
    api: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add_span(self, kind: SpanKind, text: str) -> None:
        """Extend `spans` by `text` of `kind` (adjacent text of one kind is one span)."""
        if kind != "probe" and not text:
            return
        if kind != "probe" and self.spans and self.spans[-1][0] == kind:
            self.spans[-1][1] += len(text)
        else:
            self.spans.append([kind, len(text)])


def tokens_saved(record: GenerationRecord, budget: int | None) -> int:
    """Thinking budget left when early exit ended thinking (0 otherwise): what the exit saved at most.

    The thinking the model would have written without the exit is unknown (it may have stopped on
    its own sooner); evaluation measures the real saving against a fixed run on the same items.
    """
    if record.thinking_end != "early_exit" or budget is None:
        return 0
    return max(0, budget - record.thinking_tokens)


def _read(result: ProbeResult) -> dict[str, Any]:
    """A probe's result as a record entry (the trajectory's, the answer read's)."""
    return {"answer": result.answer, "probability": result.probability, "letters": result.letters,
            "outside": result.outside, "read": result.read, "tokens": result.tokens,
            "seconds": round(result.seconds, 6), "note": result.note}


def _rule(policy: BudgetPolicy) -> str:
    ee = policy.early_exit
    assert ee is not None
    rule = f"confidence >= {ee.threshold:g}" if ee.method == "confidence" else f"consistency of {ee.agree} probes"
    return rule + (" (observe only)" if ee.observe else "")


def join_extension(text_so_far: str, extension: str) -> str:
    """The text to insert so that exactly one separator stands between the text and `extension`.

    Text ending in whitespace (a space or a newline) already has its separator; anything else
    (a word, punctuation, nothing) gets one space. The original got this backwards in one case.
    """
    if text_so_far and text_so_far[-1].isspace():
        return extension
    return " " + extension


def join_prefix(text_so_far: str, prefix: str) -> str:
    """An answer prefix that starts with a newline does not add a second one."""
    if prefix.startswith("\n") and text_so_far.endswith("\n"):
        return prefix[1:]
    return prefix


@dataclass
class SampleController:
    policy: BudgetPolicy
    choices: tuple[str, ...] | None = None  # the prompt's option letters, when it has options
    _phase: Literal["think", "answer", "done"] = "think"
    _pending: Step | None = None
    _after_probe: Step | None = None  # where thinking goes on when a probe says "not settled"
    _after_read: Step | None = None  # the answer, while the answer read (answer_probability) is pending
    _probed: str | None = None  # the thinking the last early-exit probe read
    _record: GenerationRecord = field(default_factory=lambda: GenerationRecord(prompt=""))
    _thinking_text: str = ""
    _thinking_ids: list[int] = field(default_factory=list)
    _ids_complete: bool = True
    _extending: bool = False  # the probe in progress stands before a "Wait" extension

    def __post_init__(self) -> None:
        p = self.policy
        if p.early_exit is not None:
            self._record.probes = []
            self._record.exit_rule = _rule(p)
        if p.thinking:
            self._pending = self._think_step("")
        else:
            self._phase = "answer"
            self._record.thinking_end = "no_thinking"
            self._pending = Step("answer", "", p.answer_room(0), p.answer_stops)

    # ------------------------------------------------------------------ backend side

    def next_step(self) -> Step | None:
        return self._pending

    def fail(self, message: str) -> None:
        """This sample cannot be generated (e.g. its prompt does not fit); the batch goes on."""
        self._record.error = message
        self._phase, self._pending = "done", None

    def record_round(self, out: RoundOutput, inserted_tokens: int = 0) -> None:
        step = self._pending
        if step is None:
            raise RuntimeError("record_round called on a finished sample")
        if step.phase == "probe":
            raise RuntimeError("a probe step is answered with record_probe, not record_round")
        if out.n_tokens > step.max_new_tokens:
            raise RuntimeError(
                f"backend generated {out.n_tokens} tokens for a round allowed {step.max_new_tokens}"
            )
        rec = self._record
        rec.inserted_tokens += inserted_tokens
        if step.phase == "think":
            self._after_thinking_round(step, out)
        else:
            rec.answer += out.text
            rec.reply += out.text
            rec.add_span("generated", out.text)
            rec.answer_tokens += out.n_tokens
            rec.answer_ids = list(out.token_ids) if out.token_ids is not None else None
            if out.logprobs is not None:
                rec.answer_logprobs = list(out.logprobs)
            rec.answer_end = "stop" if out.stopped else "length"
            self._phase, self._pending = "done", None

    def _after_thinking_round(self, step: Step, out: RoundOutput) -> None:
        p, rec = self.policy, self._record
        self._thinking_text += step.insert + out.text
        rec.add_span("inserted", step.insert)
        rec.add_span("generated", out.text)
        rec.thinking_tokens += out.n_tokens
        if out.token_ids is None:
            self._ids_complete = False
        else:
            self._thinking_ids.extend(out.token_ids)
        budget_left = p.thinking_cap - rec.thinking_tokens

        if not out.stopped:
            if budget_left <= 0:
                rec.thinking_end = "budget_reached"
                return self._start_answer(p.answer_after_budget)
            if out.paused or out.n_tokens == step.max_new_tokens:
                # Only early exit's schedule limits a round below the budget: a probe point, or the
                # minimum after which transitions count.
                due = out.paused or self._probe_due(rec.thinking_tokens)
                return self._checkpoint(self._think_step(""), probe=due)
            # The backend capped the round below its budget: the context is full.
            rec.thinking_end = "context_full"
            return self._start_answer(p.answer_after_budget)
        if p.wants_more_thinking(rec.thinking_tokens) and budget_left > 0:
            if rec.extensions_used < p.num_extensions:
                # The prompt's thinking marker counts as text before the extension (it ends in a newline).
                insert = join_extension(p.think_start + self._thinking_text, p.extension_str)
                # A natural stop that forcing would extend is the strongest transition: probe first.
                return self._checkpoint(self._think_step(insert), probe=self._probes_on(), extension=True)
            rec.thinking_end = "extensions_spent"
        else:
            rec.thinking_end = "natural_stop"
        return self._start_answer(p.answer_after_stop)

    # ------------------------------------------------------------------ early exit

    def _think_step(self, insert: str) -> Step:
        """The next thinking round: what is left of B, ended early at early exit's next probe point."""
        p, used = self.policy, self._record.thinking_tokens
        limit = p.thinking_cap - used
        if p.early_exit is None:
            return Step("think", insert, limit, p.think_stops)
        start, every = p.first_probe_at, p.early_exit.every
        if 0 < start and used < start and p.transitions:
            limit = min(limit, start - used)  # transitions count from the minimum on
        if every is not None:
            next_probe = max(start, used + 1)
            next_probe += -next_probe % every  # the first multiple of `every` at or after it
            limit = min(limit, next_probe - used)
        return Step("think", insert, limit, p.think_stops, pauses=p.transitions if used >= start else (),
                    lookahead=p.thinking_cap - used - limit)

    def _probes_on(self) -> bool:
        return self.policy.early_exit is not None and self._record.thinking_tokens >= self.policy.first_probe_at

    def _probe_due(self, used: int) -> bool:
        every = self.policy.early_exit.every if self.policy.early_exit else None
        return self._probes_on() and every is not None and used % every == 0

    def _checkpoint(self, resume: Step, *, probe: bool, extension: bool = False) -> None:
        """Probe now if due (thinking resumes with `resume` unless the answer has settled), else resume."""
        probes = self._record.probes
        if probe and probes and probes[-1]["thinking_tokens"] == self._record.thinking_tokens:
            probe = False  # nothing was thought since the last probe (a transition right before a stop)
        if not probe:
            self._record.extensions_used += extension
            self._pending = resume
            return
        size = 1 if self.choices else self.policy.early_exit.probe_tokens
        self._after_probe, self._extending, self._probed = resume, extension, self._thinking_text
        self._pending = Step("probe", self._forced_answer(), size, self.policy.answer_stops, choices=self.choices)

    def _forced_answer(self) -> str:
        """A probe's insert: the forced-answer prefix after the thinking so far."""
        return join_prefix(self.policy.think_start + self._thinking_text, self.policy.answer_after_budget)

    def record_probe(self, result: ProbeResult) -> dict[str, Any] | None:
        """The backend read the answer on its side branch: settled (exit) or go on thinking.

        Returns the early-exit probe's entry in the trajectory (what a live display shows), or None
        when the probe was the answer read, which is no part of the trajectory.
        """
        step = self._pending
        if step is None or step.phase != "probe":
            raise RuntimeError("record_probe called without a pending probe step")
        rec = self._record
        if self._after_read is not None:
            rec.answer_read = _read(result) | {"reused": False}
            self._pending, self._after_read = self._after_read, None
            return None
        assert rec.probes is not None and self._after_probe is not None
        entry = {"thinking_tokens": rec.thinking_tokens} | _read(result)
        rec.probes.append(entry)
        rec.add_span("probe", "")
        rec.probe_tokens += result.tokens
        rec.probe_seconds += result.seconds
        resume, self._after_probe = self._after_probe, None
        if self._settled() and not self.policy.early_exit.observe:
            rec.thinking_end = "early_exit"
            self._start_answer(self.policy.answer_after_budget)
        else:
            rec.extensions_used += self._extending
            self._pending = resume
        return entry

    def _settled(self) -> bool:
        """The policy's rule on the probes so far; without probabilities, confidence falls back to agreement."""
        ee, rec = self.policy.early_exit, self._record
        last = rec.probes[-1]
        if ee.method == "confidence" and (last["probability"] is not None or last["read"] == "letters"):
            # A letter read with no letter in sight has no probability: not settled, same rule.
            return last["answer"] is not None and (last["probability"] or 0.0) >= ee.threshold
        if ee.method == "confidence":  # the backend could read no probabilities at all
            rec.exit_rule = f"consistency of {ee.agree} probes (no probabilities: {last['note'] or 'not read'})"
        recent = [probe["answer"] for probe in rec.probes[-ee.agree:]]
        return len(recent) == ee.agree and recent[0] is not None and len(set(recent)) == 1

    def _start_answer(self, prefix: str) -> None:
        rec = self._record
        rec.thinking = self._thinking_text
        rec.thinking_ids = self._thinking_ids if self._ids_complete else None
        insert = join_prefix(self.policy.think_start + self._thinking_text, prefix)
        self._phase = "answer"
        room = self.policy.answer_room(rec.thinking_tokens)
        if room == 0:
            # Thinking spent the total cap (max_total_tokens): no answer is generated, and no prefix
            # inserted, as OpenAI's max_completion_tokens does when reasoning uses it all.
            rec.answer_end = "length"
            self._phase, self._pending = "done", None
            return
        rec.reply = insert
        rec.add_span("inserted", insert)
        self._pending = Step("answer", insert, room, self.policy.answer_stops)
        if self._reads_answer():
            self._read_answer()

    # ------------------------------------------------------------------ answer probability

    def _reads_answer(self) -> bool:
        p = self.policy
        return bool(p.answer_probability and self.choices and p.thinking and p.answer_after_budget)

    def _read_answer(self) -> None:
        """Before the answer: its letters at the forced answer, on a side branch like a probe.

        An early-exit letter probe taken at this very point read exactly that (same context, same
        insert, and a letter read is not sampled), so it is reused. The same thinking count alone
        is not enough: a "Wait" the model stopped right after adds text, not tokens. No thinking
        can follow the read, so it has no resume step and nothing is sent beside it.
        """
        rec = self._record
        last = rec.probes[-1] if rec.probes else None
        if last is not None and last["read"] == "letters" and self._probed == self._thinking_text:
            rec.answer_read = ({k: v for k, v in last.items() if k != "thinking_tokens"}
                               | {"tokens": 0, "seconds": 0.0, "reused": True})
            return
        self._after_read = self._pending
        self._pending = Step("probe", self._forced_answer(), 1, self.policy.answer_stops, choices=self.choices,
                             answer_read=True)

    def add_trace(self, kind: str, ids: list[int]) -> None:
        """Backends that keep a token trace append each inserted or generated piece here."""
        if self._record.trace is None:
            self._record.trace = []
        self._record.trace.append((kind, list(ids)))

    # ------------------------------------------------------------------ result

    @property
    def resume_step(self) -> Step | None:
        """While a probe is pending: the thinking round that follows it unless the answer has settled
        (None for the answer read: only the answer follows it)."""
        return self._after_probe if self._pending is not None and self._pending.phase == "probe" else None

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def done(self) -> bool:
        return self._phase == "done"

    @property
    def thinking_text(self) -> str:
        return self._thinking_text

    def record(self, prompt: str) -> GenerationRecord:
        self._record.prompt = prompt
        return self._record
