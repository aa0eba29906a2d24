"""Helpers shared by the benchmark scripts: backbones at paper shapes, the machine line,
interleaved timing and peak-memory measurement.

Timing: every variant is stepped round-robin in one process (warm-up rounds first, then the
median of the timed rounds), so background load on the shared cores falls on all alike.
Memory: the peak resident set growth of a step, measured in a fresh process per variant:
after the model is built the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``),
the steps run, and peak (VmHWM) minus the RSS before the steps is reported.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from promptmix.backbone import Backbone  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
T5_TOKENIZER = SHARED / "models" / "t5-small-tokenizer"
# Random-weight T5 shapes over the real t5-small tokenizer/config; t5-base overrides the widths.
T5_SHAPES = {
    "tiny": dict(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2),
    "t5-small": {},
    "t5-base": dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12),
    "t5-large": dict(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24, num_decoder_layers=24),
}


def load_backbone(name: str) -> Backbone:
    """'tiny' / 't5-small' / 't5-base' / 't5-large' (random weights, real tokenizer), 'tiny-llama' (a tiny
    random decoder-only model over the same tokenizer) or any name
    :func:`promptmix.loading.load_backbone` takes (e.g. 'smollm2-135m', real weights).
    The model is in eval mode: dropout off, for every variant alike."""
    if name == "tiny-llama":
        from transformers import AutoTokenizer

        from promptmix.testing import tiny_llama

        return Backbone(tiny_llama(), AutoTokenizer.from_pretrained(T5_TOKENIZER), name)
    if name in T5_SHAPES:
        from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

        config = T5Config.from_pretrained(T5_TOKENIZER)
        for key, value in T5_SHAPES[name].items():
            setattr(config, key, value)
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config).eval()
        return Backbone(model, AutoTokenizer.from_pretrained(T5_TOKENIZER), name)
    from promptmix.loading import load_backbone as load

    backbone = load(name)
    backbone.model.eval()
    return backbone


def machine_line() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no GPU"
    return (
        f"{now}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"torch {torch.__version__} threads {torch.get_num_threads()}{gpu}; load average (1/5/15 min) {load}"
    )


def interleaved_times(fns: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each timed call of each function, called round-robin ``warmup + repeats`` times
    (on a GPU each call is timed to the end of its kernels)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def peak_rss_growth_mib(fn: Callable[[], object], calls: int) -> float:
    """Peak RSS growth (MiB) over the RSS before ``calls`` calls of ``fn`` (Linux only)."""
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
    before = _status_kib("VmRSS")
    for _ in range(calls):
        fn()
    return (_status_kib("VmHWM") - before) / 1024


def ratio(a: float, b: float | None) -> str:
    return f"{a / b:5.2f}x" if b else "   - "
