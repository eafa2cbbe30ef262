"""Which option letter does a model's reply choose? Two named cascades, and the rule that decided.

    options = {"A": "Liver", "B": "Kidney"}
    extract_answer("... so \\boxed{B}", options)          # Extraction("B", "boxed_letter"), strict
    extract_answer("Based on the biopsy...", options)      # Extraction(None, "no_answer")
    score_reply("The answer is B.", options, "B", mode="reference")  # ScoredReply("B", "answer_is", True)

Every result carries a short, stable rule name (`RULES` describes each), so a report can say how
many answers came from a box, how many from a guess, and how many were not answers at all.

`reference` — the paper's evaluation grader, kept so that our numbers can be compared with the
    paper's. It reproduces UCSC-VLAA/m1 `src/eval/score.py` with `extract_format.py` (read for the
    facts below; none of its code is reused), whose letter matcher comes from HuatuoGPT-o1's
    evaluation. An independent run of that grader beside this mode agreed on 99.93 % of 6,000
    generated replies (SPEC §6). In order:
      0. The extracted answer: the content of the last `\\boxed{...}` (else `\\fbox`), braces
         matched, with a `\\text{...}` that spans all of it unwrapped and, when it holds "=", only
         what follows the last "="; the whole reply when there is no box or its braces never close.
      1. `boxed_letter` / `boxed_text` (`standalone_letter` / `option_text` for an unboxed reply):
         the extracted answer, compared ignoring case and unstripped, is one character naming an
         option letter, an option's text, or "X. option text".
      2. Otherwise the letter matcher runs on the extracted answer (the box's content when there
         was a box, not the whole reply):
         `answer_is`: the last `answer is X` (lower-case "answer is", then optional whitespace, then
         a capital A-N, with no check of what follows: "the answer is Hypertension" gives H).
      3. `standalone_letter`: the last capital letter among the first len(options) of A-N that stands
         between non-word characters (or CJK, or the ends of the text), except "A " (the article).
      4. `option_text`: the option whose lower-cased text occurs last in the lower-cased reply (plain
         substring search, so "no" is found inside "not"; a tie goes to the earlier option).
      5. `most_similar`: the option whose text is most similar to the whole reply (difflib ratio,
         a tie goes to the later option). Always returns a letter, so unparseable replies, and
         empty ones, score at chance. (The paper's runner dropped empty replies from its results
         altogether; here every item is scored.)
    Steps 2-5 run on the text after the last "## Final Response\\n\\n" when there is one (a
    HuatuoGPT-o1 convention the matcher kept). Letters are upper-case only; with more than 14
    options, letters after N can only come from step 1. A letter that is not an option (step 2's
    H) is kept as the extraction and scored wrong. Step 1 asks about the gold option first, so
    `score_reply` can differ from `extract_answer` + comparison in rare cases (see
    `_score_reference`); HuatuoGPT-o1's better-of-first-and-last-match trick is not used, by the
    paper either. One difference is kept on purpose: an option whose text holds a line break is
    read whole here, where the published grader re-parsed the options from the prompt's lines
    and lost it (a few MedXpertQA tables).

`notebook` (a grader only: `score_reply(..., mode="notebook")`) — the grader of the paper's
    curation notebooks (`filtering_qwen_correct.ipynb`, `filtering_r1_wrong.ipynb`), which decided
    the difficulty and teacher-correct filters. Same extracted answer; correct when it equals the
    answer's text (stripped, ignoring case) or when its first character is the answer letter in
    either case, so an unboxed "Based on..." counts as B (rule `first_char`). There is no letter
    matcher. Offered to reproduce the paper's filter funnel (`difficulty.grader`,
    `verify.mode` in the curation configs), never for evaluation.

`strict` — never guesses; a reply with no recognisable answer is "no answer" (counted wrong).
    The reply is first cut to its answer section, the text after the last `<|im_start|>answer`,
    `</think>` or `## Final Response` (the whole reply when there is none). LaTeX `\\text{}`,
    `\\textbf{}`, `\\mathrm{}` (and similar) are unwrapped everywhere. In order, on that section:
      1. `boxed_letter` / `boxed_text`: the last `\\boxed{...}` (skipped when unbalanced, i.e.
         truncated; earlier boxes are never used) holds a letter form ("C", "(C)", "C.", "c",
         "Option C", "C. text") or exactly one option's text (equal after normalising spaces,
         markup and end punctuation, or the only option named in it).
      2. `final_answer` / `answer_is`: the last explicit statement that names an option: "Final
         Answer: C. Kidney", "The answer is (C)", "Answer: C", "**Answer:** C", "the correct option
         is C", "Option C is correct", "答案是C", "答案：C", "故选C"; the statement may name the
         option's text instead. The option must follow on the same line (only a "Final Answer"
         heading may have it on a later line), so a restated stem such as "The drug of choice
         is:" followed by the option list is not an answer.
      3. `bold_letter`: the last markdown-bold letter, `**C**`, `**(C)**`, `**C. Kidney**`.
      4. `standalone_letter`: the whole answer is one line that is a letter form ("C", "(c)", "C.
         Kidney").
      5. `option_text`: exactly one option's text occurs, as whole words, in the answer section, or
         in the whole reply when it has no section and is a single line (a longer reply must be
         exactly an option's text); a text found only inside a longer option's text ("kidney" in
         "kidney stone") does not count.
    Option texts are compared ignoring case, except that case decides between options whose texts
    differ only in case (genotypes such as "Bb × Bb" and "bb × Bb" in MMLU-Pro). A bare letter is a
    letter even where an option's text is a letter (MedQA has options "B", "C", "D", "E");
    otherwise an option's exact text wins over reading its start as a letter ("b- 2
    microglobulin", "B-cells"). Identical option texts (a few MedMCQA items) cannot be told
    apart by text, so naming one is no answer.
    When the reply had an answer section and none of these fired, steps 1-3 are tried once more on
    the whole reply (the thinking may end with "so the answer is C" before a truncated answer).
    A letter is never taken from inside a word ("Based on..." is not B); an "A" followed by a
    lower-case word is read as the article unless the word is a conjunction such as "because".
    Letters must be options. When a statement's letter and its text disagree ("C. <text of option
    B>") the result is `conflict`; an empty reply is `empty`; anything else is `no_answer`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

MODES = ("reference", "strict")
# Graders judge a reply against the gold letter: the two extraction modes, and the curation
# notebooks' gold-dependent grader, which extracts nothing on its own.
GRADERS = (*MODES, "notebook")

RULES: dict[str, str] = {
    "boxed_letter": "the last \\boxed{} holds an option letter (C, (C), C. text)",
    "boxed_text": "the last \\boxed{} holds an option's text",
    "final_answer": "strict: a 'Final Answer: C' statement",
    "answer_is": "an explicit statement: 'the answer is C', 'Answer: C', '答案是C'",
    "bold_letter": "strict: a markdown-bold option letter, **C**",
    "standalone_letter": "reference: the last option letter standing alone; "
    "strict: the whole answer is one letter form",
    "option_text": "reference: the option whose text occurs last; "
    "strict: exactly one option's text named in the answer",
    "most_similar": "reference: the option most similar to the whole reply (a guess)",
    "first_char": "notebook: the answer's first character is taken as its letter ('Based on...' = B)",
    "conflict": "strict: the letter and the option text named disagree (no answer)",
    "empty": "strict: the reply is empty (no answer)",
    "no_answer": "strict: no recognisable answer; notebook: the first character names no option (no answer)",
}
NO_ANSWER_RULES = frozenset({"conflict", "empty", "no_answer"})

ANSWER_MARKERS = ("<|im_start|>answer", "</think>", "## Final Response")
HUATUO_FINAL_RESPONSE = "## Final Response\n\n"


@dataclass(frozen=True, slots=True)
class Extraction:
    """The option letter a reply chose (None: no answer) and the rule that decided it."""

    letter: str | None
    rule: str

    @property
    def answered(self) -> bool:
        return self.letter is not None


@dataclass(frozen=True, slots=True)
class ScoredReply:
    """An extraction judged against the answer letter."""

    letter: str | None
    rule: str
    correct: bool

    def to_dict(self) -> dict[str, str | bool | None]:
        return {"letter": self.letter, "rule": self.rule, "correct": self.correct}


def extract_answer(reply: str, options: Mapping[str, str], mode: str = "strict") -> Extraction:
    """The letter `reply` chooses among `options` (letter -> text), by the named cascade."""
    if mode == "strict":
        return _strict(reply or "", _Options(options))
    if mode == "reference":
        return _reference(reply or "", options)
    raise ValueError(f"unknown scoring mode {mode!r}; valid modes: {', '.join(MODES)}")


def score_reply(reply: str, options: Mapping[str, str], answer_idx: str, mode: str = "strict") -> ScoredReply:
    """Judge the reply against `answer_idx` with a grader of `GRADERS`.

    `strict` and `reference` extract a letter and compare it (reference as the paper's evaluation
    grader compares, see `_score_reference`); `notebook` is the curation notebooks' grader,
    which needs the gold answer to decide anything.
    """
    if answer_idx not in options:
        raise ValueError(f"answer letter {answer_idx!r} is not one of the options {', '.join(options)}")
    reply = reply or ""
    if mode == "reference":
        return _score_reference(reply, options, answer_idx)
    if mode == "notebook":
        return _score_notebook(reply, options, answer_idx)
    if mode != "strict":
        raise ValueError(f"unknown grader {mode!r}; valid graders: {', '.join(GRADERS)}")
    found = _strict(reply, _Options(options))
    return ScoredReply(found.letter, found.rule, found.letter == answer_idx)


def score_all(reply: str, options: Mapping[str, str], answer_idx: str) -> dict[str, ScoredReply]:
    """The verdict of every grader of `GRADERS`, for stages that keep them side by side."""
    return {grader: score_reply(reply, options, answer_idx, grader) for grader in GRADERS}


# ---------------------------------------------------------------------------------------------
# Shared pieces

_LATEX_WRAPPER = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|mathrm|mathbf|mathit|mathsf|mbox|operatorname)"
    r"\s*\{([^{}]*)\}"
)


def _unwrap(text: str, pattern: re.Pattern[str] = _LATEX_WRAPPER) -> str:
    """Replace `\\text{X}` (and its siblings) by X, innermost first."""
    while True:
        unwrapped = pattern.sub(r"\1", text)
        if unwrapped == text:
            return text
        text = unwrapped


def _last_box(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces matched); None when there is none or when
    it is unbalanced, i.e. the reply was cut off inside it. Earlier boxes are never used."""
    end = len(text)
    while True:
        start = text.rfind("\\boxed", 0, end)
        if start < 0:
            return None
        end = start
        i = start + len("\\boxed")
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            break  # else a `\\boxed` without a brace group, in prose: look further back
    end = _closing_brace(text, i)
    return None if end is None else text[i + 1 : end]


