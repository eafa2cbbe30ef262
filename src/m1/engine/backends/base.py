"""Pieces every backend shares: the backend interface, tokenizer loading, stop-string matching on
generated token ids, and incremental text streaming.

A backend turns rendered prompt texts and a `BudgetPolicy` into `GenerationRecord`s by driving
one `SampleController` per prompt (see `m1.engine.controller`):

    class Backend(Protocol):
        name: str
        tokenizer: Any
        def generate(self, prompts, policy, *, on_text=None, on_done=None, choices=None, on_probe=None): ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from m1.engine.controller import GenerationRecord, SampleController, Step
from m1.engine.policy import BudgetPolicy

# A live-text callback: (sample index, phase "think" | "answer", new text, inserted). `inserted` is
# True for text m1 put there (a "Wait", an answer prefix), False for text the model generated, so
# a display can tell them apart.
OnText = Callable[[int, str, str, bool], None]


class Backend(Protocol):
    name: str
    tokenizer: Any

    def generate(
        self,
        prompts: Sequence[str],
        policy: BudgetPolicy | Sequence[BudgetPolicy],
        *,
        on_text: OnText | None = None,
        on_done: Callable[[int, GenerationRecord], None] | None = None,
        choices: Sequence[Sequence[str] | None] | None = None,  # each prompt's option letters (early exit)
        on_probe: Callable[[int, dict[str, Any]], None] | None = None,  # each probe as it happens
    ) -> list[GenerationRecord]: ...


def per_prompt_policies(prompts: Sequence[str], policy: BudgetPolicy | Sequence[BudgetPolicy]) -> list[BudgetPolicy]:
    """One policy per prompt, from a shared policy or a list that must match the prompts.

    When sampling, each prompt's policy gets its own seed derived from the user's seed and the
    prompt text. A sample's draws then depend neither on its position nor on its batch mates, so a
    resumed run, or a request batched with others in a server, gives exactly what it gives alone.
    (Identical prompts with the same seed give identical samples, as an API would; vary the seed
    to draw several.)
    """
    if isinstance(policy, BudgetPolicy):
        policies = [policy] * len(prompts)
    else:
        policies = list(policy)
        if len(policies) != len(prompts):
            raise ValueError(f"{len(policies)} policies for {len(prompts)} prompts; give one policy or one per prompt")
    return [with_sample_seed(sample_policy, prompt) for prompt, sample_policy in zip(prompts, policies)]


def with_sample_seed(policy: BudgetPolicy, prompt: str) -> BudgetPolicy:
    """The policy with its seed replaced by this prompt's own seed (unchanged when greedy)."""
    sampling = policy.sampling
    if sampling.temperature == 0:
        return policy
    digest = hashlib.sha256(f"{sampling.seed or 0}\x1f{prompt}".encode("utf-8")).digest()
    seed = int.from_bytes(digest[:4], "big") >> 1  # 31 bits: every engine and API accepts that range
    return policy.model_copy(update={"sampling": sampling.model_copy(update={"seed": seed})})


