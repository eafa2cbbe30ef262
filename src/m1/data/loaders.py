"""Loaders: every medical multiple-choice file format m1 meets, detected and turned into `MCQItem`s.

    result = load_items("../shared/data/eval/m1_eval_data.partial.json")       # format detected
    result = load_items("medbullets_op4.csv", source="MedBullets_op4")         # upstream release
    result = load_items("broken.jsonl", skip_invalid=True)   # bad rows land in result.problems

`FORMATS` is the one list of formats: detection, loading, `--format` and the messages that list the
choices all read it. A format is a name, a line saying what it reads, a test of whether a file
holds it and a converter from one record to a row (`m1.data.rows` checks every row the same way).
Every record goes through `Format.row_from`: a record that could not be read, a converter's
`RowFault`, and any other failure of a converter on a value it did not expect all become a
problem at that row naming the field, which `skip_invalid` skips like any other bad row.
Formats read from the evaluation bundle and our own files:

- `m1-eval`          m1 / HuatuoGPT-o1 evaluation JSON, `{source: [{question, options, answer, answer_idx}]}`
- `eval-jsonl`       one item per record in the evaluation style: the official MedQA JSONL (jind11/MedQA,
                     4- and 5-option, `meta_info`), and the bundle's MedBullets, MedXpertQA (answer letter
                     in `label`) and HLE (`answer` written "C. text\\n") files; extra fields become metadata
- `headqa`           HEAD-QA exam JSON (`exams.*.data[]` with `qid`, `qtext`, `answers`, `ra`; the release)
- `huatuo-demo`      the HuatuoGPT-o1 demo file; its reasoning chain and response go to metadata
- `items`            our own schema (with `source`, or options as JSON text) as JSONL, CSV or Parquet

and from the official releases (`m1.data.upstream` says how each is converted): `pubmedqa`
(PQA-L), `pubmedqa-hub`, `headqa-hub`, `medmcqa` (cop 0–3, the Hub), `medmcqa-release` (cop 1–4),
`mmlu-pro`, `gpqa`, `medbullets`, `medxpertqa` and `hle`.

Any row format may come as JSONL, a JSON list, pandas column-oriented (or split / keyed) JSON, CSV
(byte-order mark and quoted newlines allowed) or Parquet (`m1.data.tables`). Detection asks every
specific format whether the file holds its rows; the generic `eval-jsonl` and `items` are asked
only when none does. A file that fits no format, or several, is a `DataError` naming the file and
the formats. Rows without a source take `--source`, else the format's own name for them
(PubMedQA, HeadQA, HuatuoDemo), else the file's stem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1.data import upstream
from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.data.rows import LoadResult, RawRow, RowFault, validate_rows
from m1.data.tables import Content, Record, Table, as_record, read_content, read_json
from m1.data.upstream import PUBMEDQA_INSTRUCTION, Converter

# The public names; LoadResult, PUBMEDQA_INSTRUCTION and read_json are re-exported for existing callers.
__all__ = ["FORMATS", "Format", "LoadResult", "PUBMEDQA_INSTRUCTION", "detect_format", "format_of", "load_content",
           "load_items", "load_pubmedqa_split", "read_json"]


@dataclass(frozen=True)
class Format:
    """One file format: what it reads, how to tell a file holds it, and how its records become rows.

    A row format gives `fits` (does this table hold my rows?); a document format (nested JSON)
    gives `fits_document` and `records_of` (the document's rows, each with where it is). Both
    give `convert` (one record → row).
    """

    name: str
    summary: str
    convert: Converter
    fits: Callable[[Table], bool] | None = None
    fits_document: Callable[[Any], bool] | None = None
    records_of: Callable[[Path, Any], Iterable[tuple[str, Record]]] | None = None
    default_source: str | None = None  # the source of rows that have none (else the file's stem)
    fallback: bool = False  # generic: claims a file only when no specific format does

    def table_in(self, content: Content) -> Table | None:
        return next((table for table in content.tables if self.fits and self.fits(table)), None)

    def holds(self, content: Content) -> bool:
        if self.fits_document is not None:
            return content.document is not None and self.fits_document(content.document)
        return self.table_in(content) is not None

    def raw_rows(self, content: Content, source: str | None) -> Iterator[RawRow]:
        if self.records_of is not None:
            return self.rows_from(content.path, self.records_of(content.path, content.document), source)
        table = self.table_in(content) or next(iter(content.tables), None)
        if table is None:
            raise DataError.at(content.path, "", "", f"the file holds no records a {self.name} file could have",
                               "check the file, or name its format with --format")
        return self.rows_from(content.path, table.records, source)

    def rows_from(self, path: Path, records: Iterable[tuple[str, Record]], source: str | None) -> Iterator[RawRow]:
        """Rows from records, one for each; see `row_from`."""
        return (self.row_from(path, where, record, source) for where, record in records)

    def row_from(self, path: Path, where: str, record: Record, source: str | None) -> RawRow:
        """The converter's row, or a row carrying the DataError at that row (so that `skip_invalid`
        skips it like any other) when the record could not be read or the converter fails on it.

        Converters check the types they rely on and raise `RowFault` naming the field. A converter
        that fails any other way met a value it does not check; the row still becomes a problem
        (not a traceback) naming the field it was reading and the exception, so it can be fixed.
        """
        if isinstance(record, DataError):
            return RawRow(where, source, None, None, None, error=record)
        reading = _Reading(record)
        try:
            return self.convert(where, reading, source)
        except RowFault as fault:
            error = DataError.at(path, where, fault.field, fault.problem, fault.fix)
        except (TypeError, AttributeError, KeyError, ValueError, IndexError) as err:
            error = DataError.at(path, where, reading.last, f"the {self.name} reader cannot read this row "
                                 f"({type(err).__name__}: {err})",
                                 "fix the value or rerun with --skip-invalid to skip the row; if the row is "
                                 "right, this is a bug in m1's reader for the format")
        return RawRow(where, source, None, None, None, error=error)


class _Reading(dict[str, Any]):
    """A record that remembers the last field looked up in it, for the message of a failure."""

    __slots__ = ("last",)

    def __init__(self, record: dict[str, Any]):
        super().__init__(record)
        self.last = ""

    def __getitem__(self, key: str) -> Any:
        self.last = key
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.last = key
        return super().get(key, default)


# --------------------------------------------------------------------------- the bundle's and our own formats


def _m1_eval_records(path: Path, data: Any) -> Iterator[tuple[str, Record]]:
    """Each item with the name of the source it is filed under as its `source`."""
    if not isinstance(data, dict):
        raise DataError.at(path, "", "", "expected an object {source_name: [items]} at the top level")
    for name, items in data.items():
        if not isinstance(items, list):
            raise DataError.at(path, name, "", f"source '{name}' is not a list of items")
        for index, row in enumerate(items):
            where = f"{name}[{index}]"
            record = as_record(path, where, row)
            yield where, (record | {"source": name}) if isinstance(record, dict) else record


def _m1_eval_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    return RawRow(where, source or row["source"], row.get("question"), row.get("options"),
                  row.get("answer_idx"), row.get("answer"))


def _is_m1_eval(data: Any) -> bool:
    return (isinstance(data, dict) and bool(data) and all(isinstance(items, list) for items in data.values())
            and all(isinstance(items[0], dict) for items in data.values() if items))


def _headqa_records(path: Path, data: Any) -> Iterator[tuple[str, Record]]:
    """Each question of each exam, with its exam's name, category and year beside its own fields."""
    exams = data.get("exams") if isinstance(data, dict) else None
    if not isinstance(exams, dict):
        raise DataError.at(path, "", "exams", "not a HEAD-QA file: no 'exams' object")
    for exam_name, exam in exams.items():
        questions = exam.get("data") if isinstance(exam, dict) else None
        if not isinstance(questions, list):
            where = f"exams.{exam_name}"
            yield where, DataError.at(path, where, "data", "an exam must be an object whose 'data' is a list of "
                                      "questions", "fix the exam or rerun with --skip-invalid to skip it")
            continue
        exam_fields = {"exam": exam_name, "category": exam.get("category"), "year": exam.get("year")}
        for index, row in enumerate(questions):
            where = f"exams.{exam_name}.data[{index}]"
            record = as_record(path, where, row)
            yield where, (record | exam_fields) if isinstance(record, dict) else record