def _closing_brace(text: str, start: int) -> int | None:
    """Where the braces opened from `start` on are balanced again (None: never, the text was cut)."""
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return None


# ---------------------------------------------------------------------------------------------
# Reference: the paper's cascade

_REF_ANSWER_IS = re.compile(r"answer is\s*([A-N])")
_REF_LETTERS = "ABCDEFGHIJKLMN"


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def _is_word(ch: str) -> bool:  # what `\w` matches in a str pattern
    return ch.isalnum() or ch == "_"


def _ref_last_answer_is(text: str) -> str | None:
    """The letter of the last `answer is\\s*[A-N]`, searched backwards from the end."""
    at = text.rfind("answer is")
    while at >= 0:
        match = _REF_ANSWER_IS.match(text, at)
        if match is not None:
            return match.group(1)
        at = text.rfind("answer is", 0, at)
    return None


def _ref_last_standalone_letter(text: str, n_options: int) -> str | None:
    """The last match of the original's `(CJK|\\W|^)(?![aA] )([letters])(CJK|\\W|$)`.

    A letter counts when its neighbours are non-word characters (or CJK, or the text's ends),
    except "A " (the article). The original pattern also consumes both neighbours, so a letter
    whose left neighbour was the right neighbour of the previous match does not count ("A,B"
    yields A only). Such a block can only come from a letter exactly two characters earlier, so
    the last letter is blocked exactly when the chain of letters at distance two that ends at it
    has an odd number of predecessors; then the one before it is the last match. Searching
    backwards like this avoids running a pattern that cannot skip ahead over a long reply.
    """
    letters = _REF_LETTERS[:n_options]

    def stands_alone(i: int) -> bool:
        if i < 0 or text[i] not in letters:
            return False
        if i > 0 and _is_word(text[i - 1]) and not _is_cjk(text[i - 1]):
            return False
        after = text[i + 1 : i + 2]
        if after and _is_word(after) and not _is_cjk(after):
            return False
        return not (after == " " and text[i] == "A")

    last = -1
    for letter in letters:
        at = text.rfind(letter, last + 1)
        while at > last and not stands_alone(at):
            at = text.rfind(letter, last + 1, at)
        last = max(last, at)
    if last < 0:
        return None
    chain = 0
    while stands_alone(last - 2 * (chain + 1)):
        chain += 1
    return text[last] if chain % 2 == 0 else text[last - 2]


