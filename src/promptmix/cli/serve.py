"""``promptmix serve``: every loaded task behind one HTTP endpoint, requests batched across tasks.

    promptmix serve --run runs/glue --run runs/superglue --port 8000
    curl -s localhost:8000/v1/predict -d '{"task": "rte", "inputs": [{"sentence1": "...", "sentence2": "..."}]}'

Endpoints: POST /v1/predict, GET /v1/tasks, /health, /metrics, /openapi.json, /docs
(see :mod:`promptmix.serving.app`). Ctrl-C or SIGTERM stops accepting connections, answers
every accepted request, then exits.
"""

from __future__ import annotations

import argparse

from promptmix.cli.predict import add_model_arguments, predictor_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="HTTP server answering any loaded task, batched across requests",
                                   description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_model_arguments(parser)
    http = parser.add_argument_group("server")
    http.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    http.add_argument("--port", type=int, default=8000)
    http.add_argument("--max-wait-ms", type=float, default=10.0, help="longest wait for a batch to fill")
    http.add_argument("--max-queue", type=int, default=256, help="most queued inputs; beyond it requests get 429")
    http.add_argument("--max-inputs-per-request", type=int, default=64)
    http.add_argument("--max-body-bytes", type=int, default=1 << 20)
    http.add_argument("--max-connections", type=int, default=1024, help="concurrent connections; beyond it 503")
    http.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promptmix.serving.app import ServeConfig, create_app
    from promptmix.serving.batcher import BatcherConfig
    from promptmix.serving.server import make_server

    config = ServeConfig(BatcherConfig(args.batch_size, args.max_wait_ms, args.max_queue),
                         max_inputs_per_request=args.max_inputs_per_request, max_body_bytes=args.max_body_bytes)
    predictor = predictor_from_args(args)
    print(f"serving {len(predictor.task_names)} task(s) on {predictor.backbone.name}: {', '.join(predictor.task_names)}")
    make_server(create_app(predictor, config), args.host, args.port, max_connections=args.max_connections,
                log_level=args.log_level).run()
    return 0
