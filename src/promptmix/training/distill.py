"""MPT prompt distillation (Wang et al., ICLR 2023, Eqs. 3-5).

    L = L_task + λ (L_KL + L_hidden)                                   λ = 0.9 (Eq. 5)

- L_task: the student's token-mean cross-entropy on the labels.
- L_KL (Eq. 3): KL(teacher ‖ student) between the label-token distributions, both softened
  by a temperature τ (p = softmax(z / τ)); per label token, summed over the vocabulary, averaged
  over the label tokens and multiplied by τ² (standard knowledge distillation, so the
  gradient scale does not shrink as τ grows; the paper does not say, nor give τ).
- L_hidden (Eq. 4): mean squared error between teacher and student hidden states over real
  (non-pad) positions, as :class:`PromptedOutput` marks them (``hidden_masks``: the backbone
  is the one place that knows where each row's real tokens ended up). The states compared
  are the layers' outputs: for encoder-decoder models the encoder's over prompt + input and
  the decoder's over the target positions, for decoder-only models every layer's over
  prompt + input (+ answer). The embedding outputs (state 0 of each stack) are left out by
  default: at prompt positions state 0 IS the prompt, so including it adds a direct
  prompt-to-prompt distance, which the MPT paper reports as a different, worse variant
  (``hidden_embeddings: true`` puts it back). Per example it is the mean over its (state,
  position, dimension) entries; the batch value is the mean over examples.
  ``hidden_rms_norm`` (off by default, on in the SmolLM2 presets) first scales every hidden
  vector to unit RMS: Llama-style residual streams carry a few massive activations that
  would otherwise make L_hidden swamp L_task and L_KL.

The teacher is the same frozen backbone with a :class:`SoftPrompt` holding task k's teacher
prompt in slot k (prompt tuning from the library), run without gradients and in eval mode
whatever mode the student runs in: the targets must not carry dropout noise (the T5 presets
keep T5's dropout on for the student, as the papers do). Teacher and student prompts have
the same length, so positions line up. With λ = 0 (or both terms switched off) the teacher
never runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from promptmix.backbone import PromptedModel
from promptmix.training.config import DistillConfig
from promptmix.training.losses import model_inputs


def kl_sum(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Σ over label tokens of τ² KL(softmax(t/τ) ‖ softmax(s/τ)); logits [N, V]."""
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # [N]
    return kl.sum() * temperature**2


def rms_normalized(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Each vector (last axis) divided by its root mean square."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def hidden_mse_per_example(
    student: tuple[Tensor, ...], teacher: tuple[Tensor, ...], masks: list[Tensor], rms_norm: bool = False
) -> Tensor:
    """Per example, the mean squared difference over every (state, real position, dim): [B].

    ``masks[i]`` [B, L_i] marks the real positions of state i; ``rms_norm`` compares the
    vectors after :func:`rms_normalized`."""
    total: Tensor | float = 0.0
    entries: Tensor | float = 0.0
    for s, t, mask in zip(student, teacher, masks):
        s, t = s.float(), t.float()
        if rms_norm:
            s, t = rms_normalized(s), rms_normalized(t)
        diff = ((s - t) ** 2).sum(-1)  # [B, L]
        total = total + (diff * mask).sum(1)
        entries = entries + mask.sum(1) * s.shape[-1]
    mse = total / entries
    assert isinstance(mse, Tensor)  # no states: 0.0 / 0.0 raised above
    return mse


def distills(config: DistillConfig) -> bool:
    """Whether the loss has a teacher term at all (False: λ = 0 or both terms off)."""
    return config.weight > 0 and (config.use_kl or config.use_hidden)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run ``module`` (every submodule) in eval mode, then restore each submodule's own mode:
    the teacher shares the backbone with a student that may be training with dropout."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@dataclass
class DistillLoss:
    """``loss_fn`` of MPT source training (see the module docstring).

    Args:
        teacher: the frozen backbone with the teacher prompts (task ids as the student's);
            None only when nothing is distilled (λ = 0 or both terms off).
        config: λ, τ and the ablation switches.
    """

    teacher: PromptedModel | None
    config: DistillConfig

    def __post_init__(self) -> None:
        if distills(self.config) and self.teacher is None:
            raise ValueError("distillation with distill.weight > 0 needs a teacher")

    def __call__(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        want_hidden = cfg.use_hidden and cfg.weight > 0
        teacher = None
        if distills(cfg):
            assert self.teacher is not None  # __post_init__ requires it
            with torch.no_grad(), eval_mode(self.teacher):
                teacher = self.teacher(**model_inputs(batch), return_logits=True, output_hidden_states=want_hidden)
        student = model(**model_inputs(batch), return_logits=cfg.use_kl, output_hidden_states=want_hidden)
        ce = student.per_example_nll.sum() / batch["num_label_tokens"]
        kl = ce.new_zeros(())
        if teacher is not None and cfg.use_kl:
            kl = kl_sum(student.label_logits, teacher.label_logits, cfg.temperature) / batch["num_label_tokens"]
        hidden = ce.new_zeros(())
        if teacher is not None and want_hidden:
            hidden = self.hidden_loss(student, teacher) / batch["num_examples"]
        loss = ce + cfg.weight * (kl + hidden)
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "kl": kl.detach(), "hidden": hidden.detach()}

    def hidden_loss(self, student: Any, teacher: Any) -> Tensor:
        """Σ over this micro-batch's examples of the per-example hidden-state MSE, over the
        positions the backbone marked real (the same in teacher and student: one layout)."""
        for s_mask, t_mask in zip(student.hidden_masks, teacher.hidden_masks):
            if s_mask.shape != t_mask.shape or not torch.equal(s_mask, t_mask):
                raise ValueError("teacher and student hidden states have different layouts (prompt lengths differ?)")
        keep = [
            i
            for i in range(len(student.hidden_states))
            if self.config.hidden_embeddings or i not in (student.embedding_states or ())
        ]
        pick = lambda states: tuple(states[i] for i in keep)  # noqa: E731
        return hidden_mse_per_example(
            pick(student.hidden_states),
            pick(teacher.hidden_states),
            list(pick(student.hidden_masks)),
            self.config.hidden_rms_norm,
        ).sum()
