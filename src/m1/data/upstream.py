"""Row converters for the official (upstream) releases of the benchmarks m1 evaluates and trains on.

    raw = medbullets_row("2", {"question": "...", "opa": "...", "answer_idx": "C", ...}, None)

Each converter turns one record of an upstream file, in the upstream's own field names, into a
`RawRow`; `m1.data.loaders` registers them as formats and detects which one a file holds. Checks
common to every format (stripping, answer equals its option, ...) happen later, in `m1.data.rows`.

- MedMCQA     `question`, `opa`..`opd`, `cop`; `cop` counts from 0 on the Hugging Face Hub
              (openlifescienceai/medmcqa) and from 1 in the original release (medmcqa/medmcqa)
- MMLU-Pro    `question`, `options` (a list), `answer` (letter), `answer_index` (TIGER-Lab/MMLU-Pro);
              "N/A" options that pad a row are dropped, as MMLU-Pro's own evaluation drops them,
              and the options after one move up a letter
- GPQA        CSV `Question`, `Correct Answer`, `Incorrect Answer 1`..`3` (idavidrein/gpqa); the
              options are shown in the order `gpqa_option_order` draws (below)
- MedBullets  `question`, `opa`..`ope`, `answer_idx`, `answer`, `explanation`, `link`
              (HanjieChen/ChallengeClinicalQA, as CSV or pandas JSON)
- MedXpertQA  `question` ending in "Answer Choices: (A) … (B) …", `options`, `label`
              (TsinghuaC3I/MedXpertQA Text); the embedded choices are removed once they are checked
              to list exactly `options` (else the row is an error), so options are not shown twice;
              rows with `images` (the MM subset) are excluded
- HLE         `question` ending in an "Answer Choices:" block of `A. …` lines, `answer` (the
              letter), `answer_type`, `image` (cais/hle); only text-only multiple-choice rows are
              items, the others are excluded and counted by reason
- PubMedQA    PQA-L keyed by PMID (`QUESTION`, `CONTEXTS`, `final_decision`; pubmedqa/pubmedqa),
              and the Hub's pqa_labeled rows (`pubid`, `context.contexts`); yes/no/maybe become
              options A/B/C and the question is written as the evaluation suite writes it
- HEAD-QA     the release's exam JSON (`exams.*.data[]`: `qtext`, `answers` [{aid, atext}], `ra`;
              aghie/head-qa), each question with its exam's name, category and year; and the Hub's
              rows (`data.Question`, `data.Options`, `data["Correct Option"]`)

A converter checks the type of every value it computes with and raises `RowFault` naming the
file's field (`context.contexts`, `answers[2].atext`); values it passes on as question, options or
answer it names in `RawRow.fields` where the file calls them otherwise, so that `m1.data.rows`
names the file's field too.

GPQA stores the correct answer first, so its options need an order. `gpqa_option_order` shuffles
them with a generator seeded by (GPQA_OPTION_SEED, the row's `Record ID`, or the SHA-1 of its
question where it has none): a row's order never depends on the rows around it or the file's order.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable
from typing import Any

from m1.data.items import OPTION_LETTERS
from m1.data.rows import RawRow, RowFault, kind

Converter = Callable[[str, dict[str, Any], "str | None"], RawRow]

GPQA_OPTION_SEED = 42
GPQA_ANSWERS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
MMLU_PRO_PADDING = "N/A"
PUBMEDQA_INSTRUCTION = (
    "Using the above document as a reference, please review the following question and choose "
    "the option you find most appropriate."
)
PUBMEDQA_OPTIONS = {"A": "yes", "B": "no", "C": "maybe"}

_ANSWER_CHOICES = re.compile(r"Answer Choices:", re.IGNORECASE)
_PAREN_MARKER = re.compile(r"(?<!\S)\(([A-Z])\)\s*")  # "(A) text", inline or at a line start
_LINE_MARKER = re.compile(r"^[ \t]*([A-Z])[.)](?:[ \t]+|$)", re.MULTILINE)  # "A. text" lines


# --------------------------------------------------------------------------- field helpers


def extras(row: dict[str, Any], core: set[str] | frozenset[str]) -> dict[str, Any]:
    """The fields beyond `core`, kept as metadata where they are plain JSON (not image bytes)."""
    return {key: value for key, value in row.items() if key not in core and _is_plain(value)}


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, bool)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and math.isnan(value))


def as_int(value: Any) -> int | None:
    """An integer field that a CSV or pandas export may have written as text or as a float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def identifier(row: dict[str, Any], name: str) -> str | None:
    """A row's own id, as text: None where it is blank; text or a whole number, else a RowFault."""
    value = row.get(name)
    if _blank(value):
        return None
    number = as_int(value) if not isinstance(value, str) else None
    if number is None and not isinstance(value, str):
        raise RowFault(name, f"{name} must be text or a whole number, got {kind(value)}")
    return str(value).strip() if number is None else str(number)


