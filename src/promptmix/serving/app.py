"""HTTP serving: every loaded task behind one endpoint, requests batched across tasks.

    POST /v1/predict   {"task": "rte", "inputs": [{"sentence1": ..., "sentence2": ...}, "rte sentence1: ..."]}
                       {"inputs": [{"task": "rte", "record": {...}}, {"task": "cb", "text": "cb premise: ..."}]}
    POST /v1/completions  OpenAI / vLLM multi-adapter convention: {"model": "rte", "prompt": "rte sentence1: ..."}
                       (``model`` a task, or "<prompt source>:<task>"; ``prompt`` formatted text, an object of the
                       task's fields, or a list of either); the answer is ``choices[i].text``, and a rank-classified
                       answer carries every candidate's log-probability in ``choices[i].logprobs``
    GET  /v1/models    the tasks as OpenAI models (``id`` the task, ``root`` its prompt source)
    GET  /v1/tasks     loaded tasks: kind, label words, input fields, length limit, prompt source
    GET  /health       status ("ok" / "draining"), queue depth
    GET  /metrics      batching counters and histograms in the Prometheus text format
    GET  /metrics.json the same counters as JSON (batch sizes, tasks per batch)
    GET  /openapi.json the schema (FastAPI, carrying the promptmix version), /docs to try it (Swagger UI, its
                       assets served by promptmix itself, so it works offline)

With a top-level ``task`` every input is a raw record (an object of the dataset's fields) or
preformatted text (a string); without one, every input is ``{"task", "record" | "text"}``.

Every error is ``{"error": {"type", "message", "index"}}`` naming the problem: 400
malformed JSON (or not UTF-8, or nested too deeply, or not valid HTTP), 404 / 405 unknown
path, model or method, 408 headers or body slower than ``read_timeout``, 422 schema
violations / unknown key or query parameter (named) / unknown task / missing or mistyped field / text the
tokenizer cannot take, 413 body, input count, input length, choice count or choice length
over the limits, 429 queue full, 503 shutting down; anything unexpected is a 500 in the same
shape with ``Connection: close`` (the exception is re-raised after the answer, so the server
logs its traceback, and uvicorn then closes the connection). The schema documents this shape.
A request whose client disconnects before its answer is dropped from the queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import os
import sys
import time
import typing
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, create_model
from starlette.exceptions import HTTPException

from promptmix import __version__
from promptmix._validation import STRICT, PositiveFloat, PositiveInt, explain, validated
from promptmix.inference.predictor import MAX_NEW_TOKENS, InputError, Prediction, Predictor, as_items
from promptmix.serving.batcher import BatcherConfig, BatcherMetrics, DynamicBatcher, QueueFull, ShuttingDown
from promptmix.serving.limits import DEFAULT_READ_TIMEOUT, MIN_BODY_BYTES, BodyLimit, error
from promptmix.serving.prometheus import CONTENT_TYPE_LATEST, exposition

STATUS_OF_INPUT_ERROR = {
    "unknown_task": 422,
    "invalid": 422,
    "too_long": 413,
    "too_many_choices": 413,
    "choice_too_long": 413,
}


class TooManyInputs(Exception):
    """More inputs in one request than ``max_inputs_per_request`` (413)."""


class UnknownQuery(Exception):
    """A query parameter: no endpoint takes one, and one ignored would be a silent mistake (422)."""


async def no_query(request: Request) -> None:
    if request.query_params:
        names = ", ".join(repr(name) for name in dict.fromkeys(request.query_params.keys()))
        raise UnknownQuery(
            f"unknown query parameter(s) {names}: no endpoint takes any (a request's settings go in its JSON body)"
        )


class ClientGone(Exception):
    """The client disconnected before its answer: its queued inputs were dropped."""


class Strict(BaseModel):
    """A request body, validated as every config and record is (:data:`promptmix._validation.STRICT`):
    a key it does not declare is refused (422 naming the key), not ignored; a number is not a
    string, a bool or NaN; bounds are declared on the fields."""

    model_config = STRICT


class ErrorDetail(BaseModel):
    type: str = Field(description="What went wrong, e.g. 'invalid_request', 'unknown_task', 'too_long', 'queue_full'.")
    message: str = Field(description="The problem, naming the key, field or limit.")
    index: int | None = Field(description="Position of the input at fault, or null when the request as a whole is.")


class ErrorResponse(BaseModel):
    """What every error answer carries (FastAPI's default ``{"detail": [...]}`` is never sent)."""

    error: ErrorDetail


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "Malformed JSON, or not valid HTTP",
        404: "Unknown path or model",
        408: "Request too slow to arrive",
        413: "Body, input count, input length or choices over the limits",
        422: "Invalid request",
        429: "Queue full (Retry-After)",
        500: "Unexpected failure (logged; Connection: close)",
        503: "Shutting down or over the connection limit (Retry-After)",
    }
    return {status: {"model": ErrorResponse, "description": what[status]} for status in statuses}


