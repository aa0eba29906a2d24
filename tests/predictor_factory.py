"""A tiny multi-task Predictor (two prompt methods, four tasks of three kinds) and inputs for
it, shared by the inference and serving tests."""

from __future__ import annotations

from method_factories import make_method

from promptmix.inference.predictor import Predictor
from promptmix.prompts.router import PromptRouter

# Raw records in each dataset's own fields, and one preformatted text.
ITEMS = [
    {"task": "rte", "record": {"sentence1": "A cat sat on the mat.", "sentence2": "A cat sits."}},
    {"task": "cb", "record": {"premise": "It is late in the evening.", "hypothesis": "It is early."}},
    {"task": "sst2", "record": {"sentence": "a good movie"}},
    {"task": "stsb", "record": {"sentence1": "A man plays a guitar.", "sentence2": "A man plays music."}},
    {"task": "sst2", "text": "sst2 sentence: a dull, long and tiring film"},
    {"task": "cb", "record": {"premise": "No.", "hypothesis": "Yes, it is."}},
    {"task": "rte", "text": "rte sentence1: It rains. sentence2: It is dry."},
]


def tiny_predictor(backbone, second_method: str = "prompt-tuning", **options) -> Predictor:
    """rte/sst2 on prompt tuning (m=3) beside cb/stsb on ``second_method`` (m=5)."""
    d = backbone.hidden_size
    short = make_method("prompt-tuning", ["rte", "sst2"], d, prompt_length=3, seed=1)
    long = make_method(second_method, ["cb", "stsb"], d, prompt_length=5, seed=2)
    options.setdefault("max_new_tokens", 4)
    return Predictor(backbone, PromptRouter({"runs/short": short, "runs/long": long}), **options)


def same_predictions(a, b, tol: float = 1e-4) -> None:
    """Equal answers; scores equal up to float noise from different batch padding."""
    assert [(p.task, p.prediction, p.text) for p in a] == [(p.task, p.prediction, p.text) for p in b]
    for x, y in zip(a, b):
        assert abs(x.score - y.score) < tol, (x, y)
        if x.attention is not None or y.attention is not None:
            assert x.attention.keys() == y.attention.keys()
            assert all(abs(x.attention[k] - y.attention[k]) < tol for k in x.attention)


def saved_tiny_t5(root, tokenizer):
    """A tiny T5 saved as a model directory under ``root`` and loaded back with
    ``load_backbone``, as the CLI loads models: ``(directory, backbone)``."""
    from tiny_models import tiny_t5

    from promptmix.loading import load_backbone

    model_dir = root / "tiny-t5"
    tiny_t5().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir, load_backbone(str(model_dir))


def write_tiny_runs(root, tokenizer, data_dir) -> dict:
    """On disk under ``root``: a tiny T5 that ``load_backbone`` can load, and two run
    directories as training leaves them (``config.yaml`` + ``method/``): ``pt`` (prompt tuning,
    rte/sst2, m=3) and ``attempt`` (ATTEMPT over two sources, cb/stsb, m=5)."""
    from promptmix.prompts.checkpoint import save_method
    from promptmix.training.config import TrainConfig

    model_dir, backbone = saved_tiny_t5(root, tokenizer)
    d = backbone.hidden_size
    runs = {
        "pt": ("prompt-tuning", ["rte", "sst2"], 3, {}),
        "attempt": ("attempt", ["cb", "stsb"], 5, {"library": {"sources": ["src0", "src1"], "init_from": "src0"}}),
    }
    paths = {}
    for name, (method_name, tasks, m, extra) in runs.items():
        run = root / "runs" / name
        save_method(make_method(method_name, tasks, d, prompt_length=m, seed=len(paths) + 1), run / "method", backbone)
        config = TrainConfig.from_dict(
            {
                "stage": method_name,
                "model": {"name": str(model_dir)},
                "data": {"data_dir": str(data_dir), "tasks": tasks},
                "eval": {"batch_size": 4, "max_new_tokens": 4},
                "run": {"dir": str(run)},
                **extra,
            }
        )
        (run / "config.yaml").write_text(config.to_yaml())
        paths[name] = run
    return {"backbone": backbone, "model_dir": model_dir, **paths}
