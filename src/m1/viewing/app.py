"""The HTTP layer of `m1 view`: server-rendered pages and a JSON API over the catalog of runs.

    app = create_app(Catalog(open_runs(["runs/base", "runs/tuned"])), api_key=None,
                     hosts=trusted_hosts("127.0.0.1"))   # the Host names it answers (m1.auth)

URL scheme (stable: the static report links to it through `m1.evaluation.view_links`, which
builds these URLs and names runs and points as the viewer does; every parameter is
m1.viewing.query's):

    /items                                   every item of every run, in item order, 50 a page
    /items?point=base:B128_K4&correct=false  wrong at a grid point (`<run name>:<point key>`)
    /items?run=base&point=B128_K4&mode=reference&correct=false   a bare key within run=base
    /items?flip_from=base:B1024_K0&flip_to=base:B4096_K0&flip=right_to_wrong   answers that flipped
    /items?source=MedQA_USLME_test&domain=Drug%20Therapy&q=warfarin&sort=thinking_desc&point=…&page=2
    /items/<uid>                             one item, every run side by side (uid percent-encoded)
    /items/<uid>?run=base&run=tuned&point=B128_K4   those runs' columns; that point's traces open
    /api/items?…, /api/items/<uid>?…         the same as JSON (what the tests read)
    /assets/view.css, /assets/view.js, /assets/icon.svg

Every request first brings the runs' indexes up to date (a run still being written shows what
is there, and says so). A bad parameter is a 400 naming it and the values it takes, an unknown
item a 404, never a 500: the JSON routes answer `{"error": {"message", "param", "allowed"}}`.
Pages load nothing from anywhere but this server (the Content-Security-Policy says so too);
templates escape every value. With an API key (`m1 view --api-key-env`), every route needs it,
through `m1.auth`: as a browser's HTTP Basic password (any user name), `Authorization: Bearer`,
or `x-api-key`. A request whose Host is not one of `hosts` (loopback names by default; m1 view
adds its --host) is a 400 before any route: another site's page that a DNS answer points at
127.0.0.1 cannot read the runs (DNS rebinding).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' Annotated parameters from
# the live annotations.
import functools
import logging
from collections.abc import Sequence
from http import HTTPStatus
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from m1 import __version__
from m1.auth import LOOPBACK_HOSTS, key_check
from m1.data.errors import DataError
from m1.evaluation.trace import probability
from m1.evaluation.view_links import item_url, items_url
from m1.scoring import MODES, RULES
from m1.viewing.catalog import Catalog, QueryError
from m1.viewing.item import item_view
from m1.viewing.query import BOOLEANS, FLIPS, SORTS, facet_values, list_items, parse_query

log = logging.getLogger("m1.viewing")

ASSETS = {"view.css": "text/css; charset=utf-8", "view.js": "text/javascript; charset=utf-8",
          "icon.svg": "image/svg+xml"}
SECURITY_HEADERS = {
    # Nothing but this server: no CDN, no font, no beacon; no inline script or style either.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ITEM_PARAMS = ("run", "point", "mode")


class Unauthorized(Exception):
    """A request without the viewer's API key (a 401 that asks the browser for it)."""


