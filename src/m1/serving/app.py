"""The HTTP layer of `m1 serve`: routes, auth, body limits, validation, streaming.

    serve("smollm2-135m", "transformers", port=8000)            # what `m1 serve` calls
    app = create_app(runner, served_model="smollm2-135m")        # the ASGI app alone

Routes: `GET /health` (open), `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions`
(OpenAI), `POST /v1/messages` (Anthropic). Every error is `{"error": {"message", "type", "param",
"code"}}` with a 4xx/5xx status (on /v1/messages Anthropic's `{"type": "error", "error": {"type",
"message"}}`); a bad request never reaches the model. When the environment variable named by
`api_key_env` is set, every /v1 route needs the key, as `Authorization: Bearer <key>` or as
Anthropic's `x-api-key: <key>` (the `authenticate` dependency of the /v1 router); it is compared in
constant time and never logged or echoed. A Host header that is not one of `hosts` is a 400
(`serve` passes `m1.auth.trusted_hosts(host)`: loopback names and the address it listens on, so
another site's page that a DNS answer points at 127.0.0.1 is refused). Request bodies must be
JSON sent as application/json (415) and at most `max_body_bytes` long (413); the `typed_body` dependency reads them, and no body,
however malformed, gets a 5xx (`protocol.decode_body` refuses what is not plain JSON, `protocol.parse`
names the bad field, and whatever else fails before generation starts is a 400). Streams are
server-sent events (sse-starlette); the shared state set at startup is on `app.state`.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' Annotated dependencies,
# which name closures of create_app, from the live annotations.
import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import ClientDisconnect
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from m1.auth import LOOPBACK, api_key_from_env, key_check, trusted_hosts
from m1.engine.backends.base import answer_reserve, choice_policy
from m1.engine.default_model import default_preset as model_default_preset
from m1.engine.policy import PRESETS, BudgetPolicy, EarlyExit
from m1.engine.registry import check_backend
from m1.engine.prompt import render_messages
from m1.engine.wire import anthropic
from m1.engine.wire.effort import EffortTable
from m1.engine.wire.errors import APIError, bad_request
from m1.engine.wire.protocol import (
    ChatRequest,
    CompletionRequest,
    Limits,
    Plan,
    build_policy,
    chat_messages,
    completion_prompt,
    decode_body,
    fit_answer_budget,
    parse,
    validation_problem,
)
from m1.engine.wire.responses import (
    StreamShaper,
    chat_logprobs,
    chat_response,
    chunk,
    completion_logprobs,
    completion_response,
    finish_reason,
    usage,
    vote_block,
    without_reasoning,
)
from m1.serving.runners import Job, PromptText, make_runner, tagged_events

log = logging.getLogger("m1.serving")

def check_default_early_exit(preset: str, early_exit: EarlyExit | None) -> None:
    """The default early exit must run on the default preset (it needs a forced-answer prefix)."""
    if early_exit is not None:
        try:
            BudgetPolicy.from_preset(preset, early_exit=early_exit)
        except ValidationError as err:
            raise ValueError(f"the default early exit cannot run on the default preset: "
                             f"{validation_problem(err)[1]}") from None


def create_app(
    runner: Any,
    *,
    served_model: str,
    api_key: str | None = None,
    max_body_bytes: int = 1_000_000,
    max_thinking_tokens: int | None = None,
    max_extensions: int = 64,
    default_max_tokens: int = 1024,
    default_preset: str | None = None,
    early_exit: EarlyExit | None = None,
    effort_table: EffortTable | None = None,
    hosts: Sequence[str] = ("*",),
) -> FastAPI:
    """The ASGI app around a started-on-demand runner (`BatchingRunner` or `AsyncVLLMRunner`).

    `hosts`: the Host header values it answers (default any: an app run in-process by tests;
    `serve` passes the ones of its address).

    `default_preset` is the preset of requests that name none (default: `served_model`'s own);
    `early_exit` what a request's `thinking_budget: "auto"` asks for (none: such requests get a 400);
    `effort_table` the budgets of `reasoning_effort`'s levels (none: `effort.DEFAULT_EFFORT_TABLE`).
    """
    default_preset = default_preset or model_default_preset(served_model)
    check_default_early_exit(default_preset, early_exit)
    counter = itertools.count()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runner.start()
        tokenizer = runner.tokenizer
        app.state.limits = Limits(
            max_context=runner.max_context,
            max_thinking_tokens=min(max_thinking_tokens or runner.max_context, runner.max_context),
            max_extensions=max_extensions, default_max_tokens=default_max_tokens, default_preset=default_preset,
            default_early_exit=early_exit, effort_table=effort_table,
        )
        app.state.chat_template = bool(getattr(tokenizer, "chat_template", None))
        log.info("serving %s on the %s backend: context %d tokens, thinking budget up to %d",
                 served_model, runner.backend_name, runner.max_context, app.state.limits.max_thinking_tokens)
        yield
        await runner.stop()

    app = FastAPI(title="m1 serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts), www_redirect=False)

    def error_response(request: Request, err: APIError) -> JSONResponse:
        # Each dialect's clients read errors in their own shape (the anthropic SDK raises its
        # exception classes from Anthropic's), whatever refused the request: auth, body, route.
        body = anthropic.error_body(err) if request.url.path == anthropic.ROUTE else err.body()
        return JSONResponse(body, status_code=err.status)

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return error_response(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(err.status_code, "invalid_request_error")
        return error_response(request, APIError(err.status_code, str(err.detail), type=kind))

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:
        log.error("internal error: %s", type(err).__name__, exc_info=err)
        return error_response(request, APIError(500, f"internal server error ({type(err).__name__})",
                                                type="server_error"))

    # Every /v1 route: the key as `Authorization: Bearer <key>` (OpenAI) or `x-api-key` (Anthropic).
    authenticate = key_check(api_key, lambda: APIError(
        401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' (or 'x-api-key: <key>')",
        type="authentication_error", code="invalid_api_key"))

    async def read_body(request: Request) -> bytes:
        # JSON only, and said so: a browser sends text/plain or no content type cross-origin without
        # asking first (no CORS preflight), so a web page could otherwise drive a keyless server on loopback.
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json" and not (media_type.startswith("application/")
                                                     and media_type.endswith("+json")):
            got = f"Content-Type {media_type!r}" if media_type else "no Content-Type"
            raise APIError(415, f"request body must be JSON sent with 'Content-Type: application/json' (got {got})",
                           code="unsupported_media_type")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise APIError(413, f"request body is larger than {max_body_bytes} bytes", type="request_too_large")
        body = bytearray()
        try:
            async for piece in request.stream():
                body += piece
                if len(body) > max_body_bytes:
                    raise APIError(413, f"request body is larger than {max_body_bytes} bytes",
                                   type="request_too_large")
        except ClientDisconnect:
            # Gone before its body arrived: nobody will read the answer, and it is not our error.
            log.info("client left before sending its whole body")
            raise APIError(400, "the client disconnected before the body was complete") from None
        return bytes(body)

    @contextmanager
    def refusing_the_unforeseen() -> Iterator[None]:
        try:
            yield
        except APIError:
            raise
        except Exception as err:  # noqa: BLE001 - see below
            # Admission reads nothing but the body and the tokenizer, so a failure that no check
            # foresaw is still caused by this request: refused, and logged so the check gets written.
            log.warning("request refused: admitting it raised %s", type(err).__name__, exc_info=err)
            raise bad_request(f"this request could not be processed ({type(err).__name__}); "
                              "check its fields against the API") from None

    def typed_body(kind: type[BaseModel], **dialect: Any) -> Callable[[Request], Any]:
        """A dependency: the request body read (415/413 rules), decoded as plain JSON and validated
        into `kind`, or the 400 `protocol.parse` builds, naming the field (`dialect`: its neutral and
        ignored fields)."""

        async def body(request: Request) -> Any:
            raw = await read_body(request)
            with refusing_the_unforeseen():
                return parse(kind, decode_body(raw), **dialect)

        return body

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served_model, "backend": runner.backend_name, **runner.stats()}

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authenticate)])

    @v1.get("/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served_model, "object": "model", "created": 0, "owned_by": "m1",
                                            "max_model_len": app.state.limits.max_context}]}

    async def admit(req: Any, *, chat: bool) -> tuple[Any, Plan, str, list[int]]:
        """(request, plan, prompt text, prompt ids) from a parsed request, every check passed; nothing runs yet."""
        limits: Limits = app.state.limits
        tokenizer = runner.tokenizer
        if req.model != served_model:
            raise APIError(404, f"model {req.model!r} is not served here; this server serves {served_model!r}",
                           type="not_found_error", param="model", code="model_not_found")
        plan = build_policy(req, limits, tokenizer, chat=chat)
        policy = plan.policy
        if chat:
            if not app.state.chat_template:
                raise bad_request("this model has no chat template; use /v1/completions", "messages")
            try:
                text = render_messages(tokenizer, chat_messages(req), policy)
            except APIError:
                raise
            except Exception as err:  # noqa: BLE001 - the model's template rejects these messages
                raise bad_request(f"the chat template rejected the messages: {err}", "messages") from None
            ids = tokenizer.encode(text, add_special_tokens=False)
        else:
            if req.return_token_ids and req.stream:
                raise bad_request("return_token_ids is available without streaming only", "return_token_ids")
            text, sent_ids = completion_prompt(req, tokenizer)
            ids = sent_ids if sent_ids is not None else tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise bad_request("the prompt is empty", "messages" if chat else "prompt")
        prefix_tokens = answer_reserve(tokenizer, policy) - policy.max_answer_tokens  # the engine's own reserve
        policy = fit_answer_budget(policy, len(ids), prefix_tokens, limits, explicit=req.max_tokens is not None,
                                   param="messages" if chat else "prompt")
        return req, replace(plan, policy=policy), text, ids

    async def generate(request: Request, req: Any, *, chat: bool) -> Response:
        started = time.perf_counter()
        with refusing_the_unforeseen():
            req, plan, text, ids = await admit(req, chat=chat)

        request_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        policy, preset = plan.policy, plan.preset
        # One job per choice, each with its own seed (choice 0 is the request's own), scheduled together.
        jobs = [Job(f"{next(counter)}", PromptText(text, ids), choice_policy(policy, choice), bool(req.stream),
                    asyncio.get_running_loop(), choices=plan.choices) for choice in range(plan.n)]
        runner.submit_all(jobs)
        context = {"request_id": request_id, "prompt_tokens": len(ids), "preset": preset, "started": started,
                   "stream_probes": bool(req.stream_probes), "plan": plan}
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return event_stream(stream_events(jobs, chat, context, include_usage))
        events = await until_done(jobs, request)
        if events is None:
            log.info("%s: client left before its reply", request_id)
            return Response(status_code=499)  # nobody will read this
        records = [finished(job, event, context) for job, event in zip(jobs, events)]
        vote = vote_block(records, policy, plan.vote, plan.choices) if plan.vote else None
        if chat:
            body = chat_response(request_id, served_model, records, policy, len(ids), preset, vote=vote,
                                 logprobs=plan.logprobs)
            body = without_reasoning(body) if plan.hide_reasoning else body
        else:
            body = completion_response(request_id, served_model, records, policy, len(ids), preset,
                                       with_ids=bool(req.return_token_ids), vote=vote, logprobs=plan.logprobs)
        return JSONResponse(body)

    def event_stream(events: AsyncIterator[ServerSentEvent], *, ping: Callable[[], ServerSentEvent] | None = None,
                     ) -> EventSourceResponse:
        # "\n" between lines, as OpenAI and Anthropic send them; a keep-alive every 15 s (a comment,
        # or the dialect's own ping event) that every SSE client skips.
        return EventSourceResponse(events, sep="\n", ping_message_factory=ping,
                                   headers={"Cache-Control": "no-cache"})

    async def until_done(jobs: list[Job], request: Request) -> list[tuple] | None:
        """Each job's final event, or None if the client disconnects first (the jobs are cancelled)."""

        async def final_event() -> list[tuple[int, tuple]]:
            # Live text and probes are skipped: this reply carries them in its body.
            return [(index, event) async for index, event in tagged_events(jobs) if event[0] in ("done", "error")]

        async def client_gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        waiting, watching = asyncio.ensure_future(final_event()), asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            if not waiting.done():
                waiting.cancel()
                for job in jobs:
                    job.cancel()
        if not waiting.done() or waiting.cancelled():
            return None
        last = dict(waiting.result())
        return [last[index] for index in range(len(jobs))]

    def finished(job: Job, event: tuple, context: dict[str, Any]):
        if event[0] == "error":
            log.warning("%s failed: %s", context["request_id"], event[1])
            raise APIError(500, str(event[1]), type="server_error")
        record = event[1]
        log.info("%s prompt=%d thinking=%d/%d answer=%d inserted=%d extensions=%d probes=%d thinking_end=%s %.2fs",
                 context["request_id"], context["prompt_tokens"], record.thinking_tokens,
                 job.policy.max_thinking_tokens if job.policy.thinking else 0, record.answer_tokens,
                 record.inserted_tokens, record.extensions_used, len(record.probes or ()), record.thinking_end,
                 time.perf_counter() - context["started"])
        return record

    async def stream_events(jobs: list[Job], chat: bool, context: dict[str, Any],
                            include_usage: bool) -> AsyncIterator[ServerSentEvent]:
        """Chunks of every choice (its `index`) as they come; n > 1 ends with one chunk holding the usage."""
        request_id, plan = context["request_id"], context["plan"]
        shapers = [StreamShaper(job.policy, runner.tokenizer, chat=chat) for job in jobs]
        shown = without_reasoning if plan.hide_reasoning else (lambda deltas: deltas)
        records: list[Any] = [None] * len(jobs)
        done = False

        def sse(body: dict[str, Any]) -> ServerSentEvent:
            return ServerSentEvent(json.dumps(body, ensure_ascii=False), sep="\n")

        def piece(deltas: dict[str, str], index: int) -> ServerSentEvent:
            if chat:
                return sse(chunk(request_id, served_model, chat=True, delta=deltas, index=index))
            return sse(chunk(request_id, served_model, chat=False, text=deltas["text"], index=index))

        end = ServerSentEvent("[DONE]", sep="\n")
        try:
            if chat:
                for index in range(len(jobs)):
                    yield sse(chunk(request_id, served_model, chat=True, delta={"role": "assistant", "content": ""},
                                    index=index))
            async for index, event in tagged_events(jobs):
                if event[0] == "text":
                    deltas = shown(shapers[index].push(event[1], event[2]))
                    if deltas:
                        yield piece(deltas, index)
                    continue
                if event[0] == "probe":
                    if context["stream_probes"]:
                        yield sse(chunk(request_id, served_model, chat=chat, m1={"probe": event[1]}, index=index))
                    continue
                if event[0] == "error":
                    done = True
                    for job in jobs:  # the other choices are of no use without this one
                        job.cancel()
                    log.warning("%s failed: %s", request_id, event[1])
                    yield sse(APIError(500, str(event[1]), type="server_error").body())
                    yield end
                    return
                record = records[index] = finished(jobs[index], event, context)
                deltas = shown(shapers[index].finish(record))
                if deltas:
                    yield piece(deltas, index)
                logprobs = (chat_logprobs if chat else completion_logprobs)(record, plan.logprobs)
                # One choice: its usage comes with its last chunk, as always; several: once all are done.
                usage_block = None if len(jobs) > 1 else usage([record], context["prompt_tokens"], jobs[0].policy,
                                                               context["preset"])
                yield sse(chunk(request_id, served_model, chat=chat, finish=finish_reason(record),
                                usage_block=usage_block, index=index, logprobs=logprobs))
            done = True
            if len(jobs) > 1:
                vote = vote_block(records, plan.policy, plan.vote, plan.choices) if plan.vote else None
                usage_block = usage(records, context["prompt_tokens"], plan.policy, context["preset"], vote=vote)
            if include_usage or len(jobs) > 1:
                yield sse(chunk(request_id, served_model, chat=chat, no_choices=True, usage_block=usage_block))
            yield end
        finally:
            if not done:
                for job in jobs:
                    job.cancel()
                log.info("%s: client left mid-stream", request_id)

    @v1.post("/completions")
    async def completions(request: Request,
                          req: Annotated[CompletionRequest, Depends(typed_body(CompletionRequest))]) -> Response:
        return await generate(request, req, chat=False)

    @v1.post("/chat/completions")
    async def chat_completions(request: Request,
                               req: Annotated[ChatRequest, Depends(typed_body(ChatRequest))]) -> Response:
        return await generate(request, req, chat=True)

    @v1.post(anthropic.ROUTE.removeprefix("/v1"))
    async def messages(request: Request, body: Annotated[anthropic.MessagesRequest, Depends(typed_body(
            anthropic.MessagesRequest, neutral_values=anthropic.NEUTRAL, ignored=anthropic.IGNORED))]) -> Response:
        """Anthropic's Messages API: the engine call of a chat request, in Anthropic's shapes (one
        reply per request: Anthropic has no n)."""
        started = time.perf_counter()
        with refusing_the_unforeseen(), anthropic.renamed_params():
            req, plan, text, ids = await admit(anthropic.to_chat_request(body), chat=True)
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        policy, preset = plan.policy, plan.preset
        job = Job(f"{next(counter)}", PromptText(text, ids), policy, bool(req.stream), asyncio.get_running_loop(),
                  choices=plan.choices)
        runner.submit(job)
        context = {"request_id": message_id, "prompt_tokens": len(ids), "preset": preset, "started": started,
                   "stream_probes": bool(req.stream_probes)}
        if req.stream:
            return event_stream(anthropic_events(job, context), ping=lambda: anthropic_sse(("ping", {"type": "ping"})))
        events = await until_done([job], request)
        if events is None:
            log.info("%s: client left before its reply", message_id)
            return Response(status_code=499)
        record = finished(job, events[0], context)
        return JSONResponse(anthropic.message_response(message_id, served_model, record, policy, len(ids), preset))

    def anthropic_sse(event: anthropic.Event) -> ServerSentEvent:
        name, data = event
        return ServerSentEvent(json.dumps(data, ensure_ascii=False), event=name, sep="\n")

    async def anthropic_events(job: Job, context: dict[str, Any]) -> AsyncIterator[ServerSentEvent]:
        shaper = StreamShaper(job.policy, runner.tokenizer, chat=True, ordered=True)
        events = anthropic.AnthropicStream(context["request_id"], served_model, job.policy, context["prompt_tokens"])
        done = False
        try:
            for event in events.start():
                yield anthropic_sse(event)
            while True:
                event = await job.events.get()
                if event[0] == "text":
                    for piece in events.push(shaper.push(event[1], event[2])):
                        yield anthropic_sse(piece)
                    continue
                if event[0] == "probe":
                    if context["stream_probes"]:
                        yield anthropic_sse(events.probe(event[1]))
                    continue
                done = True
                if event[0] == "error":
                    log.warning("%s failed: %s", context["request_id"], event[1])
                    yield anthropic_sse(events.error(APIError(500, str(event[1]), type="server_error")))
                    return
                record = finished(job, event, context)
                for piece in events.finish(shaper.finish(record), record, context["preset"]):
                    yield anthropic_sse(piece)
                return
        finally:
            if not done:
                job.cancel()
                log.info("%s: client left mid-stream", context["request_id"])

    app.include_router(v1)
    return app


def serve(
    model: str = "smollm2-135m",
    backend: str = "transformers",
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    served_model_name: str | None = None,
    api_key_env: str = "M1_API_KEY",
    max_context: int | None = None,
    dtype: str = "auto",
    max_batch_size: int | None = None,
    batch_rows: int | None = None,
    batch_window_ms: float | None = None,
    torch_threads: int | None = None,
    max_queue: int = 256,
    max_body_bytes: int = 1_000_000,
    max_thinking_tokens: int | None = None,
    max_extensions: int = 64,
    default_max_tokens: int = 1024,
    default_preset: str | None = None,
    early_exit: EarlyExit | None = None,
    effort_table: EffortTable | None = None,
    log_level: str = "info",
    **backend_options: Any,
) -> None:
    """Load the model and serve it until interrupted (Ctrl-C or SIGTERM stop it cleanly).

    Transformers only (refused on vLLM, which batches continuously on its own): `max_batch_size`
    requests gathered per batch (16), run as length-sorted groups of `batch_rows` (8), gathered for
    up to `batch_window_ms` (15); `torch_threads` (all cores but one). `default_preset` is the
    preset of requests that name none (default: the model's own, think-tags for smollm2-135m);
    `early_exit` what `thinking_budget: "auto"` asks for; `effort_table` what `reasoning_effort`'s
    levels do (default: `effort.DEFAULT_EFFORT_TABLE`). `max_context` is the context window on
    both (vLLM's max_model_len). Other `backend_options` go to the backend as they are
    (transformers: `device`; vLLM: `tensor_parallel_size`, `engine_options`, …).
    """
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(log_level.upper())
    check_backend(backend, in_process=True, purpose="m1 serve")
    default_preset = default_preset or model_default_preset(model)
    if default_preset not in PRESETS:
        raise ValueError(f"unknown default preset {default_preset!r}; choose {', '.join(PRESETS)}")
    log.info("requests that name no budget_preset get %r", default_preset)
    check_default_early_exit(default_preset, early_exit)  # before the model loads
    if early_exit is not None:
        log.info('thinking_budget "auto" gets early exit %s', early_exit.model_dump_json())
    if effort_table is not None:
        log.info("reasoning_effort levels get %s", json.dumps(effort_table.to_file()))
    api_key = api_key_from_env(api_key_env)
    if api_key:
        log.info("API key required on /v1 routes (read from $%s)", api_key_env)
    else:
        log.info("no API key set ($%s is empty): anyone who can reach %s:%d can use this server",
                 api_key_env, host, port)
    if host not in LOOPBACK:
        log.warning("listening on %s: the server is reachable from other machines", host)

    if backend == "transformers":
        if batch_rows is not None:
            backend_options["batch_size"] = batch_rows
        runner = make_runner(backend, model, max_batch_size=max_batch_size or 16,
                             batch_window_ms=15.0 if batch_window_ms is None else batch_window_ms,
                             torch_threads=torch_threads, max_queue=max_queue, max_context=max_context, dtype=dtype,
                             **backend_options)
    else:
        given = [name for name, value in (("max_batch_size", max_batch_size), ("batch_rows", batch_rows),
                                          ("batch_window_ms", batch_window_ms), ("torch_threads", torch_threads))
                 if value is not None]
        if given:
            raise ValueError(f"only the transformers backend takes {', '.join(given)}")
        runner = make_runner(backend, model, max_queue=max_queue, max_model_len=max_context, dtype=dtype,
                             **backend_options)
    app = create_app(runner, served_model=served_model_name or model, api_key=api_key, max_body_bytes=max_body_bytes,
                     max_thinking_tokens=max_thinking_tokens, max_extensions=max_extensions,
                     default_max_tokens=default_max_tokens, default_preset=default_preset, early_exit=early_exit,
                     effort_table=effort_table, hosts=trusted_hosts(host))
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