def _text(row: dict[str, Any], name: str, label: str | None = None) -> str:
    """A field the converter computes with, which must be text; `label` is its name in messages."""
    value = row.get(name)
    if not isinstance(value, str):
        raise RowFault(label or name, f"{label or name} must be text, got {kind(value)}")
    return value


def lettered(value: Any) -> Any:
    """Options as {letter: text}: a dict, or a list of {letter, content} / {key, value}.

    Trailing letters whose text is null are dropped: Parquet stores options as one struct for
    the whole column, so a 4-option row in a file that also has 5-option rows has E = null.
    """
    if isinstance(value, dict):
        letters = list(value)
        while letters and value[letters[-1]] is None:
            letters.pop()
        return {letter: value[letter] for letter in letters}
    if not (isinstance(value, list) and value and all(isinstance(option, dict) for option in value)):
        return value
    pairs = [(option.get("letter", option.get("key")), option.get("content", option.get("value"))) for option in value]
    letters = [letter for letter, _ in pairs]
    repeated = next((letter for letter in letters if letters.count(letter) > 1), None)
    if repeated is not None:
        raise RowFault(f"options.{repeated}", f"option letter {repeated} appears twice")
    return dict(pairs)


def single_letter(value: Any, field_name: str) -> Any:
    """An answer letter given as "B" or as a one-element list ["B"] (MedXpertQA's evaluation input)."""
    if isinstance(value, list):
        if len(value) != 1:
            raise RowFault(field_name, f"{field_name} lists {len(value)} answers; an item has exactly one")
        return value[0]
    return value


def _squash(text: str) -> str:
    return " ".join(text.split())


def _span(letters: list[str]) -> str:
    joined = "".join(letters)
    return f"{letters[0]}–{letters[-1]}" if len(letters) > 2 and joined in OPTION_LETTERS else ", ".join(letters)


# --------------------------------------------------------------------------- answer choices in the question


def split_answer_choices(question: str) -> tuple[str, str] | None:
    """(the question before its last "Answer Choices:", the block after it), or None without one."""
    found = list(_ANSWER_CHOICES.finditer(question))
    if not found:
        return None
    return question[: found[-1].start()].rstrip(), question[found[-1].end():]


def parse_answer_choices(block: str) -> dict[str, str]:
    """The choices of a block, "(A) x (B) y" (one line or several) or "A. x" lines (HLE).

    The style is the one the block starts with; only its markers count, and only for the next
    letter in turn (A, then B, ...), so "(B)" or "E. coli" inside a choice stays text. A choice's
    text runs to the next marker, over line breaks. Returns {} if the block does not start with A.
    """
    text = block.strip()
    marker = _PAREN_MARKER if text.startswith("(A)") else _LINE_MARKER
    starts: list[tuple[str, int, int]] = []  # (letter, where its marker starts, where its text starts)
    for match in marker.finditer(text):
        if len(starts) < len(OPTION_LETTERS) and match.group(1) == OPTION_LETTERS[len(starts)]:
            starts.append((match.group(1), match.start(), match.end()))
    if not starts or text[: starts[0][1]].strip():
        return {}
    ends = [marker_start for _, marker_start, _ in starts[1:]] + [len(text)]
    return {letter: text[begin:end].strip() for (letter, _, begin), end in zip(starts, ends)}


