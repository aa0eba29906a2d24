"""Prompt methods behind one interface (see :mod:`promptmix.prompts.base`)."""

from promptmix.prompts.attempt import Attempt, AttemptConfig
from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput, masked_max_pool
from promptmix.prompts.init import initial_prompt
from promptmix.prompts.mpt import MPT, MPTConfig
from promptmix.prompts.soft import SoftPrompt, SoftPromptConfig

# Method name (as written in configs and checkpoints) -> (config class, module class).
# Each method module adds itself here; ``build_method`` and checkpoint loading look it up.
METHODS: dict[str, tuple[type[MethodConfig], type[PromptMethod]]] = {
    SoftPromptConfig.method: (SoftPromptConfig, SoftPrompt),
    AttemptConfig.method: (AttemptConfig, Attempt),
    MPTConfig.method: (MPTConfig, MPT),
}


def build_method(config: dict | MethodConfig, hidden_size: int | None = None) -> PromptMethod:
    """Build a prompt method from its config (a :class:`MethodConfig` or the dict that
    ``PromptMethod.to_config`` wrote). Parameters start at zero: initialise or load them."""
    if isinstance(config, MethodConfig):
        if hidden_size is None:
            raise ValueError("build_method needs hidden_size when given a config object")
        name, cfg = config.method, config
    else:
        config = dict(config)
        name = config.pop("method", None)
        hidden_size = config.pop("hidden_size", hidden_size)
        if name not in METHODS:
            raise ValueError(f"unknown prompt method {name!r}; known: {sorted(METHODS)}")
        cfg = METHODS[name][0](**config)
    if name not in METHODS:
        raise ValueError(f"unknown prompt method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name][1](cfg, int(hidden_size))


__all__ = [
    "METHODS",
    "Attempt",
    "AttemptConfig",
    "MPT",
    "MPTConfig",
    "build_method",
    "MethodConfig",
    "PromptMethod",
    "PromptOutput",
    "SoftPrompt",
    "SoftPromptConfig",
    "initial_prompt",
    "masked_max_pool",
]
