"""OpenAI-shaped response bodies and stream chunks, built from a `GenerationRecord`.

What each endpoint returns:

- chat: `message.reasoning_content` is the thinking exactly as the model saw it (inserted "Wait"
  strings included; null with the no-think preset); `message.content` is the answer without the
  structural marker that opened it (`<|im_start|>answer`, `</think>`) and without leading
  whitespace. Text the controller inserted *as part of the answer* stays: after a budget hit the
  answer begins "Final Answer:" because that is what the model was made to continue, and the
  answer often makes no sense without it.
- completions: `text` is everything appended after the prompt, as the model saw it: thinking,
  inserted strings and the answer prefix markers included, so `prompt + text` is the full sequence.
- `usage`: `completion_tokens` counts tokens the model generated (thinking + answer);
  `completion_tokens_details.reasoning_tokens` the thinking; `usage.m1` the full account, including
  tokens the controller inserted (not generated, so not in `completion_tokens`), extensions used
  and why thinking ended. With early exit it adds the probes: how many, their tokens and seconds
  (counted apart from thinking and from `completion_tokens`), the rule that decided (`exit_rule`),
  the answer trajectory (`trajectory`: per probe the thinking tokens so far, the answer, its
  probability, …) and `tokens_saved`, the thinking budget left when early exit ended thinking
  (0 when thinking ended any other way).
- a probe chunk (streaming with `stream_probes`): an ordinary chunk with an empty delta (chat) or
  empty text (completions), so any OpenAI client reads past it, and `m1: {"probe": entry}`.

Streaming sends the same text as the non-streaming reply, in pieces, as soon as it can: only a
tail of the live text that may be the beginning of a stop string spanning several tokens is held
back until the next piece shows whether it is one; a complete stop and anything after it are never
sent, and the final record settles whatever was held (`StreamShaper`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from m1.engine.controller import GenerationRecord, tokens_saved
from m1.engine.policy import BudgetPolicy

log = logging.getLogger("m1.serving")


def answer_marker(policy: BudgetPolicy) -> str:
    """The structural marker that opens the answer (`<|im_start|>answer`, `</think>`; none for no-think)."""
    return policy.answer_after_stop.strip()


def visible_answer(policy: BudgetPolicy, reply: str) -> str:
    """The answer as `content`: the inserted prefix and the generated answer, marker removed."""
    marker = answer_marker(policy)
    if marker and marker in reply:
        reply = reply[reply.index(marker) + len(marker):]
    return reply.lstrip()


def finish_reason(record: GenerationRecord) -> str:
    return "length" if record.answer_end == "length" else "stop"


def usage(record: GenerationRecord, prompt_tokens: int, policy: BudgetPolicy, preset: str) -> dict[str, Any]:
    generated = record.thinking_tokens + record.answer_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
        "completion_tokens_details": {"reasoning_tokens": record.thinking_tokens},
        "m1": {
            "budget_preset": preset,
            "thinking_budget": policy.max_thinking_tokens if policy.thinking else 0,
            "thinking_tokens": record.thinking_tokens,
            "answer_tokens": record.answer_tokens,
            "max_answer_tokens": policy.max_answer_tokens,
            "inserted_tokens": record.inserted_tokens,
            "extensions_used": record.extensions_used,
            "num_extensions": policy.num_extensions if policy.thinking else 0,
            "min_thinking_tokens": policy.min_thinking_tokens,
            "thinking_end": record.thinking_end,
            "answer_end": record.answer_end,
            "probes": len(record.probes or ()),
            "probe_tokens": record.probe_tokens,
            "probe_seconds": round(record.probe_seconds, 6),
            "tokens_saved": tokens_saved(record, policy.max_thinking_tokens),
            "exit_rule": record.exit_rule,
            "trajectory": record.probes,  # null without early exit
        },
    }


def continuation_ids(record: GenerationRecord) -> list[int] | None:
    """Every token appended after the prompt (inserted and generated), when the backend kept a trace."""
    if record.trace is None:
        return [] if record.thinking_tokens == record.answer_tokens == record.inserted_tokens == 0 else None
    return [token for _kind, ids in record.trace for token in ids]


def chat_response(request_id: str, model: str, record: GenerationRecord, policy: BudgetPolicy,
                  prompt_tokens: int, preset: str) -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": visible_answer(policy, record.reply),
        "reasoning_content": record.thinking if policy.thinking else None,
    }
    return {
        "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(record)}],
        "usage": usage(record, prompt_tokens, policy, preset),
    }


def completion_response(request_id: str, model: str, record: GenerationRecord, policy: BudgetPolicy,
                        prompt_tokens: int, preset: str, *, with_ids: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "text": record.thinking + record.reply, "logprobs": None,
                              "finish_reason": finish_reason(record)}
    if with_ids:
        choice["token_ids"] = continuation_ids(record)
    return {
        "id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": [choice], "usage": usage(record, prompt_tokens, policy, preset),
    }


def chunk(request_id: str, model: str, *, chat: bool, delta: dict[str, Any] | None = None, text: str = "",
          finish: str | None = None, usage_block: dict[str, Any] | None = None,
          no_choices: bool = False, m1: dict[str, Any] | None = None) -> dict[str, Any]:
    """One server-sent event body: a chat delta or a completion text piece (`m1`: m1's own field)."""
    if no_choices:
        choices: list[dict[str, Any]] = []
    elif chat:
        choices = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
    else:
        choices = [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]
    body = {"id": request_id, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()), "model": model, "choices": choices}
    if usage_block is not None:
        body["usage"] = usage_block
    if m1 is not None:
        body["m1"] = m1
    return body


