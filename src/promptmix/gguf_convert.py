"""A GGUF checkpoint as a plain HuggingFace model directory (safetensors), verified before use.

Dequantising a GGUF file takes tens of seconds (SmolLM2-135M-Instruct: ~35 s), so
:mod:`promptmix.loading` converts the ``smollm2-135m`` alias once into a cache and loads that
afterwards. ``model.save_pretrained`` refuses GGUF-loaded models ("not serializable"), although
after loading they are plain fp32 modules; :func:`export_causal_lm` therefore writes the config
without its ``quantization_config`` and the weights with ``safetensors.torch.save_model`` (which
keeps one copy of tied tensors). :func:`verify_export` then requires the copy to give
bit-identical logits, keep tied input/output embeddings and tokenize a chat prompt identically.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from promptmix._io import _umask


def convert_gguf(gguf: str | os.PathLike, out: str | os.PathLike) -> dict[str, bool]:
    """Dequantise the causal LM in ``gguf`` into the directory ``out`` and verify the copy;
    return the checks (all True, else RuntimeError). Reading GGUF needs the ``gguf`` package."""
    gguf = Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    export_causal_lm(model, tokenizer, out)
    return verify_export(model, tokenizer, out)


def export_causal_lm(model: PreTrainedModel, tokenizer: Any, out: str | os.PathLike) -> None:
    """Write ``model`` and ``tokenizer`` as a plain HF directory, even when ``save_pretrained``
    would refuse (a GGUF-loaded model carries a non-serialisable ``quantization_config``,
    though its weights are already dequantised fp32 tensors)."""
    out = Path(out)
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(out)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    # save_model drops the duplicate of tied tensors (lm_head = embed_tokens); from_pretrained re-ties.
    safetensors.torch.save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    # safetensors creates the file owner-only (0600); the converted copy is shared like the rest of the cache.
    (out / "model.safetensors").chmod(0o666 & ~_umask())
    tokenizer.save_pretrained(out)


VERIFY_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def verify_export(model: PreTrainedModel, tokenizer: Any, out: str | os.PathLike) -> dict[str, bool]:
    """Reload ``out`` and require bit-identical logits on a fixed chat prompt, the same token
    ids from the saved tokenizer, and tied embeddings where the original had them."""
    copy_tok = AutoTokenizer.from_pretrained(out)
    ids = _chat_ids(tokenizer, VERIFY_PROMPT)
    same_tokens = torch.equal(ids, _chat_ids(copy_tok, VERIFY_PROMPT))
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        same_logits = torch.equal(model.eval()(ids).logits, reloaded.eval()(ids).logits)
    tied = _is_tied(reloaded) == _is_tied(model)
    checks = {"logits_bit_identical": same_logits, "tokenizer_identical": same_tokens, "tied_embeddings_kept": tied}
    if not all(checks.values()):
        raise RuntimeError(f"converted copy in {out} differs from the original ({checks}); not publishing it")
    return checks


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> torch.Tensor:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    return encoded["input_ids"] if hasattr(encoded, "keys") else encoded  # BatchEncoding in transformers 5


def _is_tied(model: PreTrainedModel) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight
