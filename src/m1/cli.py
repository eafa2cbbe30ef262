"""The `m1` command: wiring only. Each command parses its options, calls the library, prints.

    m1 data build-eval            # assemble the evaluation suite from ../shared/data/eval
    m1 data convert FILE --to m1-eval   # an upstream benchmark file (or any format) → m1 eval JSON
    m1 data inspect FILE          # counts per source, option counts, duplicates
    m1 data validate FILE         # exit 1 naming every bad row and field
    m1 score PREDICTIONS.jsonl    # re-score replies in both modes
    m1 ask "QUESTION" -o A=… -o B=…   # one question, thinking streamed, inserted text marked
    m1 ask "QUESTION" -o … --early-exit confidence --threshold 0.9   # probes shown live, tokens saved
    m1 eval [CONFIG] [key=value]  # sweep budgets over the suite (configs/eval/…); m1 report RUN
    m1 report RUN --effort-table  # reasoning_effort budgets from the run's sweep, for m1 serve --effort-table
    m1 label-domains CONFIG       # MeSH domain labels for an eval selection (configs/domains/…)
    m1 serve [--model …]          # OpenAI-compatible server (m1.serving.command)
    m1 view RUN [RUN …]           # browse runs' traces in the browser (m1.viewing.command)
    m1 curate run CONFIG          # build a training set (configs/curate/…); m1 curate status RUN
    m1 train CONFIG [key=value]   # fine-tune on curated records (configs/train/…)

Errors in user input (`DataError`) are printed as one line and exit with status 2 instead of a
traceback. Every reporting command takes --json (progress, if any, then goes to stderr); plain
output is for people and never wrapped off a terminal (`m1.console`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from m1.console import make_console, typer_markup_mode
from m1.engine.policy import EarlyExit, EarlyExitMethod, PresetName
from m1.engine.registry import backend_names
from m1.evaluation.calibration import TARGET, checked_target
from m1.evaluation.view_links import VIEW_URL
from m1.data.errors import DataError
from m1.serving.command import backend_option, serve_command
from m1.viewing.command import view_command

app = typer.Typer(help="m1: test-time scaling for medical reasoning with LLMs.", no_args_is_help=True,
                  rich_markup_mode=typer_markup_mode(),
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Load, build, inspect and validate medical QA data.", no_args_is_help=True,
                       rich_markup_mode=typer_markup_mode())
app.add_typer(data_app, name="data")
curate_app = typer.Typer(help="Build training sets from raw QA pools (SPEC §3), resumably.", no_args_is_help=True,
                         rich_markup_mode=typer_markup_mode())
app.add_typer(curate_app, name="curate")

console = make_console()
err_console = make_console(stderr=True)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn bad input into a one-line message and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DataError as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def write_problems(path: Path, problems: list[Any]) -> None:
    from m1.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in problems))


def _format_names() -> str:
    from m1.data.loaders import FORMATS

    return ", ".join(FORMATS)


def _exit_default(name: str) -> object:
    return EarlyExit.model_fields[name].default


FormatOption = Annotated[Optional[str], typer.Option("--format", help=f"File format, one of: {_format_names()} (detected when omitted).")]
SourceOption = Annotated[Optional[str], typer.Option("--source", help="Source name for rows that have none.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@data_app.command("build-eval")
@user_errors
def data_build_eval(
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the evaluation sources.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the m1 evaluation file.")] = Path("build/m1_eval_data.json"),
    input_specs: Annotated[Optional[list[str]], typer.Option("--input", help="SOURCE=FILE: read that source from FILE (its bundle file, its official release, or what m1 data convert wrote from one); repeat for each.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Assemble the m1 evaluation suite from its sources and write it with a manifest."""
    from m1.data.suite import PUBLISHED_SUITE_MD5, build_eval_suite, manifest_path, shared_data_dir

    inputs = {}
    for spec in input_specs or []:
        name, _, file = spec.partition("=")
        if not name or not file:
            raise typer.BadParameter(f"{spec!r} is not SOURCE=FILE", param_hint="--input")
        inputs[name] = Path(file)
    if data_dir is None:
        shared = shared_data_dir()
        if shared is None and not inputs:
            raise DataError.at("../shared/data/eval", "", "", "the evaluation sources were not found",
                               "pass --data-dir, set M1_SHARED_DATA to the data folder, or give --input SOURCE=FILE")
        data_dir = shared / "eval" if shared is not None else None
    manifest = build_eval_suite(data_dir, out, inputs)
    if json_output:
        print_json({k: v for k, v in manifest.items() if k != "sources"}
                   | {"sources": {name: s["count"] for name, s in manifest["sources"].items()},
                      "formats": {name: s["format"] for name, s in manifest["sources"].items()}})
        return
    table = Table(title=escape(f"m1 evaluation suite → {out}"))
    table.add_column("source")
    table.add_column("items", justify="right")
    table.add_column("from")
    table.add_column("format")
    for name, entry in manifest["sources"].items():
        table.add_row(name, str(entry["count"]), escape(entry["input"]), entry["format"])
    table.add_row("[bold]total", f"[bold]{manifest['total']}", "", "")
    console.print(table)
    same = "matches the published partial suite" if manifest["md5"] == PUBLISHED_SUITE_MD5 else "differs from the published partial suite"
    console.print(f"md5 {manifest['md5']} ({same}); manifest: {manifest_path(out)}", markup=False)