@functools.cache
def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # Every value is escaped; a name the templates misspell is an error, not an empty string.
    env = Environment(loader=PackageLoader("m1.viewing", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["visible_breaks"] = visible_breaks
    env.globals.update(items_url=items_url, probability=probability, version=__version__, RULES=RULES, MODES=MODES,
                       BOOLEANS=BOOLEANS, FLIPS=FLIPS, SORTS=SORTS)
    return env


def visible_breaks(text: str) -> str:
    """Inserted text with its line breaks shown (↵), since an inserted "\n" is otherwise invisible."""
    return text.replace("\n", "↵\n")


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("m1.viewing").joinpath("assets", name).read_bytes()


def create_app(catalog: Catalog, *, api_key: str | None = None, hosts: Sequence[str] = LOOPBACK_HOSTS) -> FastAPI:
    """The ASGI app over `catalog` (its indexes are built on the first request if need be),
    answering requests whose Host is one of `hosts` (m1.auth.trusted_hosts)."""
    app = FastAPI(title="m1 view", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(key_check(api_key, Unauthorized, basic=True))])
    # Added before the headers middleware, so that its 400 gets the security headers too.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts), www_redirect=False)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error(request: Request, status: int, message: str, param: str | None = None,
              allowed: list[str] | None = None) -> Response:
        if wants_json(request):
            return JSONResponse({"error": {"message": message, "param": param, "allowed": allowed or []}},
                                status_code=status)
        # No run names on error pages: a request without the key, or to no route, learns nothing.
        page = _environment().get_template("error.html.j2").render(
            title=f"{status}", status=status, message=message, param=param, allowed=allowed or [], names=[])
        return HTMLResponse(page, status_code=status)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, err: Unauthorized) -> Response:
        response = error(request, 401, "this m1 view needs its API key: your browser asks for it (any user name, "
                                       "the key as password); scripts send 'Authorization: Bearer <key>'")
        response.headers["WWW-Authenticate"] = 'Basic realm="m1 view", charset="UTF-8"'
        return response

    @app.exception_handler(QueryError)
    async def bad_query(request: Request, err: QueryError) -> Response:
        return error(request, 400, str(err), err.param, err.allowed)

    @app.exception_handler(DataError)
    async def run_unreadable(request: Request, err: DataError) -> Response:
        # A run folder that went away or can no longer be indexed: the server's state, not the request.
        log.error("%s", err)
        return error(request, 503, f"a run cannot be read: {err}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        generic = err.detail == HTTPStatus(err.status_code).phrase  # starlette's own: say it in words
        message = {404: "no such page", 405: "this page is read with GET"}.get(err.status_code) if generic else None
        return error(request, err.status_code, message or str(err.detail))

    def listing(request: Request) -> tuple[Any, Any, Any]:
        with catalog.reading() as db:
            sources, domains = facet_values(db)
            query = parse_query(request.query_params.multi_items(), catalog, sources, domains)
            return list_items(db, catalog, query), catalog.statuses(db), (sources, domains)

    def item(request: Request, uid: str) -> tuple[Any, Any, Any]:
        pairs = request.query_params.multi_items()
        unknown = [name for name, _ in pairs if name not in ITEM_PARAMS]
        if unknown:
            raise QueryError(unknown[0], "unknown parameter on an item page", ITEM_PARAMS)
        with catalog.reading() as db:
            sources, domains = facet_values(db)
            query = parse_query(pairs, catalog, sources, domains)
            view = item_view(db, catalog, uid, query.runs or range(len(catalog.runs)), query.point)
            if view is None:
                raise StarletteHTTPException(404, f"no item with uid {uid!r} in these runs")
            return view, query, catalog.statuses(db)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/items", status_code=307)

    @app.get("/items", response_class=HTMLResponse)
    def items_page(request: Request) -> Response:
        page, statuses, (sources, domains) = listing(request)
        shown = page.query.runs or tuple(range(len(catalog.runs)))
        points = [ref for ref in catalog.points_by_name.values() if ref.run in shown]
        focus = page.query.point or points[0]
        return HTMLResponse(_environment().get_template("list.html.j2").render(
            title="items", page=page, query=page.query, statuses=statuses, catalog=catalog, shown=shown,
            sources=sources, domains=domains, names=catalog.names, points=points, focus=focus,
            every_point={number: catalog.point_names([number]) for number in shown},  # each run's, in its order
            item_link=lambda uid: item_url(uid, runs=page.query.run_names, point=focus.name,
                                           mode=None if page.query.mode == "strict" else page.query.mode)))

    @app.get("/items/{uid:path}", response_class=HTMLResponse)
    def item_page(request: Request, uid: str) -> Response:
        view, query, statuses = item(request, uid)
        return HTMLResponse(_environment().get_template("item.html.j2").render(
            title=view.uid, view=view, query=query, statuses=statuses, names=catalog.names))

    @app.get("/api/items")
    def items_api(request: Request) -> dict[str, Any]:
        page, statuses, _ = listing(request)
        return page.to_dict() | {"runs": [_status(status) for status in statuses]}

    @app.get("/api/items/{uid:path}")
    def item_api(request: Request, uid: str) -> dict[str, Any]:
        view, _, statuses = item(request, uid)
        return view.to_dict() | {"status": [_status(status) for status in statuses]}

    @app.get("/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise StarletteHTTPException(404)
        return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=3600"})

    return app


def _status(status: Any) -> dict[str, Any]:
    return {"run": status.name, "root": str(status.root), "finished": status.finished,
            "in_progress": status.in_progress, "items": status.items, "problems": status.problem_count,
            "skipped": [{"file": path, "line": line, "problem": problem} for path, line, problem in status.problems],
            "domains_note": status.domains_note,
            "points": [{"point": p.name, "expected": p.expected, "predictions": p.predictions, "scored": p.scored,
                        "writing": p.writing} for p in status.points]}
