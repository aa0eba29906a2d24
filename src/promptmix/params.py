"""Exact trainable-parameter counts of each prompt method, from its sizes alone.

Both papers compare methods by "parameters per task" (ATTEMPT Table 1, MPT Tables 1–2), and
those numbers are easy to get subtly wrong (is the attention module shared? are the source
prompts counted?). This module states the formulas once; ``tests/test_params.py`` checks each
one against ``num_trainable_parameters()`` of a module actually built at those sizes.

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

from dataclasses import dataclass, field

PARAM_METHODS = ("prompt-tuning", "attempt", "mpt")


@dataclass(frozen=True)
class ParamCount:
    """Trainable parameters of one method at given sizes.

    ``per_task``: ``total / num_tasks`` (fractional when a shared part does not divide evenly);
    ``total``: every trainable parameter; ``breakdown``: parameter group -> count, summing to
    ``total``.
    """

    per_task: float
    total: int
    breakdown: dict[str, int] = field(default_factory=dict)


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def count_parameters(
    method: str,
    d_model: int,
    prompt_length: int,
    attn_dim: int = 100,
    num_tasks: int = 1,
    rank: int = 1,
    shared_attention: bool = True,
) -> ParamCount:
    """Trainable parameters of ``method`` ("prompt-tuning", "attempt" or "mpt").

    ``attn_dim`` is used by ATTEMPT only (r), ``rank`` by MPT only, ``shared_attention`` by
    ATTEMPT only (True: one G for all N tasks, as in ATTEMPT-m; False: one G per task).
    """
    _check_sizes(d_model=d_model, prompt_length=prompt_length, attn_dim=attn_dim, num_tasks=num_tasks, rank=rank)
    d, m, n = d_model, prompt_length, num_tasks
    if method == "prompt-tuning":
        breakdown = {"prompts": n * m * d}
    elif method == "attempt":
        copies = 1 if shared_attention else n
        breakdown = {
            "target_prompts": n * m * d,
            "attention.down": copies * d * attn_dim,
            "attention.up": copies * attn_dim * d,
            "attention.layer_norm": copies * 2 * d,
        }
    elif method == "mpt":
        breakdown = {"shared_prompt": m * d, "task_u": n * rank * m, "task_v": n * rank * d}
    else:
        raise ValueError(f"unknown method {method!r} for parameter counting; choose one of {PARAM_METHODS}")
    total = sum(breakdown.values())
    return ParamCount(per_task=total / n, total=total, breakdown=breakdown)


def format_count(value: float) -> str:
    """``231936`` -> ``'231,936'``; a fractional per-task count keeps one decimal."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