POST_ERRORS = _errors(400, 408, 413, 422, 429, 500, 503)


@validated
class ServeConfig:
    """Limits of the HTTP layer; batching settings are in ``batcher``."""

    batcher: BatcherConfig = field(default_factory=BatcherConfig)
    max_inputs_per_request: PositiveInt = 64
    """Most inputs in one request (413 beyond); at most ``batcher.max_queue``."""
    max_body_bytes: Annotated[int, Field(ge=MIN_BODY_BYTES)] = 1 << 20
    """Largest request body accepted (413 beyond), checked before it is parsed."""
    read_timeout: PositiveFloat = DEFAULT_READ_TIMEOUT
    """Seconds a request's body may take to arrive after its headers (408 beyond)."""

    def __post_init__(self) -> None:  # a request must fit in the queue at once
        if self.max_inputs_per_request > self.batcher.max_queue:
            raise ValueError(
                f"max_inputs_per_request must lie in [1, max_queue={self.batcher.max_queue}], "
                f"got {self.max_inputs_per_request}"
            )


class PredictRequest(Strict):
    task: str | None = Field(None, description="Task of every input; omit to give a task per input.", examples=["rte"])
    inputs: list[dict[str, Any] | str] = Field(
        ...,
        min_length=1,
        description="With `task`: raw records (objects of the dataset's fields) or formatted input strings. "
        'Without: objects {"task", "record"} or {"task", "text"} (plus "choices", the '
        "candidate answers, with the text of a multiple-choice task).",
        examples=[[{"sentence1": "A cat sat on the mat.", "sentence2": "A cat sits."}]],
    )


PREDICTION_FIELDS = {  # what the schema says of each field of a Prediction
    "task": "The task (its canonical name).",
    "prediction": "Label word, number or answer text; null when generated text is no valid answer.",
    "score": "Classification: probability of the label among the label words. "
    "Generation: geometric-mean token probability of the answer.",
    "text": "The label word or the generated text.",
    "attention": "ATTEMPT: weight of each source prompt and of the task's own prompt.",
    "label_scores": "Probability of every candidate answer (label words, or the input's own choices).",
}


def _prediction_model() -> type[BaseModel]:
    """The response model of one :class:`Prediction`: its fields, types and defaults, declared
    there once, with the schema's descriptions."""
    types = typing.get_type_hints(Prediction)
    # Any: each value is a (type, FieldInfo) pair, which create_model's other keywords
    # (__config__, __base__, ...) would not take if the dict were typed as those pairs.
    fields: dict[str, Any] = {
        f.name: (
            types[f.name],
            Field(... if f.default is dataclasses.MISSING else f.default, description=PREDICTION_FIELDS[f.name]),
        )
        for f in dataclasses.fields(Prediction)
    }
    return create_model("PredictionOut", **fields)


if TYPE_CHECKING:  # a class built at run time: to the type checker, a pydantic model
    PredictionOut = BaseModel
else:
    PredictionOut = _prediction_model()


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class TaskInfo(BaseModel):
    name: str
    kind: str = Field(
        description="'classification' (rank classification over label words), 'multiple_choice' (over "
        "each input's own candidate answers) or 'generation'."
    )
    label_words: list[str] | None
    input_fields: list[str]
    max_source_length: int
    prompt_from: str = Field(
        description="The run (a per-task-selected run's best-per-task/<task> directory) or library entry whose "
        "prompt answers this task."
    )
    attention_over: list[str] | None = Field(description="Prompts ATTEMPT attends over, or null.")