def _paper_last_box(text: str) -> str:
    """The published graders' `last_boxed_only_string`: from the last `\\boxed` (else `\\fbox`) to
    its matching brace; the whole text when there is none or the braces never close."""
    at = text.rfind("\\boxed")
    if at < 0:
        at = text.rfind("\\fbox")
    end = None if at < 0 else _closing_brace(text, at)
    return text if end is None else text[at : end + 1]


def _paper_unwrap(text: str, command: str) -> tuple[str, bool]:
    """`\\command{X}` spanning the whole text -> X (after its last "=", if any), and whether it did."""
    head = command + "{"
    if not (text.startswith(head) and text.endswith("}")):
        return text, False
    inner = text[len(head) : -1]
    return (inner.split("=")[-1].lstrip(" ") if "=" in inner else inner), True


def _paper_extracted(reply: str) -> tuple[str, bool]:
    """What both published graders judge, as their `extract_answer` builds it: the content of the
    last box with a whole-content `\\text{}` unwrapped, or else the whole reply; and whether a box
    was found. Nothing is stripped or lower-cased here; the graders do that when comparing."""
    extracted, boxed = _paper_unwrap(_paper_last_box(reply), "\\boxed")
    return _paper_unwrap(_paper_last_box(extracted), "\\text")[0], boxed


