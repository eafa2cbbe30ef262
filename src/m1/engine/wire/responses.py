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

Streaming sends the same text as the non-streaming reply, in pieces. Where a stop string spans
several tokens, the engine's live text may already hold its first tokens when the stop is found;
the last few characters of each phase are therefore held back until the round's outcome is known
and the final record settles them (`StreamShaper`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

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
    """Text sent so far on one field; only ever extended."""

    def __init__(self) -> None:
        self.sent = ""

    def offer(self, target: str, holdback: int) -> str:
        if not target.startswith(self.sent):
            return ""  # the live text diverged from what was sent; the final record settles it
        upto = max(len(self.sent), len(target) - holdback)
        delta = target[len(self.sent):upto]
        self.sent += delta
        return delta

    def finish(self, final: str, field: str) -> str:
        if not final.startswith(self.sent):
            log.warning("streamed %s diverged from the final text (%d of %d characters sent)",
                        field, len(self.sent), len(final))
            return ""
        delta, self.sent = final[len(self.sent):], final
        return delta


def holdback(stops: tuple[str, ...], tokenizer: Any) -> int:
    """Characters to hold back: none when every stop is one token (matched before it is shown)."""
    multi = [s for s in stops if len(tokenizer.encode(s, add_special_tokens=False)) > 1]
    return max((len(s) for s in multi), default=-16) + 16


def trim_partial_stop(text: str, stops: tuple[str, ...]) -> str:
    """Drop a tail that is the beginning of a stop string (its tokens were cut with the stop)."""
    for stop in stops:
        for k in range(len(stop) - 1, 0, -1):
            if text.endswith(stop[:k]):
                return text[:-k]
    return text


class StreamShaper:
    """Turns the engine's (phase, text) pieces into stream deltas for one response.

    Chat: `reasoning_content` during thinking, `content` during the answer. Completions: `text`.
    `finish(record)` returns whatever the live text had not yet sent, so a stream adds up to the
    non-streaming reply.
    """

    def __init__(self, policy: BudgetPolicy, tokenizer: Any, *, chat: bool):
        self.policy, self.chat = policy, chat
        self.think_hold = holdback(policy.think_stops, tokenizer) if policy.thinking else 0
        self.answer_hold = holdback(policy.answer_stops, tokenizer)
        self.raw_think, self.raw_answer, self.in_answer = "", "", False
        self.reasoning, self.content, self.text = _Channel(), _Channel(), _Channel()

    def push(self, phase: str, piece: str) -> dict[str, str]:
        out: dict[str, str] = {}
        if phase == "think":
            if self.think_hold and piece in (self.policy.extension_str, " " + self.policy.extension_str):
                # An inserted extension ends a round: a partial stop before it was cut with the stop.
                self.raw_think = trim_partial_stop(self.raw_think, self.policy.think_stops)
            self.raw_think += piece
            if self.chat:
                out["reasoning_content"] = self.reasoning.offer(self.raw_think, self.think_hold)
            else:
                out["text"] = self.text.offer(self.raw_think, self.think_hold)
        else:
            if not self.in_answer:
                self.in_answer = True
                if self.think_hold:
                    self.raw_think = trim_partial_stop(self.raw_think, self.policy.think_stops)
                if self.chat:
                    out["reasoning_content"] = self.reasoning.offer(self.raw_think, 0)
            self.raw_answer += piece
            if self.chat:
                out["content"] = self.content.offer(visible_answer(self.policy, self.raw_answer), self.answer_hold)
            else:
                out["text"] = self.text.offer(self.raw_think + self.raw_answer, self.answer_hold)
        return {k: v for k, v in out.items() if v}

    def finish(self, record: GenerationRecord) -> dict[str, str]:
        if self.chat:
            out = {}
            if self.policy.thinking:
                out["reasoning_content"] = self.reasoning.finish(record.thinking, "reasoning_content")
            out["content"] = self.content.finish(visible_answer(self.policy, record.reply), "content")
        else:
            out = {"text": self.text.finish(record.thinking + record.reply, "text")}
        return {k: v for k, v in out.items() if v}


def without_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """A chat reply or stream delta with its reasoning left out (OpenRouter's `reasoning.exclude`):
    `reasoning_content` is null in a reply and absent from deltas; usage still counts the thinking."""
    if "choices" in body:
        for choice in body["choices"]:
            choice["message"]["reasoning_content"] = None
        return body
    return {key: text for key, text in body.items() if key != "reasoning_content"}
