"""The max-length policy: what happens to records longer than `max_length` tokens, with counts.

    kept, report = apply_length_policy(records, tokenizer, template, max_length=4096, policy="drop")
    report.dropped, report.truncated, report.trimmed, report.loss_tokens

Records are measured with the same training template and tokenizer that TRL then uses, so the
counts are the tokens trained on. Policies:

- `drop`: a record longer than `max_length` is left out. Nothing the model sees is cut.
- `truncate`: keep the first `max_length` tokens (TRL's `keep_start`). The record loses its answer
  and `<|im_end|>`, so it teaches thinking that never ends; use it knowing that. A record whose
  prompt alone fills `max_length` has no loss tokens left and is dropped.
- `trim_reasoning`: shorten the reasoning (at a line or sentence end) until the record fits, so
  the answer marker, the answer and `<|im_end|>` stay: for smoke runs that must fit a small
  context. A record whose prompt and answer alone do not fit is dropped; so is one that is not in
  the m1 format (no think and answer markers to cut between).

Every record left out is counted under its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from m1.curation.sft_format import M1_MARKERS
from m1.training.data import SFTRecord

ANSWER_SEPARATOR = f"\n{M1_MARKERS.answer_after_stop}\n"
MIN_REASONING_TOKENS = 16  # less than this is not reasoning any more; drop the record instead


@dataclass
class LengthReport:
    """What the policy did to one split."""

    policy: str
    max_length: int
    records_in: int = 0
    records_out: int = 0
    within_limit: int = 0
    truncated: int = 0
    trimmed: int = 0
    dropped: Counter = field(default_factory=Counter)
    longest_in: int = 0
    tokens: int = 0  # tokens of the records kept, after the policy
    loss_tokens: int = 0  # of which the assistant writes (the tokens that carry loss)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"dropped": dict(self.dropped), "dropped_total": sum(self.dropped.values())}


def measure(tokenizer: Any, template: str, messages: list[dict[str, str]]) -> tuple[int, list[int]]:
    """(length in tokens, assistant mask) of one conversation under the training template."""
    encoded = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    return len(encoded["input_ids"]), list(encoded["assistant_masks"])


def apply_length_policy(records: list[SFTRecord], tokenizer: Any, template: str, max_length: int,
                        policy: str) -> tuple[list[SFTRecord], LengthReport]:
    report = LengthReport(policy=policy, max_length=max_length, records_in=len(records))
    kept = []
    for record in records:
        length, mask = measure(tokenizer, template, record.messages)
        report.longest_in = max(report.longest_in, length)
        if length <= max_length:
            report.within_limit += 1
        elif policy == "drop":
            report.dropped["longer than max_length"] += 1
            continue
        elif policy == "truncate":
            if not any(mask[:max_length]):
                report.dropped["prompt alone fills max_length"] += 1
                continue
            report.truncated += 1
            length, mask = max_length, mask[:max_length]
        else:
            trimmed = trim_reasoning(record, tokenizer, template, max_length, length)
            if isinstance(trimmed, str):
                report.dropped[trimmed] += 1
                continue
            report.trimmed += 1
            record = trimmed
            length, mask = measure(tokenizer, template, record.messages)
        kept.append(record)
        report.tokens += length
        report.loss_tokens += sum(mask)
    report.records_out = len(kept)
    return kept, report


def trim_reasoning(record: SFTRecord, tokenizer: Any, template: str, max_length: int,
                   length: int) -> SFTRecord | str:
    """The record with its reasoning cut short enough to fit, or the reason it cannot be."""
    content = record.messages[-1]["content"]
    think = M1_MARKERS.think_start
    if not content.startswith(think) or ANSWER_SEPARATOR not in content:
        return "too long and not in the m1 format"
    reasoning, tail = content[len(think):].split(ANSWER_SEPARATOR, 1)
    ids = tokenizer.encode(reasoning, add_special_tokens=False)
    keep = len(ids) - (length - max_length)
    # Tokens can merge differently once the text is cut, so re-measure and cut further if needed.
    while keep >= MIN_REASONING_TOKENS:
        shorter = _cut_at_boundary(tokenizer.decode(ids[:keep]))
        messages = record.messages[:-1] + [{"role": "assistant", "content": f"{think}{shorter}{ANSWER_SEPARATOR}{tail}"}]
        new_length, _ = measure(tokenizer, template, messages)
        if new_length <= max_length:
            return SFTRecord(record.uid, messages)
        keep -= new_length - max_length
    return "prompt and answer alone exceed max_length"


def _cut_at_boundary(text: str) -> str:
    """End the cut text at its last line or sentence end, unless that throws away over half of it."""
    end = max(text.rfind("\n"), text.rfind(". ") + 1, text.rfind("? ") + 1, text.rfind("! ") + 1)
    return text[:end].rstrip() if end > len(text) // 2 else text.rstrip()
