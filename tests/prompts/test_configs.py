"""One config per prompt method: its fields carry their help, it is the training YAML's
``method.<name>`` section, it counts its own parameters, and building or growing a method
never edits it."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from promptmix.configio import config_keys
from promptmix.params import PARAM_METHODS
from promptmix.prompts import METHODS, MPT, Attempt, AttemptConfig, MPTConfig, SoftPrompt, SoftPromptConfig
from promptmix.training.config import MethodSection

D, M = 8, 3


def test_every_method_config_field_has_help_and_is_a_yaml_key():
    listed = {k.key: k for k in config_keys(MethodSection)}
    for section in dataclasses.fields(MethodSection):
        config_class = type(section.default_factory())
        assert config_class in {cls.config_class for cls in METHODS.values()}
        for f in dataclasses.fields(config_class):
            assert f.metadata.get("help"), f"{config_class.__name__}.{f.name} has no help"
            assert listed[f"{section.name}.{f.name}"].help == f.metadata["help"]
    assert set(PARAM_METHODS) == set(METHODS)  # each one states its own parameter count


def _prompts(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"p{i}": torch.randn(M, D, generator=gen) for i in range(n)}


@pytest.mark.parametrize(
    "config",
    [
        SoftPromptConfig(prompt_length=M, init="random"),
        AttemptConfig(prompt_length=M, attn_dim=2, shared_attention=False),
        MPTConfig(prompt_length=M, rank=2),
    ],
    ids=lambda c: c.method,
)
def test_building_and_growing_a_method_never_edits_the_callers_config(config):
    before = copy.deepcopy(config)
    if isinstance(config, SoftPromptConfig):
        method = SoftPrompt(config, D, ["rte"])
        method.add_task("cb", torch.zeros(M, D))
    elif isinstance(config, AttemptConfig):
        method = Attempt.from_prompts(_prompts(2), ["rte"], init_from="p0", config=config)
        method.add_task("cb", "p1")
        method.set_source_prompts(["x", "y", "z"], torch.zeros(3, M, D))
        assert method.source_names == ["x", "y", "z"]
    else:
        method = MPT.from_teachers(_prompts(2), "teacher-mean", config=config)
        method.add_task("cb")
        method = MPT.for_targets(method, ["rte", "boolq"])
        method.add_task("cb", init="ones")
    assert config == before
    assert "cb" in method.task_names and "tasks" not in dataclasses.asdict(method.config)
    assert {k: v for k, v in dataclasses.asdict(method.config).items() if k != "prompt_length"} == {
        k: v for k, v in dataclasses.asdict(before).items() if k != "prompt_length"
    }