def _reference_direct(extracted: str, boxed: bool, options: Mapping[str, str]) -> list[Extraction]:
    """Every option the extracted answer names outright, as the evaluation grader compares (ignoring
    case, nothing stripped): a one-character letter, an option's text, or "X. text"."""
    lowered = extracted.lower()
    named = []
    if len(extracted) == 1 and extracted.upper() in options:
        named.append(Extraction(extracted.upper(), "boxed_letter" if boxed else "standalone_letter"))
    for letter, text in options.items():
        if lowered in (text.lower(), f"{letter}. {text}".lower()):
            named.append(Extraction(letter, "boxed_text" if boxed else "option_text"))
    return named


def _reference(reply: str, options: Mapping[str, str]) -> Extraction:
    extracted, boxed = _paper_extracted(reply)
    named = _reference_direct(extracted, boxed, options)
    return named[0] if named else _reference_matcher(extracted, options)


def _score_reference(reply: str, options: Mapping[str, str], answer_idx: str) -> ScoredReply:
    """The evaluation grader's verdict. It asks whether the extracted answer names the GOLD option
    before it runs the letter matcher, so it is not quite a gold-blind extraction plus a
    comparison: a box naming one option's text while the matcher reads another's letter out of it
    ("Vitamin B" for gold B = "Vitamin C") counts as correct. Reproduced as published."""
    extracted, boxed = _paper_extracted(reply)
    for found in _reference_direct(extracted, boxed, options):
        if found.letter == answer_idx:
            return ScoredReply(found.letter, found.rule, True)
    found = _reference_matcher(extracted, options)
    return ScoredReply(found.letter, found.rule, found.letter == answer_idx)


def _score_notebook(reply: str, options: Mapping[str, str], answer_idx: str) -> ScoredReply:
    """The curation notebooks' grader (difficulty and teacher-correct filters), defect included:
    correct when the extracted answer equals the answer text (stripped, ignoring case) or when its
    first character is the answer letter ("Based on..." is B). There is no letter matcher; a
    wrong verdict keeps the first character as the letter when it names an option."""
    extracted, boxed = _paper_extracted(reply)
    if extracted.strip().lower() == options[answer_idx].strip().lower():
        return ScoredReply(answer_idx, "boxed_text" if boxed else "option_text", True)
    first = extracted[:1].strip().upper()
    if first == answer_idx:
        return ScoredReply(answer_idx, "first_char", True)
    return ScoredReply(first if first in options else None, "first_char" if first in options else "no_answer",
                       False)


