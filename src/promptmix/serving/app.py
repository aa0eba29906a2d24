"""HTTP serving: every loaded task behind one endpoint, requests batched across tasks.

    POST /v1/predict   {"task": "rte", "inputs": [{"sentence1": ..., "sentence2": ...}, "rte sentence1: ..."]}
                       {"inputs": [{"task": "rte", "record": {...}}, {"task": "cb", "text": "cb premise: ..."}]}
    GET  /v1/tasks     loaded tasks: kind, label words, input fields, length limit, prompt source
    GET  /health       status ("ok" / "draining"), queue depth
    GET  /metrics      batching counters and histograms in the Prometheus text format
    GET  /metrics.json the same counters as JSON (batch sizes, tasks per batch)
    GET  /openapi.json the schema (FastAPI, carrying the promptmix version), /docs to try it

With a top-level ``task`` every input is a raw record (an object of the dataset's fields) or
preformatted text (a string); without one, every input is ``{"task", "record" | "text"}``.

Every error is ``{"error": {"type", "message", "index"}}`` naming the problem: 400
malformed JSON (or not UTF-8, or nested too deeply), 404 / 405 unknown path or method, 408
headers or body slower than ``read_timeout``, 422 schema violations / unknown task / missing
field / text the tokenizer cannot take, 413 body, input count or input length over the
limits, 429 queue full, 503 shutting down; anything unexpected is a 500 in the same shape
(the exception is re-raised after the answer, so the server logs its traceback).
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from promptmix import __version__
from promptmix.inference.predictor import InputError, Predictor, as_items
from promptmix.serving.batcher import BatcherConfig, DynamicBatcher, QueueFull, ShuttingDown
from promptmix.serving.limits import DEFAULT_READ_TIMEOUT, MIN_BODY_BYTES, BodyLimit, error
from promptmix.serving.prometheus import CONTENT_TYPE_LATEST, exposition

STATUS_OF_INPUT_ERROR = {"unknown_task": 422, "invalid": 422, "too_long": 413}


@dataclass
class ServeConfig:
    """Limits of the HTTP layer; batching settings are in ``batcher``."""

    batcher: BatcherConfig = field(default_factory=BatcherConfig)
    max_inputs_per_request: int = 64
    """Most inputs in one request (413 beyond)."""
    max_body_bytes: int = 1 << 20
    """Largest request body accepted (413 beyond), checked before it is parsed."""
    read_timeout: float = DEFAULT_READ_TIMEOUT
    """Seconds a request's body may take to arrive after its headers (408 beyond)."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_inputs_per_request <= self.batcher.max_queue:
            raise ValueError(f"max_inputs_per_request must lie in [1, max_queue={self.batcher.max_queue}], "
                             f"got {self.max_inputs_per_request}")
        if self.max_body_bytes < MIN_BODY_BYTES:
            raise ValueError(f"max_body_bytes must be at least {MIN_BODY_BYTES}, got {self.max_body_bytes}")
        if not self.read_timeout > 0:
            raise ValueError(f"read_timeout must be > 0 seconds, got {self.read_timeout}")


class PredictRequest(BaseModel):
    task: str | None = Field(None, description="Task of every input; omit to give a task per input.",
                             examples=["rte"])
    inputs: list[dict[str, Any] | str] = Field(
        ..., min_length=1,
        description="With `task`: raw records (objects of the dataset's fields) or formatted input strings. "
                    "Without: objects {\"task\", \"record\"} or {\"task\", \"text\"} (plus \"choices\", the "
                    "candidate answers, with the text of a multiple-choice task).",
        examples=[[{"sentence1": "A cat sat on the mat.", "sentence2": "A cat sits."}]])


