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
from collections.abc import Sequence
from typing import Any

from m1.engine.backends.base import partial_stop
from m1.engine.controller import GenerationRecord, tokens_saved
from m1.engine.policy import BudgetPolicy
from m1.scoring.extract import extract_answer
from m1.scoring.vote import decide, normalise_answer

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


def usage(records: Sequence[GenerationRecord], prompt_tokens: int, policy: BudgetPolicy, preset: str, *,
          vote: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenAI's usage over every choice (the prompt counted once) and m1's account: one choice's
    block as it stands, or for n > 1 `{n, identical, choices: [block, …], vote}`."""
    thinking = sum(record.thinking_tokens for record in records)
    generated = thinking + sum(record.answer_tokens for record in records)
    blocks = [m1_block(record, policy, preset) for record in records]
    if len(records) == 1:
        m1 = blocks[0]
    else:
        # Greedy decoding has no seed to vary: every choice is the same draw, and says so.
        m1 = {"n": len(records), "identical": policy.sampling.temperature == 0, "choices": blocks, "vote": vote}
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
        "completion_tokens_details": {"reasoning_tokens": thinking},
        "m1": m1,
    }


def m1_block(record: GenerationRecord, policy: BudgetPolicy, preset: str) -> dict[str, Any]:
    """m1's account of one choice: budgets, tokens, how thinking and the answer ended, probes."""
    return {
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
    }


def continuation_ids(record: GenerationRecord) -> list[int] | None:
    """Every token appended after the prompt (inserted and generated), when the backend kept a trace."""
    if record.trace is None:
        return [] if record.thinking_tokens == record.answer_tokens == record.inserted_tokens == 0 else None
    return [token for _kind, ids in record.trace for token in ids]


def chat_response(request_id: str, model: str, records: Sequence[GenerationRecord], policy: BudgetPolicy,
                  prompt_tokens: int, preset: str, *, vote: dict[str, Any] | None = None,
                  logprobs: int | None = None) -> dict[str, Any]:
    """A chat.completion body: one choice per record, in order."""
    choices = []
    for index, record in enumerate(records):
        message = {
            "role": "assistant",
            "content": visible_answer(policy, record.reply),
            "reasoning_content": record.thinking if policy.thinking else None,
        }
        choices.append({"index": index, "message": message, "logprobs": chat_logprobs(record, logprobs),
                        "finish_reason": finish_reason(record)})
    return {
        "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": choices, "usage": usage(records, prompt_tokens, policy, preset, vote=vote),
    }


def completion_response(request_id: str, model: str, records: Sequence[GenerationRecord], policy: BudgetPolicy,
                        prompt_tokens: int, preset: str, *, with_ids: bool, vote: dict[str, Any] | None = None,
                        logprobs: int | None = None) -> dict[str, Any]:
    """A text_completion body: one choice per record, in order."""
    choices = []
    for index, record in enumerate(records):
        choice: dict[str, Any] = {"index": index, "text": record.thinking + record.reply,
                                  "logprobs": completion_logprobs(record, logprobs),
                                  "finish_reason": finish_reason(record)}
        if with_ids:
            choice["token_ids"] = continuation_ids(record)
        choices.append(choice)
    return {
        "id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": choices, "usage": usage(records, prompt_tokens, policy, preset, vote=vote),
    }


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_logprobs(record: GenerationRecord, top: int | None) -> dict[str, Any] | None:
    """A chat choice's `logprobs` (None when not asked): the generated answer tokens, as OpenAI shapes them."""
    if top is None:
        return None
    content = [_token(entry["token"], entry["logprob"])
               | {"top_logprobs": [_token(text, logprob) for text, logprob in entry["top"][:top]]}
               for entry in record.answer_logprobs or ()]
    return {"content": content, "refusal": None}


def completion_logprobs(record: GenerationRecord, top: int | None) -> dict[str, Any] | None:
    """A completion choice's `logprobs` (None when not asked): the generated answer tokens, each at its
    offset in the choice's `text` (the answer is its end)."""
    if top is None:
        return None
    entries = record.answer_logprobs or []
    offset = len(record.thinking + record.reply) - len("".join(entry["token"] for entry in entries))
    tokens, token_logprobs, tops, offsets = [], [], [], []
    for entry in entries:
        tokens.append(entry["token"])
        token_logprobs.append(entry["logprob"])
        tops.append(dict(entry["top"][:top]))
        offsets.append(offset)
        offset += len(entry["token"])
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}


def vote_block(records: Sequence[GenerationRecord], policy: BudgetPolicy, method: str,
               letters: Sequence[str] | None) -> dict[str, Any]:
    """`usage.m1.vote`: the choices' answers voted on by `m1.scoring.vote`'s rule.

    With the prompt's option letters, each choice's answer is the letter strict extraction reads in
    its reply (weighted: weighing the answer read's probability of that letter); without them, the
    choice's whole answer, normalised. {method, answer, share, votes: {answer: count or weight}, answers}.
    """
    if letters:
        options = dict.fromkeys(letters, "")  # the server knows the letters, not the options' texts
        answers = [extract_answer(record.reply, options, "strict").letter for record in records]
    else:
        answers = [normalise_answer(visible_answer(policy, record.reply)) for record in records]
    confidences = None
    if method == "weighted":
        confidences = [((record.answer_read or {}).get("letters") or {}).get(answer, 0.0) if answer else 0.0
                       for record, answer in zip(records, answers)]
    found = decide(method, answers, confidences)  # type: ignore[arg-type]
    return {"method": found.method, "answer": found.answer, "share": round(found.share, 6),
            "votes": {answer: round(value, 6) for answer, value in found.votes.items()}, "answers": answers}


def chunk(request_id: str, model: str, *, chat: bool, delta: dict[str, Any] | None = None, text: str = "",
          finish: str | None = None, usage_block: dict[str, Any] | None = None,
          no_choices: bool = False, m1: dict[str, Any] | None = None, index: int = 0,
          logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One server-sent event body: a chat delta or a completion text piece of choice `index` (`m1`:
    m1's own field; `logprobs`: a choice's whole answer, sent with its last chunk)."""
    if no_choices:
        choices: list[dict[str, Any]] = []
    elif chat:
        choices = [{"index": index, "delta": delta or {}, "logprobs": logprobs, "finish_reason": finish}]
    else:
        choices = [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}]
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

    def __init__(self, policy: BudgetPolicy, tokenizer: Any, *, chat: bool, ordered: bool = False):
        # ordered (chat): no answer before all of the thinking has gone out, for a wire where thinking
        # and answer are consecutive blocks (Anthropic's), not two fields that grow side by side.
        self.policy, self.chat, self.ordered = policy, chat, ordered
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
            thought_out = self.thought.sent == len(self.raw_think)
            if self.chat and (thought_out or not self.ordered):
                answer = self._content(self._answer_upto())
            elif not self.chat and thought_out:  # all the thinking went out: the answer may follow
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


def without_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """A chat reply or stream delta with its reasoning left out (OpenRouter's `reasoning.exclude`):
    `reasoning_content` is null in a reply and absent from deltas; usage still counts the thinking."""
    if "choices" in body:
        for choice in body["choices"]:
            choice["message"]["reasoning_content"] = None
        return body
    return {key: text for key, text in body.items() if key != "reasoning_content"}