class CompletionRequest(Strict):
    """An OpenAI / vLLM ``/v1/completions`` request. Only the keys below are accepted."""

    model: str = Field(
        description="A loaded task (name or alias), or '<prompt source>:<task>' as /v1/models lists it.",
        examples=["rte"],
    )
    prompt: str | dict[str, Any] | Annotated[list[str | dict[str, Any]], Field(min_length=1)] = Field(
        description="Formatted input text, an object of the task's fields (a raw record), or a non-empty list of "
        "either (one choice each, in order). A multiple-choice task needs the record.",
        examples=["rte sentence1: A cat sat on the mat. sentence2: A cat sits."],
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=MAX_NEW_TOKENS,
        description="Most tokens generated (generation tasks); at most the server's "
        "--max-new-tokens, which is the default.",
    )
    n: int = Field(1, ge=1, le=1, description="Answers per prompt: only 1 (answers are deterministic).")
    temperature: float | None = Field(
        None, ge=0, le=2, description="Accepted for compatibility and unused: answers are rank-classified or greedy."
    )
    logprobs: int | None = Field(
        None,
        ge=0,
        le=5,
        description="Accepted for compatibility: a rank-classified answer "
        "always carries every candidate, generated text none.",
    )
    top_p: float | None = Field(None, gt=0, le=1, description="Accepted for compatibility and unused, as temperature.")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Accepted for compatibility and unused.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Accepted for compatibility and unused.")
    seed: int | None = Field(None, description="Accepted and unused: answers are deterministic.")
    best_of: int | None = Field(None, ge=1, le=1, description="Only 1.")
    stop: None = Field(None, description="Only null: generation ends where the task's training taught it to.")
    echo: Literal[False] = Field(False, description="Only false.")
    stream: Literal[False] = Field(False, description="Only false: no streaming.")
    user: str | None = Field(None, description="Accepted and unused.")


