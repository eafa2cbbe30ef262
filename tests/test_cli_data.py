"""The `m1 data` commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from m1.cli import app

runner = CliRunner()


def test_build_eval_prints_table_and_matches(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    result = runner.invoke(app, ["data", "build-eval", "--data-dir", str(shared_data / "eval"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "10549" in result.output
    assert "matches the published partial suite" in result.output
    assert out.exists() and out.with_name("suite.manifest.json").exists()


def test_inspect_json(shared_data: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", str(shared_data / "eval/reasoningeval/medbullets_op5.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["sources"] == {"medbullets_op5": 308}
    assert summary["option_counts"]["medbullets_op5"] == {"5": 308}
    assert summary["exact_duplicate_rows"]["medbullets_op5"] == 10


def test_validate_corrupted_copy_names_row_and_field(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / "eval/reasoningeval/medbullets_op4.jsonl").read_text().splitlines()
    row = json.loads(lines[41])
    row["answer"] = "a different answer"
    lines[41] = json.dumps(row)
    lines[99] = lines[99][:-5]  # cut the line short: malformed JSON
    corrupted = tmp_path / "medbullets_op4.jsonl"
    corrupted.write_text("\n".join(lines) + "\n")
    report = tmp_path / "problems.jsonl"

    result = runner.invoke(app, ["data", "validate", str(corrupted), "--report", str(report)])
    assert result.exit_code == 1
    assert "row 42, field 'answer'" in result.output
    assert "row 100" in result.output and "malformed JSON" in result.output
    problems = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(p["row"], p["field"]) for p in problems] == [("42", "answer"), ("100", "")]

    as_json = runner.invoke(app, ["data", "validate", str(corrupted), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["invalid_rows"] == 2


def test_validate_clean_file_exits_zero(shared_data: Path) -> None:
    result = runner.invoke(app, ["data", "validate", str(shared_data / "eval/reasoningeval/HLE_biomed.jsonl")])
    assert result.exit_code == 0, result.output
    assert "103 valid items" in result.output


def test_inspect_stops_on_bad_row_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "S", "question": "q", "options": {"A": "x"}, "answer_idx": "B"}\n')
    result = runner.invoke(app, ["data", "inspect", str(bad)])
    assert result.exit_code == 2
    assert "row 1, field 'answer_idx'" in result.output
    assert "Traceback" not in result.output


def test_inspect_skip_invalid_writes_report(tmp_path: Path) -> None:
    bad = tmp_path / "mixed.jsonl"
    bad.write_text('{"source": "S", "question": "q", "options": {"A": "x", "B": "y"}, "answer_idx": "B"}\n'
                   '{"source": "S", "question": "q2", "options": {"A": "x"}, "answer_idx": "C"}\n')
    report = tmp_path / "skipped.jsonl"
    result = runner.invoke(app, ["data", "inspect", str(bad), "--skip-invalid", "--report", str(report), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped_rows"] == 1
    skipped = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(p["row"], p["field"]) for p in skipped] == [("2", "answer_idx")]


# ----------------------------------------------------------------------------- upstream files


def test_convert_upstream_file_writes_m1_eval(fixtures: Path, tmp_path: Path) -> None:
    from m1.data.loaders import load_items

    out = tmp_path / "converted" / "medbullets.json"
    result = runner.invoke(app, ["data", "convert", str(fixtures / "upstream/medbullets_op4.csv"), "--to", "m1-eval",
                                 "--out", str(out), "--source", "MedBullets_op4", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["format"], summary["to"], summary["sources"]) == ("medbullets", "m1-eval", {"MedBullets_op4": 3})
    written = json.loads(out.read_text())
    source = load_items(fixtures / "upstream/medbullets_op4.csv", source="MedBullets_op4").items
    assert written == {"MedBullets_op4": [item.to_eval_record() for item in source]}
    assert load_items(out).format == "m1-eval"
    assert sorted(p.name for p in out.parent.iterdir()) == ["medbullets.json"]  # written atomically, no leftovers


def test_convert_counts_rows_the_format_leaves_out(fixtures: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "convert", str(fixtures / "upstream/hle_test.jsonl"),
                                 "--out", str(tmp_path / "hle.json"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sources"] == {"hle_test": 3}
    assert summary["excluded"] == {"not multiple choice (answer_type 'exactMatch')": 1,
                                   "needs its image (the suite is text-only)": 1}


def test_convert_refuses_unknown_target_and_unknown_file(tmp_path: Path) -> None:
    from m1.data.loaders import FORMATS

    notes = tmp_path / "notes.json"
    notes.write_text('[{"prompt": "q", "completion": "a"}]')
    wrong_target = runner.invoke(app, ["data", "convert", str(notes), "--to", "parquet", "--out", str(tmp_path / "x")])
    assert wrong_target.exit_code == 2 and "cannot write 'parquet'" in wrong_target.output and "m1-eval" in wrong_target.output
    unknown = runner.invoke(app, ["data", "convert", str(notes), "--out", str(tmp_path / "x.json")])
    assert unknown.exit_code == 2 and "cannot tell the file's format" in unknown.output
    assert all(name in unknown.output for name in FORMATS) and "Traceback" not in unknown.output
    assert not (tmp_path / "x.json").exists()


def test_build_eval_accepts_upstream_files(fixtures: Path, tmp_path: Path) -> None:
    inputs = {
        "MedMCQA_validation": "medmcqa_dev.json", "MedQA_USLME_test": "medqa_4_options_test.jsonl",
        "PubMedQA_test": "ori_pqal.json",
        "MMLU-Pro_Medical_test": "mmlu_pro_test.jsonl", "GPQA_Medical_test": "gpqa_main.csv",
        "HumanityLastExam": "hle_test.jsonl", "MedBullets_op4": "medbullets_op4.csv",
        "MedBullets_op5": "medbullets_op5.json", "MedXpertQA": "medxpertqa_text_test.jsonl",
    }
    args = [arg for name, file in inputs.items() for arg in ("--input", f"{name}={fixtures / 'upstream' / file}")]
    out = tmp_path / "suite.json"
    result = runner.invoke(app, ["data", "build-eval", "--out", str(out), *args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["total"] == 4 + 3 + 3 + 3 + 3 + 2 + 3 + 3 + 3
    assert summary["formats"]["MedMCQA_validation"] == "medmcqa-release"
    assert summary["formats"]["MedXpertQA"] == "medxpertqa"
    assert list(json.loads(out.read_text())) == list(inputs)


def test_convert_with_every_row_invalid_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "pqa_labeled.jsonl"
    bad.write_text('{"pubid": 1, "question": "q?", "context": {"contexts": [1, 2]}, "final_decision": "yes"}\n')
    result = runner.invoke(app, ["data", "convert", str(bad), "--skip-invalid", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "1 skipped as invalid" in result.output and "row 1, field 'context.contexts'" in result.output


def test_build_eval_input_must_be_source_equals_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "build-eval", "--out", str(tmp_path / "s.json"), "--input", "medbullets.csv"])
    assert result.exit_code == 2 and "SOURCE=FILE" in result.output


UPSTREAM_INPUTS = {
    "MedMCQA_validation": "medmcqa_validation.jsonl", "MedQA_USLME_test": "medqa_4_options_test.jsonl",
    "PubMedQA_test": "ori_pqal.json", "MMLU-Pro_Medical_test": "mmlu_pro_test.jsonl",
    "GPQA_Medical_test": "gpqa_main.csv", "HumanityLastExam": "hle_test.jsonl", "MedBullets_op4": "medbullets_op4.csv",
    "MedBullets_op5": "medbullets_op5.json", "MedXpertQA": "medxpertqa_text_test.jsonl",
}


def input_args(fixtures: Path, **replaced: Path) -> list[str]:
    """--input for every source from the upstream fixtures, some replaced by other files."""
    files = {name: replaced.get(name, fixtures / "upstream" / file) for name, file in UPSTREAM_INPUTS.items()}
    return [arg for name, path in files.items() for arg in ("--input", f"{name}={path}")]


def test_convert_then_build_eval_takes_the_converted_file(fixtures: Path, tmp_path: Path) -> None:
    converted = tmp_path / "medbullets_op4.m1-eval.json"
    made = runner.invoke(app, ["data", "convert", str(fixtures / "upstream/medbullets_op4.csv"), "--out", str(converted)])
    assert made.exit_code == 0, made.output
    assert list(json.loads(converted.read_text())) == ["medbullets_op4"]  # filed under the file's name
    via = runner.invoke(app, ["data", "build-eval", "--out", str(tmp_path / "via.json"),
                              *input_args(fixtures, MedBullets_op4=converted), "--json"])
    direct = runner.invoke(app, ["data", "build-eval", "--out", str(tmp_path / "direct.json"), *input_args(fixtures), "--json"])
    assert via.exit_code == direct.exit_code == 0, via.output + direct.output
    assert json.loads(via.stdout)["formats"]["MedBullets_op4"] == "m1-eval"
    assert json.loads(via.stdout)["md5"] == json.loads(direct.stdout)["md5"]


def test_a_subset_source_is_converted_with_its_name(fixtures: Path, tmp_path: Path) -> None:
    plain, named = tmp_path / "plain.json", tmp_path / "named.json"
    mmlu = str(fixtures / "upstream/mmlu_pro_test.jsonl")
    assert runner.invoke(app, ["data", "convert", mmlu, "--out", str(plain)]).exit_code == 0
    refused = runner.invoke(app, ["data", "build-eval", "--out", str(tmp_path / "s.json"),
                                  *input_args(fixtures, **{"MMLU-Pro_Medical_test": plain})])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "--source MMLU-Pro_Medical_test" in refused.output
    made = runner.invoke(app, ["data", "convert", mmlu, "--out", str(named), "--source", "MMLU-Pro_Medical_test", "--json"])
    assert made.exit_code == 0, made.output
    summary = json.loads(made.stdout)
    assert summary["sources"] == {"MMLU-Pro_Medical_test": 3}
    assert summary["excluded"] == {"outside MMLU-Pro_Medical_test (category health or biology (818 + 717 of the "
                                   "test split))": 1}
    built = runner.invoke(app, ["data", "build-eval", "--out", str(tmp_path / "s.json"),
                                *input_args(fixtures, **{"MMLU-Pro_Medical_test": named}), "--json"])
    assert built.exit_code == 0 and json.loads(built.stdout)["sources"]["MMLU-Pro_Medical_test"] == 3


def test_build_eval_refuses_the_five_option_medqa_file(fixtures: Path, tmp_path: Path) -> None:
    five = fixtures / "upstream/medqa_test.jsonl"
    result = runner.invoke(app, ["data", "build-eval", "--out", str(tmp_path / "s.json"),
                                 *input_args(fixtures, MedQA_USLME_test=five)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{five}, field 'options': MedQA_USLME_test holds 4-option questions" in result.output
    assert "5 options (3 of 3 items)" in result.output and "4_options/phrases_no_exclude_test.jsonl" in result.output
    assert not (tmp_path / "s.json").exists()


def test_an_input_that_cannot_be_read_is_one_line_naming_it(fixtures: Path, tmp_path: Path) -> None:
    (tmp_path / "folder.jsonl").mkdir()
    for path, words in ((tmp_path / "nonexist.jsonl", "file not found"), (tmp_path / "folder.jsonl", "this is a folder")):
        commands = [["data", "build-eval", "--out", str(tmp_path / "s.json"), *input_args(fixtures, MedXpertQA=path)],
                    ["data", "convert", str(path), "--out", str(tmp_path / "x.json")],
                    ["data", "inspect", str(path)], ["data", "validate", str(path)]]
        for command in commands:
            result = runner.invoke(app, command)
            assert result.exit_code == 2 and "Traceback" not in result.output, (command, result.output)
            assert f"error: {path}: {words}" in result.output, (command, result.output)


def test_convert_to_lists_the_writers() -> None:
    import typer

    from m1.data.suite import SUITE, WRITERS

    convert = typer.main.get_command(app).commands["data"].commands["convert"]
    options = {param.name: param for param in convert.params}
    assert all(name in options["to"].help for name in WRITERS)
    assert all(declared.name in options["source"].help for declared in SUITE)