class _Channel:
    """How much of one live text was sent: its first `sent` characters, only ever more."""

    def __init__(self, start: int = 0) -> None:
        self.sent, self.pieces = start, []

    def offer(self, text: str, upto: int) -> str:
        """Send `text` up to `upto` (nothing if that is no further than sent)."""
        if upto <= self.sent:
            return ""
        delta, self.sent = text[self.sent:upto], upto
        self.pieces.append(delta)
        return delta

    def text(self) -> str:
        return "".join(self.pieces)


def settle(sent: str, final: str, field: str) -> str:
    """What the final text adds to what was sent (nothing if the live text diverged from it)."""
    if not final.startswith(sent):
        log.warning("streamed %s diverged from the final text (%d of %d characters sent)",
                    field, len(sent), len(final))
        return ""
    return final[len(sent):]


def partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `stops` (0: none)."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return held


def first_stop(text: str, stops: tuple[str, ...], start: int = 0) -> int | None:
    """Where the first complete stop string in `text[start:]` begins (None: there is none)."""
    found = [text.find(stop, start) for stop in stops if stop]
    return min((at for at in found if at >= 0), default=None)


class _Stops:
    """One phase's stop strings, looked for in its live text as it grows (each piece: only its tail)."""

    def __init__(self, stops: tuple[str, ...], tokenizer: Any):
        self.stops = stops
        # A one-token stop arrives whole, so a tail that merely looks like its start ("<|im") is
        # text the model wrote; only a stop spanning tokens can be half-way there.
        self.spanning = tuple(s for s in stops if len(tokenizer.encode(s, add_special_tokens=False)) > 1)
        self.longest = max((len(s) for s in stops), default=0)

    def new_stop(self, text: str, begin: int, grown_from: int) -> int | None:
        """A stop in text[begin:] that the text grown from `grown_from` characters completed."""
        return first_stop(text, self.stops, max(begin, grown_from - self.longest + 1)) if self.stops else None

    def held(self, text: str, begin: int) -> int:
        """Characters at the end of text[begin:] that may begin a spanning stop."""
        return partial_stop(text[max(begin, len(text) - self.longest):], self.spanning) if self.spanning else 0