class CompletionLogprobs(BaseModel):
    """Rank classification in the completions ``logprobs`` layout: the answer is one "token",
    and ``top_logprobs[0]`` holds every candidate's log-probability among the candidates."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str = Field(description="The answer: label word, candidate or generated text.")
    logprobs: CompletionLogprobs | None = Field(
        description="Every candidate's log-probability (rank-classified tasks); null for generated text."
    )
    finish_reason: Literal["stop", "length"] = Field(description="'length' when generation used max_tokens.")


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]


class ModelCard(BaseModel):
    id: str = Field(description="The task; give it (or '<root>:<id>') as a completion's model.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "promptmix"
    root: str = Field(description="The run or library entry whose prompt answers this task.")
    parent: str = Field(description="The frozen backbone.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _logprob(p: float) -> float:
    return math.log(max(p, sys.float_info.min))  # JSON has no -Infinity: a probability of 0 is the smallest float


def create_app(predictor: Predictor, config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app answering requests with ``predictor``; serve it with uvicorn."""
    config = config or ServeConfig()
    if config.batcher.max_batch_size is None:  # gather what the engine batches: one batching policy, the engine's
        config = dataclasses.replace(
            config, batcher=dataclasses.replace(config.batcher, max_batch_size=predictor.max_batch_size)
        )
    holder: dict[str, Any] = {}
    # Requests are validated and tokenised on their own thread, with their own tokenizer copy,
    # while the batcher's thread runs the model: arrivals keep filling the next batch.
    preparer = predictor.with_own_tokenizer()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One thread prepares (the batcher's calls to preparer.prepare, and counting completions' tokens): the
        # preparer's tokenizer is used by one thread at a time.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptmix-prepare") as pool:
            batcher = DynamicBatcher(
                predictor.run,
                config.batcher,
                prepare=functools.partial(preparer.prepare, truncate=False),
                prepare_executor=pool,
            )
            await batcher.start()
            holder["batcher"] = app.state.batcher = batcher
            holder["prepare_pool"] = pool
            yield
            await batcher.close()  # answers every accepted request before the worker stops

    # Swagger UI's script, style and icon come from promptmix itself (fastapi-offline ships them), so /docs
    # works without the CDN FastAPI would point it at; the validator badge (an image from swagger.io) is off.
    app = FastAPIOffline(
        title="promptmix",
        version=__version__,
        lifespan=lifespan,
        redoc_url=None,
        description="One frozen language model, every task's soft prompt, mixed-task batches.",
        swagger_ui_parameters={"validatorUrl": None},
        responses=_errors(500),
        dependencies=[Depends(no_query)],
    )
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, read_timeout=config.read_timeout)
    _add_error_handlers(app, {"/v1/predict": PredictRequest, "/v1/completions": CompletionRequest})
    started = int(time.time())

    async def answer(
        request: Request, items: list[dict[str, Any]], max_new_tokens: int | None = None
    ) -> list[Prediction]:
        """``items``' predictions, unless the client goes first: one call to the batcher, which refuses
        them when overloaded (before tokenising), has the preparer validate and tokenise them, and queues them."""
        if len(items) > config.max_inputs_per_request:
            raise TooManyInputs(f"{len(items)} inputs; at most {config.max_inputs_per_request} per request")
        answered = asyncio.ensure_future(holder["batcher"].submit(items, max_new_tokens=max_new_tokens))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({answered, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not answered.done():  # the client left (or this handler was cancelled): drop its inputs
                answered.cancel()
        if not answered.done() or answered.cancelled():
            raise ClientGone()
        return answered.result()

    @app.post("/v1/predict", response_model=PredictResponse, responses=POST_ERRORS)
    async def predict(body: PredictRequest, request: Request) -> PredictResponse:
        predictions = await answer(request, as_items(body.inputs, body.task))
        return PredictResponse(predictions=[PredictionOut(**p.to_dict()) for p in predictions])

    @app.post("/v1/completions", response_model=CompletionResponse, responses={**POST_ERRORS, **_errors(404)})
    async def completions(body: CompletionRequest, request: Request) -> CompletionResponse | JSONResponse:
        task = _model_task(predictor, body.model)
        if body.max_tokens is not None and body.max_tokens > predictor.max_new_tokens:
            return error(
                422,
                "invalid_request",
                f"max_tokens: {body.max_tokens} is over the server's limit of "
                f"{predictor.max_new_tokens} (--max-new-tokens)",
            )
        prompts = body.prompt if isinstance(body.prompt, list) else [body.prompt]
        predictions = await answer(request, as_items(prompts, task), body.max_tokens)
        limit = body.max_tokens or predictor.max_new_tokens
        lengths = await asyncio.get_running_loop().run_in_executor(
            holder["prepare_pool"],
            lambda: [
                None
                if p.label_scores is not None
                else len(preparer.backbone.tokenizer(p.text, add_special_tokens=False)["input_ids"])
                for p in predictions
            ],
        )
        return CompletionResponse(
            id=f"cmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=body.model,
            choices=[
                CompletionChoice(
                    index=i,
                    text=p.text,
                    logprobs=_completion_logprobs(p),
                    finish_reason="length" if n is not None and n >= limit else "stop",
                )
                for i, (p, n) in enumerate(zip(predictions, lengths))
            ],
        )

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        backbone = public_name(predictor.backbone.name)
        return ModelList(
            data=[
                ModelCard(id=name, created=started, root=predictor.method.member_of(name)[0], parent=backbone)
                for name in predictor.task_names
            ]
        )

    @app.get("/v1/tasks", response_model=list[TaskInfo])
    async def tasks() -> list[TaskInfo]:
        return [_task_info(predictor, name) for name in predictor.task_names]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        batcher = holder.get("batcher")
        status = "starting" if batcher is None else "draining" if batcher.closing else "ok"
        return {
            "status": status,
            "tasks": len(predictor.task_names),
            "backbone": public_name(predictor.backbone.name),
            "queue_depth": batcher.queue_depth if batcher else 0,
            "max_queue": config.batcher.max_queue,
        }

    def batcher_state() -> tuple[BatcherMetrics, int, int, int]:
        max_batch_size = config.batcher.max_batch_size
        assert max_batch_size is not None  # filled in from the predictor above
        return holder["batcher"].metrics, holder["batcher"].queue_depth, config.batcher.max_queue, max_batch_size

    scrape = exposition(batcher_state)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
    )
    async def metrics() -> Response:
        return Response(scrape(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics.json")
    async def metrics_json() -> dict[str, Any]:
        batcher = holder["batcher"]
        return batcher.metrics.to_dict(batcher.queue_depth)

    return app


def public_name(name: str) -> str:
    """A backbone name fit for anyone who can reach the server: a local model directory (an
    absolute path, see :func:`promptmix.loading.resolve_model_name`) by its last part only."""
    return os.path.basename(name.rstrip("/\\")) if os.path.isabs(name) else name


async def _disconnected(request: Request) -> None:
    """Return once the client has disconnected. The body was read already (BodyLimit), so the
    next ASGI message is the disconnect (or the end of the response, when this is cancelled)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _model_task(predictor: Predictor, model: str) -> str:
    """The loaded task a completion's ``model`` names: a task (or alias), or '<prompt source>:<task>'."""
    source, _, name = model.rpartition(":")
    try:
        task = predictor.resolve_task(name)
    except InputError as err:
        raise HTTPException(
            404, f"unknown model {err.reason.removeprefix('no prompt is loaded for task ')} (see /v1/models)"
        ) from None
    if source and source != predictor.method.member_of(task)[0]:
        raise HTTPException(
            404,
            f"model {model!r}: task {task!r} is answered by the prompt of "
            f"{predictor.method.member_of(task)[0]!r}, not {source!r} (see /v1/models)",
        )
    return task


def _completion_logprobs(p: Prediction) -> CompletionLogprobs | None:
    if p.label_scores is None:
        return None
    return CompletionLogprobs(
        tokens=[p.text],
        token_logprobs=[_logprob(p.label_scores[p.text])],
        top_logprobs=[{c: _logprob(q) for c, q in p.label_scores.items()}],
        text_offset=[0],
    )


def _task_info(predictor: Predictor, name: str) -> TaskInfo:
    task = predictor.tasks[name]
    kind = "multiple_choice" if task.choices_per_example else "classification" if task.label_words else "generation"
    return TaskInfo(
        name=name,
        kind=kind,
        label_words=list(task.label_words) if task.label_words else None,
        input_fields=list(task.input_fields),
        max_source_length=predictor.max_source_lengths[name],
        prompt_from=predictor.method.member_of(name)[0],
        attention_over=predictor.method.attention_names(name),
    )


def _add_error_handlers(app: FastAPI, bodies: dict[str, type[BaseModel]]) -> None:
    """The API's error shape for everything FastAPI, Starlette and the predictor raise;
    ``bodies`` maps a path to its request model, whose keys an unknown-key error lists."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error(
                400,
                "malformed_json",
                f"request body is not valid JSON: {errors[0].get('ctx', {}).get('error', '')}".rstrip(": "),
            )
        unknown = [e["loc"][-1] for e in errors if e.get("type") == "extra_forbidden" and len(e["loc"]) == 2]
        if unknown:  # named first: a misspelt key is the likeliest mistake, and it would otherwise be ignored
            model = bodies.get(request.url.path)
            accepted = f"; accepted: {', '.join(model.model_fields)}" if model else ""
            return error(
                422, "invalid_request", f"unknown key(s) {', '.join(map(repr, unknown))} in the request body{accepted}"
            )
        model = bodies.get(request.url.path)
        if model is None or any(e["loc"][:1] != ("body",) for e in errors):
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
            return error(422, "invalid_request", problems)
        # Worded as a config's or record's error is: the field, what it must be, the value sent.
        return error(422, "invalid_request", explain(model, [{**e, "loc": e["loc"][1:]} for e in errors]))

    @app.exception_handler(UnknownQuery)
    async def unknown_query(request: Request, exc: UnknownQuery) -> JSONResponse:
        return error(422, "invalid_request", str(exc))

    @app.exception_handler(TooManyInputs)
    async def too_many_inputs(request: Request, exc: TooManyInputs) -> JSONResponse:
        return error(413, "too_many_inputs", str(exc))

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> JSONResponse:
        return error(499, "client_closed_request", "the client disconnected before its answer")  # read by no one

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return error(STATUS_OF_INPUT_ERROR.get(exc.kind, 422), exc.kind, str(exc), exc.index)

    @app.exception_handler(QueueFull)
    async def overloaded(request: Request, exc: QueueFull) -> JSONResponse:
        return error(429, "queue_full", str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(ShuttingDown)
    async def shutting_down(request: Request, exc: ShuttingDown) -> JSONResponse:
        return error(503, "shutting_down", str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not decode the body: not UTF-8, or too deep for the parser
            return error(
                400, "malformed_json", "request body is not valid JSON: it is not UTF-8, or it nests too deeply"
            )
        kind = {
            404: "model_not_found" if request.url.path == "/v1/completions" else "not_found",
            405: "method_not_allowed",
        }.get(exc.status_code, "http_error")
        return error(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception once this answer is sent, so the server logs the traceback, and
        # uvicorn then closes the connection: say so, or the client's next request on it would meet a reset.
        return error(
            500,
            "internal_error",
            f"the server failed to answer ({type(exc).__name__}); it is logged",
            headers={"connection": "close"},
        )
