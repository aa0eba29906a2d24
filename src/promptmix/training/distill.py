"""MPT prompt distillation (Wang et al., ICLR 2023, Eqs. 3-5).

    L = L_task + λ (L_KL + L_hidden)                                   λ = 0.9 (Eq. 5)

- L_task: the student's token-mean cross-entropy on the labels.
- L_KL (Eq. 3): KL(teacher ‖ student) between the label-token distributions, both softened
  by a temperature τ (p = softmax(z / τ)); per label token, summed over the vocabulary, averaged
  over the label tokens and multiplied by τ² (standard knowledge distillation, so the
  gradient scale does not shrink as τ grows; the paper does not say, nor give τ).
- L_hidden (Eq. 4): mean squared error between teacher and student hidden states over real
  (non-pad) positions: every state ``output_hidden_states`` returns (embedding output and
  each layer), for encoder-decoder models the encoder states over prompt + input and the
  decoder states over the target positions, for decoder-only models every layer over
  prompt + input. Per example it is the mean over its (state, position, dimension) entries;
  the batch value is the mean over examples. ``hidden_rms_norm`` (off by default, on in the
  SmolLM2 presets) first scales every hidden vector to unit RMS: Llama-style residual streams
  carry a few massive activations that would otherwise make L_hidden swamp L_task and L_KL.

The teacher is the same frozen backbone with a :class:`SoftPrompt` holding task k's teacher
prompt in slot k (prompt tuning from the library), run without gradients. Teacher and
student prompts have the same length, so positions line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from promptmix.backbone import IGNORE_INDEX, PromptedModel
from promptmix.training.config import DistillConfig
from promptmix.training.losses import model_inputs, summed_nll


def kl_sum(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Σ over label tokens of τ² KL(softmax(t/τ) ‖ softmax(s/τ)); logits [N, V]."""
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # [N]
    return kl.sum() * temperature**2


def right_aligned_mask(counts: Tensor, width: int) -> Tensor:
    """[B, width] bool, True on each row's last ``counts[b]`` positions (packed pads-first rows)."""
    positions = torch.arange(width, device=counts.device)
    return positions.unsqueeze(0) >= (width - counts).unsqueeze(1)


def hidden_masks(batch: dict[str, Any], prompt_length: int, is_encoder_decoder: bool) -> tuple[Tensor, Tensor | None]:
    """Real positions of the (encoder or only) stack and, for encoder-decoder, the decoder.

    The backbone packs each row pads-first, so prompt + input occupy the last
    ``prompt_length + attention_mask.sum()`` positions; decoder positions are real where the
    (right-padded) labels are.
    """
    counts = batch["attention_mask"].sum(1) + prompt_length
    width = batch["attention_mask"].shape[1] + prompt_length
    main = right_aligned_mask(counts, width)
    decoder = batch["labels"] != IGNORE_INDEX if is_encoder_decoder else None
    return main, decoder


def rms_normalized(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Each vector (last axis) divided by its root mean square."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def hidden_mse_per_example(student: tuple[Tensor, ...], teacher: tuple[Tensor, ...], masks: list[Tensor],
                           rms_norm: bool = False) -> Tensor:
    """Per example, the mean squared difference over every (state, real position, dim): [B].

    ``masks[i]`` [B, L_i] marks the real positions of state i; ``rms_norm`` compares the
    vectors after :func:`rms_normalized`."""
    total = 0.0
    entries = 0.0
    for s, t, mask in zip(student, teacher, masks):
        s, t = s.float(), t.float()
        if rms_norm:
            s, t = rms_normalized(s), rms_normalized(t)
        diff = ((s - t) ** 2).sum(-1)  # [B, L]
        total = total + (diff * mask).sum(1)
        entries = entries + mask.sum(1) * s.shape[-1]
    return total / entries


def _decoder_states(config: Any) -> int:
    """How many of an encoder-decoder's hidden states are the decoder's (layers + embeddings)."""
    layers = getattr(config, "num_decoder_layers", None) or getattr(config, "decoder_layers", None)
    if layers is None:
        raise ValueError(f"{type(config).__name__} names no decoder layer count; cannot split hidden states")
    return int(layers) + 1


@dataclass
class DistillLoss:
    """``loss_fn`` of MPT source training (see the module docstring).

    Args:
        teacher: the frozen backbone with the teacher prompts (task ids as the student's).
        config: λ, τ and the ablation switches.
        prompt_length: l, the length of teacher and student prompts.
    """

    teacher: PromptedModel
    config: DistillConfig
    prompt_length: int

    def __call__(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        want_hidden = cfg.use_hidden and cfg.weight > 0
        student = model(**model_inputs(batch), return_label_logits=True, output_hidden_states=want_hidden)
        with torch.no_grad():
            teacher = self.teacher(**model_inputs(batch), return_label_logits=True, output_hidden_states=want_hidden)
        ce = summed_nll(student) / batch["num_label_tokens"]
        kl = student.loss.new_zeros(())
        if cfg.use_kl and cfg.weight > 0:
            kl = kl_sum(student.label_logits, teacher.label_logits, cfg.temperature) / batch["num_label_tokens"]
        hidden = student.loss.new_zeros(())
        if want_hidden:
            hidden = self.hidden_loss(student.hidden_states, teacher.hidden_states, batch) / batch["num_examples"]
        loss = ce + cfg.weight * (kl + hidden)
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "kl": kl.detach(), "hidden": hidden.detach()}

    def hidden_loss(self, student: tuple[Tensor, ...], teacher: tuple[Tensor, ...], batch: dict[str, Any]) -> Tensor:
        """Σ over this micro-batch's examples of the per-example hidden-state MSE."""
        backbone = self.teacher.backbone
        main, decoder = hidden_masks(batch, self.prompt_length, backbone.is_encoder_decoder)
        n_decoder = _decoder_states(backbone.model.config) if decoder is not None else 0
        masks = [main] * (len(student) - n_decoder) + [decoder] * n_decoder
        return hidden_mse_per_example(student, teacher, masks, self.config.hidden_rms_norm).sum()
