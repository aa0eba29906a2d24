"""Baselines that tune the backbone itself: full fine-tuning, BitFit and LoRA (via PEFT).

They go through the same loop and the same forward as the prompt methods: the model is a
:class:`PromptedModel` whose prompt method is :class:`NoPrompt` (an empty prompt, [B, 0, d]),
so loss, label masking, decoder-only label-position LM head, evaluation and generation are
shared. Only the parameter group differs: ``{"backbone": [...]}``.

- ``full``: every backbone parameter.
- ``bitfit`` (Ben Zaken et al., 2022): bias parameters only. T5 (and Llama / SmolLM2) have
  no biases at all, so BitFit there raises an error saying so; BART, GPT-2 and others have them.
- ``lora`` (Hu et al., 2022): ``peft.inject_adapter_in_model`` adds LoRA matrices in place (the
  model stays a plain HF model, so the backbone adapter code is unchanged); only they train.
  Target modules default to PEFT's choice for the model type (T5: q, v; Llama: q_proj, v_proj).

The trained parameters are saved in ``<run>/model/trainable.safetensors`` (by parameter name)
with ``model.json`` (kind, backbone identity, LoRA settings, tasks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from promptmix._io import (
    atomic_directory,
    atomic_save_safetensors,
    atomic_write_text,
    read_json,
    read_safetensors,
    recover_directory,
)
from promptmix._validation import validated
from promptmix.backbone import Backbone, PromptedModel
from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput
from promptmix.training.config import BaselineConfig


@validated
class NoPromptConfig(MethodConfig):
    """An empty prompt: the baselines train the backbone instead."""

    method: ClassVar[str] = "none"
    prompt_length: Literal[0] = 0  # 0 is the point; MethodConfig demands >= 1


class NoPrompt(PromptMethod):
    """Returns prompts of shape [B, 0, d]: the backbone sees the input alone.

    ``trainable``: the backbone parameters the baseline trains, reported as the one group
    ``"backbone"`` (they stay registered in the backbone, not here).
    """

    config_class = NoPromptConfig
    config: NoPromptConfig

    def __init__(self, tasks: list[str], hidden_size: int, trainable: list[nn.Parameter] | None = None) -> None:
        super().__init__(NoPromptConfig(), hidden_size, tasks)
        self._trainable = list(trainable or [])

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, task_ids: Tensor) -> PromptOutput:
        self.check_task_ids(task_ids)
        return PromptOutput(prompts=inputs_embeds.new_zeros(inputs_embeds.shape[0], 0, self.hidden_size))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": self._trainable} if self._trainable else {}


def unfreeze(backbone: Backbone, config: BaselineConfig) -> list[nn.Parameter]:
    """Make the baseline's parameters trainable (everything else stays frozen); return them."""
    model = backbone.model
    if config.kind == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target_modules,
        )
        lora.target_modules = lora.target_modules or _default_lora_targets(model)
        inject_adapter_in_model(lora, model)
    named = list(model.named_parameters())
    chosen = {
        "full": lambda name: True,
        "bitfit": lambda name: name.endswith(".bias") or name == "bias",
        "lora": lambda name: "lora_" in name,
    }[config.kind]
    params = [p for name, p in named if chosen(name)]
    if not params:
        arch = type(model).__name__
        raise ValueError(
            f"baseline {config.kind!r} finds no parameters to train in {arch}"
            + (
                " (it has no bias parameters: T5, Llama and SmolLM2 are bias-free; BitFit needs e.g. BART or GPT-2)"
                if config.kind == "bitfit"
                else ""
            )
        )
    for name, p in named:
        p.requires_grad_(chosen(name))
    return params


def _default_lora_targets(model: nn.Module) -> list[str]:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    kind = getattr(model.config, "model_type", "")
    if kind not in DEFAULTS:
        raise ValueError(
            f"PEFT has no default LoRA target modules for model type {kind!r}; set baseline.lora_target_modules"
        )
    return list(DEFAULTS[kind])


class ParamSaver:
    """Keeps the best baseline's trained parameters in ``<run>/model``."""

    def __init__(self, directory: Path, backbone: Backbone, extra: dict[str, Any]) -> None:
        self.directory, self.backbone, self.extra = directory, backbone, extra

    def __call__(self, model: PromptedModel, step: int, metrics: dict[str, Any]) -> None:
        state = {
            name: p.detach().to("cpu").contiguous().clone()
            for name, p in model.model.named_parameters()
            if p.requires_grad
        }
        with atomic_directory(self.directory, overwrite=True) as tmp:
            digest = atomic_save_safetensors(state, tmp / "trainable.safetensors")
            record = {
                **self.extra,
                "backbone": self.backbone.identity(),
                "step": step,
                "dev": metrics,
                "sha256": digest,
            }
            atomic_write_text(tmp / "model.json", json.dumps(record, indent=2) + "\n")

    def load_into(self, model: PromptedModel) -> None:
        recover_directory(self.directory)
        record = read_json(self.directory / "model.json")
        state = read_safetensors(self.directory / "trainable.safetensors", record["sha256"])
        params = dict(model.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)
