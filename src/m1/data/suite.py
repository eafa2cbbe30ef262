"""The m1 evaluation suite: which benchmarks it holds, where each comes from, how it is built.

    m1 data build-eval --data-dir ../shared/data/eval --out runs/m1_eval_data.json
    m1 data build-eval --input MedXpertQA=Text/test.jsonl --input GPQA_Medical_test=gpqa_main.csv ...
    m1 data convert mmlu_pro_test.parquet --source MMLU-Pro_Medical_test   # that source's section alone
    suite = load_suite("runs/m1_eval_data.json")          # {source: [MCQItem]}

A benchmark is a declaration (`SuiteSource`): its name in the m1 evaluation file, the bundle file
it is read from by default and that file's format, how many options each of its items has where
that is fixed, and the official release it can be built from instead (`Upstream`: the release's
loader formats, its file, and which of its rows the suite holds). Every read of a source checks
the option count, so the 5-option MedQA file is refused for the 4-option MedQA_USLME_test, and
each MedBullets set for the other, with the release file to use.

Building reads every source through the loaders (which strip strings, fix HLE's "C. text"
answers and check that each answer equals its option; each input file is read and parsed once),
writes the m1 evaluation JSON exactly as the paper's file is laid out, and writes a manifest
beside it with per-source counts, the format read, rows left out by the subset rule, md5 digests
of inputs and output, and the uids of the written file's items. The file keeps no row ids, so
those uids are the ones `load_suite` gives it (content-based), whatever ids the inputs had.

A source can be read from an m1 evaluation file: the section filed under its name, or the one
section of a file that holds one source under another name (what `m1 data convert` writes) unless
that name is another source of the suite. Such a file keeps no metadata, so a source whose
release holds more than the suite (MMLU-Pro, GPQA, HLE, MedXpertQA) is taken from it only when it
is filed under the source's name: `m1 data convert FILE --source NAME` reads the file as that
source (its option count and subset rule applied) and files it so.

From the bundle the build is byte-identical to the published partial suite; from upstream files
it cannot be, since GPQA's option order is m1's own (see `m1.data.upstream`) and the bundle
repeats each GPQA question five times. Lancet and NEJM are part of the paper's suite but not
public, so they are not declared here.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m1.data.errors import DataError, RowProblem
from m1.data.items import MCQItem
from m1.data.loaders import LoadResult, format_of, load_content, load_items
from m1.data.tables import Content, read_content
from m1.io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Upstream:
    """An official release a source can be built from, and which of its rows the suite holds."""

    formats: tuple[str, ...]
    release: str  # the release's file, as messages and the manifest name it
    subset: str = "every row"  # the rule in words, recorded in the manifest
    keep: Callable[[MCQItem], bool] | None = None


def metadata_is(name: str, *values: str) -> Callable[[MCQItem], bool]:
    """Keep items whose metadata `name` is one of `values`. Tested against a tuple, which compares
    and never hashes, so a list or object in that field of a file is simply not kept."""
    return lambda item: item.metadata.get(name) in values


@dataclass(frozen=True)
class SuiteSource:
    name: str
    file: str
    format: str
    key: str | None = None  # the source's key inside a multi-source m1-eval file
    in_domain: bool = False  # the paper's in-domain sets share a distribution with the training pools
    upstream: Upstream | None = None
    options: int | None = None  # every item has this many options (None: the count varies)

    def accepts(self) -> tuple[str, ...]:
        """Formats this source can be read from: its bundle's, any m1 evaluation file, the upstream's."""
        return tuple(dict.fromkeys((self.format, "m1-eval", *(self.upstream.formats if self.upstream else ()))))

    def check_option_count(self, path: Path, items: list[MCQItem]) -> None:
        """A DataError naming the file, the counts found and the file to use, where items have another count."""
        found = Counter(len(item.options) for item in items)
        if self.options is None or set(found) <= {self.options}:
            return
        counts = ", ".join(f"{count} options ({n} of {len(items)} items)" for count, n in sorted(found.items()))
        release = f"the official {self.upstream.release}" if self.upstream else "its own file"
        raise DataError.at(path, "", "options", f"{self.name} holds {self.options}-option questions, but this "
                           f"file's have {counts}", f"read {self.name} from {release} or the bundle's {self.file}")


def _medxpertqa_published(item: MCQItem) -> bool:
    number = str(item.metadata.get("id", "")).removeprefix("Text-")
    return number.isdigit() and 1001 <= int(number) <= 2449


HUATUO_FILE = "huatuo_eval_data.json"
CHALLENGE_CLINICAL_QA = "HanjieChen/ChallengeClinicalQA medbullets/"
SUITE: tuple[SuiteSource, ...] = (
    SuiteSource("MedMCQA_validation", HUATUO_FILE, "m1-eval", "MedMCQA_validation", in_domain=True, options=4,
                upstream=Upstream(("medmcqa", "medmcqa-release"), "MedMCQA validation split (openlifescienceai/"
                                  "medmcqa validation, or dev.json of the medmcqa/medmcqa release)")),
    SuiteSource("MedQA_USLME_test", HUATUO_FILE, "m1-eval", "MedQA_USLME_test", in_domain=True, options=4,
                upstream=Upstream(("eval-jsonl",), "jind11/MedQA data_clean/questions/US/4_options/"
                                  "phrases_no_exclude_test.jsonl")),
    SuiteSource("PubMedQA_test", HUATUO_FILE, "m1-eval", "PubMedQA_test", in_domain=True, options=3,
                upstream=Upstream(("pubmedqa", "pubmedqa-hub"), "pubmedqa/pubmedqa data/ori_pqal.json (or "
                                  "qiaojin/PubMedQA pqa_labeled)")),
    SuiteSource("MMLU-Pro_Medical_test", HUATUO_FILE, "m1-eval", "MMLU-Pro_Medical_test",
                upstream=Upstream(("mmlu-pro",), "TIGER-Lab/MMLU-Pro test split",
                                  "category health or biology (818 + 717 of the test split)",
                                  metadata_is("category", "health", "biology"))),
    SuiteSource("GPQA_Medical_test", HUATUO_FILE, "m1-eval", "GPQA_Medical_test", options=4,
                upstream=Upstream(("gpqa",), "idavidrein/gpqa gpqa_main.csv", "High-level domain Biology (78 of "
                                  "gpqa_main)", metadata_is("High-level domain", "Biology"))),
    SuiteSource("HumanityLastExam", "reasoningeval/HLE_biomed.jsonl", "eval-jsonl",
                upstream=Upstream(("hle",), "cais/hle test split", "category Biology/Medicine",
                                  metadata_is("category", "Biology/Medicine"))),
    SuiteSource("MedBullets_op4", "reasoningeval/medbullets_op4.jsonl", "eval-jsonl", options=4,
                upstream=Upstream(("medbullets",), CHALLENGE_CLINICAL_QA + "medbullets_op4.csv")),
    SuiteSource("MedBullets_op5", "reasoningeval/medbullets_op5.jsonl", "eval-jsonl", options=5,
                upstream=Upstream(("medbullets",), CHALLENGE_CLINICAL_QA + "medbullets_op5.csv")),
    SuiteSource("MedXpertQA", "reasoningeval/MedXpertQA_test.jsonl", "eval-jsonl",
                upstream=Upstream(("medxpertqa",), "TsinghuaC3I/MedXpertQA Text/test.jsonl",
                                  "ids Text-1001 to Text-2449 (1,449 of 2,450)", _medxpertqa_published)),
)
SUITE_FILE_NAME = "m1_eval_data.partial.json"
# md5 of the published partial suite (../shared/data/eval/m1_eval_data.partial.json).
PUBLISHED_SUITE_MD5 = "54be7e54d8e5962811d9d6d3a34cd5b3"


def shared_data_dir() -> Path | None:
    """The real data folder: $M1_SHARED_DATA, else `../shared/data` beside the working tree."""
    candidates = []
    if os.environ.get("M1_SHARED_DATA"):
        candidates.append(Path(os.environ["M1_SHARED_DATA"]))
    here = Path(__file__).resolve()
    candidates += [Path.cwd().parent / "shared" / "data", here.parents[4] / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "eval").is_dir():
            return candidate
    return None


@dataclass
class SourceRead:
    """One source of the suite as read: from which file, in which format, and what was left out."""

    declared: SuiteSource
    path: Path
    format: str
    items: list[MCQItem]
    input_md5: str
    outside_subset: int = 0  # upstream rows the suite does not hold (the subset rule)
    excluded: dict[str, int] = field(default_factory=dict)  # rows the format leaves out, by reason
    problems: list[RowProblem] = field(default_factory=list)  # rows skipped as invalid (skip_invalid)

    @property
    def from_upstream(self) -> bool:
        upstream = self.declared.upstream
        return upstream is not None and self.format in upstream.formats and self.format != self.declared.format

    def left_out(self) -> dict[str, int]:
        """Rows of the file the source does not hold, by reason: the format's, then the subset rule's."""
        if not self.outside_subset:
            return dict(self.excluded)
        upstream = self.declared.upstream
        return self.excluded | {f"outside {self.declared.name} ({upstream.subset})": self.outside_subset}

    def manifest_entry(self, eval_dir: Path | None, uids: list[str]) -> dict[str, Any]:
        shown = self.path.relative_to(eval_dir) if eval_dir and self.path.is_relative_to(eval_dir) else self.path
        entry: dict[str, Any] = {"count": len(self.items), "input": str(shown), "input_md5": self.input_md5,
                                 "format": self.format, "in_domain": self.declared.in_domain}
        if self.from_upstream:
            entry |= {"release": self.declared.upstream.release, "subset": self.declared.upstream.subset,
                      "outside_subset": self.outside_subset, "excluded": self.excluded}
        return entry | {"uids": uids}


class InputFiles:
    """The files sources are read from, each read and parsed once however many sources it serves
    (the bundle's HuatuoGPT-o1 file holds five)."""

    def __init__(self) -> None:
        self._contents: dict[Path, Content] = {}
        self._loaded: dict[tuple[Path, str, str | None, bool], LoadResult] = {}

    def content(self, path: Path) -> Content:
        if path.resolve() not in self._contents:
            self._contents[path.resolve()] = read_content(path)
        return self._contents[path.resolve()]

    def load(self, path: Path, fmt: str, source: str | None, skip_invalid: bool) -> LoadResult:
        key = (path.resolve(), fmt, source, skip_invalid)
        if key not in self._loaded:
            self._loaded[key] = load_content(self.content(path), format=fmt, source=source, skip_invalid=skip_invalid)
        return self._loaded[key]


def _suite_source(name: str) -> SuiteSource:
    found = next((declared for declared in SUITE if declared.name == name), None)
    if found is None:
        raise DataError.at(name, "", "", f"no source of the suite is named {name!r}",
                           f"use one of: {', '.join(s.name for s in SUITE)}")
    return found


def read_source(declared: SuiteSource, path: Path, fmt: str | None = None, files: InputFiles | None = None,
                skip_invalid: bool = False) -> SourceRead:
    """One source from its bundle file, an m1 evaluation file or an upstream file (format detected
    unless given): its items, with the subset rule applied to an upstream file and the option count checked."""
    files = files or InputFiles()
    fmt = fmt or format_of(files.content(path))
    if fmt not in declared.accepts():
        raise DataError.at(path, "", "", f"this is a {fmt} file, but {declared.name} is read from "
                           f"{' or '.join(declared.accepts())}", f"pass {declared.name}'s own file")
    # An m1 evaluation file names its sources; any other file's rows all belong to this source.
    result = files.load(path, fmt, None if fmt == "m1-eval" else declared.name, skip_invalid)
    read = SourceRead(declared, path, fmt, _section(declared, path, result), files.content(path).md5,
                      excluded=dict(result.excluded), problems=list(result.problems))
    keep = declared.upstream.keep if read.from_upstream else None
    if keep is not None:
        kept = [item for item in read.items if keep(item)]
        read.items, read.outside_subset = kept, len(read.items) - len(kept)
    declared.check_option_count(path, read.items)
    return read


def _section(declared: SuiteSource, path: Path, result: LoadResult) -> list[MCQItem]:
    """The file's items of this source (see the module docstring for an m1 evaluation file)."""
    grouped = result.by_source()
    key = (declared.key or declared.name) if result.format == "m1-eval" else declared.name
    if key in grouped:
        return grouped[key]
    names = ", ".join(grouped) or "no items"
    if result.format == "m1-eval" and len(grouped) == 1:
        only = next(iter(grouped))
        upstream = declared.upstream
        if any(other.name == only for other in SUITE):
            raise DataError.at(path, "", only, f"the file holds {only}, another source of the suite, "
                               f"not {declared.name}", f"pass {declared.name}'s own file")
        if upstream is None or upstream.keep is None:
            return grouped[only]
        raise DataError.at(path, "", only, f"the file's one source is '{only}', but {declared.name} holds only "
                           f"{upstream.subset} of {upstream.release}, and an m1 evaluation file keeps no field "
                           "that rule could read", f"convert the release with `m1 data convert FILE --source "
                           f"{declared.name}`, which keeps that subset, or pass the release itself")
    raise DataError.at(path, "", key, f"source '{key}' is missing from the file", f"the file holds: {names}")


def read_suite_sources(eval_dir: str | Path | None, names: list[str] | None = None,
                       inputs: dict[str, Path] | None = None) -> list[SourceRead]:
    """Every declared source (or those named): from `inputs[name]` where given (a bundle file or
    an upstream one), else from its bundle file in `eval_dir`."""
    inputs = dict(inputs or {})
    for name in inputs:
        _suite_source(name)
    wanted = [declared for declared in SUITE if names is None or declared.name in names]
    missing = [declared.name for declared in wanted if declared.name not in inputs]
    if missing and eval_dir is None:
        raise DataError.at(missing[0], "", "", f"no input for {', '.join(missing)}",
                           f"pass --data-dir with the bundle, or --input {missing[0]}=FILE for each")
    files = InputFiles()
    return [read_source(declared, Path(inputs[declared.name]), files=files) if declared.name in inputs
            else read_source(declared, Path(eval_dir) / declared.file, declared.format, files)
            for declared in wanted]


def write_eval_file(out: str | Path, suite: dict[str, list[MCQItem]]) -> Path:
    """The m1 evaluation JSON (SPEC §2), written atomically and laid out byte for byte like the
    paper's file (indent 2, UTF-8, no final newline), so its md5 can be compared with the published one."""
    records = {name: [item.to_eval_record() for item in items] for name, items in suite.items()}
    return atomic_write_text(out, json.dumps(records, ensure_ascii=False, indent=2))


# What `m1 data convert --to` can write: the one registry of output formats.
WRITERS: dict[str, Callable[[Path, dict[str, list[MCQItem]]], Path]] = {"m1-eval": write_eval_file}


def build_eval_suite(eval_dir: str | Path | None, out: str | Path, inputs: dict[str, Path] | None = None) -> dict[str, Any]:
    """Assemble the m1 evaluation file from its sources and write it with its manifest."""
    eval_dir = Path(eval_dir) if eval_dir is not None else None
    out = Path(out)
    reads = read_suite_sources(eval_dir, inputs=inputs)
    write_eval_file(out, {read.declared.name: read.items for read in reads})
    # The uids are those of the written file as anyone loads it: it keeps no ids, so they come
    # from the content, not from the ids (MedMCQA's `id`, GPQA's `Record ID`, ...) an input had.
    written = read_content(out)
    uids = {name: [item.uid for item in items] for name, items in load_content(written, format="m1-eval").by_source().items()}
    manifest = {
        "file": out.name,
        "md5": written.md5,
        "total": sum(len(read.items) for read in reads),
        "sources": {read.declared.name: read.manifest_entry(eval_dir, uids[read.declared.name]) for read in reads},
    }
    atomic_write_json(manifest_path(out), manifest)
    return manifest


@dataclass
class Conversion:
    """What `convert_file` wrote: the format it read, each source's items, and the rows left out."""

    format: str
    sources: dict[str, list[MCQItem]]
    problems: list[RowProblem]  # rows skipped as invalid
    left_out: dict[str, int]  # rows left out by rule (the format's, a suite source's subset), by reason


def convert_file(path: str | Path, out: str | Path, *, to: str = "m1-eval", format: str | None = None,
                 source: str | None = None, skip_invalid: bool = False) -> Conversion:
    """Read any supported file (an upstream release included) and write its items as `to`.

    A `source` that names a source of the suite reads the file as that source (`read_source`):
    its option count is checked, an upstream file's subset rule applied, and the output filed
    under that name, so that `build-eval --input NAME=OUT` builds exactly what the file would.
    """
    path, out = Path(path), Path(out)
    if to not in WRITERS:
        raise DataError.at(out, "", "", f"cannot write {to!r}", f"use one of: {', '.join(WRITERS)}")
    if out.exists() and out.resolve() == path.resolve():
        raise DataError.at(out, "", "", "the output would overwrite the input", "choose another --out")
    declared = next((candidate for candidate in SUITE if candidate.name == source), None)
    if declared is not None:
        read = read_source(declared, path, format, skip_invalid=skip_invalid)
        done = Conversion(read.format, {declared.name: read.items}, read.problems, read.left_out())
    else:
        result = load_items(path, format=format, source=source, skip_invalid=skip_invalid)
        done = Conversion(result.format, result.by_source(), result.problems, dict(result.excluded))
    if not any(done.sources.values()):
        reasons = [f"{n} {reason}" for reason, n in done.left_out.items()]
        if done.problems:  # with skip_invalid every row may be bad: say why, as no report is written
            reasons.append(f"{len(done.problems)} skipped as invalid, the first at {done.problems[0].describe()}")
        raise DataError.at(path, "", "", f"no items to write ({'; '.join(reasons) or 'no rows'})",
                           "check the file and its format")
    WRITERS[to](out, done.sources)
    return done


def manifest_path(suite_file: Path) -> Path:
    return suite_file.with_name(suite_file.stem + ".manifest.json")


def load_suite(path: str | Path, sources: list[str] | None = None) -> dict[str, list[MCQItem]]:
    """A built m1 evaluation file, grouped by source (optionally only the named sources)."""
    grouped = load_items(path, format="m1-eval").by_source()
    if sources:
        missing = [name for name in sources if name not in grouped]
        if missing:
            raise DataError.at(path, "", "", f"no source named {', '.join(missing)}",
                               f"choose from: {', '.join(grouped)}")
        grouped = {name: grouped[name] for name in sources}
    return grouped


def sample_per_source(suite: dict[str, list[MCQItem]], per_source: int, seed: int) -> dict[str, list[MCQItem]]:
    """At most `per_source` items of each source, drawn with a seed of their own per source.

    Each source's draw depends only on (seed, source name, that source's items), so adding or
    removing another source never changes which items a source contributes. Items keep file order.
    """
    sampled = {}
    for name, items in suite.items():
        if len(items) <= per_source:
            sampled[name] = list(items)
            continue
        chosen = set(random.Random(f"{seed}:{name}").sample(range(len(items)), per_source))
        sampled[name] = [item for index, item in enumerate(items) if index in chosen]
    return sampled


def describe_items(items: list[MCQItem]) -> dict[str, Any]:
    """Counts per source, the option-count histogram and duplicates, for `m1 data inspect`."""
    per_source = Counter(item.source for item in items)
    option_counts: dict[str, dict[int, int]] = {}
    for item in items:
        histogram = option_counts.setdefault(item.source, {})
        histogram[len(item.options)] = histogram.get(len(item.options), 0) + 1
    exact = Counter((item.source, item.question, tuple(item.options.items()), item.answer_idx) for item in items)
    questions = Counter((item.source, " ".join(item.question.lower().split())) for item in items)
    across: dict[str, set[str]] = {}
    for item in items:
        across.setdefault(" ".join(item.question.lower().split()), set()).add(item.source)
    return {
        "total": len(items),
        "sources": dict(per_source),
        "option_counts": {s: dict(sorted(h.items())) for s, h in option_counts.items()},
        "exact_duplicate_rows": {
            source: sum(n - 1 for (s, *_), n in exact.items() if s == source and n > 1) for source in per_source
        },
        "repeated_questions": {
            source: sum(n - 1 for (s, _), n in questions.items() if s == source and n > 1) for source in per_source
        },
        "empty_option_texts": sum(1 for item in items for text in item.options.values() if not text),
        "questions_in_several_sources": sum(1 for names in across.values() if len(names) > 1),
    }
