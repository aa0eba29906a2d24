"""Tiny random backbones for tests, examples and smoke runs.

A decoder-only model of about two million parameters (nearly all of them its embedding and
output tables), built in memory from a seed: nothing is downloaded, and the same seed gives the
same weights wherever it is built. It lives in the package (as transformers keeps
``testing_utils``) because both the test suite and the benchmark smoke runs build it, and the
benchmarks must not import from ``tests/``.

Its vocabulary is t5-small's (32128 ids; pad 0, bos and eos 1), so it pairs with the real
t5-small tokenizer, as the tiny T5 of the tests does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:  # transformers' model classes are imported where a model is built: importing
    # them costs seconds, which every test would pay through tests/tiny_models.py
    from transformers import LlamaForCausalLM, PretrainedConfig, PreTrainedModel

TINY_D = 32  # hidden width of the tiny backbones (the tests' parameter counts are written in it)

ModelT = TypeVar("ModelT", bound="PreTrainedModel")


def tiny_causal_lm(
    config_class: Callable[..., PretrainedConfig], model_class: type[ModelT], seed: int = 0, **overrides: Any
) -> ModelT:
    """The tiny decoder-only shape (2 layers, width 32, 4 heads over 2 KV heads) on any
    architecture that takes Llama's config fields (Llama, Mistral, ...), in eval mode.
    ``overrides`` go on top, e.g. Mistral's ``sliding_window``. The seed is set before the
    model is built, so the weights do not depend on what ran before."""
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=32128,
        hidden_size=TINY_D,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
        **overrides,
    )
    return model_class(config).eval()


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """The tiny decoder-only backbone: a random Llama of :func:`tiny_causal_lm`'s shape."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return tiny_causal_lm(LlamaConfig, LlamaForCausalLM, seed)
