"""Budget policy: how long a model may think, how it is made to think longer, how it answers.

    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=1024, num_extensions=2)
    policy = BudgetPolicy.from_preset("think-tags")          # <think> … </think> models (R1-distill, Qwen3)
    policy = BudgetPolicy.from_preset("no-think")            # plain answers, for baselines
    policy = BudgetPolicy.from_preset("m1", early_exit={"method": "confidence", "threshold": 0.9})
    policy = BudgetPolicy.from_preset("m1", answer_probability=True)  # the answer letter's probability

The defaults follow SPEC §5 and the paper: the prompt ends with `<|im_start|>think\\n`; thinking
stops on `<|im_start|>` or `<|im_end|>`; a natural stop is followed by `<|im_start|>answer`, a
budget hit by `\\n<|im_start|>answer\\nFinal Answer:`; the answer gets at most 1,024 tokens;
decoding is greedy. `num_extensions` ("Wait" rounds, K) and `min_thinking_tokens` are budget
forcing: when thinking stops on its own, the extension string is appended and thinking goes on
within what is left of the budget.

`early_exit` makes the budget adaptive (SPEC §8: DEER, Dynasor): while the model thinks, the
answer is probed on a side branch every `every` thinking tokens and right after transition strings,
and thinking ends as soon as the answer has settled. The cap B and the minimum keep their meaning.

`answer_probability` reads, once thinking has ended, the option letters' probabilities at the
forced-answer prefix (the early-exit probe's read, at the end): how sure the model is of the answer
it is about to give, for calibration and abstention. It never changes what is generated.
`answer_logprobs` (k) records, for each generated answer token, its log-probability under the model
(before temperature and top-p, as vLLM's raw logprobs) and the k most likely tokens at that step;
it never changes what is generated either.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PresetName = Literal["m1", "think-tags", "no-think"]
EarlyExitMethod = Literal["confidence", "consistency"]


# Temperatures below this decode greedily, as vLLM does: dividing logits by 1e-45 overflows to inf
# and softmax to NaN, and no sampler can tell such a temperature from 0 anyway.
GREEDY_BELOW = 1e-5


class Sampling(BaseModel):
    """Decoding settings; temperature 0 (or below `GREEDY_BELOW`) is greedy (the paper's setting)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = 0

    @field_validator("temperature")
    @classmethod
    def _tiny_is_greedy(cls, temperature: float) -> float:
        return 0.0 if temperature < GREEDY_BELOW else temperature


DEFAULT_TRANSITIONS = ("\n\n", "Alternatively")


class EarlyExit(BaseModel):
    """When to look at the answer while the model thinks, and when it has settled.

    A probe appends the preset's forced-answer prefix on a side branch (the thinking goes on as if
    it had never happened) and reads the answer: the option letters' next-token probabilities for
    multiple-choice prompts, a short greedy trial answer otherwise (its mean token probability).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: EarlyExitMethod = Field(
        "confidence", description="confidence: the probe's answer has probability >= threshold; "
        "consistency: the last `agree` probes gave the same answer")
    threshold: float = Field(0.95, gt=0.0, le=1.0, description="confidence needed to exit (DEER's code uses 0.95)")
    agree: int = Field(2, ge=2, description="consistency: how many probes in a row must agree")
    every: int | None = Field(64, ge=1, description="probe every this many thinking tokens (None: only at transitions)")
    transitions: tuple[str, ...] | None = Field(
        None, description="probe right after these strings in the thinking; default: the extension string, "
        "a blank line and 'Alternatively'; () for none")
    min_tokens: int = Field(0, ge=0, description="no probe before this many thinking tokens")
    probe_tokens: int = Field(16, ge=1, description="free-form prompts: length of the trial answer")
    observe: bool = Field(False, description="probe and record the answer trajectory, but never exit")

    @model_validator(mode="after")
    def _has_a_trigger(self) -> EarlyExit:
        if self.every is None and self.transitions == ():
            raise ValueError("early_exit needs a time to probe: set `every` or `transitions`")
        return self


class BudgetPolicy(BaseModel):
    """Everything that decides how one sample thinks and answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: PresetName = "m1"
    thinking: bool = True
    think_start: str = "<|im_start|>think\n"
    think_stops: tuple[str, ...] = ("<|im_start|>", "<|im_end|>")
    answer_after_stop: str = "<|im_start|>answer"
    answer_after_budget: str = "\n<|im_start|>answer\nFinal Answer:"
    answer_stops: tuple[str, ...] = ("<|im_end|>",)
    max_thinking_tokens: int = Field(8192, gt=0, description="B: hard per-sample cap on thinking tokens")
    num_extensions: int = Field(0, ge=0, description="K: how many times thinking may be extended")
    extension_str: str = Field("Wait", min_length=1)
    min_thinking_tokens: int | None = Field(None, ge=0)
    max_answer_tokens: int = Field(1024, gt=0)
    max_total_tokens: int | None = Field(
        None, gt=0, description="thinking + answer tokens generated together (OpenAI's max_completion_tokens, "
        "Anthropic's max_tokens): thinking stops at whichever of B and this comes first, and the answer gets "
        "what is left, up to max_answer_tokens (nothing when thinking used it all)")
    sampling: Sampling = Field(default_factory=Sampling)
    early_exit: EarlyExit | None = None
    answer_probability: bool = Field(
        False, description="once thinking ends, read the option letters' probabilities at the forced answer "
        "(calibration: GenerationRecord.answer_read); only prompts with option letters and presets that think")
    answer_logprobs: int | None = Field(
        None, ge=0, le=20, description="record each generated answer token's log-probability and the top this many "
        "alternatives (GenerationRecord.answer_logprobs; 0: the token's own only); None: off. Changes no token")

    @model_validator(mode="after")
    def _minimum_fits_budget(self) -> BudgetPolicy:
        if self.min_thinking_tokens is not None and self.min_thinking_tokens > self.thinking_cap:
            cap = "max_thinking_tokens" if self.thinking_cap == self.max_thinking_tokens else "max_total_tokens"
            raise ValueError(f"min_thinking_tokens ({self.min_thinking_tokens}) exceeds {cap} ({self.thinking_cap})")
        return self

    @model_validator(mode="after")
    def _probes_need_an_answer_prefix(self) -> BudgetPolicy:
        if self.early_exit is not None and not (self.thinking and self.answer_after_budget):
            raise ValueError(f"early_exit probes the answer with the forced-answer prefix (answer_after_budget), "
                             f"and preset {self.preset!r} has none: use a thinking preset (m1, think-tags)")
        return self

    @model_validator(mode="after")
    def _transitions_do_not_cut_stops(self) -> BudgetPolicy:
        # A round that paused inside a stop string would never see that stop complete.
        for transition in self.transitions:
            for stop in self.think_stops:
                if transition in stop:
                    raise ValueError(f"early_exit.transitions: {transition!r} is part of the thinking stop {stop!r}; "
                                     f"a pause there would hide the stop")
        return self

    @property
    def thinking_cap(self) -> int:
        """The most thinking tokens a sample may generate: B, or the total cap when that is lower."""
        if self.max_total_tokens is None:
            return self.max_thinking_tokens
        return min(self.max_thinking_tokens, self.max_total_tokens)

    def answer_room(self, thinking_tokens: int) -> int:
        """Answer tokens allowed after `thinking_tokens` of thinking (0: the total cap is spent)."""
        if self.max_total_tokens is None:
            return self.max_answer_tokens
        return max(0, min(self.max_answer_tokens, self.max_total_tokens - thinking_tokens))

    @property
    def transitions(self) -> tuple[str, ...]:
        """The strings after which early exit probes (none without early exit)."""
        if self.early_exit is None:
            return ()
        if self.early_exit.transitions is None:
            return (self.extension_str, *DEFAULT_TRANSITIONS)
        return self.early_exit.transitions

    @property
    def trial_tokens(self) -> int:
        """Length of a trial answer where letters cannot be read (a server without logprobs)."""
        return (self.early_exit or EarlyExit()).probe_tokens

    @property
    def first_probe_at(self) -> int:
        """Thinking tokens before which no probe runs: early exit never ends thinking below the minimum."""
        assert self.early_exit is not None
        return max(self.early_exit.min_tokens, self.min_thinking_tokens or 0)

    @classmethod
    def from_preset(cls, name: str, **overrides: object) -> BudgetPolicy:
        """A named preset with any field overridden (`max_thinking_tokens=`, `num_extensions=`, …)."""
        if name not in PRESETS:
            raise ValueError(f"unknown budget preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def wants_more_thinking(self, thinking_tokens: int) -> bool:
        """After a natural stop, would budget forcing like thinking to go on (if K allows)?

        Without a minimum, every one of the K extensions is used; with a minimum, thinking is
        extended only while it is shorter than the minimum.
        """
        if self.num_extensions == 0 or thinking_tokens >= self.thinking_cap:
            return False
        return self.min_thinking_tokens is None or thinking_tokens < self.min_thinking_tokens


PRESETS: dict[str, dict[str, object]] = {
    "m1": {"preset": "m1"},
    "think-tags": {
        "preset": "think-tags",
        "think_start": "<think>\n",
        "think_stops": ("</think>",),
        "answer_after_stop": "</think>\n\n",
        "answer_after_budget": "\n</think>\n\nFinal Answer:",
        "answer_stops": (),
    },
    "no-think": {
        "preset": "no-think",
        "thinking": False,
        "think_start": "",
        "think_stops": (),
        "answer_after_stop": "",
        "answer_after_budget": "",
    },
}
