"""Building the evaluation suite reproduces the published partial file, item for item and byte for byte."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.data.loaders import detect_format, load_items
from m1.data.suite import (PUBLISHED_SUITE_MD5, SUITE, SuiteSource, build_eval_suite, convert_file, describe_items,
                           load_suite, manifest_path, read_source, read_suite_sources)
from m1.io import md5_file


def assert_manifest_uids_are_the_files(manifest: dict, out: Path) -> None:
    """The manifest's uids are those of the file it describes, as anyone loading it gets them."""
    written = load_suite(out)
    assert list(manifest["sources"]) == list(written)
    for name, entry in manifest["sources"].items():
        assert entry["uids"] == [item.uid for item in written[name]], name
        assert entry["count"] == len(entry["uids"]) == len(set(entry["uids"])), name


def test_build_eval_reproduces_partial_suite(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "m1_eval_data.json"
    manifest = build_eval_suite(shared_data / "eval", out)
    published = json.loads((shared_data / "eval/m1_eval_data.partial.json").read_text())
    built = json.loads(out.read_text())
    assert list(built) == list(published) == [s.name for s in SUITE]
    for name in published:
        assert built[name] == published[name], name
    assert md5_file(out) == manifest["md5"] == PUBLISHED_SUITE_MD5
    assert manifest["total"] == 10549
    on_disk = json.loads(manifest_path(out).read_text())
    assert on_disk == manifest
    assert on_disk["sources"]["MedXpertQA"]["count"] == 1449
    assert len(on_disk["sources"]["GPQA_Medical_test"]["uids"]) == 390
    assert on_disk["sources"]["MedQA_USLME_test"]["in_domain"] is True
    # The bundle's MedXpertQA and HLE rows have ids; the written file does not keep them.
    assert_manifest_uids_are_the_files(manifest, out)


def test_load_suite_selects_sources(shared_data: Path) -> None:
    suite = load_suite(shared_data / "eval/m1_eval_data.partial.json", sources=["MedBullets_op4", "HumanityLastExam"])
    assert {name: len(items) for name, items in suite.items()} == {"MedBullets_op4": 308, "HumanityLastExam": 103}


def test_describe_counts_known_quirks(shared_data: Path) -> None:
    summary = describe_items(load_items(shared_data / "eval/m1_eval_data.partial.json").items)
    assert summary["exact_duplicate_rows"]["MMLU-Pro_Medical_test"] == 95
    assert summary["repeated_questions"]["GPQA_Medical_test"] == 390 - 78
    assert summary["option_counts"]["MMLU-Pro_Medical_test"][10] == 1215
    assert min(summary["option_counts"]["HumanityLastExam"]) == 5
    assert max(summary["option_counts"]["HumanityLastExam"]) == 22


# ----------------------------------------------------------------------------- built from upstream files

UPSTREAM = Path(__file__).parents[1] / "fixtures" / "upstream"
HUB = Path(__file__).parents[1] / "fixtures" / "hub"
RELEASES = sorted(path for folder in (UPSTREAM, HUB) for path in folder.iterdir() if path.suffix in (".json", ".jsonl", ".csv"))
UPSTREAM_INPUTS = {
    "MedMCQA_validation": "medmcqa_validation.jsonl",
    "MedQA_USLME_test": "medqa_4_options_test.jsonl",
    "PubMedQA_test": "ori_pqal.json",
    "MMLU-Pro_Medical_test": "mmlu_pro_test.jsonl",
    "GPQA_Medical_test": "gpqa_main.csv",
    "HumanityLastExam": "hle_test.jsonl",
    "MedBullets_op4": "medbullets_op4.csv",
    "MedBullets_op5": "medbullets_op5.json",
    "MedXpertQA": "medxpertqa_text_test.jsonl",
}


def test_build_from_every_upstream_release(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    manifest = build_eval_suite(None, out, {name: UPSTREAM / file for name, file in UPSTREAM_INPUTS.items()})
    sources = manifest["sources"]
    assert {name: entry["count"] for name, entry in sources.items()} == {
        "MedMCQA_validation": 4, "MedQA_USLME_test": 3, "PubMedQA_test": 3,
        "MMLU-Pro_Medical_test": 3,  # the law question is outside the medical categories
        "GPQA_Medical_test": 3,  # the physics question is outside High-level domain Biology
        "HumanityLastExam": 2,  # of 5: one Math question outside the subset, two excluded by the format
        "MedBullets_op4": 3, "MedBullets_op5": 3,
        "MedXpertQA": 3,  # Text-7 is not among the published ids
    }
    assert [sources[name]["format"] for name in UPSTREAM_INPUTS] == [
        "medmcqa", "eval-jsonl", "pubmedqa", "mmlu-pro", "gpqa", "hle", "medbullets", "medbullets", "medxpertqa"]
    assert sources["HumanityLastExam"]["outside_subset"] == 1
    assert sum(sources["HumanityLastExam"]["excluded"].values()) == 2
    assert sources["MedXpertQA"]["subset"].startswith("ids Text-1001 to Text-2449")
    assert sources["GPQA_Medical_test"]["release"] == "idavidrein/gpqa gpqa_main.csv"
    assert_manifest_uids_are_the_files(manifest, out)
    built = load_suite(out)
    assert list(built) == [s.name for s in SUITE]
    medxpertqa = built["MedXpertQA"]
    assert all("Answer Choices" not in item.question for item in medxpertqa)
    assert {item.answer for item in built["GPQA_Medical_test"]} >= {"G1 to S"}


def test_build_refuses_another_benchmarks_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        read_suite_sources(None, ["MedBullets_op4"], {"MedBullets_op4": UPSTREAM / "medmcqa_validation.jsonl"})
    message = str(caught.value)
    assert "medmcqa_validation.jsonl" in message and "this is a medmcqa file" in message and "medbullets" in message
    with pytest.raises(DataError, match="no source of the suite is named 'MedBulets'"):
        build_eval_suite(None, tmp_path / "suite.json", {"MedBulets": UPSTREAM / "medbullets_op4.csv"})
    with pytest.raises(DataError, match="no input for MedQA_USLME_test, PubMedQA_test"):
        build_eval_suite(None, tmp_path / "suite.json", {"MedMCQA_validation": UPSTREAM / "medmcqa_validation.jsonl"})


def _bundle_in_upstream_schemas(shared_data: Path, folder: Path) -> dict[str, Path]:
    """The bundle's sources rewritten as their official releases write them (plus rows the
    published subset leaves out), to check the conversion at the scale of the real suite."""
    published = json.loads((shared_data / "eval/m1_eval_data.partial.json").read_text())
    bundle = shared_data / "eval/reasoningeval"
    files: dict[str, Path] = {}

    for op in ("op4", "op5"):
        rows = [json.loads(line) for line in (bundle / f"medbullets_{op}.jsonl").read_text().splitlines()]
        path = folder / f"medbullets_{op}.csv"
        columns = ["link", "question", *[f"op{k.lower()}" for k in rows[0]["options"]], "answer_idx", "answer", "explanation"]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({"link": "", "explanation": "", "question": row["question"], "answer_idx": row["answer_idx"],
                                 "answer": row["answer"], **{f"op{k.lower()}": v for k, v in row["options"].items()}})
        files[f"MedBullets_{op}"] = path

    rows = [json.loads(line) for line in (bundle / "MedXpertQA_test.jsonl").read_text().splitlines()]
    outside = [row | {"id": f"Text-{n}"} for n, row in zip(range(5), rows)]  # ids the published set does not hold
    files["MedXpertQA"] = folder / "medxpertqa_test.jsonl"
    files["MedXpertQA"].write_text("".join(json.dumps(row | {"question": row["question"] + "\nAnswer Choices: " + " ".join(
        f"({k}) {v}" for k, v in row["options"].items())}) + "\n" for row in outside + rows))

    mmlu = [{"question_id": i, "question": item["question"], "options": list(item["options"].values()) + ["N/A"] * (10 - len(item["options"])),
             "answer": item["answer_idx"], "answer_index": "ABCDEFGHIJ".index(item["answer_idx"]), "category": "health"}
            for i, item in enumerate(published["MMLU-Pro_Medical_test"])]
    mmlu.insert(3, {"question_id": -1, "question": "Which court hears appeals?", "options": ["A court", "N/A"],
                    "answer": "A", "answer_index": 0, "category": "law"})
    files["MMLU-Pro_Medical_test"] = folder / "mmlu_pro.jsonl"
    files["MMLU-Pro_Medical_test"].write_text("".join(json.dumps(row) + "\n" for row in mmlu))

    medmcqa = [{"id": f"medmcqa-{i}", "question": item["question"], **{f"op{k.lower()}": v for k, v in item["options"].items()},
                "cop": "ABCD".index(item["answer_idx"]), "subject_name": "x"} for i, item in enumerate(published["MedMCQA_validation"])]
    files["MedMCQA_validation"] = folder / "medmcqa_validation.jsonl"
    files["MedMCQA_validation"].write_text("".join(json.dumps(row) + "\n" for row in medmcqa))

    files["MedQA_USLME_test"] = folder / "medqa_test.jsonl"
    files["MedQA_USLME_test"].write_text("".join(json.dumps(item | {"meta_info": "step1"}) + "\n"
                                                 for item in published["MedQA_USLME_test"]))
    files["PubMedQA_test"] = shared_data / "pools/pubmedqa/ori_pqal.json"  # the official PQA-L file itself
    return files


def test_upstream_schemas_of_the_real_bundle_rebuild_the_published_sections(shared_data: Path, tmp_path: Path) -> None:
    inputs = _bundle_in_upstream_schemas(shared_data, tmp_path)
    out = tmp_path / "suite.json"
    manifest = build_eval_suite(shared_data / "eval", out, inputs)
    built = json.loads(out.read_text())
    published = json.loads((shared_data / "eval/m1_eval_data.partial.json").read_text())
    for name in inputs:
        if name == "PubMedQA_test":  # the same 1000 items; the bundle's order is HuatuoGPT-o1's own
            assert sorted(map(json.dumps, built[name])) == sorted(map(json.dumps, published[name]))
        else:
            assert built[name] == published[name], name
    assert manifest["sources"]["MedXpertQA"]["outside_subset"] == 5
    assert manifest["sources"]["MMLU-Pro_Medical_test"]["outside_subset"] == 1
    assert manifest["sources"]["MedBullets_op5"]["format"] == "medbullets"
    # Ids in the inputs (MedMCQA's, MMLU-Pro's question_id, MedXpertQA's, PubMedQA's PMIDs) do not
    # reach the file, so the manifest lists the file's content uids, which are the bundle's too.
    assert_manifest_uids_are_the_files(manifest, out)
    bundle = build_eval_suite(shared_data / "eval", tmp_path / "bundle.json")
    for name in inputs:
        if name != "PubMedQA_test":
            assert manifest["sources"][name]["uids"] == bundle["sources"][name]["uids"], name
        else:
            assert sorted(manifest["sources"][name]["uids"]) == sorted(bundle["sources"][name]["uids"])


# ----------------------------------------------------------------------------- option counts


def releases_of(declared: SuiteSource) -> list[Path]:
    """The fixtures in a format of this source's official release."""
    return [path for path in RELEASES if declared.upstream and detect_format(path) in declared.upstream.formats]


@pytest.mark.parametrize("declared", [s for s in SUITE if s.options], ids=lambda s: s.name)
def test_a_source_refuses_a_file_with_another_option_count(tmp_path: Path, declared: SuiteSource) -> None:
    candidates = releases_of(declared) + [UPSTREAM / name for name in ("medqa_test.jsonl", "medbullets_op4.csv",
                                                                      "medbullets_op5.json", "medqa_4_options_test.jsonl")
                                          if detect_format(UPSTREAM / name) in declared.accepts()]
    assert candidates
    for path in candidates:
        counts = {len(item.options) for item in load_items(path).items}
        if counts == {declared.options}:
            assert read_source(declared, path).items
            continue
        with pytest.raises(DataError) as caught:
            read_source(declared, path)
        problem = caught.value.problem
        assert problem.file == str(path) and problem.field == "options", path
        assert f"holds {declared.options}-option questions" in problem.problem
        assert all(f"{count} options" in problem.problem for count in counts)
        assert declared.upstream.release in problem.fix and declared.file in problem.fix


def test_the_wrong_medqa_and_medbullets_files_are_refused_with_the_file_to_use() -> None:
    with pytest.raises(DataError) as caught:
        read_suite_sources(None, ["MedQA_USLME_test"], {"MedQA_USLME_test": UPSTREAM / "medqa_test.jsonl"})
    assert "medqa_test.jsonl" in str(caught.value) and "5 options (3 of 3 items)" in str(caught.value)
    assert "4_options/phrases_no_exclude_test.jsonl" in caught.value.problem.fix
    for name, other in (("MedBullets_op4", "medbullets_op5.json"), ("MedBullets_op5", "medbullets_op4.csv")):
        with pytest.raises(DataError) as caught:
            read_suite_sources(None, [name], {name: UPSTREAM / other})
        assert other in str(caught.value) and f"medbullets/medbullets_{name[-3:]}.csv" in caught.value.problem.fix


def test_the_bundles_wrong_files_are_refused_too(shared_data: Path, tmp_path: Path) -> None:
    cases = {"MedQA_USLME_test": "eval/medqa_test_5opt.jsonl", "MedBullets_op4": "eval/reasoningeval/medbullets_op5.jsonl",
             "MedBullets_op5": "eval/reasoningeval/medbullets_op4.jsonl"}
    for name, relative in cases.items():
        with pytest.raises(DataError, match="-option questions, but this file's have") as caught:
            read_suite_sources(None, [name], {name: shared_data / relative})
        assert caught.value.problem.file == str(shared_data / relative)


# ----------------------------------------------------------------------------- convert, then build


def round_trips() -> list[tuple[SuiteSource, Path]]:
    """Each source with each fixture of its official release that it accepts."""
    pairs = []
    for declared in SUITE:
        for path in releases_of(declared):
            try:
                read_source(declared, path)
            except DataError:  # another option count: refused, as the tests above check
                continue
            pairs.append((declared, path))
    return pairs


ROUND_TRIPS = round_trips()


def test_the_round_trips_cover_every_upstream_format() -> None:
    covered = {detect_format(path) for _, path in ROUND_TRIPS}
    assert covered == {fmt for declared in SUITE if declared.upstream for fmt in declared.upstream.formats}
    assert {declared.name for declared, _ in ROUND_TRIPS} == {declared.name for declared in SUITE if declared.upstream}


def records(items: list[MCQItem]) -> list[dict]:
    return [item.to_eval_record() for item in items]


@pytest.mark.parametrize(("declared", "path"), ROUND_TRIPS, ids=lambda x: x.name if isinstance(x, Path) else x.name)
def test_a_converted_release_builds_what_the_release_builds(tmp_path: Path, declared: SuiteSource, path: Path) -> None:
    direct = read_source(declared, path)
    # Converted as the suite's source: filed under its name, its subset kept.
    named = tmp_path / "named.json"
    done = convert_file(path, named, source=declared.name)
    assert list(json.loads(named.read_text())) == [declared.name]
    assert sum(done.left_out.values()) == direct.outside_subset + sum(direct.excluded.values())
    via = read_source(declared, named)
    assert via.format == "m1-eval" and records(via.items) == records(direct.items)
    # Converted as a plain file: filed under the file's name, every row kept.
    plain = tmp_path / "plain.json"
    convert_file(path, plain)
    if declared.upstream.keep is None:
        assert records(read_source(declared, plain).items) == records(direct.items)
    else:  # the file cannot show the subset rule's fields: refused, with the command that works
        with pytest.raises(DataError) as caught:
            read_source(declared, plain)
        assert caught.value.problem.file == str(plain) and f"--source {declared.name}" in caught.value.problem.fix


def test_a_suite_built_from_converted_releases_is_the_suite_built_from_the_releases(tmp_path: Path) -> None:
    releases = {name: UPSTREAM / file for name, file in UPSTREAM_INPUTS.items()}
    direct = build_eval_suite(None, tmp_path / "direct.json", releases)
    converted = {}
    for name, path in releases.items():
        converted[name] = tmp_path / f"{path.stem}.m1-eval.json"
        convert_file(path, converted[name], source=name)
    via = build_eval_suite(None, tmp_path / "via.json", converted)
    assert md5_file(tmp_path / "via.json") == md5_file(tmp_path / "direct.json") == direct["md5"] == via["md5"]
    assert {n: e["uids"] for n, e in via["sources"].items()} == {n: e["uids"] for n, e in direct["sources"].items()}


def test_a_one_source_file_that_names_another_source_of_the_suite_is_refused(tmp_path: Path) -> None:
    gpqa = tmp_path / "gpqa.json"
    convert_file(UPSTREAM / "gpqa_main.csv", gpqa, source="GPQA_Medical_test")  # 4 options, like MedBullets_op4
    with pytest.raises(DataError, match="another source of the suite") as caught:
        read_suite_sources(None, ["MedBullets_op4"], {"MedBullets_op4": gpqa})
    assert caught.value.problem.file == str(gpqa)
