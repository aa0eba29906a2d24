"""Prompt methods behind one interface (see :mod:`promptmix.prompts.base`)."""

from promptmix.prompts.attempt import Attempt, AttemptConfig
from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput, masked_max_pool
from promptmix.prompts.init import initial_prompt
from promptmix.prompts.mpt import MPT, MPTConfig
from promptmix.prompts.soft import SoftPrompt, SoftPromptConfig

# Method name (as written in checkpoints) -> module class; its ``config_class`` is the method's
# config. ``build_method``, checkpoint loading and ``promptmix.params`` look methods up here.
METHODS: dict[str, type[PromptMethod]] = {cls.config_class.method: cls for cls in (SoftPrompt, Attempt, MPT)}


def build_method(config: dict, hidden_size: int | None = None) -> PromptMethod:
    """Build a prompt method from the dict that ``PromptMethod.to_config`` wrote (``hidden_size``
    fills in when the dict has none). Parameters start at zero: initialise or load them."""
    config = dict(config)
    name = config.get("method")
    if name not in METHODS:
        raise ValueError(f"unknown prompt method {name!r}; known: {sorted(METHODS)}")
    if hidden_size is not None:
        config.setdefault("hidden_size", hidden_size)
    if config.get("hidden_size") is None:
        raise ValueError(f"a {name} config without hidden_size needs build_method(config, hidden_size=...)")
    config["hidden_size"] = int(config["hidden_size"])
    return METHODS[name].from_config(config)


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
