"""Reading an answer on a probe's side branch (early exit): from the option letters' next-token
probabilities, or from a short greedy trial answer. Every backend reads its own numbers (a full
softmax, vLLM's top logprobs, a server's `top_logprobs`) and hands them here, so the rule that
turns them into an answer and a probability exists once. The same read at the forced answer,
once thinking has ended, is the answer's probability for calibration (`answer_probability`).

    reader = LetterReader(tokenizer, ("A", "B", "C", "D"))
    read = reader.from_ids({tok_id: prob, ...})   # LetterRead(answer, probability, outside, letters)
    answer, probability = read_trial(" B. Because…", [0.9, 0.7], ("A", "B", "C", "D"))
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Top logprobs asked of engines and servers for a letter probe: enough to hold every option
# letter's spellings whenever they carry real mass (vLLM's default cap is 20).
TOP_LOGPROBS = 20


@dataclass(frozen=True)
class LetterRead:
    """What the option letters' next-token probabilities say.

    `letters` is every letter's share of the letters' mass (they sum to 1), `probability` the top
    letter's share; both None when no letter has any mass (`outside` is then all of it).
    """

    answer: str | None
    probability: float | None
    outside: float
    letters: dict[str, float] | None


class LetterReader:
    """Turns a next-token distribution into a `LetterRead` (letter, shares, mass elsewhere).

    A letter can come as several tokens ("A", " A"): their probabilities are summed, then the
    letters are renormalised among themselves; what the distribution puts on other tokens is
    reported as `outside`, so a probe that the model answers with something else is visible.
    """

    def __init__(self, tokenizer: Any, letters: Sequence[str]):
        self.letters = tuple(letters)
        self.ids: dict[int, str] = {}
        for letter in self.letters:
            for spelling in (letter, " " + letter):
                ids = tokenizer.encode(spelling, add_special_tokens=False)
                if len(ids) == 1:
                    self.ids.setdefault(ids[0], letter)

    def from_ids(self, probs: Mapping[int, float]) -> LetterRead:
        mass = dict.fromkeys(self.letters, 0.0)
        for token, prob in probs.items():
            if token in self.ids:
                mass[self.ids[token]] += prob
        return _share(mass)


def read_letter_strings(probs: Mapping[str, float], letters: Sequence[str]) -> LetterRead:
    """The same read from a server's `top_logprobs` (token text → probability)."""
    mass = dict.fromkeys(letters, 0.0)
    for token, prob in probs.items():
        letter = token.strip().lstrip("Ġ▁")
        if letter in mass:
            mass[letter] += prob
    return _share(mass)


def _share(mass: dict[str, float]) -> LetterRead:
    total = sum(mass.values())
    outside = max(0.0, 1.0 - total)
    if total <= 0:
        return LetterRead(None, None, outside, None)
    shares = {letter: value / total for letter, value in mass.items()}
    # Ties go to the earlier letter, so the read never depends on dict order of the engine's output.
    best = max(shares, key=lambda letter: (shares[letter], -list(shares).index(letter)))
    return LetterRead(best, shares[best], outside, shares)


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def read_trial(text: str, token_probs: Sequence[float] | None, letters: Sequence[str] | None) -> tuple[str | None, float | None]:
    """A trial answer and its confidence: DEER's mean token probability (None when not given).

    With option letters, the answer is the first option letter standing alone (a boxed one first);
    otherwise the boxed text or the first line, lower-cased and without trailing punctuation, so
    "B." and "b" or "Aspirin." and "aspirin" agree.
    """
    probability = statistics.fmean(token_probs) if token_probs else None
    boxed = _BOXED.search(text)
    if letters:
        pattern = "|".join(re.escape(letter) for letter in letters)
        found = re.search(rf"(?<![A-Za-z])({pattern})(?![A-Za-z])", boxed.group(1) if boxed else text)
        return (found.group(1) if found else None), probability
    answer = (boxed.group(1) if boxed else text.strip().split("\n", 1)[0]).strip().lower().rstrip(".,;:!? ")
    return (answer or None), probability