def remove_answer_choices(question: str, options: dict[str, str]) -> str:
    """The question without its "Answer Choices:" block, once the block is checked to list `options`.

    The block agrees when, whitespace aside, it is the options written "(A) x (B) y" or "A. x", or
    when its parsed choices equal the options letter for letter; anything else raises a RowFault
    that says which choice differs.
    """
    split = split_answer_choices(question)
    if split is None:
        return question
    stem, block = split
    squashed = _squash(block)
    written = {_squash(" ".join(f"({letter}) {text}" for letter, text in options.items())),
               _squash(" ".join(f"{letter}. {text}" for letter, text in options.items()))}
    listed = parse_answer_choices(block)
    if squashed in written or {k: _squash(v) for k, v in listed.items()} == {k: _squash(v) for k, v in options.items()}:
        return stem
    if not listed:
        detail = "it lists no choices starting with (A) or 'A.'"
    elif list(listed) != list(options):
        detail = f"it lists {_span(list(listed))} but options has {_span(list(options))}"
    else:
        letter = next(k for k in options if _squash(listed[k]) != _squash(options[k]))
        detail = f"choice ({letter}) reads {listed[letter]!r} but options.{letter} is {options[letter]!r}"
    raise RowFault("question", f"the question's 'Answer Choices:' disagree with 'options': {detail}",
                   "make the choices in the question text match the options field")


# --------------------------------------------------------------------------- the benchmarks


MEDMCQA_METADATA = ("subject_name", "topic_name", "choice_type", "exp")


def medmcqa_converter(first: int) -> Converter:
    """MedMCQA rows whose `cop` numbers the options from `first` (0 on the Hub, 1 in the release)."""

    def convert(where: str, row: dict[str, Any], source: str | None) -> RawRow:
        cop = as_int(row.get("cop"))
        if cop is None or not 0 <= cop - first < 4:
            raise RowFault("cop", f"cop {row.get('cop')!r} is not one of {first}–{first + 3} (options A–D)")
        options = {letter: row.get(f"op{letter.lower()}") for letter in "ABCD"}
        metadata = {key: row.get(key) for key in MEDMCQA_METADATA if key in row}
        return RawRow(where, source, row.get("question"), options, OPTION_LETTERS[cop - first], None,
                      identifier(row, "id"), metadata,
                      fields={f"options.{letter}": f"op{letter.lower()}" for letter in "ABCD"} | {"answer_idx": "cop"})

    return convert


def mmlu_pro_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    options = row.get("options")
    if not isinstance(options, list) or not options:
        raise RowFault("options", f"options must be a list of option texts, got {kind(options)}")
    index = as_int(row.get("answer_index"))
    if index is None or not 0 <= index < len(options):
        raise RowFault("answer_index", f"answer_index {row.get('answer_index')!r} is not a position among "
                       f"the {len(options)} options")
    letter = row.get("answer")
    if not (letter is None or isinstance(letter, str)):
        raise RowFault("answer", f"answer must be the answer's letter, got {kind(letter)}")
    if letter and letter.strip() and letter.strip() != OPTION_LETTERS[index]:
        raise RowFault("answer", f"answer {letter!r} disagrees with answer_index {index} ({OPTION_LETTERS[index]})")
    kept = [i for i, text in enumerate(options) if not (isinstance(text, str) and text.strip() == MMLU_PRO_PADDING)]
    if index not in kept:
        raise RowFault("answer_index", f"the answer is a '{MMLU_PRO_PADDING}' padding option")
    metadata = extras(row, {"question", "options", "answer", "answer_index"})
    if len(kept) < len(options):
        metadata["padding_options_dropped"] = len(options) - len(kept)
    return RawRow(where, source, row.get("question"), {OPTION_LETTERS[n]: options[i] for n, i in enumerate(kept)},
                  OPTION_LETTERS[kept.index(index)], None, identifier(row, "question_id"), metadata,
                  fields={f"options.{OPTION_LETTERS[n]}": f"options[{i}]" for n, i in enumerate(kept)}
                  | {"answer_idx": "answer_index"})


def gpqa_row_key(row: dict[str, Any]) -> str:
    """What seeds a GPQA row's option order: its Record ID, else a digest of its question."""
    record_id = identifier(row, "Record ID")
    if record_id:
        return record_id
    question = row.get("Question") if isinstance(row.get("Question"), str) else ""
    return "sha1:" + hashlib.sha1(_squash(question).encode("utf-8")).hexdigest()


