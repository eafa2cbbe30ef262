"""`m1 report`: run directories made by the real runner's scoring, then the report's files, numbers,
figures, and (slow) the HTML as a real headless browser renders it."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import statistics
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="m1 report needs matplotlib: pip install matplotlib")

from m1.data.items import MCQItem
from m1.engine.controller import GenerationRecord
from m1.evaluation.audit import HONOURED
from m1.evaluation.config import EvalConfig, GridConfig
from m1.evaluation.paper import PAPER_RESULTS, paper_accuracy, paper_model_for
from m1.evaluation.view_links import VIEW_URL
from m1.evaluation.report import (
    fit_log2_trend,
    load_run,
    render_markdown_table,
    summary_table,
    t_quantile,
    write_report,
)
from m1.evaluation.report.tables import audit_table
from m1.evaluation.results import score_run
from m1.evaluation.runner import prediction_row
from m1.evaluation.store import RunStore
from m1.evaluation.summary import Audit
from m1.scoring import wilson_interval

OPTIONS = {"A": "Liver", "B": "Kidney", "C": "Heart", "D": "Lung"}
SIZES = {"MedQA_USLME_test": 10, "PubMedQA_test": 8, "GPQA_Medical_test": 5}


def items() -> list[MCQItem]:
    return [MCQItem(uid=f"{source}-{i}", source=source, question=f"Question {i} of {source}?", options=OPTIONS,
                    answer_idx="A", answer="Liver")
            for source, size in SIZES.items() for i in range(size)]


def outcomes(source: str, budget: int | None, extensions: int) -> tuple[int, int]:
    """(correct, no answer) per source at a grid point: accuracy rises with log2(budget)."""
    step = 0 if budget is None else max(0, budget.bit_length() - 8)  # 128 -> 0, 256 -> 1, 1024 -> 3, 4096 -> 5
    correct = {"MedQA_USLME_test": 2 + step, "PubMedQA_test": 1 + step, "GPQA_Medical_test": min(5, step)}[source]
    correct = min(SIZES[source], max(0, correct - extensions // 2))
    no_answer = 1 if source == "PubMedQA_test" and correct < SIZES[source] else 0
    return correct, no_answer


def make_run(root: Path, name: str, model: str, budgets: list[int], extensions: list[int],
             preset: str = "m1") -> Path:
    """A run directory exactly as `m1 eval` leaves it: predictions appended row by row through the
    runner's own row builder, then scored by the runner's `score_run`."""
    config = EvalConfig(model=model, name=name, out_dir=str(root), preset=preset,
                        grid=GridConfig(max_thinking_tokens=budgets, num_extensions=extensions))
    store = RunStore.open(config)
    chosen = items()
    store.save_items(chosen)
    points = config.grid_points()
    for point in points:
        seen: dict[str, int] = {}
        for item in chosen:
            index = seen[item.source] = seen.get(item.source, -1) + 1
            correct, no_answer = outcomes(item.source, point.budget, point.extensions)
            reply = "\\boxed{A}" if index < correct else "no idea" if index < correct + no_answer else "\\boxed{B}"
            if point.budget is None:
                used, end = 0, "no_thinking"
            else:
                used = min(point.budget, 40 * (index + 1) * (1 + point.extensions))
                end = "budget_reached" if used == point.budget else "natural_stop"
            record = GenerationRecord(prompt="", thinking="...", answer=reply, reply=reply, thinking_tokens=used,
                                      answer_tokens=5, extensions_used=min(point.extensions, 1),
                                      thinking_end=end, answer_end="stop")
            store.append_prediction(point, prediction_row(item, point, record, 0.1))
    store.write_summary(score_run(config, store, points, chosen))
    return store.root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "sweep": make_run(root, "m1-7B-23K-sweep", "UCSC-VLAA/m1-7B-23K", [256, 1024, 4096], [0, 2]),
        "small": make_run(root, "m1-7B-1K-small", "UCSC-VLAA/m1-7B-1K", [256, 4096], [0]),
        "nothink": make_run(root, "base-nothink", "Qwen/Qwen2.5-7B-Instruct", [256], [0], preset="no-think"),
        "single": make_run(root, "one-budget", "some/model", [512], [0]),
    }


@pytest.fixture(scope="module")
def report(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    return write_report([runs["sweep"], runs["small"]], tmp_path_factory.mktemp("report"))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def ci_text(correct: int, total: int) -> str:
    low, high = wilson_interval(correct, total)
    return f"{100 * correct / total:.1f} ({100 * low:.1f}–{100 * high:.1f})"


# ------------------------------------------------------------------------------------ the files


def test_report_writes_html_markdown_and_figures(report, runs):
    assert report.html.name == "report.html" and report.html.stat().st_size > 10_000
    assert report.markdown.name == "report.md"
    stems = sorted({path.stem for path in report.figures})
    assert stems == ["accuracy_vs_budget", "accuracy_vs_compute", "accuracy_vs_wait", "thinking_tokens"]
    for path in report.figures:
        assert path.parent == report.html.parent and path.stat().st_size > 1000
        if path.suffix == ".png":
            width, height = png_size(path)
            assert width > 300 and height > 300
        else:
            assert path.suffix == ".svg"
            assert path.read_text().lstrip().startswith("<?xml") and "<svg" in path.read_text()[:2000]


def test_pngs_decode_to_real_pictures(report):
    from matplotlib.image import imread

    for path in report.figures:
        if path.suffix == ".png":
            pixels = imread(path)
            assert pixels.std() > 0.05, f"{path.name} looks blank"


def test_html_is_self_contained(report):
    text = report.html.read_text()
    images = re.findall(r"<img src='([^']*)'", text)
    assert len(images) == 4 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"""src=['"]?https?:""", text), "the report must not load anything from the web"
    # Its only addresses are links into m1 view on this machine (followed when clicked, never loaded).
    addresses = re.findall(r"""href=['"]?(https?:[^'" >]*)""", text)
    assert addresses and all(address.startswith(VIEW_URL + "/items") for address in addresses)
    for name in ("m1-7B-23K-sweep", "m1-7B-1K-small", "MedQA_USLME_test", "B4096_K0", "data-images-ok"):
        assert name in text


def test_default_out_dir_is_the_first_runs_report_folder(runs):
    paths = write_report([runs["single"]])
    assert paths.html == runs["single"] / "report" / "report.html"
    assert paths.markdown.exists()


# ------------------------------------------------------------------------------------ the numbers


def test_summary_table_holds_the_scored_numbers(report):
    markdown = report.markdown.read_text()
    # sweep at B1024_K0: MedQA 5/10, PubMedQA 4/8 (1 no answer), GPQA 3/5.
    row = next(line for line in markdown.splitlines() if line.startswith("| m1-7B-23K-sweep | B1024_K0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:4] == ["1024", "0"]
    assert cells[4] == ci_text(12, 23)
    macro = (0.5 + 0.5 + 0.6) / 3
    assert cells[5].startswith(f"{100 * macro:.1f} (")
    assert cells[6] == f"{100 / 23:.1f}"
    # thinking tokens per item: min(1024, 40·(index+1)) over the three sources
    tokens = [min(1024, 40 * (i + 1)) for size in SIZES.values() for i in range(size)]
    assert cells[7] == f"{sum(tokens) / len(tokens):.0f}"
    assert cells[8] == "0.0"
    # at B256 the longest thinkers hit the budget: 40·(i+1) ≥ 256 for i ≥ 6 (MedQA 4, PubMedQA 2)
    row = next(line for line in markdown.splitlines() if line.startswith("| m1-7B-23K-sweep | B256_K0 |"))
    assert row.rstrip(" |").endswith(f"{100 * 6 / 23:.1f}")


def test_source_table_cells_match_wilson_intervals(report):
    markdown = report.markdown.read_text()
    section = markdown.split("## Accuracy % by source — m1-7B-1K-small")[1].split("\n## ")[0]
    medqa = next(line for line in section.splitlines() if line.startswith("| MedQA_USLME_test |"))
    cells = [c.strip() for c in medqa.strip("|").split("|")]
    assert cells[1] == "10"
    assert cells[2:] == [ci_text(3, 10), ci_text(7, 10)]  # B256_K0, B4096_K0
    gpqa = next(line for line in section.splitlines() if line.startswith("| GPQA_Medical_test |"))
    assert gpqa.split("|")[3].strip() == ci_text(1, 5)


def test_paper_comparison_table(report):
    markdown = report.markdown.read_text()
    section = markdown.split("## Compared with the paper at B = 4096")[1]
    medqa = next(line for line in section.splitlines() if line.startswith("| MedQA_USLME_test |"))
    cells = [c.strip() for c in medqa.strip("|").split("|")]
    assert cells[1] == "MedQA"
    assert cells[2:5] == ["71", "76", "83"]  # the paper's m1-7B-1K, m1-7B-23K, m1-32B-1K
    assert cells[5] == ci_text(7, 10) and cells[6] == ci_text(7, 10)  # both runs at B4096_K0
    assert cells[7] == f"{70 - 76:+.1f}" and cells[8] == f"{70 - 71:+.1f}"  # vs m1-7B-23K and m1-7B-1K
    assert "| PubMedQA_test | PubMedQA |" in section


def test_reference_mode_and_no_overlay(runs, tmp_path):
    paths = write_report([runs["sweep"]], tmp_path, mode="reference", paper_overlay=False)
    markdown = paths.markdown.read_text()
    assert "reference extraction" in markdown and "Compared with the paper" not in markdown
    # reference mode guesses for the "no idea" reply (a wrong letter), so it never has no-answers
    row = next(line for line in markdown.splitlines() if line.startswith("| B1024_K0 |"))
    assert row.split("|")[6].strip() == "0.0"
    with pytest.raises(ValueError, match="unknown scoring mode"):
        write_report([runs["sweep"]], tmp_path, mode="lenient")


def test_degenerate_runs_no_thinking_and_a_single_budget(runs, tmp_path):
    paths = write_report([runs["nothink"], runs["single"]], tmp_path)
    markdown = paths.markdown.read_text()
    assert "| base-nothink | nothink | no thinking | 0 |" in markdown
    # no run has several Wait counts: no figure 3; one budget: drawn, without a trend
    assert sorted({p.stem for p in paths.figures}) == ["accuracy_vs_budget", "accuracy_vs_compute", "thinking_tokens"]
    only_nothink = write_report([runs["nothink"]], tmp_path / "nothink")
    # no budget curves; accuracy against compute places even a run without thinking
    assert {p.stem for p in only_nothink.figures} == {"accuracy_vs_compute"}
    assert "No run has a thinking budget" in only_nothink.html.read_text()


def test_source_with_no_items_and_a_missing_run(runs, tmp_path):
    run = tmp_path / "zero"
    shutil.copytree(runs["single"], run)
    summary = json.loads((run / "metrics.json").read_text())
    for point in summary["points"]:
        point["strict"]["sources"].append({"source": "MedXpertQA", "items": 0, "correct": 0, "no_answer": 0,
                                           "accuracy": 0.0, "ci_low": 0.0, "ci_high": 1.0, "no_answer_rate": 0.0,
                                           "rules": {}})
    (run / "metrics.json").write_text(json.dumps(summary))
    markdown = write_report([run], tmp_path / "out").markdown.read_text()
    assert "| MedXpertQA | 0 | — |" in markdown

    from m1.data.errors import DataError

    (tmp_path / "unfinished").mkdir()
    with pytest.raises(DataError, match="not finished scoring"):
        load_run(tmp_path / "unfinished")


def audit_rows(markdown: str) -> list[list[str]]:
    section = markdown.split("## Budget audit")[1].split("\n## ")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| run |") and not line.startswith("| point |")]


def test_budget_audit_section_has_a_row_per_grid_point(report, runs):
    assert "Budget audit" in report.html.read_text()
    rows = audit_rows(report.markdown.read_text())
    assert [row[:2] for row in rows] == [[run.label, point.key] for run in (load_run(runs["sweep"]),
                                                                             load_run(runs["small"]))
                                         for point in run.points]
    assert {row[-1] for row in rows} == {HONOURED}  # the fixture's thinking never passes its budget
    # sweep at B256_K0: min(256, 40·(i+1)) thinking tokens per item, none over budget
    row = next(row for row in rows if row[:2] == ["m1-7B-23K-sweep", "B256_K0"])
    tokens = [min(256, 40 * (i + 1)) for size in SIZES.values() for i in range(size)]
    assert row[2:8] == ["256", f"{statistics.median(tokens):.0f}", "256", "256", "0.0", "—"]
    assert row[8:12] == ["0", "0", "0", "—"]  # no empty, cut or unclosed answers; no provider counts


def test_a_run_scored_before_the_audit_is_audited_from_its_predictions(runs, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(runs["single"], run)
    summary = json.loads((run / "metrics.json").read_text())
    expected = summary["points"][0]["audit"]
    for point in summary["points"]:
        del point["audit"]
    (run / "metrics.json").write_text(json.dumps(summary))
    assert load_run(run).points[0].audit.model_dump() == Audit.model_validate(expected).model_dump()
    # Without its predictions a point has no audit: a dash, not a refused report.
    (run / "points" / "B512_K0" / "predictions.jsonl").unlink()
    assert load_run(run).points[0].audit is None
    [row] = audit_rows("## Budget audit\n" + render_markdown_table(audit_table([load_run(run)])))
    assert row[0] == "B512_K0" and set(row[2:-1]) == {"—"} and row[-1] == "no audit"


def test_markdown_table_is_pasteable(runs):
    table = summary_table([load_run(runs["small"])], "strict")
    text = render_markdown_table(table)
    lines = text.splitlines()
    assert lines[0].startswith("| point | budget | Wait | micro acc")
    assert set(lines[1]) <= set("|-:")
    assert all(line.count("|") == lines[0].count("|") for line in lines)


# ------------------------------------------------------------------------------------ trend, paper data


def test_t_quantiles_match_tables():
    for df, expected in [(1, 12.7062), (2, 4.3027), (5, 2.5706), (30, 2.0423), (1000, 1.9623)]:
        assert t_quantile(df) == pytest.approx(expected, abs=2e-4)


def test_trend_fit_and_band():
    exact = fit_log2_trend([128, 256, 512], [10.0, 20.0, 30.0])
    assert (exact.slope, exact.intercept) == (pytest.approx(10.0), pytest.approx(-60.0))
    centre, low, high = exact.predict([256])
    assert centre[0] == pytest.approx(20.0) and high[0] - low[0] == pytest.approx(0.0, abs=1e-9)

    noisy = fit_log2_trend([128, 256, 512, 1024], [10.0, 25.0, 25.0, 40.0])
    centre, low, high = noisy.predict([128, 362, 1024])
    # the band is narrowest at the mean of log2(budget), where its half-width is t·s/sqrt(n)
    widths = high - low
    assert widths[1] < widths[0] and widths[1] < widths[2]
    residual_sd = noisy.residual_sd
    assert widths[1] / 2 == pytest.approx(t_quantile(2) * residual_sd / 2, rel=1e-2)

    assert fit_log2_trend([512, 512], [1.0, 2.0]) is None
    two = fit_log2_trend([256, 1024], [1.0, 2.0])
    assert two.slope == pytest.approx(0.5) and all(math.isnan(v) for v in two.predict([512])[1])  # no band


def test_paper_numbers_map_to_suite_sources():
    from m1.data.suite import SUITE

    names = {source.name for source in SUITE}
    mapped = [source for source, _ in PAPER_RESULTS.values() if source is not None]
    assert len(mapped) == 8 and set(mapped) <= names
    assert paper_accuracy("MedXpertQA") == {"m1-7B-1K": 16.0, "m1-7B-23K": 20.0, "m1-32B-1K": 25.0}
    assert paper_accuracy("HumanityLastExam") == {}
    assert paper_model_for("UCSC-VLAA/m1-32B-1K") == "m1-32B-1K"
    assert paper_model_for("/models/m1-7b-23k/") == "m1-7B-23K"
    assert paper_model_for("Qwen/Qwen2.5-7B-Instruct") is None


# ------------------------------------------------------------------------------------ in a browser


def run_browser(chromium, profile: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Chromium (the `chromium` fixture) headless on `arguments`, with a profile of its own."""
    return subprocess.run([chromium.binary, *chromium.flags, f"--user-data-dir={profile}", *arguments],
                          capture_output=True, text=True, timeout=60, check=False)


def decode_png(path: Path):
    """Pixel rows of an 8-bit RGB(A) PNG, decoded with zlib (no imaging library needed)."""
    data = path.read_bytes()
    position, chunks, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6), "expected an 8-bit RGB or RGBA screenshot"
    channels = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(b"".join(chunks)), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(line)
        previous = line
    return width, height, channels, rows


@pytest.mark.slow
def test_report_renders_in_a_headless_browser(report, tmp_path, chromium):
    url = report.html.resolve().as_uri()

    dom = run_browser(chromium, tmp_path / "profile-dom", "--virtual-time-budget=5000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, "the browser returned no document"
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attributes.get("data-images") == "4"
    assert attributes.get("data-images-ok") == "true", "an image did not load"
    assert json.loads(html.unescape(attributes.get("data-errors", "null"))) == [], "the page logged errors"

    screenshot = tmp_path / "report.png"
    shot = run_browser(chromium, tmp_path / "profile-shot", "--window-size=1280,1600", f"--screenshot={screenshot}", url)
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    width, height, channels, rows = decode_png(screenshot)
    assert (width, height) == (1280, 1600)
    sample = [bytes(row[x:x + 3]) for row in rows[::8] for x in range(0, width * channels, channels * 8)]
    distinct = set(sample)
    assert len(distinct) > 50, "the screenshot is (nearly) blank"
    white = sum(pixel == b"\xff\xff\xff" for pixel in sample) / len(sample)
    assert white < 0.97, "the screenshot is almost all white"


def test_error_bars_never_negative_at_zero_accuracy() -> None:
    from m1.evaluation.report import Score
    from m1.evaluation.report.figures import _error_bars

    scores = [(128, Score(0.0, 1e-17, 0.3, 10)), (256, Score(1.0, 0.7, 1.0 - 1e-16, 10))]
    assert (_error_bars(scores) >= 0).all()


def test_trend_line_and_band_stay_within_the_percent_axis(tmp_path, monkeypatch) -> None:
    """Accuracy that saturates (60 % → 100 % → 100 %) pulls a straight trend above 100 %: it is cut."""
    import numpy as np
    from matplotlib.collections import PolyCollection

    from m1.evaluation.report import accuracy_vs_budget_figure, load_runs

    def saturating(source: str, budget: int | None, extensions: int) -> tuple[int, int]:
        return (SIZES[source] * 6 // 10 if budget == 256 else SIZES[source]), 0

    monkeypatch.setattr(sys.modules[__name__], "outcomes", saturating)
    run = make_run(tmp_path, "saturating", "some/model", [256, 1024, 4096], [0])
    figure = accuracy_vs_budget_figure(load_runs([run]), ["MedQA_USLME_test"], "strict", paper_overlay=False)
    axis = figure.axes[0]
    trend = [line for line in axis.get_lines() if len(line.get_ydata()) > 3]
    bands = [c for c in axis.collections if isinstance(c, PolyCollection)]
    assert trend and bands
    drawn = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in trend]
                           + [path.vertices[:, 1] for band in bands for path in band.get_paths()])
    assert drawn.max() <= 100.0 and drawn.min() >= 0.0
    assert axis.get_ylim()[1] <= 102.0


def test_report_command_json_names_every_file(runs, tmp_path) -> None:
    from typer.testing import CliRunner

    from m1.cli import app

    result = CliRunner().invoke(app, ["report", str(runs["sweep"]), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    paths = json.loads(result.stdout)
    assert Path(paths["html"]).is_file() and Path(paths["markdown"]).is_file()
    assert paths["figures"] and all(Path(figure).is_file() for figure in paths["figures"])
