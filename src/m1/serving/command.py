"""`m1 serve` as a typer command: its options are the parameters of `m1.serving.serve`, with the
same defaults (loopback; the API key only from the environment). `m1.cli` registers it, and
`python -m m1.serving` runs it on its own without loading the rest of the CLI.

    m1 serve --early-exit '{"method": "confidence", "threshold": 0.9, "every": 64}'   # thinking_budget "auto"
    m1 serve --early-exit configs/early_exit.yaml                                     # the same, from a file
    m1 serve --effort-table configs/serve/effort_smollm2.yaml                         # reasoning_effort's budgets
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Optional

import typer
from rich.markup import escape

from m1.config import load_config, validate_config
from m1.console import make_console
from m1.data.errors import DataError
from m1.engine.policy import EarlyExit, PresetName
from m1.engine.registry import backend_names, check_backend
from m1.engine.wire.effort import read_effort_table


def backend_option(*, in_process: bool = False):
    """A typer callback that accepts only the registry's backend names (in-process ones if asked)."""

    def check(value: str) -> str:
        try:
            return check_backend(value, in_process=in_process, purpose="this command")
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None

    return check


def read_early_exit(value: str) -> EarlyExit:
    """`--early-exit`: a JSON object of `EarlyExit`'s fields, or a YAML/JSON file holding one."""
    if not value.lstrip().startswith("{"):
        return load_config(EarlyExit, value)
    try:
        data = json.loads(value)
    except json.JSONDecodeError as err:
        raise DataError.at("--early-exit", "", "", f"not a JSON object: {err}",
                           "give a JSON object such as '{\"method\": \"confidence\"}' or a file") from None
    return validate_config(EarlyExit, data, "--early-exit")


def serve_command(
    model: Annotated[str, typer.Option(help="model alias, Hugging Face id or local folder")] = "smollm2-135m",
    backend: Annotated[str, typer.Option(callback=backend_option(in_process=True),
                                         help=f"the engine: {', '.join(backend_names(in_process=True))}")]
    = "transformers",
    host: Annotated[str, typer.Option(help="address to listen on (other machines reach the server unless loopback)")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    served_model_name: Annotated[Optional[str], typer.Option(help="the name clients ask for (default: --model)")]
    = None,
    api_key_env: Annotated[str, typer.Option(help="environment variable holding the API key")] = "M1_API_KEY",
    max_batch_size: Annotated[Optional[int], typer.Option(help="transformers: requests per batch (16)")] = None,
    batch_rows: Annotated[Optional[int], typer.Option(
        help="transformers: rows per forward pass, length-sorted groups (8)")] = None,
    batch_window_ms: Annotated[Optional[float], typer.Option(help="transformers: how long to gather a batch (15)")]
    = None,
    max_queue: Annotated[int, typer.Option(help="requests waiting before 503")] = 256,
    max_body_bytes: Annotated[int, typer.Option(help="larger bodies get 413")] = 1_000_000,
    max_thinking_tokens: Annotated[Optional[int], typer.Option(
        help="largest thinking_budget accepted (context window)")] = None,
    max_extensions: Annotated[int, typer.Option(help="largest num_extensions accepted")] = 64,
    default_max_tokens: Annotated[int, typer.Option(help="answer tokens when max_tokens is unset")] = 1024,
    default_preset: Annotated[Optional[PresetName], typer.Option(
        help="budget preset of requests that name none (default: the model's own)")] = None,
    early_exit: Annotated[Optional[str], typer.Option(
        metavar="JSON_OR_FILE", help='early exit of requests with thinking_budget "auto" (EarlyExit\'s fields, '
        'e.g. \'{"method": "confidence", "threshold": 0.9}\'); without it "auto" is refused')] = None,
    effort_table: Annotated[Optional[str], typer.Option(
        metavar="FILE", help="reasoning_effort's thinking budgets, a YAML/JSON file (minimal: 128, low: 512, …; "
        "default: m1.engine.wire.effort's table; m1 report RUN --effort-table proposes one)")] = None,
    dtype: Annotated[str, typer.Option(help="weights' dtype (auto: as saved)")] = "auto",
    max_context: Annotated[Optional[int], typer.Option(
        help="context window (transformers: max_context; vLLM: max_model_len)")] = None,
    torch_threads: Annotated[Optional[int], typer.Option(
        help="transformers on CPU: torch threads (all cores but one)")] = None,
    log_level: Annotated[Literal["debug", "info", "warning", "error"], typer.Option(help="server log level")]
    = "info",
) -> None:
    """OpenAI-compatible server with per-request thinking budgets; the API key, if any, only from the environment."""
    from m1.serving import serve as run_server

    try:
        default_early_exit = read_early_exit(early_exit) if early_exit is not None else None
        table = read_effort_table(effort_table) if effort_table is not None else None
        run_server(model, backend, host, port, served_model_name=served_model_name, api_key_env=api_key_env,
                   max_context=max_context, dtype=dtype, max_batch_size=max_batch_size, batch_rows=batch_rows,
                   batch_window_ms=batch_window_ms, torch_threads=torch_threads, max_queue=max_queue,
                   max_body_bytes=max_body_bytes, max_thinking_tokens=max_thinking_tokens,
                   max_extensions=max_extensions, default_max_tokens=default_max_tokens,
                   default_preset=default_preset, early_exit=default_early_exit, effort_table=table,
                   log_level=log_level)
    except ValueError as err:
        make_console(stderr=True).print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(2) from None
