"""Exact trainable-parameter counts of each prompt method, from its sizes alone.

Both papers compare methods by "parameters per task" (ATTEMPT Table 1, MPT Tables 1–2), and
those numbers are easy to get subtly wrong (is the attention module shared? are the source
prompts counted?). Each method's config states its own formula
(``MethodConfig.parameter_counts``); this module looks the method up by name and reports per
task and in total. ``tests/test_params.py`` checks every formula against
``num_trainable_parameters()`` of a module actually built at those sizes.

With d = model width, m = l = prompt length, r = attention bottleneck (ATTEMPT) or
decomposition rank (MPT), N = number of target tasks:

- prompt tuning (Lester et al., 2021): one m×d prompt per task.
  total N·m·d, per task m·d                                  (76,800 at m = 100, d = 768)
- ATTEMPT (Asai et al., 2022): per task a target prompt m×d; the attention module G has
  W_down (d×r), W_up (r×d), no biases, and a LayerNorm (2d). Frozen source prompts are
  buffers, not parameters.
  shared G (ATTEMPT-m):  total N·m·d + 2d(r+1), per task d(m + 2(r+1)/N)
                                                 (231,936 for N = 1; 96,192 for N = 8)
  one G per task:        total N·(m·d + 2r·d + 2d), per task m·d + 2r·d + 2d
- MPT (Wang et al., 2023): a shared prompt P* (l×d) and per task rank-r factors u (r×l) and
  v (r×d), P̂_k = P* ∘ Σ_i u_k,i ⊗ v_k,i.
  total l·d + N·r·(l + d), per task l·d/N + r(l + d)      (77,668 for N = 1, r = 1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from promptmix.prompts import METHODS
from promptmix.prompts.base import MethodConfig

# Every registered method whose config states its formula.
PARAM_METHODS = tuple(
    name for name, cls in METHODS.items() if cls.config_class.parameter_counts is not MethodConfig.parameter_counts
)


@dataclass(frozen=True)
class ParamCount:
    """Trainable parameters of one method at given sizes.

    ``per_task``: ``total / num_tasks`` (fractional when a shared part does not divide evenly);
    ``total``: every trainable parameter; ``breakdown``: parameter group -> count, summing to
    ``total``; ``config``: the method's config the count is for.
    """

    per_task: float
    total: int
    breakdown: dict[str, int] = field(default_factory=dict)
    config: MethodConfig | None = None


def _check_sizes(**sizes: Any) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def count_parameters(method: str, d_model: int, prompt_length: int, num_tasks: int = 1, **sizes: Any) -> ParamCount:
    """Trainable parameters of ``method`` (a name in :data:`PARAM_METHODS`) holding ``num_tasks``
    tasks at width ``d_model``.

    ``sizes`` are config fields (``attn_dim``, ``shared_attention``, ``rank``, ...): each method
    takes the ones its config has and ignores the rest, so one call can size every method.
    """
    if method not in PARAM_METHODS:
        raise ValueError(f"unknown method {method!r} for parameter counting; choose one of {PARAM_METHODS}")
    _check_sizes(
        d_model=d_model,
        prompt_length=prompt_length,
        num_tasks=num_tasks,
        **{k: v for k, v in sizes.items() if not isinstance(v, bool)},
    )
    config_class = METHODS[method].config_class
    names = {f.name for f in dataclasses.fields(config_class)}
    config = config_class(prompt_length=prompt_length, **{k: v for k, v in sizes.items() if k in names})
    breakdown = config.parameter_counts(d_model, num_tasks)
    total = sum(breakdown.values())
    return ParamCount(per_task=total / num_tasks, total=total, breakdown=breakdown, config=config)


def format_count(value: float) -> str:
    """``231936`` -> ``'231,936'``; a fractional per-task count keeps one decimal."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