class StreamShaper:
    """Turns the engine's (phase, text) pieces into stream deltas for one response.

    Chat: `reasoning_content` during thinking, `content` during the answer. Completions: `text`.
    Text streams at once, except a tail that may still turn into a stop spanning several tokens
    (thinking stops while thinking, answer stops while answering); it goes out with the next piece
    that shows it was not one. A complete stop and anything after it are not sent. `finish(record)`
    returns whatever the live text had not yet sent, so a stream adds up to the non-streaming reply.
    Each piece costs the same however long the text grows.

    A thinking round ends where the next one's extension string or the answer begins. A complete
    stop in the round's live text was cut with everything after it. A tail that looked like the
    start of a stop cannot be told apart: the backends that hold such tails back themselves send
    it only when the round kept it, a backend that does not would have had it cut. So nothing from
    there on is sent until the record settles it; it is rare (text that ends in "</thi" just
    before a stop), and it keeps the stream exact either way.
    """

    def __init__(self, policy: BudgetPolicy, tokenizer: Any, *, chat: bool):
        self.policy, self.chat = policy, chat
        self.think_stops = _Stops(policy.think_stops if policy.thinking else (), tokenizer)
        self.answer_stops = _Stops(policy.answer_stops, tokenizer)
        self.marker = answer_marker(policy)
        self.extensions = (policy.extension_str, " " + policy.extension_str) if policy.num_extensions else ()
        self.raw_think, self.raw_answer, self.in_answer = "", "", False
        self.round_start = 0  # where the live thinking round began in raw_think
        self.think_cut: int | None = None  # a complete stop in the live round
        self.think_settled: int | None = None  # raw_think from here on waits for the record
        self.answer_cut: int | None = None
        self.marker_end: int | None = None  # where the answer after its marker begins (chat)
        # Chat: reasoning_content over raw_think, content over raw_answer (from the visible answer's
        # first character, once known). Completions: text is raw_think's channel, then raw_answer's.
        self.thought, self.answered = _Channel(), _Channel()
        self.content: _Channel | None = None

    def _end_round(self) -> None:
        """The thinking round in raw_think[round_start:] is over: settle its end (see the class)."""
        if self.think_cut is not None:
            self.raw_think = self.raw_think[:self.think_cut]
            if self.think_cut < self.thought.sent:  # it looked like text when it was sent
                self.think_settled = min(self.think_cut, len(self.raw_think) if self.think_settled is None
                                         else self.think_settled)
        elif self.think_settled is None and (held := self.think_stops.held(self.raw_think, self.round_start)):
            self.think_settled = len(self.raw_think) - held
        self.round_start, self.think_cut = len(self.raw_think), None

    def _thinking_upto(self) -> int:
        """How much of raw_think may be shown now."""
        if self.in_answer:
            upto = len(self.raw_think)
        elif self.think_cut is not None:
            upto = self.think_cut
        else:
            upto = len(self.raw_think) - self.think_stops.held(self.raw_think, self.round_start)
        return upto if self.think_settled is None else min(upto, self.think_settled)

    def _answer_upto(self) -> int:
        if self.answer_cut is not None:
            return self.answer_cut
        return len(self.raw_answer) - self.answer_stops.held(self.raw_answer, 0)

    def _content(self, upto: int) -> str:
        """The chat answer's next delta: after its inserted marker and leading whitespace (`visible_answer`)."""
        if self.content is None:
            if self.marker_end is None:
                at = self.raw_answer.find(self.marker) if self.marker else 0
                if at < 0:
                    return ""  # the answer opens with its inserted marker; nothing shows before it
                self.marker_end = at + len(self.marker)
            start = self.marker_end
            while start < upto and self.raw_answer[start].isspace():
                start += 1
            if start == upto:
                return ""
            self.content = _Channel(start)
        return self.content.offer(self.raw_answer, upto)

    def push(self, phase: str, piece: str) -> dict[str, str]:
        if phase == "think":
            if piece in self.extensions:
                self._end_round()
            grown_from = len(self.raw_think)
            self.raw_think += piece
            if self.think_cut is None:
                self.think_cut = self.think_stops.new_stop(self.raw_think, self.round_start, grown_from)
        else:
            if not self.in_answer:
                self._end_round()
                self.in_answer = True
            grown_from = len(self.raw_answer)
            self.raw_answer += piece
            if self.answer_cut is None:
                self.answer_cut = self.answer_stops.new_stop(self.raw_answer, 0, grown_from)
        upto = self._thinking_upto()
        thinking = self.thought.offer(self.raw_think, upto)
        answer = ""
        if self.in_answer:
            if self.chat:
                answer = self._content(self._answer_upto())
            elif self.thought.sent == len(self.raw_think):  # all the thinking went out: the answer may follow
                answer = self.answered.offer(self.raw_answer, self._answer_upto())
        if self.chat:
            out = {"reasoning_content": thinking, "content": answer}
        else:
            out = {"text": thinking + answer}
        return {k: v for k, v in out.items() if v}

    def finish(self, record: GenerationRecord) -> dict[str, str]:
        if self.chat:
            out = {}
            if self.policy.thinking:
                out["reasoning_content"] = settle(self.thought.text(), record.thinking, "reasoning_content")
            content = self.content.text() if self.content is not None else ""
            out["content"] = settle(content, visible_answer(self.policy, record.reply), "content")
        else:
            out = {"text": settle(self.thought.text() + self.answered.text(), record.thinking + record.reply, "text")}
        return {k: v for k, v in out.items() if v}