def _writer_names() -> str:
    from m1.data.suite import WRITERS

    return ", ".join(WRITERS)


def _suite_names() -> str:
    from m1.data.suite import SUITE

    return ", ".join(declared.name for declared in SUITE)


@data_app.command("convert")
@user_errors
def data_convert(
    file: Path,
    to: Annotated[str, typer.Option("--to", help=f"Output format, one of: {_writer_names()}.")] = "m1-eval",
    out: Annotated[Optional[Path], typer.Option(help="Where to write (default <file stem>.<to>.json here).")] = None,
    format: FormatOption = None,
    source: Annotated[Optional[str], typer.Option("--source", help=(
        "Source name for rows that have none. A source of the suite (" + _suite_names() + ") reads the file as "
        "that source: its option count is checked and only its subset kept, so build-eval can take the output."))] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Skip bad rows (listed in --report) instead of stopping.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Where skipped rows and reasons go (default <file>.skipped.jsonl).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Convert a data file, such as a benchmark's official release, to the m1 evaluation format."""
    from m1.data.suite import convert_file
    from m1.io import md5_file

    out = out or Path(f"{file.stem}.{to}.json")
    done = convert_file(file, out, to=to, format=format, source=source, skip_invalid=skip_invalid)
    if done.problems:
        report = report or Path(f"{file.stem}.skipped.jsonl")
        write_problems(report, done.problems)
        err_console.print(f"{len(done.problems)} rows skipped; each with its reason in {report}", markup=False)
    summary = {"file": str(file), "format": done.format, "out": str(out), "to": to, "md5": md5_file(out),
               "sources": {name: len(items) for name, items in done.sources.items()},
               "excluded": done.left_out, "skipped_rows": len(done.problems)}
    if json_output:
        print_json(summary)
        return
    counts = ", ".join(f"{name} {count}" for name, count in summary["sources"].items())
    console.print(f"{file} ({done.format}) → {out} ({to}): {counts}", markup=False, highlight=False)
    for reason, count in done.left_out.items():
        console.print(f"left out: {count} rows, {reason}", markup=False)


@data_app.command("inspect")
@user_errors
def data_inspect(
    file: Path,
    format: FormatOption = None,
    source: SourceOption = None,
    skip_invalid: Annotated[bool, typer.Option(help="Skip bad rows (listed in --report) instead of stopping.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Where skipped rows and reasons go (default <file>.skipped.jsonl).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Counts per source, option-count histogram and duplicates of a data file."""
    from m1.data.loaders import load_items
    from m1.data.suite import describe_items

    result = load_items(file, format=format, source=source, skip_invalid=skip_invalid)
    if result.problems:
        report = report or Path(f"{file.stem}.skipped.jsonl")
        write_problems(report, result.problems)
        err_console.print(f"{len(result.problems)} rows skipped; each with its reason in {report}", markup=False)
    summary = describe_items(result.items) | {"file": str(file), "format": result.format,
                                              "skipped_rows": len(result.problems), "excluded": dict(result.excluded)}
    if json_output:
        print_json(summary)
        return
    table = Table(title=escape(f"{file} ({result.format})"))
    for column in ("source", "items", "options: count×n", "exact duplicate rows", "repeated questions"):
        table.add_column(column, justify="left" if column in ("source", "options: count×n") else "right")
    for name, count in summary["sources"].items():
        histogram = " ".join(f"{k}×{v}" for k, v in summary["option_counts"][name].items())
        table.add_row(name, str(count), histogram, str(summary["exact_duplicate_rows"][name]),
                      str(summary["repeated_questions"][name]))
    table.add_row("[bold]total", f"[bold]{summary['total']}", "", "", "")
    console.print(table)
    console.print(f"questions found in more than one source: {summary['questions_in_several_sources']}; "
                  f"empty option texts: {summary['empty_option_texts']}; skipped rows: {len(result.problems)}")
    for reason, count in result.excluded.items():
        console.print(f"left out by the format: {count} rows, {reason}", markup=False)


@data_app.command("validate")
@user_errors
def data_validate(
    file: Path,
    format: FormatOption = None,
    source: SourceOption = None,
    report: Annotated[Optional[Path], typer.Option(help="Also write every bad row with its reason here (JSONL).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Check every row of a data file; exit 1 naming each bad row, its field and the fix."""
    from m1.data.loaders import load_items

    result = load_items(file, format=format, source=source, skip_invalid=True)
    if report is not None:
        write_problems(report, result.problems)
    if json_output:
        print_json({"file": str(file), "format": result.format, "valid_items": len(result.items),
                    "invalid_rows": len(result.problems), "excluded": dict(result.excluded),
                    "problems": [p.to_dict() for p in result.problems]})
    else:
        for problem in result.problems:
            err_console.print(f"[red]invalid:[/] {escape(problem.describe())}", highlight=False)
        status = "[green]valid[/]" if not result.problems else f"[red]{len(result.problems)} invalid rows[/]"
        console.print(f"{escape(str(file))}: {len(result.items)} valid items, {status}", highlight=False)
        for reason, count in result.excluded.items():
            console.print(f"left out by the format: {count} rows, {reason}", markup=False)
    if result.problems:
        raise typer.Exit(1)


@app.command("score")
@user_errors
def score(
    predictions: Path,
    mode: Annotated[str, typer.Option(help="Extraction mode shown in the table: strict, or reference (the paper's evaluation grader).")] = "strict",
    json_output: JsonOption = False,
) -> None:
    """Re-score a predictions file in both modes and show accuracy per source (with --json, also the
    budget audit of its rows: one per requested budget)."""
    from m1.evaluation.audit import audit_file
    from m1.scoring import MODES, read_predictions, render_table, score_command_result, score_file

    if mode not in MODES:
        raise typer.BadParameter(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", param_hint="--mode")
    if json_output:
        result = score_command_result(predictions, mode)
        print_json(result | {"audit": audit_file(row.to_record() for row in read_predictions(predictions))})
        return
    report = score_file(predictions)
    console.print(render_table(report.modes[mode], title=escape(f"{predictions} — {mode} extraction")))
    diff = report.disagreement
    console.print(f"reference and strict disagree on {diff.count} of {diff.items} items "
                  f"({diff.strict_no_answer} where strict finds no answer)")


@app.command("ask")
@user_errors
def ask(
    question: str,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help='An option as A="text"; repeat for each.')] = None,
    model: Annotated[str, typer.Option(help="Model alias, Hugging Face id or local folder.")] = "smollm2-135m",
    backend: Annotated[str, typer.Option(callback=backend_option(), help=f"The engine: {', '.join(backend_names())}.")]
    = "transformers",
    budget: Annotated[int, typer.Option(help="Maximum thinking tokens (B).")] = 1024,
    wait: Annotated[int, typer.Option(help='How many times to append "Wait" when thinking stops (K).')] = 0,
    min_thinking: Annotated[Optional[int], typer.Option(help="Keep extending until this many thinking tokens.")] = None,
    preset: Annotated[Optional[PresetName], typer.Option(help="Budget preset (default: the model's own).")] = None,
    answer_tokens: Annotated[int, typer.Option(help="Maximum answer tokens.")] = 1024,
    base_url: Annotated[Optional[str], typer.Option(help="Server URL for --backend openai.")] = None,
    early_exit: Annotated[Optional[EarlyExitMethod], typer.Option(
        help="End thinking once the answer has settled: confidence (probability >= --threshold) or "
             "consistency (--agree probes in a row agree).")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        help=f"--early-exit confidence: probability needed ({_exit_default('threshold')}).")] = None,
    every: Annotated[Optional[int], typer.Option(
        help=f"--early-exit: probe every this many thinking tokens ({_exit_default('every')}).")] = None,
    agree: Annotated[Optional[int], typer.Option(
        help=f"--early-exit consistency: probes that must agree ({_exit_default('agree')}).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Ask one question; stream the thinking and the answer and show the token accounting.

    Text that m1 inserts (a "Wait", the answer prefix) is shown marked as «inserted: …», apart
    from what the model generated. With --early-exit, each probe of the answer is shown as it
    happens, and the tokens saved at the end.
    """
    from m1.engine import BudgetPolicy, load_backend, render_prompt
    from m1.engine.default_model import default_preset

    options = dict(_parse_option(text) for text in option or [])
    chosen = preset or default_preset(model)
    exit_settings = {"threshold": threshold, "every": every, "agree": agree}
    if early_exit is None and any(value is not None for value in exit_settings.values()):
        given = ", ".join(f"--{name}" for name, value in exit_settings.items() if value is not None)
        raise typer.BadParameter(f"{given} only apply with --early-exit confidence|consistency", param_hint="--early-exit")
    exit_policy = None if early_exit is None else {"method": early_exit} | {
        name: value for name, value in exit_settings.items() if value is not None}
    try:
        policy = BudgetPolicy.from_preset(chosen, max_thinking_tokens=budget, num_extensions=wait,
                                          min_thinking_tokens=min_thinking, max_answer_tokens=answer_tokens,
                                          early_exit=exit_policy)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if not json_output:
        origin = "as asked" if preset else "the model's default; --preset to change"
        ee = policy.early_exit
        adaptive = f" · early exit by {ee.method}, probe every {ee.every} tokens and at transitions" if ee else ""
        console.print(f"{model} · preset {chosen} ({origin}) · budget {budget}, Wait ×{wait}{adaptive}", markup=False,
                      style="cyan")
    engine = load_backend(backend, model, **({"base_url": base_url} if base_url else {}))
    prompt = render_prompt(engine.tokenizer, question, options or None, policy)
    phase_style = {"think": "dim", "answer": "bold"}
    shown: list[str] = []

    def on_text(_index: int, phase: str, text: str, inserted: bool) -> None:
        if json_output:
            return
        if not shown or shown[-1] != phase:
            console.print(f"\n[{phase_style[phase]}]── {phase} ──[/]")
            shown.append(phase)
        if inserted:
            # Never shown as the model's words: a chip on its line, newlines made visible.
            text = "«inserted: " + text.replace("\n", "⏎") + "»"
        console.print(text, end="", style="italic magenta" if inserted else phase_style[phase], markup=False,
                      highlight=False)

    def on_probe(_index: int, probe: dict[str, Any]) -> None:
        if not json_output:
            console.print("\n" + _probe_line(probe), style="cyan", markup=False, highlight=False)

    record = engine.generate([prompt], policy, on_text=on_text, choices=[list(options) or None], on_probe=on_probe)[0]
    if json_output:
        print_json(record.to_dict() | {"preset": chosen, "thinking_ids": None, "answer_ids": None, "trace": None})
        return
    console.print()
    if record.error:
        raise DataError.at("question", "", "", record.error)
    console.print(f"[cyan]thinking {record.thinking_tokens}/{budget} tokens, answer {record.answer_tokens} tokens, "
                  f"inserted {record.inserted_tokens}, extensions {record.extensions_used}/{wait}; "
                  f"thinking ended: {record.thinking_end}[/]")
    if record.probes is not None:
        saved = budget - record.thinking_tokens if record.thinking_end == "early_exit" else 0
        console.print(f"early exit ({record.exit_rule}): {saved} thinking tokens saved of {budget}; "
                      f"{len(record.probes)} probes, {record.probe_tokens} probe tokens, "
                      f"{record.probe_seconds:.2f} s", markup=False, style="cyan")
    if options:
        console.print(_chosen_option(record.reply, options), markup=False, style="cyan")


def _probe_line(probe: dict[str, Any]) -> str:
    """One probe as `m1 ask` shows it: where in the thinking, the answer, how sure."""
    shown = "no answer" if probe["answer"] is None else repr(probe["answer"])
    probability = "" if probe["probability"] is None else f", p={probe['probability']:.2f}"
    outside = "" if probe["outside"] is None else f" (mass elsewhere {probe['outside']:.2f})"
    return f"«probe at {probe['thinking_tokens']} thinking tokens: {shown}{probability}{outside}»"


def _chosen_option(reply: str, options: dict[str, str]) -> str:
    """What the scorers read in the reply: the strict letter (or none) and the reference guess."""
    from m1.scoring import extract_answer

    strict, reference = (extract_answer(reply, options, mode) for mode in ("strict", "reference"))
    guess = f"reference grader: {reference.letter} ({reference.rule})"
    if strict.letter is None:
        return f"chosen option: none stated (strict: {strict.rule}); {guess}"
    return f"chosen option: {strict.letter}. {options[strict.letter]} (strict: {strict.rule}); {guess}"


def _parse_option(text: str) -> tuple[str, str]:
    letter, sep, value = text.partition("=")
    if not sep or len(letter.strip()) != 1 or not letter.strip().isupper():
        raise typer.BadParameter(f'{text!r} is not an option like A="text"', param_hint="--option")
    return letter.strip(), value.strip().strip('"')


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def evaluate(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Argument(help="A YAML preset (configs/eval/…); key=value overrides follow.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most this many items (after per-source sampling).")] = None,
    per_source: Annotated[Optional[int], typer.Option(help="A seeded sample of N items from each source.")] = None,
    sources: Annotated[Optional[str], typer.Option(help="Comma-separated source names to evaluate.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Evaluate a model over the suite across thinking budgets; resumes an interrupted run.

    With --json, progress goes to stderr and stdout holds only the run's summary.
    """
    from m1.config import load_config
    from m1.evaluation.config import EvalConfig
    from m1.evaluation.runner import run_eval

    overrides = list(ctx.args)
    if config is not None and "=" in str(config):
        overrides.insert(0, str(config))
        config = None
    flags = {"limit": limit, "per_source": per_source,
             "sources": json.dumps(sources.split(",")) if sources else None}
    overrides += [f"{key}={value}" for key, value in flags.items() if value is not None]
    eval_config = load_config(EvalConfig, config, overrides)
    summary = run_eval(eval_config, err_console if json_output else console)
    run_dir = Path(eval_config.out_dir) / summary["run"]
    if json_output:
        print_json(summary | {"run_dir": str(run_dir)})
        return
    console.print(summary_table(summary))
    if any(policy["aggregation"] != "single" for policy in summary.get("policies", [])):
        console.print(votes_table(summary))
    if "early_exit" in summary:
        console.print(early_exit_table(summary))
    console.print(f"results: {run_dir}  (next: m1 report {run_dir})", markup=False)


@app.command("label-domains", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def label(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="A YAML preset (configs/domains/…); key=value overrides follow.")],
    json_output: JsonOption = False,
) -> None:
    """Label the items an eval run would select with MeSH domains (resumable, replies cached); writes the labels file for domains=."""
    from m1.config import load_config
    from m1.evaluation.domains.labelling import DomainsConfig, label_domains

    summary = label_domains(load_config(DomainsConfig, config, list(ctx.args)), err_console if json_output else console)
    if json_output:
        print_json(summary)
        return
    console.print(domains_table(summary))
    methods = ", ".join(f"{method} {count}" for method, count in summary["methods"].items())
    client = summary["client"]
    console.print(f"labelled {summary['labelled']} of {summary['items']} items ({methods}; {summary['flagged']} flagged, "
                  f"{len(summary['unlabelled'])} unlabelled); this run: {client['requests']} requests, "
                  f"{client['cache_hits']} cache hits", markup=False, highlight=False)
    console.print(f"labels: {summary['file']}  sha256 {summary['sha256']}  (next: m1 eval CONFIG domains={summary['file']})",
                  markup=False, highlight=False)


def domains_table(summary: dict[str, Any]) -> Table:
    """Items per domain, most frequent first."""
    table = Table(title=escape(f"MeSH domains — {summary['labelled']} items"))
    table.add_column("domain")
    table.add_column("items", justify="right")
    for name, count in summary["domains"].items():
        table.add_row(escape(name), str(count))
    return table


@app.command("report")
@user_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="One or more run directories written by m1 eval.")],
    out: Annotated[Optional[Path], typer.Option(help="Where to write the report (default: <first run>/report).")] = None,
    mode: Annotated[str, typer.Option(help="Extraction mode to plot: strict or reference.")] = "strict",
    paper: Annotated[bool, typer.Option(help="Overlay the paper's reported numbers.")] = True,
    target_accuracy: Annotated[float, typer.Option(
        help="Calibration: the accuracy to find the answer-probability threshold for (0.9 = 90 %).")] = TARGET,
    effort_table: Annotated[bool, typer.Option(
        "--effort-table", help="Instead of the report, propose reasoning_effort budgets from the run's sweep "
        "(fixed budgets, K = 0, strict grader): high = the best accuracy's budget, medium/low = the smallest "
        "within 2 %/5 % of it, minimal/xhigh = the smallest/largest budget; written to <out>/effort_table.yaml "
        "for m1 serve --effort-table.")] = False,
    view_url: Annotated[str, typer.Option(
        help="Address of `m1 view` over the same runs that the tables' items link to (\"\": no links).")]
    = VIEW_URL,
    json_output: JsonOption = False,
) -> None:
    """Write an HTML report and a Markdown summary with scaling-curve figures (with --effort-table: an effort table)."""
    from m1.evaluation.report import write_report

    if effort_table:
        report_effort_table(runs, out, json_output)
        return
    try:
        checked_target(target_accuracy)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--target-accuracy") from None
    paths = write_report(runs, out, paper_overlay=paper, mode=mode, target_accuracy=target_accuracy, view_url=view_url)
    if json_output:
        print_json({"html": str(paths.html), "markdown": str(paths.markdown),
                    "figures": [str(path) for path in paths.figures]}
                   | ({"early_exit": paths.early_exit} if paths.early_exit else {}))
        return
    console.print(f"report: {paths.html}\nsummary: {paths.markdown}\nfigures: {len(paths.figures)} files in {paths.html.parent}", markup=False)


def report_effort_table(runs: list[Path], out: Path | None, json_output: bool) -> None:
    from m1.engine.wire.effort import write_effort_table
    from m1.evaluation.report.effort import propose_effort_table

    if len(runs) != 1:
        raise typer.BadParameter(f"--effort-table reads one run's sweep; got {len(runs)} runs", param_hint="RUNS")
    proposal = propose_effort_table(runs[0])
    path = write_effort_table(proposal.table, (out or runs[0] / "report") / "effort_table.yaml", note=proposal.note)
    if json_output:
        print_json({"effort_table": str(path), "run": proposal.run, "levels": proposal.table.to_file(),
                    "accuracy": {level: accuracy for level, _budget, accuracy in proposal.rows}})
        return
    table = Table(title=escape(f"reasoning_effort levels from {proposal.run}"))
    for column in ("level", "thinking budget", "strict accuracy"):
        table.add_column(column, justify="left" if column == "level" else "right")
    for level, budget, accuracy in proposal.rows:
        table.add_row(level, "no thinking" if budget is None else str(budget),
                      "" if accuracy is None else f"{100 * accuracy:.1f} %")
    console.print(table)
    console.print(f"effort table: {path}  (serve it: m1 serve --effort-table {path})", markup=False)


app.command("serve")(serve_command)
app.command("view")(view_command)


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def train(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="A YAML preset (configs/train/…); key=value overrides follow.")],
    json_output: JsonOption = False,
) -> None:
    """Fine-tune a model on curated SFT records with TRL (assistant-only loss); resumes with resume_from_checkpoint=auto."""
    from m1.config import load_config
    from m1.training import TrainConfig, run_training

    summary = run_training(load_config(TrainConfig, config, list(ctx.args)), err_console if json_output else console)
    if json_output and int(os.environ.get("RANK", "0")) == 0:  # every process of a launch runs this
        print_json(summary)


def summary_table(summary: dict[str, Any]) -> Table:
    """Accuracy per grid point: micro and macro in strict mode, reference micro, thinking used."""
    from m1.evaluation.summary import RunSummary

    run = RunSummary.of(summary)
    table = Table(title=escape(f"{run.model} — {run.items} items"))
    for column in ("grid point", "strict micro %", "strict macro %", "no answer %", "reference micro %",
                   "thinking tokens (mean)", "budget hit %"):
        table.add_column(column, justify="left" if column == "grid point" else "right")
    for point in run.points:
        strict, reference, usage = point.strict, point.reference, point.usage
        table.add_row(point.point, f"{100 * strict.micro.accuracy:.1f}", f"{100 * strict.macro.accuracy:.1f}",
                      f"{100 * strict.no_answer_rate:.1f}", f"{100 * reference.micro.accuracy:.1f}",
                      f"{usage.thinking_tokens_mean:.0f}", f"{100 * usage.budget_hit_rate:.0f}")
    return table


def votes_table(summary: dict[str, Any]) -> Table:
    """The policies of points with several samples (one sample's accuracy, the votes): accuracy and cost."""
    from m1.evaluation.summary import RunSummary

    run = RunSummary.of(summary)
    pareto = set((summary.get("frontier") or {}).get("strict", {}).get("pareto", []))
    table = Table(title="parallel samples: one sample and the votes (frontier: not beaten on strict accuracy and tokens)")
    for column in ("policy", "strict %", "reference %", "pass@N strict %", "tokens per item", "frontier"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for policy in run.policies:
        if policy.samples == 1:
            continue
        passes = policy.strict.pass_at_k or {}
        table.add_row(policy.policy, f"{100 * policy.strict.overall.accuracy:.1f}",
                      f"{100 * policy.reference.overall.accuracy:.1f}",
                      f"{100 * passes[str(policy.samples)]:.1f}" if str(policy.samples) in passes else "—",
                      f"{policy.tokens_mean:.0f}", "yes" if policy.policy in pareto else "")
    return table


def early_exit_table(summary: dict[str, Any]) -> Table:
    """Each early-exit point against its fixed budget, over all items: tokens saved, paired accuracy change."""
    from m1.evaluation.early_exit import difference_text

    table = Table(title="early exit versus the fixed budget (same items; Δ with 95 % interval, exact McNemar p)")
    for column in ("grid point", "fixed point", "thinking tokens fixed → early exit", "saved %", "exited early %",
                   "Δ strict (points)", "p strict", "Δ reference (points)", "p reference"):
        table.add_column(column, justify="left" if "point" in column else "right")
    for comparison in summary["early_exit"]["comparisons"]:
        if not comparison["fixed"]:
            continue
        group = comparison["overall"]
        cells = []
        for mode in ("strict", "reference"):
            diff = group[mode]
            cells += [difference_text(diff), "—" if diff is None else f"{diff['p_value']:.3g}"]
        saved = group["tokens_saved_pct"]
        table.add_row(comparison["point"], comparison["fixed"],
                      f"{group['thinking_tokens_fixed']:.0f} → {group['thinking_tokens_early_exit']:.0f}",
                      "—" if saved is None else f"{saved:.1f}", f"{100 * group['early_exit_rate']:.0f}", *cells)
    return table


@curate_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def curate_run(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="A YAML preset (configs/curate/…); key=value overrides follow.")],
    json_output: JsonOption = False,
) -> None:
    """Run or resume a curation pipeline, then print its funnel and where the outputs are."""
    from m1.config import load_config
    from m1.curation.config import CurationConfig
    from m1.curation.pipeline import run_pipeline, status

    run_dir = run_pipeline(load_config(CurationConfig, config, list(ctx.args)), err_console if json_output else console)
    report = status(run_dir)
    if json_output:
        print_json(report)
        return
    console.print(funnel_table(report))
    outputs = report["outputs"]
    if outputs:
        console.print(f"{outputs['records']} SFT records: " + ", ".join(outputs["files"].values()), markup=False)
    else:
        console.print(f"kept rows: {run_dir / report['stages'][-1]['dir'] / 'kept.jsonl'}", markup=False)
    console.print(f"(next: m1 curate status {run_dir})", markup=False)


@curate_app.command("status")
@user_errors
def curate_status(
    run: Annotated[Path, typer.Argument(help="A run directory written by m1 curate run (runs/curate/<name>).")],
    json_output: JsonOption = False,
) -> None:
    """The funnel of a curation run: rows in and out and drop reasons per stage."""
    from m1.curation.pipeline import status

    report = status(run)
    if json_output:
        print_json(report)
        return
    console.print(funnel_table(report))


def funnel_table(report: dict[str, Any]) -> Table:
    """One line per stage: state, rows in, rows out, and why rows were dropped."""
    table = Table(title=escape(f"curation funnel — {report['run']}"))
    for column in ("stage", "state", "in", "out", "dropped (reason: rows)", "s"):
        numeric = column in ("in", "out", "s")
        # Names and counts stay whole; the reasons wrap when the terminal is narrow.
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column != "dropped (reason: rows)",
                         overflow="fold")
    for stage in report["stages"]:
        dropped = "\n".join(f"{reason}: {count:,}" for reason, count in stage["dropped"].items())
        rows_in = "" if stage["rows_in"] is None else f"{stage['rows_in']:,}"
        seconds = "" if stage["seconds"] is None else f"{stage['seconds']:.1f}"
        table.add_row(stage["dir"], stage["state"], rows_in, f"{stage['rows_out']:,}", dropped, seconds)
    return table


if __name__ == "__main__":
    app()