def _reference_matcher(reply: str, options: Mapping[str, str]) -> Extraction:
    """HuatuoGPT-o1's letter matcher, last match (see the module docstring for each step)."""
    text = reply
    if HUATUO_FINAL_RESPONSE in text:
        text = text.split(HUATUO_FINAL_RESPONSE)[-1]

    letter = _ref_last_answer_is(text)
    if letter is not None:
        return Extraction(letter, "answer_is")

    letter = _ref_last_standalone_letter(text, len(options))
    if letter is not None:
        return Extraction(letter, "standalone_letter")

    lowered = text.lower()
    best_letter, best_at = None, -1
    for letter, option in options.items():
        at = lowered.rfind(option.lower())
        if at > best_at:  # strictly later: a tie keeps the earlier option
            best_letter, best_at = letter, at
    if best_letter is not None:
        return Extraction(best_letter, "option_text")

    return Extraction(_most_similar(lowered, options), "most_similar")


def _most_similar(lowered_reply: str, options: Mapping[str, str]) -> str:
    """The option whose lower-cased text has the highest difflib ratio to the reply; ties -> later.

    The reply is indexed once, and an option whose cheap upper bounds are already below the best
    ratio is skipped; the result is identical to computing every ratio.
    """
    matcher = difflib.SequenceMatcher(None)
    matcher.set_seq2(lowered_reply)
    best_letter, best = None, 0.0
    for letter, option in options.items():
        matcher.set_seq1(option.lower())
        if matcher.real_quick_ratio() < best or matcher.quick_ratio() < best:
            continue
        ratio = matcher.ratio()
        if ratio >= best:
            best_letter, best = letter, ratio
    return best_letter if best_letter is not None else list(options)[-1]


# ---------------------------------------------------------------------------------------------
# Strict: explicit answers only

_EDGE_NOISE = " \t\r\n*_`$\"'“”‘’#>"
_END_PUNCT = ".。!！;；,，:："
_SEPARATOR = r"(?:[.):：,]|[-–—](?=\s))"  # a dash only before a space: "B-cells" is not B
# A whole letter answer: "C", "(C)", "[c]", "C.", "C)", "Option C", "C. Kidney", "(C) Kidney". A bare
# letter must be followed by a separator or nothing, so "A patient..." is not a letter form.
_LETTER_FORM = re.compile(
    r"(?:(?:option|choice)\s*)?"
    rf"(?:[(\[](?P<bracketed>[A-Za-z])[)\]]|(?P<bare>[A-Za-z])(?=$|\s*{_SEPARATOR}))"
    rf"(?:\s*{_SEPARATOR}?\s*(?P<rest>.*))?",
    re.S | re.I,
)
# Answer statements are found from anchor words searched for with `str.find` in the lower-cased
# reply (much faster than a pattern over a long reply), then the words around each anchor are
# checked, the last anchor first: "final answer", "the answer is", "Answer:", "the correct option
# is", "option C is correct", "答案是", "答案：", "故选".
_ANCHORS = ("answer", "option", "choice", "答案", "选")
_FINAL_BEFORE = re.compile(r"final\s+$", re.I)
_QUALIFIER_BEFORE = re.compile(r"(?:correct|best|right|most\s+likely|most\s+appropriate)\s+$", re.I)
_IS_AFTER = re.compile(r"[ \t*_]*(?:is\b|would\s+be\b|should\s+be\b|:|：)", re.I)
_FINAL_AFTER = re.compile(r"[ \t*_]*(?:is\b|:|：)?", re.I)
_LETTER_IS_CORRECT = re.compile(r"[ \t]*[(\[]?([A-Z])[)\]]?\s+is\s+(?:the\s+)?(?:correct|right|best)\b", re.I)
_ZH_ANSWER_AFTER = re.compile(r"\s*(?:是|为|應為|应为|:|：)")
_ZH_CHOOSE_BEFORE = ("故", "应", "因此", "所以")
# What may follow an answer statement before the letter, on the same line: markup, quotes, "option".
# (A question stem restated in the thinking, "The drug of choice is:" followed by the option list,
# must not read as an answer, so the letter may not be on a later line.)
_AFTER_STATEMENT = re.compile(
    r"[ \t*_$\"'“‘]*(?:(?:option|choice)[ \t]+)?[ \t*_$\"'“‘]*"
    r"(?P<open>[(\[]?)(?P<letter>[A-Za-z])(?![A-Za-z0-9]|\.[A-Za-z]|[-–—]\S)(?P<close>[)\]]?)",
    re.I,
)
_TEXT_AFTER_LETTER = re.compile(rf"[*_$\"'”’]*(?:\s*{_SEPARATOR}|(?<=[)\]]))\s*([^\n]*)")
_REST_OF_LINE = re.compile(rf"[*_$\"'”’]*[ \t]*(?:{_SEPARATOR}[ \t]*)?([^\n]*)")
_HEADING_GAP = re.compile(r"[\s*_#]*")  # "Final Answer" may be a heading with the answer below
_ONLY_PUNCTUATION_AFTER = re.compile(r"[*_$\"'”’]*\s*(?:[.,;:!?)]|$)")
_NEXT_WORD = re.compile(r"[*_]*\s+([a-z]+)")
_CONJUNCTIONS = frozenset(
    "because since as which is was and or with for due given here seems appears would".split()
)
_BARE_LETTER = re.compile(r"[(\[]?([A-Za-z])[)\]]?")
_BOLD_LETTER = re.compile(r"\*\*\s*[(\[]?([A-Z])[)\]]?(?:\s*[.):：]\s*([^*\n]*?))?\s*\*\*")