def gpqa_option_order(key: str, seed: int = GPQA_OPTION_SEED) -> list[int]:
    """Display order of (correct, incorrect 1, 2, 3): position p shows answer `order[p]`."""
    order = list(range(len(GPQA_ANSWERS)))
    random.Random(f"gpqa:{seed}:{key}").shuffle(order)
    return order


def gpqa_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    answers = [row.get(name) for name in GPQA_ANSWERS]
    for name, text in zip(GPQA_ANSWERS, answers):
        if _blank(text):
            raise RowFault(name, f"missing or empty '{name}'")
    order = gpqa_option_order(gpqa_row_key(row))
    options = {OPTION_LETTERS[position]: answers[answer] for position, answer in enumerate(order)}
    metadata = extras(row, {"Question", *GPQA_ANSWERS})
    return RawRow(where, source, row.get("Question"), options, OPTION_LETTERS[order.index(0)], None,
                  identifier(row, "Record ID"), metadata,
                  fields={"question": "Question"} | {f"options.{OPTION_LETTERS[position]}": GPQA_ANSWERS[answer]
                                                     for position, answer in enumerate(order)})


MEDBULLETS_OPTIONS = ("opa", "opb", "opc", "opd", "ope")


def medbullets_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    columns = [column for column in MEDBULLETS_OPTIONS if column in row]
    while columns and _blank(row[columns[-1]]):  # a 4-option row in a table that also has an `ope` column
        columns.pop()
    # No id: the uid comes from the content, as for MedBullets in the evaluation bundle, so the
    # same question has the same uid whichever file it was read from.
    return RawRow(where, source, row.get("question"), {OPTION_LETTERS[i]: row[c] for i, c in enumerate(columns)},
                  row.get("answer_idx"), row.get("answer"), None,
                  extras(row, {"question", "answer_idx", "answer", *MEDBULLETS_OPTIONS}),
                  fields={f"options.{OPTION_LETTERS[i]}": column for i, column in enumerate(columns)})


IMAGE_NEEDED = "needs its image (the suite is text-only)"


def medxpertqa_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    images = row.get("images")
    if not (images is None or isinstance(images, list)):
        raise RowFault("images", f"images must be a list of file names, got {kind(images)}")
    if images:  # MedXpertQA MM: the question is about the pictures
        return RawRow(where, source, None, None, None, excluded=IMAGE_NEEDED)
    options = lettered(row.get("options"))
    question = row.get("question")
    if isinstance(question, str) and isinstance(options, dict) and all(isinstance(t, str) for t in options.values()):
        question = remove_answer_choices(question, options)
    # `id` stays in the metadata too, as the bundle's MedXpertQA rows keep it.
    return RawRow(where, source, question, options, single_letter(row.get("label"), "label"), None,
                  identifier(row, "id"), extras(row, {"question", "options", "label"}), fields={"answer_idx": "label"})


HLE_MULTIPLE_CHOICE = "multipleChoice"


def hle_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    kind_of_answer = row.get("answer_type")
    if kind_of_answer != HLE_MULTIPLE_CHOICE:
        return RawRow(where, source, None, None, None,
                      excluded=f"not multiple choice (answer_type {kind_of_answer!r})")
    if not _blank(row.get("image")):
        return RawRow(where, source, None, None, None, excluded=IMAGE_NEEDED)
    split = split_answer_choices(_text(row, "question"))
    if split is None:
        raise RowFault("question", "a multipleChoice question without an 'Answer Choices:' block")
    stem, block = split
    options = parse_answer_choices(block)
    if not options:
        raise RowFault("question", "its 'Answer Choices:' block lists no choices starting with 'A.'")
    answer = _text(row, "answer")
    letter = re.match(r"\s*([A-Z])(?![A-Za-z])", answer)
    return RawRow(where, source, stem, options, letter.group(1) if letter else answer, None,
                  identifier(row, "id"), extras(row, {"question", "answer", "image"}),
                  fields={"options": "question", "answer_idx": "answer"})


def pubmedqa_question(contexts: list[str], question: str) -> str:
    """The evaluation suite's PubMedQA text: abstract, instruction, question."""
    return f"{' '.join(contexts)}\n\n{PUBMEDQA_INSTRUCTION}\n{question}".strip()