def choice_seed(seed: int, choice: int) -> int:
    """The seed of choice `choice` of a request that draws several (`n`): the request's own seed
    for choice 0, so that n = 1 draws what it always drew; for the others a 31-bit hash of both."""
    if choice == 0:
        return seed
    digest = hashlib.sha256(f"{seed}\x1fchoice\x1f{choice}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def choice_policy(policy: BudgetPolicy, choice: int) -> BudgetPolicy:
    """The policy of choice `choice` (0-based) of a request for several samples: its own seed
    (`choice_seed`), mixed with the prompt by the backend as every seed is (`with_sample_seed`).
    Choice 0 is the policy itself; greedy decoding has no seed to vary, so every choice is the same."""
    sampling = policy.sampling
    if choice == 0 or sampling.temperature == 0:
        return policy
    seed = choice_seed(sampling.seed or 0, choice)
    return policy.model_copy(update={"sampling": sampling.model_copy(update={"seed": seed})})


def logprob_entry(tokenizer: Any, token: int, logprob: float, top: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """One generated token's `GenerationRecord.answer_logprobs` entry: its text, its log-probability,
    and the alternatives [[text, logprob], ...] best first (`top`: (id, logprob) pairs)."""
    def text(token_id: int) -> str:
        return tokenizer.decode([token_id], skip_special_tokens=False)

    # A token the model rules out entirely has -inf, which JSON cannot hold: -9999.0, as OpenAI sends.
    return {"token": text(token), "logprob": max(float(logprob), -9999.0),
            "top": [[text(i), max(float(lp), -9999.0)] for i, lp in top]}


def answer_reserve(tokenizer: Any, policy: BudgetPolicy) -> int:
    """Context tokens kept free for the forced answer prefix and the whole answer budget."""
    return len(tokenizer.encode(policy.answer_after_budget, add_special_tokens=False)) + policy.max_answer_tokens


def fail_if_prompt_too_long(controller: SampleController, prompt_tokens: int, reserve: int, max_context: int) -> None:
    """The documented policy for over-long prompts: that sample fails with a reason; the batch goes on."""
    if prompt_tokens == 0:
        controller.fail("empty prompt")
    elif prompt_tokens + reserve > max_context:
        controller.fail(f"prompt of {prompt_tokens} tokens leaves no room for the answer: the context window is "
                        f"{max_context} tokens and the answer needs up to {reserve}")


def round_limit(step: Step, context_tokens: int, reserve: int, max_context: int) -> int:
    """Tokens this round may generate: the step's budget, capped so the answer always still fits."""
    room = max_context - context_tokens - (reserve if step.phase == "think" else 0)
    return max(0, min(step.max_new_tokens, room))


def round_lookahead(step: Step, keep: int, context_tokens: int, reserve: int, max_context: int,
                    stops: StopMatcher) -> int:
    """Tokens a round may generate past `keep` (its `round_limit`) only to see a stop begun before
    it complete (`Step.lookahead`): none when the context, not the step, set the limit."""
    if not step.lookahead or keep != step.max_new_tokens:
        return 0
    room = max_context - context_tokens - reserve - keep
    return max(0, min(step.lookahead, stops.lookahead(step.stops), room))


def load_tokenizer(path: str, *, trust_remote_code: bool = False, revision: str | None = None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    tokenizer.padding_side = "left"
    return tokenizer


def decode_round(tokenizer: Any, held: list[int], ids: Sequence[int], *, final: bool) -> tuple[str, list[int]]:
    """A round's text, continuing `held` (the ids of a character the previous round cut in two).

    Early exit ends rounds at arbitrary tokens, and a character can span two tokens; decoded apart,
    each half would become U+FFFD. Unless the round is `final` (a stop ended it), ids that end in
    the middle of a character are held back, and come back as part of the next round's text.
    """
    ids = [*held, *ids]
    text = tokenizer.decode(ids, skip_special_tokens=False)
    if final or not text.endswith("\ufffd"):
        return text, []
    for size in range(1, min(4, len(ids)) + 1):  # a UTF-8 character is at most 4 bytes
        head = tokenizer.decode(ids[:-size], skip_special_tokens=False)
        if not head.endswith("\ufffd"):
            return head, ids[-size:]
    return text, []


class StopMatcher:
    """Finds where a stop string begins in a round's generated ids.

    Stops that are one token (the ChatML markers, `</think>` for Qwen3) and end-of-sequence ids
    are matched by id; longer stops by decoding only the last few tokens, so each step costs the
    same however long the thinking grows.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        self.eos_ids: frozenset[int] = frozenset([eos] if isinstance(eos, int) else (eos or []))
        self._plans: dict[tuple[str, ...], tuple[frozenset[int], tuple[tuple[str, int], ...]]] = {}
        self._windows: dict[tuple[str, ...], int] = {}

    def _plan(self, stops: tuple[str, ...]) -> tuple[frozenset[int], tuple[tuple[str, int], ...]]:
        if stops not in self._plans:
            single, multi = set(self.eos_ids), []
            for stop in stops:
                ids = self.tokenizer.encode(stop, add_special_tokens=False)
                if len(ids) == 1:
                    single.add(ids[0])
                else:
                    multi.append((stop, len(ids) + 2))
            self._plans[stops] = (frozenset(single), tuple(multi))
        return self._plans[stops]

    def strip(self, ids: list[int], stops: tuple[str, ...]) -> list[int]:
        """Generated ids of a round that a stop ended, without the stop's own tokens."""
        cut = self.match(ids, stops) if ids else None
        return ids[:cut] if cut is not None else ids

    def match(self, ids: list[int], stops: tuple[str, ...]) -> int | None:
        """Index in `ids` where a stop begins, checked after each new token; None if no stop yet."""
        single, multi = self._plan(stops)
        if ids[-1] in single:
            return len(ids) - 1
        for stop, window in multi:
            tail = self.tokenizer.decode(ids[-window:], skip_special_tokens=False)
            if stop in tail:
                start = len(ids) - 1
                while start > 0 and stop not in self.tokenizer.decode(ids[start:], skip_special_tokens=False):
                    start -= 1
                return start
        return None

    def ending_ids(self, stops: tuple[str, ...]) -> frozenset[int]:
        """Ids that end a round by themselves: end of sequence and the one-token stops."""
        return self._plan(tuple(stops))[0]

    def lookahead(self, stops: tuple[str, ...]) -> int:
        """Tokens past a round's end that can still complete a stop begun before it (0: all one token)."""
        _, multi = self._plan(stops)
        return max((window - 2 for _, window in multi), default=0)

    def partial(self, ids: list[int], stops: tuple[str, ...]) -> bool:
        """Do the last tokens end with the beginning of a multi-token stop (it may still complete)?"""
        _, multi = self._plan(stops)
        if not ids or not multi:
            return False
        tail = self.tokenizer.decode(ids[-max(window for _, window in multi):], skip_special_tokens=False)
        return any(tail.endswith(stop[:size]) for stop, _ in multi for size in range(1, len(stop)))

    def holds_pause(self, ids: list[int], pauses: tuple[str, ...]) -> bool:
        """Do a round's last few tokens hold one of `pauses` (early exit's transitions)?

        Checked after each new token, so the newest token is the one that completed it; like the
        stops, only a window of a pause's length (+2, for other tokenizations) is decoded.
        """
        if pauses not in self._windows:
            self._windows[pauses] = max(len(self.tokenizer.encode(p, add_special_tokens=False)) for p in pauses) + 2
        tail = self.tokenizer.decode(ids[-self._windows[pauses]:], skip_special_tokens=False)
        return any(pause and pause in tail for pause in pauses)


class TextStream:
    """Turns generated ids into text deltas for a live display (`m1 ask`, `m1 serve` streaming).

    Text that might be the beginning of a stop string is held back until the next token shows
    whether it is one, so a viewer never sees half of a stop that the record then leaves out. It is
    held from the start of the token it begins in: a round ended by a stop keeps the tokens before
    the one the stop begins in (`StopMatcher`), so text that token holds before the stop (the space
    of " Vitamin" for the stop "Vitamin C") is not the record's either.
    """

    def __init__(self, tokenizer: Any, emit: Callable[[str, str, bool], None]):
        self.tokenizer, self.emit = tokenizer, emit
        self.ids: list[int] = []
        self.ends: list[int] = [0]  # length of the round's text at each token boundary decoded so far
        self.sent = ""
        self.phase = ""

    def insert(self, phase: str, text: str) -> None:
        if text:
            self.emit(phase, text, True)

    def push(self, phase: str, token: int, stops: Sequence[str] = ()) -> None:
        self.phase = phase
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        if text.endswith("\ufffd"):
            return  # half of a multi-byte character: wait for the rest
        safe = len(_before_stops(text, stops))
        self.ends.append(len(text))
        if safe < len(text):
            safe = next(end for end in reversed(self.ends) if end <= safe)  # the held tail is short
        self._send(text[:safe])

    def end_round(self, kept_text: str) -> None:
        """The round is over and `kept_text` is what it produced: show what was held back, if kept."""
        self._send(kept_text)
        self.ids, self.ends, self.sent = [], [0], ""

    def _send(self, text: str) -> None:
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.emit(self.phase, text[len(self.sent):], False)
            self.sent = text


def partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `stops` (0: none)."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return held


def _before_stops(text: str, stops: Sequence[str]) -> str:
    """`text` without a stop string in it or a start of one at its end: what is safe to show."""
    cut = min((text.index(stop) for stop in stops if stop and stop in text), default=len(text))
    text = text[:cut]
    return text[:len(text) - partial_stop(text, stops)]
