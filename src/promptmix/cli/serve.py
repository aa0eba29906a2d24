"""``promptmix serve``: every loaded task behind one HTTP endpoint, requests batched across tasks.

    promptmix serve --run runs/glue --run runs/superglue --port 8000
    curl -s localhost:8000/v1/predict -d '{"task": "rte", "inputs": [{"sentence1": "...", "sentence2": "..."}]}'
    curl -s localhost:8000/v1/completions -d '{"model": "rte", "prompt": {"sentence1": "...", "sentence2": "..."}}'

Endpoints: POST /v1/predict, POST /v1/completions and GET /v1/models (the OpenAI / vLLM convention: ``model``
names a task), GET /v1/tasks, /health, /metrics (Prometheus), /metrics.json, /openapi.json, /docs (served
offline) (see :mod:`promptmix.serving.app`). Ctrl-C or SIGTERM stops accepting connections, answers
every accepted request, then exits.
"""

from __future__ import annotations

import argparse

from promptmix.cli import HELP, float_from, int_in
from promptmix.cli.predict import add_model_arguments, predictor_from_args


def register(subparsers) -> None:
    from promptmix.serving.limits import DEFAULT_READ_TIMEOUT, MIN_BODY_BYTES

    parser = subparsers.add_parser("serve", help=HELP["serve"], description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_model_arguments(parser)
    http = parser.add_argument_group("server (every value is checked before the model loads)")
    http.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    http.add_argument("--port", type=int_in(0, 65535), default=8000, help="port (0: any free one)")
    http.add_argument("--max-wait-ms", type=float_from(0), default=10.0, help="longest wait for a batch to fill")
    http.add_argument("--max-queue", type=int_in(1), default=256, help="most queued inputs; beyond it requests get 429")
    http.add_argument("--max-inputs-per-request", type=int_in(1), default=64, help="at most --max-queue; beyond it 413")
    http.add_argument(
        "--max-body-bytes", type=int_in(MIN_BODY_BYTES), default=1 << 20, help="largest request body; beyond it 413"
    )
    http.add_argument("--max-connections", type=int_in(1), default=1024, help="concurrent connections; beyond it 503")
    http.add_argument(
        "--read-timeout",
        type=float_from(0, inclusive=False),
        default=DEFAULT_READ_TIMEOUT,
        metavar="SECONDS",
        help="time a request's headers may take (from connecting or the previous response), and again its "
        "body; beyond it 408 and the connection is closed (default: %(default)s)",
    )
    http.add_argument(
        "--threads",
        type=int_in(1),
        default=None,
        help="torch threads running the model (default: $OMP_NUM_THREADS if set, else the usable CPUs "
        "minus 2 for the event loop and request preparation, at least 1)",
    )
    http.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from promptmix.serving.app import ServeConfig, create_app
    from promptmix.serving.batcher import BatcherConfig
    from promptmix.serving.server import check_address, default_threads, make_server

    config = ServeConfig(
        BatcherConfig(max_wait_ms=args.max_wait_ms, max_queue=args.max_queue),  # gathers what the engine batches
        max_inputs_per_request=args.max_inputs_per_request,
        max_body_bytes=args.max_body_bytes,
        read_timeout=args.read_timeout,
    )
    check_address(args.host, args.port)
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)  # before the model loads, so no wider OpenMP team is ever started
    predictor = predictor_from_args(args)
    server = make_server(
        create_app(predictor, config),
        args.host,
        args.port,
        max_connections=args.max_connections,
        read_timeout=args.read_timeout,
        log_level=args.log_level,
    )
    print(
        f"serving {len(predictor.task_names)} task(s) on {predictor.backbone.name} with {threads} model thread(s): "
        f"{', '.join(predictor.task_names)}"
    )
    for task in predictor.task_names:  # which directory (or library prompt) answers each task
        print(f"  {task}: {predictor.method.member_of(task)[0]}")
    server.run()
    return 0