def _normalise(text: str) -> str:
    """Compare-form of an answer text: spaces collapsed, markup and end punctuation stripped."""
    text = " ".join(text.replace("\\ ", " ").split()).strip(_EDGE_NOISE)
    return text.rstrip(_END_PUNCT + " ").strip(_EDGE_NOISE)


class _Options:
    """The options of one question, with compare-forms of their texts computed on first use.

    Texts are compared with their case first and without it only when that finds nothing, since
    case can be all that tells options apart (genotypes: "Bb × Bb" and "bb × Bb").
    """

    def __init__(self, options: Mapping[str, str]):
        self.raw = options

    @cached_property
    def forms(self) -> tuple[dict[str, str], dict[str, str]]:
        """(case-kept, case-folded) compare-forms of the non-empty option texts."""
        kept = {letter: _normalise(text) for letter, text in self.raw.items()}
        kept = {letter: form for letter, form in kept.items() if form}
        return kept, {letter: form.casefold() for letter, form in kept.items()}

    def letter_of(self, written: str) -> str | None:
        """The option letter written as `written` (either case), if it is an option."""
        letter = written.upper()
        return letter if letter in self.raw else None

    def equal_text(self, text: str) -> str | None:
        """The option whose text equals `text` (normalised), when exactly one does."""
        kept = _normalise(text)
        if not kept:
            return None
        for target, forms in zip((kept, kept.casefold()), self.forms):
            hits = [letter for letter, form in forms.items() if form == target]
            if hits:
                return hits[0] if len(hits) == 1 else None
        return None

    def named_text(self, text: str) -> str | None:
        """The one option whose text occurs as whole words in `text`; None when none or several do.

        Matching ignores case; only when every option found has the same text but for case
        (genotypes) does case decide. An occurrence inside an occurrence of a longer option
        ("kidney" inside "kidney stone") does not count.
        """
        kept = _normalise(text)
        if not kept:
            return None
        kept_forms, folded_forms = self.forms
        found = _named(kept.casefold(), folded_forms)
        if len(found) > 1 and len({folded_forms[letter] for letter in found}) == 1:
            found = _named(kept, {letter: kept_forms[letter] for letter in found})
        return found[0] if len(found) == 1 else None

    def conflicts(self, letter: str, text: str | None) -> bool:
        """True when `text`, written after `letter`, is exactly another option's text."""
        other = self.equal_text(text) if text else None
        return other is not None and other != letter


def _named(hay: str, forms: dict[str, str]) -> list[str]:
    """Letters of the options whose text occurs in `hay`, not only inside a longer option's."""
    spans = {}
    for letter, needle in forms.items():
        found = _word_occurrences(hay, needle)
        if found:
            spans[letter] = found
    if len(spans) > 1:
        everywhere = [span for found in spans.values() for span in found]
        return [
            letter for letter, found in spans.items()
            if any(not _inside_longer(span, everywhere) for span in found)
        ]
    return list(spans)