def _contexts(value: Any, field_name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise RowFault(field_name, f"{field_name} must be a list of abstract sections (text), got "
                       + (kind(value) if not isinstance(value, list) else "a list holding "
                          + kind(next(c for c in value if not isinstance(c, str)))))
    return value


def _pubmedqa_letter(row: dict[str, Any]) -> str:
    decision = _text(row, "final_decision")
    letter = {text: letter for letter, text in PUBMEDQA_OPTIONS.items()}.get(decision.strip())
    if letter is None:
        raise RowFault("final_decision", f"final_decision {decision!r} is not one of "
                       f"{', '.join(PUBMEDQA_OPTIONS.values())}")
    return letter


def pqal_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    """A PQA-L record; the file is keyed by PMID, so `where` is the PMID."""
    contexts = _contexts(row.get("CONTEXTS"), "CONTEXTS")
    question = _text(row, "QUESTION")
    metadata = {"pmid": where, "meshes": row.get("MESHES", []), "year": row.get("YEAR"),
                "long_answer": row.get("LONG_ANSWER", "")}
    return RawRow(where, source, pubmedqa_question(contexts, question), dict(PUBMEDQA_OPTIONS),
                  _pubmedqa_letter(row), None, where, metadata, fields={"question": "QUESTION"})


def pubmedqa_hub_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    context = row.get("context")
    if not isinstance(context, dict):
        raise RowFault("context", f"context must be an object with the abstract's 'contexts', got {kind(context)}")
    contexts = _contexts(context.get("contexts"), "context.contexts")
    pmid = identifier(row, "pubid")
    metadata = {"pmid": pmid or "", "long_answer": row.get("long_answer", "")}
    return RawRow(where, source, pubmedqa_question(contexts, _text(row, "question")), dict(PUBMEDQA_OPTIONS),
                  _pubmedqa_letter(row), None, pmid, metadata)


def headqa_exam_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    """A question of the HEAD-QA release, with its exam's `exam`, `category` and `year` beside it."""
    answers = row.get("answers")
    if not isinstance(answers, list) or not all(isinstance(answer, dict) for answer in answers):
        raise RowFault("answers", f"answers must be a list of {{aid, atext}} objects, got {kind(answers)}"
                       + (" holding other values" if isinstance(answers, list) else ""))
    if len(answers) > len(OPTION_LETTERS):
        raise RowFault("answers", f"{len(answers)} answers; an item has at most {len(OPTION_LETTERS)}")
    right = row.get("ra", "")
    if not isinstance(right, (str, int)) or isinstance(right, bool):
        raise RowFault("ra", f"ra must be the right answer's aid, got {kind(right)}")
    by_aid = {str(answer.get("aid")): OPTION_LETTERS[i] for i, answer in enumerate(answers)}
    exam, qid = row["exam"], row.get("qid")
    metadata = {"exam": exam, "category": row.get("category"), "year": row.get("year"), "qid": qid,
                "ra": str(right), "image": row.get("image") or ""}
    return RawRow(where, source, row.get("qtext"), {OPTION_LETTERS[i]: a.get("atext") for i, a in enumerate(answers)},
                  by_aid.get(str(right), str(right)), None, f"{exam}/{qid}", metadata,
                  fields={"question": "qtext", "answer_idx": "ra", "options": "answers"}
                  | {f"options.{OPTION_LETTERS[i]}": f"answers[{i}].atext" for i in range(len(answers))})


def headqa_hub_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    data = row.get("data")
    if not isinstance(data, dict):
        raise RowFault("data", f"data must be an object with Question, Options and Correct Option, got {kind(data)}")
    options = data.get("Options")
    if isinstance(options, list):  # some exports keep the exam's list of {aid, atext}
        if len(options) > len(OPTION_LETTERS):
            raise RowFault("data.Options", f"{len(options)} options; an item has at most {len(OPTION_LETTERS)}")
        options = {OPTION_LETTERS[i]: (o.get("atext") if isinstance(o, dict) else o) for i, o in enumerate(options)}
    return RawRow(where, source, data.get("Question"), options, data.get("Correct Option"),
                  data.get("Correct Answer"), identifier(row, "id"), {"subject_name": row.get("subject_name")},
                  fields={"question": "data.Question", "options": "data.Options",
                          "answer_idx": "data.Correct Option", "answer": "data.Correct Answer"})