class PredictionOut(BaseModel):
    task: str
    prediction: Any = Field(description="Label word, number or answer text; null when generated text is no valid answer.")
    score: float = Field(description="Classification: probability of the label among the label words. "
                                     "Generation: geometric-mean token probability of the answer.")
    text: str = Field(description="The label word or the generated text.")
    attention: dict[str, float | list[float]] | None = Field(
        None, description="ATTEMPT: weight of each source prompt and of the task's own prompt.")
    label_scores: dict[str, float] | None = Field(None, description="Probability of every candidate answer (label "
                                                                    "words, or the input's own choices).")


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class TaskInfo(BaseModel):
    name: str
    kind: str = Field(description="'classification' (rank classification over label words), 'multiple_choice' (over "
                                  "each input's own candidate answers) or 'generation'.")
    label_words: list[str] | None
    input_fields: list[str]
    max_source_length: int
    prompt_from: str = Field(description="The run or library entry whose prompt answers this task.")
    attention_over: list[str] | None = Field(description="Prompts ATTEMPT attends over, or null.")


def create_app(predictor: Predictor, config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app answering requests with ``predictor``; serve it with uvicorn."""
    config = config or ServeConfig()
    holder: dict[str, Any] = {}
    # Requests are validated and tokenised on their own thread, with their own tokenizer copy,
    # while the batcher's thread runs the model: arrivals keep filling the next batch.
    preparer = predictor.with_own_tokenizer()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher = DynamicBatcher(predictor.run, config.batcher)
        await batcher.start()
        holder["batcher"] = app.state.batcher = batcher
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptmix-prepare") as pool:
            holder["prepare_pool"] = pool
            yield
            await batcher.close()  # answers every accepted request before the worker stops

    app = FastAPI(title="promptmix", version=__version__, lifespan=lifespan,
                  description="One frozen language model, every task's soft prompt, mixed-task batches.")
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, read_timeout=config.read_timeout)
    _add_error_handlers(app)

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(request: PredictRequest) -> PredictResponse:
        batcher = holder["batcher"]
        if len(request.inputs) > config.max_inputs_per_request:
            return error(413, "too_many_inputs", f"{len(request.inputs)} inputs; at most "
                                                 f"{config.max_inputs_per_request} per request")
        batcher.check_capacity(len(request.inputs))  # refuse before tokenising when overloaded
        items = as_items(request.inputs, request.task)
        prepared = await asyncio.get_running_loop().run_in_executor(
            holder["prepare_pool"], functools.partial(preparer.prepare, items, truncate=False))
        predictions = await batcher.submit(prepared)
        return PredictResponse(predictions=[PredictionOut(**p.to_dict()) for p in predictions])

    @app.get("/v1/tasks", response_model=list[TaskInfo])
    async def tasks() -> list[TaskInfo]:
        return [_task_info(predictor, name) for name in predictor.task_names]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        batcher = holder.get("batcher")
        status = "starting" if batcher is None else "draining" if batcher.closing else "ok"
        return {"status": status, "tasks": len(predictor.task_names), "backbone": public_name(predictor.backbone.name),
                "queue_depth": batcher.queue_depth if batcher else 0, "max_queue": config.batcher.max_queue}

    scrape = exposition(lambda: (holder["batcher"].metrics, holder["batcher"].queue_depth, config.batcher.max_queue,
                                 config.batcher.max_batch_size))

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
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


def _task_info(predictor: Predictor, name: str) -> TaskInfo:
    task = predictor.tasks[name]
    kind = "multiple_choice" if task.choices_per_example else "classification" if task.label_words else "generation"
    return TaskInfo(name=name, kind=kind,
                    label_words=list(task.label_words) if task.label_words else None,
                    input_fields=list(task.input_fields), max_source_length=predictor.max_source_lengths[name],
                    prompt_from=predictor.method.member_of(name)[0],
                    attention_over=predictor.method.attention_names(name))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error(400, "malformed_json", f"request body is not valid JSON: {errors[0].get('ctx', {}).get('error', '')}".rstrip(": "))
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        return error(422, "invalid_request", problems)

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
            return error(400, "malformed_json", "request body is not valid JSON: it is not UTF-8, or it nests too deeply")
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception once this answer is sent, so the server logs the traceback.
        return error(500, "internal_error", f"the server failed to answer ({type(exc).__name__}); it is logged")