def _word_occurrences(hay: str, needle: str) -> list[tuple[int, int]]:
    """Where `needle` occurs in `hay` not as part of a longer word."""
    spans = []
    start = hay.find(needle)
    while start >= 0:
        end = start + len(needle)
        before_ok = start == 0 or not (hay[start - 1].isalnum() and needle[0].isalnum())
        after_ok = end == len(hay) or not (hay[end].isalnum() and needle[-1].isalnum())
        if before_ok and after_ok:
            spans.append((start, end))
        start = hay.find(needle, start + 1)
    return spans


def _inside_longer(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    start, end = span
    return any(s <= start and end <= e and e - s > end - start for s, e in others)


def _answer_section(text: str) -> str | None:
    """The text after the last answer marker, or None when the reply has none."""
    at, length = -1, 0
    for marker in ANSWER_MARKERS:
        found = text.rfind(marker)
        if found > at:
            at, length = found, len(marker)
    return None if at < 0 else text[at + length :]


def _strict(reply: str, options: _Options) -> Extraction:
    if not reply.strip():
        return Extraction(None, "empty")
    text = _unwrap(reply) if "\\" in reply else reply
    section = _answer_section(text)
    focus = text if section is None else section

    found = _strict_explicit(focus, options)
    if found is None:
        found = _strict_short(focus, options, is_section=section is not None)
    if found is None and section is not None:
        found = _strict_explicit(text, options)
    return found or Extraction(None, "no_answer")


def _strict_explicit(text: str, options: _Options) -> Extraction | None:
    """Box, then explicit statement, then bold letter; None when none names an option."""
    if "\\boxed" in text:
        box = _last_box(text)
        if box is not None:
            found = _read_box(box, options)
            if found is not None:
                return found
    found = _read_statements(text, options)
    if found is not None:
        return found
    if "**" in text:
        for match in reversed(list(_BOLD_LETTER.finditer(text))):
            letter = options.letter_of(match.group(1))
            if letter is not None:
                return _checked(letter, match.group(2), "bold_letter", options)
    return None


def _checked(letter: str, text: str | None, rule: str, options: _Options) -> Extraction:
    """`letter` by `rule`, unless the text written with it names a different option."""
    if options.conflicts(letter, text):
        return Extraction(None, "conflict")
    return Extraction(letter, rule)


def _read_letter_form(candidate: str, options: _Options) -> tuple[str, str | None] | None:
    match = _LETTER_FORM.fullmatch(candidate.strip(_EDGE_NOISE).rstrip(_END_PUNCT))
    if match is None:
        return None
    letter = options.letter_of(match.group("bracketed") or match.group("bare"))
    return None if letter is None else (letter, match.group("rest"))


def _bare_letter(candidate: str, options: _Options) -> str | None:
    """The option letter when `candidate` is nothing but a letter ("C", "(c)", "C."), else None."""
    match = _BARE_LETTER.fullmatch(candidate.strip(_EDGE_NOISE).rstrip(_END_PUNCT))
    return None if match is None else options.letter_of(match.group(1))


def _read_answer(
    candidate: str, options: _Options, letter_rule: str, text_rule: str
) -> Extraction | None:
    """A whole answer (a box's content, a one-line reply): a letter, or an option's text.

    A bare letter that is an option is that letter, even when some option's text is a letter too;
    otherwise an option's exact text wins over reading the start as a letter ("b- 2
    microglobulin" is a text, not B).
    """
    letter = _bare_letter(candidate, options)
    if letter is not None:
        return Extraction(letter, letter_rule)
    letter = options.equal_text(candidate)
    if letter is not None:
        return Extraction(letter, text_rule)
    form = _read_letter_form(candidate, options)
    return None if form is None else _checked(*form, letter_rule, options)


def _read_box(box: str, options: _Options) -> Extraction | None:
    found = _read_answer(box, options, "boxed_letter", "boxed_text")
    if found is not None:
        return found
    letter = options.named_text(box)
    return Extraction(letter, "boxed_text") if letter else None


def _read_statements(text: str, options: _Options) -> Extraction | None:
    """The last explicit answer statement that names an option."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer: keep positions exact
        lowered = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    anchors = []
    for word in _ANCHORS:
        at = lowered.find(word)
        while at >= 0:
            anchors.append((at, word))
            at = lowered.find(word, at + len(word))
    for at, word in sorted(anchors, reverse=True):
        head = _statement_head(text, lowered, at, word)
        if head is None:
            continue
        rule, start, named = head
        if named is not None:
            letter = options.letter_of(named)
            if letter is not None:
                return Extraction(letter, rule)
            continue
        line = _REST_OF_LINE.match(text, start).group(1)
        by_text = options.equal_text(line)
        if by_text is not None and _bare_letter(line, options) is None:
            return Extraction(by_text, rule)  # exactly an option's text, which may start like a letter
        found = _letter_after(text, start, options)
        if found is not None:
            return _checked(*found, rule, options)
        letter = options.named_text(line)
        if letter is not None:
            return Extraction(letter, rule)
    return None


def _statement_head(
    text: str, lowered: str, at: int, word: str
) -> tuple[str, int, str | None] | None:
    """(rule, where the answer starts, letter already named) when `word` at `at` opens a statement."""
    end = at + len(word)
    if word in ("option", "choice"):
        # Cheap test first: thinking mentions options constantly, statements about them need a
        # verb or a colon right after ("option C is correct", "the best option is C").
        near = lowered[end : end + 14]
        if " is" not in near and ":" not in near and "：" not in near and " be" not in near:
            return None
    if word == "答案":
        after = _ZH_ANSWER_AFTER.match(text, end)
        return ("answer_is", after.end(), None) if after else None
    if word == "选":
        if not text[max(0, at - 2) : at].endswith(_ZH_CHOOSE_BEFORE):
            return None
        return "answer_is", end + (text[end : end + 1] == "择"), None
    if (at > 0 and _is_word(text[at - 1])) or (end < len(text) and _is_word(text[end])):
        return None  # part of a longer word: "answers", "optional"
    named = _LETTER_IS_CORRECT.match(text, end)
    if named is not None:
        return "answer_is", named.end(), named.group(1)
    window = text[max(0, at - 24) : at]
    if word == "answer" and _FINAL_BEFORE.search(window):
        return "final_answer", _HEADING_GAP.match(text, _FINAL_AFTER.match(text, end).end()).end(), None
    if word != "answer" and not _QUALIFIER_BEFORE.search(window):
        return None  # a bare "option"/"choice" ("the drug of choice is") is not a statement
    after = _IS_AFTER.match(text, end)
    return ("answer_is", after.end(), None) if after else None


def _letter_after(text: str, pos: int, options: _Options) -> tuple[str, str | None] | None:
    """The option letter right after an answer statement, and any text written after it."""
    match = _AFTER_STATEMENT.match(text, pos)
    if match is None:
        return None
    written = match.group("letter")
    letter = options.letter_of(written)
    if letter is None:
        return None
    after = match.end()
    if not (match.group("open") or match.group("close")) and written in "AaIi":
        # "the answer is a ..." / "the answer is A patient ...": an article or a pronoun, unless
        # only punctuation follows, or (for a capital) a conjunction does ("A because ...").
        if written.islower():
            if not _ONLY_PUNCTUATION_AFTER.match(text, after):
                return None
        else:
            word = _NEXT_WORD.match(text, after)
            if word is not None and word.group(1) not in _CONJUNCTIONS:
                return None
    rest = _TEXT_AFTER_LETTER.match(text, after)
    return letter, rest.group(1) if rest else None


def _strict_short(focus: str, options: _Options, *, is_section: bool) -> Extraction | None:
    """A one-line letter answer, or a single option named in the final answer text."""
    answer = focus.strip(_EDGE_NOISE)
    if answer and "\n" not in answer:
        found = _read_answer(answer, options, "standalone_letter", "option_text")
        if found is not None:
            return found
    if not is_section and "\n" in answer:
        # Reasoning that mentions an option is not an answer; an option's exact (multi-line) text is.
        letter = options.equal_text(answer)
        return Extraction(letter, "option_text") if letter else None
    letter = options.named_text(focus)
    return Extraction(letter, "option_text") if letter else None
