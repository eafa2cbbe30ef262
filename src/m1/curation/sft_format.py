"""The SFT text format the released m1 models were trained on (SPEC §4), in one place.

    messages = sft_messages(prompt, reasoning, answer)   # for TRL (assistant-only loss)
    text = sft_text(prompt, reasoning, answer)           # the exact Qwen2.5 rendering
    text = sft_text(prompt, reasoning, answer, tokenizer=tok)  # another model's chat template

The assistant turn is the thinking marker, the reasoning, the answer marker and the final answer:

    <|im_start|>think\\n{reasoning}\\n<|im_start|>answer\\nAnswer: {answer}

"Answer: " is added only when the answer does not already open with an answer label of its own
("Answer:", "Final Answer:", "**Final answer:**", "## Answer:"...), so a teacher reply that starts
"Final Answer: C" never becomes "Answer: Final Answer: C". The user turn is the same
prompt the engine sends at inference (question, lettered options, boxed-answer instruction), so a
model trained on these records sees at test time exactly what it saw in training.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import BOXED_SUFFIX, user_message

M1_MARKERS = BudgetPolicy.from_preset("m1")
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ANSWER_PREFIX = "Answer: "
# An answer label at the very start, in the forms teachers write it: optional markdown heading or
# bold, optional "final", "answer", then a colon (ASCII or full-width), bold closing either side.
_ANSWER_LABEL = re.compile(r"^(?:#{1,6}\s*)?[*_]{0,2}\s*(?:final\s+)?answer\s*[*_]{0,2}\s*[:：]", re.I)


def sft_prompt(question: str, options: Mapping[str, str] | None, suffix: str | None = BOXED_SUFFIX) -> str:
    """The user turn of a training record: identical to the evaluation prompt."""
    return user_message(question, options, suffix)


def assistant_turn(reasoning: str, answer: str) -> str:
    answer = answer.strip()
    if not _ANSWER_LABEL.match(answer):
        answer = ANSWER_PREFIX + answer
    return f"{M1_MARKERS.think_start}{reasoning.strip()}\n{M1_MARKERS.answer_after_stop}\n{answer}"


def sft_messages(prompt: str, reasoning: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": assistant_turn(reasoning, answer)}]


def sft_text(prompt: str, reasoning: str, answer: str, tokenizer: Any = None) -> str:
    """The whole training text; without a tokenizer, Qwen2.5's rendering character for character."""
    messages = sft_messages(prompt, reasoning, answer)
    if tokenizer is not None:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return (f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{prompt}<|im_end|>\n"
            f"<|im_start|>assistant\n{messages[1]['content']}<|im_end|>\n")