EVAL_JSONL_CORE = {"question", "options", "answer", "answer_idx", "label"}


def _eval_jsonl_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    answer_idx = row.get("answer_idx", row.get("label"))
    answer = row.get("answer")
    metadata = {k: v for k, v in row.items() if k not in EVAL_JSONL_CORE}
    options = row.get("options")
    option = options.get(answer_idx.strip()) if isinstance(options, dict) and isinstance(answer_idx, str) else None
    # "C. text" is HLE's way of writing option C, unless option C's own text starts that way.
    if (isinstance(answer, str) and isinstance(answer_idx, str) and answer.startswith(f"{answer_idx.strip()}. ")
            and not (isinstance(option, str) and answer.strip() == option.strip())):
        answer = _letter_prefixed_answer(answer, answer_idx.strip(), row.get("options"))
        metadata["answer_as_written"] = row["answer"]
    return RawRow(where, source, row.get("question"), upstream.lettered(row.get("options")), answer_idx, answer,
                  upstream.identifier(row, "id" if "id" in row else "idx"), metadata,
                  fields={"answer_idx": "label"} if "answer_idx" not in row and "label" in row else {})


def _letter_prefixed_answer(answer: str, letter: str, options: Any) -> str | None:
    """HLE writes the answer as "C. text\n", sometimes with more lines than the option holds.

    The option is the answer; the written form must begin with the option's text. Returns None
    (so that the option text is used) or raises naming the mismatch.
    """
    written = answer[len(letter) + 2:].strip()
    option = options.get(letter) if isinstance(options, dict) else None
    if isinstance(option, str) and written.startswith(option.strip()):
        return None
    raise RowFault("answer", f"answer {answer.strip()!r} does not begin with the text of option {letter}",
                   "make the answer text equal its option's text")


