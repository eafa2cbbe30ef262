"""Does a model write the m1 thinking format by itself? The before/after check of a training run.

    items = probe_items(ProbeSettings(items=10), seed=42)
    result = format_probe(model, tokenizer, items, max_new_tokens=256)
    result.following, result.rate          # e.g. 0 of 10 before training, 10 of 10 after

The prompt is the evaluation prompt (question, lettered options, boxed-answer instruction) in the
model's chat template, ending with the assistant header and NOT with the thinking marker: the
model is not forced to think. It follows the format when its reply opens with
`<|im_start|>think` and later writes `<|im_start|>answer`, as the released m1 models do.

Generation is greedy with transformers' `generate`, and each reply stops at `<|im_end|>` or as
soon as it writes the answer marker: by then the format is decided, and the answer itself (often
a hundred tokens of prose) would only cost time. The engine's stop strings cannot say which stop
ended a reply, so the probe does not go through the engine; `m1 eval` on the trained model does.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from m1.data.items import MCQItem
from m1.data.suite import SUITE_FILE_NAME, load_suite, sample_per_source, shared_data_dir
from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt
from m1.training.config import ProbeSettings

BUNDLED_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "m1_sample_eval.json"
M1_POLICY = BudgetPolicy.from_preset("m1")
THINK_MARKER, ANSWER_MARKER = M1_POLICY.think_start, M1_POLICY.answer_after_stop  # "<|im_start|>think\n", "<|im_start|>answer"
M1_FORMAT = re.compile(rf"\s*{re.escape(THINK_MARKER)}.*?{re.escape(ANSWER_MARKER)}", re.DOTALL)


def follows_m1_format(reply: str) -> bool:
    return M1_FORMAT.match(reply) is not None


@dataclass
class ProbeResult:
    items: int
    following: int
    replies: list[str]

    @property
    def rate(self) -> float:
        return self.following / self.items if self.items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rate": self.rate}


def probe_items(settings: ProbeSettings, seed: int) -> list[MCQItem]:
    """`settings.items` questions of the evaluation suite, spread over its sources (seeded)."""
    if settings.suite is not None:
        path = Path(settings.suite)
    else:
        shared = shared_data_dir()
        path = shared / "eval" / SUITE_FILE_NAME if shared is not None else BUNDLED_SAMPLE
    suite = load_suite(path, sources=settings.sources)
    per_source = sample_per_source(suite, math.ceil(settings.items / len(suite)), seed)
    # Round-robin over sources, so a short probe still sees every kind of question.
    rounds = [[items[i] for items in per_source.values() if i < len(items)]
              for i in range(max(map(len, per_source.values())))]
    return [item for batch in rounds for item in batch][: settings.items]


def format_probe(model: Any, tokenizer: Any, items: list[MCQItem], max_new_tokens: int,
                 batch_size: int = 16) -> ProbeResult:
    import torch

    policy = BudgetPolicy.from_preset("no-think")  # the chat prompt, no thinking marker
    prompts = [render_prompt(tokenizer, item.question, item.options, policy) for item in items]
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"  # training pads on the right
    training = model.training
    model.eval()
    replies = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                        stop_strings=[ANSWER_MARKER], tokenizer=tokenizer,
                                        pad_token_id=tokenizer.pad_token_id)
            replies += [_reply(tokenizer, ids[batch["input_ids"].shape[1]:]) for ids in output]
    finally:
        tokenizer.padding_side = padding_side
        model.train(training)
    return ProbeResult(len(items), sum(map(follows_m1_format, replies)), replies)


def _reply(tokenizer: Any, ids: Any) -> str:
    """The generated text up to its end-of-turn, without the padding of finished replies."""
    text = tokenizer.decode(ids, skip_special_tokens=False)
    return text.split(tokenizer.pad_token)[0].split(tokenizer.eos_token)[0]
