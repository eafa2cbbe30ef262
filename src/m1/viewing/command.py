"""`m1 view RUN [RUN …]` as a typer command: index the runs (with progress when it takes a while),
then serve the trace explorer until Ctrl-C. `m1.cli` registers it.

    m1 view runs/m1-7B-23K-m1-3f2a9c0e1b                      # http://127.0.0.1:8765/items
    m1 view runs/base runs/tuned --port 9000                  # two runs side by side
    M1_API_KEY=… m1 view runs/base --host 0.0.0.0             # reachable from other machines, key required

Loopback by default, on port 8765 when it is free, else on a free port (with a warning: the
static report's links point at 8765); the URL is printed.
`--host` exposes it to other machines, and then a key is required: the viewer shows questions,
answers and traces, so `m1 view` refuses a non-loopback host while the environment variable
named by `--api-key-env` is empty (m1 serve only warns: its clients are programs that already
carry keys; a browser asks for this one once, as an HTTP Basic password). A folder that is not
a run is named, with what it lacks, and the command exits with status 2.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from m1.console import make_console
from m1.data.errors import DataError
from m1.evaluation.view_links import VIEW_PORT

if TYPE_CHECKING:
    from rich.console import Console

    from m1.viewing.catalog import Catalog


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, port: int | None) -> int:
    """`port` when given (it must be free), else VIEW_PORT (8765, where the report's links point)
    when free, else one the system picks."""
    if port is not None:
        if not port_free(host, port):
            raise DataError.at(f"--port {port}", "", "", f"port {port} on {host} is in use",
                               "choose another --port, or leave it out to get a free one")
        return port
    if port_free(host, VIEW_PORT):
        return VIEW_PORT
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def fallback_warning(host: str, chosen: int) -> str | None:
    """What to say when m1 view could not have VIEW_PORT (None when it has it): the links of
    report.html point there, so they would open whatever holds it, not these runs."""
    if chosen == VIEW_PORT:
        return None
    return (f"port {VIEW_PORT} on {host} is taken, so m1 view listens on port {chosen}; the links in report.html "
            f"(m1 report) expect port {VIEW_PORT} and open whatever holds it. Stop what listens on {VIEW_PORT}, or "
            f"change :{VIEW_PORT} to :{chosen} in a link's address")


def view_command(
    runs: Annotated[list[Path], typer.Argument(help="run directories written by m1 eval (several: side by side)")],
    host: Annotated[str, typer.Option(help="address to listen on (anything but loopback needs an API key)")]
    = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option(help=f"port to listen on (default {VIEW_PORT} if free, else a "
                                                     "free one)")] = None,
    api_key_env: Annotated[str, typer.Option(help="environment variable holding the API key")] = "M1_API_KEY",
) -> None:
    """Browse runs' traces in the browser: filter items, read thinking with inserted text marked."""
    from m1.auth import LOOPBACK, api_key_from_env, trusted_hosts

    console, err_console = make_console(), make_console(stderr=True)
    try:
        api_key = api_key_from_env(api_key_env)
        if host not in LOOPBACK and api_key is None:
            raise DataError.at(f"--host {host}", "", "", f"other machines could read these runs, and ${api_key_env} "
                               "is empty", f"set {api_key_env} to a key (the browser asks for it), or leave --host "
                               "out to stay on 127.0.0.1")
        chosen = choose_port(host, port)
        catalog = open_catalog(runs, err_console)
    except (DataError, ValueError) as err:
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(2) from None
    import uvicorn

    from m1.viewing.app import create_app

    warning = fallback_warning(host, chosen) if port is None else None
    if warning is not None:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"m1 view: http://{shown}:{chosen}/items  ({len(catalog.runs)} run"
                  f"{'s' if len(catalog.runs) > 1 else ''}; Ctrl-C stops it)", markup=False)
    if api_key is not None:
        console.print(f"the API key from ${api_key_env} is required (the browser asks: any user name, the key "
                      "as password)", markup=False)
    uvicorn.run(create_app(catalog, api_key=api_key, hosts=trusted_hosts(host)), host=host, port=chosen,
                log_level="warning")


def open_catalog(paths: list[Path], console: Console) -> Catalog:
    """Open the runs and bring their indexes up to date, a progress bar per run that needs work."""
    from m1.viewing.catalog import Catalog
    from m1.viewing.runs import open_runs

    catalog = Catalog(open_runs(paths))
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for run, index in zip(catalog.runs, catalog.indexes):
            task = progress.add_task(f"index {run.name}", total=None, visible=False)

            def show(done: int, total: int, task=task) -> None:
                progress.update(task, completed=done, total=total, visible=True)

            index.refresh(show)
    catalog.refresh()
    return catalog