def _huatuo_demo_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    metadata = {
        "reasoning": row.get("Complex_CoT", ""),
        "response": row.get("Response", ""),
        "open_question": row.get("Open-ended Verifiable Question", ""),
        "ground_truth": row.get("Ground-True Answer", ""),
    }
    return RawRow(where, source, row.get("question"), row.get("options"), row.get("answer_idx"),
                  row.get("answer"), None, metadata)


def _own_schema_row(where: str, row: dict[str, Any], source: str | None) -> RawRow:
    return RawRow(where, source or row.get("source") or "", row.get("question"), row.get("options"),
                  row.get("answer_idx"), row.get("answer"),
                  upstream.identifier(row, "id") or upstream.identifier(row, "original_id"), row.get("metadata") or {})


# --------------------------------------------------------------------------- how a table shows its format


def _has(*fields: str) -> Callable[[Table], bool]:
    return lambda table: set(fields) <= set(table.first())


def _is_own_schema(table: Table) -> bool:
    first = table.first()
    return {"question", "options", "answer_idx"} <= set(first) and (
        ("source" in first and "label" not in first) or isinstance(first["options"], str))


def _is_eval_style(table: Table) -> bool:
    keys = set(table.first())
    return {"question", "options"} <= keys and bool({"answer_idx", "label"} & keys) and not _is_own_schema(table)


def _medmcqa_counting_from(first: int) -> Callable[[Table], bool]:
    """MedMCQA rows whose `cop` values could count from `first`: a 0 rules out the release's
    1–4, a 4 rules out the Hub's 0–3; a file with only 1–3 fits both and must be named."""
    impossible = 4 if first == 0 else 0
    columns = _has("question", "opa", "opb", "opc", "opd", "cop")
    return lambda table: columns(table) and all(upstream.as_int(row.get("cop")) != impossible for row in table.rows())


def _embeds_choices(table: Table) -> bool:
    return _has("question", "options", "label")(table) and any(
        isinstance(row.get("question"), str) and upstream.split_answer_choices(row["question"]) is not None
        for row in table.rows())


FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        Format("m1-eval", "m1 / HuatuoGPT-o1 evaluation JSON {source: [items]}", _m1_eval_row,
               fits_document=_is_m1_eval, records_of=_m1_eval_records),
        Format("eval-jsonl", "one item per record: question, options, answer_idx or label (MedQA's official JSONL, "
               "the bundle's MedBullets/MedXpertQA/HLE)", fits=_is_eval_style, convert=_eval_jsonl_row, fallback=True),
        Format("headqa", "HEAD-QA exam JSON (exams.*.data[])", upstream.headqa_exam_row,
               fits_document=lambda data: isinstance(data, dict) and isinstance(data.get("exams"), dict),
               records_of=_headqa_records, default_source="HeadQA"),
        Format("huatuo-demo", "the HuatuoGPT-o1 demo file (Complex_CoT, Response)",
               fits=_has("question", "Complex_CoT"), convert=_huatuo_demo_row, default_source="HuatuoDemo"),
        Format("items", "m1's own rows: source, question, options, answer_idx (JSONL, CSV, Parquet)",
               fits=_is_own_schema, convert=_own_schema_row, fallback=True),
        Format("pubmedqa", "PubMedQA PQA-L keyed by PMID (QUESTION, CONTEXTS, final_decision)",
               fits=lambda table: table.layout == "json-keyed" and _has("QUESTION", "CONTEXTS")(table),
               convert=upstream.pqal_row, default_source="PubMedQA"),
        Format("pubmedqa-hub", "PubMedQA pqa_labeled rows from the Hub (pubid, question, context.contexts)",
               fits=_has("pubid", "question", "context", "final_decision"), convert=upstream.pubmedqa_hub_row,
               default_source="PubMedQA"),
        Format("headqa-hub", "HEAD-QA rows from the Hub (data.Question, data.Options, data['Correct Option'])",
               fits=lambda table: isinstance(table.first().get("data"), dict) and "Question" in table.first()["data"],
               convert=upstream.headqa_hub_row, default_source="HeadQA"),
        Format("medmcqa", "MedMCQA with cop 0-3 (openlifescienceai/medmcqa on the Hub)",
               fits=_medmcqa_counting_from(0), convert=upstream.medmcqa_converter(0)),
        Format("medmcqa-release", "MedMCQA with cop 1-4 (the original medmcqa/medmcqa release)",
               fits=_medmcqa_counting_from(1), convert=upstream.medmcqa_converter(1)),
        Format("mmlu-pro", "MMLU-Pro (options list, answer, answer_index; 'N/A' padding dropped)",
               fits=lambda table: _has("question", "options", "answer_index")(table)
               and isinstance(table.first()["options"], list), convert=upstream.mmlu_pro_row),
        Format("gpqa", "GPQA CSV (Question, Correct Answer, Incorrect Answer 1-3; options in a seeded order)",
               fits=_has("Question", *upstream.GPQA_ANSWERS), convert=upstream.gpqa_row),
        Format("medbullets", "MedBullets (question, opa..ope, answer_idx, answer, explanation)",
               fits=lambda table: _has("question", "opa", "opb", "opc", "opd", "answer_idx")(table)
               and "cop" not in table.first(), convert=upstream.medbullets_row),
        Format("medxpertqa", "MedXpertQA Text (question with 'Answer Choices:', options, label)",
               fits=_embeds_choices, convert=upstream.medxpertqa_row),
        Format("hle", "Humanity's Last Exam (question, answer, answer_type, image; multiple choice only)",
               fits=_has("question", "answer", "answer_type"), convert=upstream.hle_row),
    )
}


def format_of(content: Content) -> str:
    """The name of the one format whose rows a file read holds (see the module docstring)."""
    for generic in (False, True):
        found = [fmt for fmt in FORMATS.values() if fmt.fallback == generic and fmt.holds(content)]
        if len(found) > 1:
            raise DataError.at(content.path, "", "", "the file fits several formats: "
                               + "; ".join(f"{fmt.name} ({fmt.summary})" for fmt in found),
                               f"name one with --format, one of: {', '.join(FORMATS)}")
        if found:
            return found[0].name
    raise DataError.at(content.path, "", "", "cannot tell the file's format",
                       f"name it with --format, one of: {', '.join(FORMATS)}")


def detect_format(path: str | Path) -> str:
    """The name of the one format whose rows the file holds (see the module docstring)."""
    return format_of(read_content(Path(path)))


def load_items(
    path: str | Path, *, format: str | None = None, source: str | None = None, skip_invalid: bool = False
) -> LoadResult:
    """Read any supported file into validated items (see the module docstring)."""
    return load_content(read_content(Path(path)), format=format, source=source, skip_invalid=skip_invalid)


def load_content(
    content: Content, *, format: str | None = None, source: str | None = None, skip_invalid: bool = False
) -> LoadResult:
    """`load_items` for a file already read (`m1.data.tables.read_content`), so that a caller that
    also needs its format or digest reads it once."""
    if format is not None and format not in FORMATS:
        raise DataError.at(content.path, "", "", f"unknown format {format!r}", f"use one of: {', '.join(FORMATS)}")
    fmt = FORMATS[format or format_of(content)]
    default = fmt.default_source or content.path.stem
    rows = (raw if raw.source is not None else _named(raw, default) for raw in fmt.raw_rows(content, source))
    return validate_rows(content.path, fmt.name, rows, skip_invalid)


def _named(raw: RawRow, source: str) -> RawRow:
    raw.source = source
    return raw


def load_pubmedqa_split(path: str | Path, test_split: str | Path) -> tuple[list[MCQItem], list[MCQItem]]:
    """PQA-L divided into (train, test) by the official 500-PMID test split file."""
    items = load_items(path, format="pubmedqa").items
    test_pmids = set(read_json(Path(test_split)))
    train = [item for item in items if item.metadata["pmid"] not in test_pmids]
    test = [item for item in items if item.metadata["pmid"] in test_pmids]
    return train, test
