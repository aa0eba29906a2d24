"""Soft prompts as PEFT prompt-tuning adapters, both ways.

A promptmix prompt that is one fixed [m, d] tensor per task (prompt tuning; MPT's composed
P̂_k = P* ∘ (u_k v_k)) is exactly what a PEFT prompt-tuning adapter holds, so it can leave as one:

    out/adapter_config.json        PEFT's PromptTuningConfig (written by PEFT's save_pretrained)
    out/adapter_model.safetensors  {"prompt_embeddings": [m, d]}, the key PEFT saves and loads
    out/promptmix.json             where it came from: backbone identity (fingerprint), task, method
    out/README.md                  the same for people, with the PEFT code that loads it

and ``PeftModel.from_pretrained(base_model, out)`` gives the logits promptmix gives (tested
within 1e-5 on both backbone kinds). Placement: promptmix prompts the encoder only (both
papers); PEFT's seq2seq prompt tuning defaults to ``num_transformer_submodules = 2``, allocating
a second, never-used block of m rows for the decoder (see ../shared/papers/NOTES.md), so the
export sets it to 1. The adapter's ``base_model_name_or_path`` is what ``from_pretrained``
loads (for the ``smollm2-135m`` alias: its converted local copy, and the card says what that is).

The other way, a PEFT prompt-tuning adapter becomes a library prompt (a source prompt for
ATTEMPT, say): :func:`read_adapter` reads it with PEFT's own config reader and takes the m rows
PEFT prepends to the input (the first m, whatever ``num_transformer_submodules`` says), and
:func:`check_adapter_fits` refuses one made for another base model or width, saying why.

An ATTEMPT target prompt cannot leave: it is P_target + Σ_j a_j(x) P_j with weights the
attention module computes from each input, not one fixed tensor (:data:`INPUT_DEPENDENT`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftConfig, PeftType, PromptTuningConfig, TaskType
from torch import Tensor

from promptmix._io import (
    atomic_directory,
    atomic_save_safetensors,
    atomic_write_text,
    check_finite,
    read_json,
    read_safetensors,
)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_KEY = "prompt_embeddings"  # PEFT's BasePromptEncoder saves and loads its [m, d] table under this key
RECORD = "promptmix.json"

INPUT_DEPENDENT = (
    "{what} depends on the input: ATTEMPT mixes its source prompts with weights its attention module computes "
    "from each input (P = P_target + Σ_j a_j(x) P_j), so there is no one fixed prompt, and a PEFT prompt-tuning "
    "adapter holds exactly one fixed prompt. Export its source prompts instead (plain prompt tuning, e.g. "
    "`promptmix export --to peft <library prompt> DIR`), or serve the run with `promptmix serve`"
)


@dataclass(frozen=True)
class AdapterPrompt:
    """A prompt-tuning adapter read from disk: the [m, d] prompt PEFT prepends to the input,
    the base model it names, and promptmix's record when promptmix wrote it."""

    directory: Path
    prompt: Tensor
    base_model: str | None
    task_type: str | None
    record: dict[str, Any]


def export_adapter(
    prompt: Tensor,
    out_dir: str | os.PathLike,
    *,
    base_model: str,
    base_model_what: str,
    is_encoder_decoder: bool,
    identity: dict[str, Any],
    task: str,
    method: str,
    source: str,
    overwrite: bool = False,
) -> Path:
    """Write ``prompt`` [m, d] as a PEFT prompt-tuning adapter in ``out_dir`` (atomically).

    Args:
        base_model: ``base_model_name_or_path`` (what ``from_pretrained`` loads).
        base_model_what: one sentence on what those weights are (for the card and record).
        identity: the backbone identity the prompt was trained on (name, width, fingerprint).
        task, method, source: what the prompt is and where it came from (run or library entry).
    """
    prompt = prompt.detach().to("cpu", torch.float32).contiguous().clone()
    m, d = prompt.shape
    if d != identity["hidden_size"]:
        raise ValueError(
            f"the prompt is {d} wide but its backbone {identity['backbone']!r} is {identity['hidden_size']} wide"
        )
    config = PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if is_encoder_decoder else TaskType.CAUSAL_LM,
        num_virtual_tokens=m,
        token_dim=d,
        num_transformer_submodules=1,  # the encoder only (PEFT's seq2seq default, 2, adds an unused decoder block)
        base_model_name_or_path=base_model,
        inference_mode=True,
    )
    record = {
        "task": task,
        "method": method,
        "source": source,
        "backbone": identity,
        "base_model": {"name_or_path": base_model, "what": base_model_what},
    }
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        config.save_pretrained(str(tmp))
        atomic_save_safetensors({PEFT_KEY: prompt}, tmp / ADAPTER_WEIGHTS, metadata={"format": "pt"})
        atomic_write_text(tmp / RECORD, json.dumps(record, indent=2) + "\n")
        atomic_write_text(tmp / "README.md", adapter_card(record, m, d, is_encoder_decoder))
    return Path(out_dir)


def adapter_card(record: dict[str, Any], m: int, d: int, is_encoder_decoder: bool) -> str:
    """The adapter's README: what it is, what it was trained on, and how PEFT loads it."""
    auto = "AutoModelForSeq2SeqLM" if is_encoder_decoder else "AutoModelForCausalLM"
    base = record["base_model"]
    layout = (
        "the encoder input is the task's formatted source, the decoder predicts the answer"
        if is_encoder_decoder
        else 'the input is the task\'s formatted source followed by "\\nAnswer:", and the answer follows it'
    )
    return "\n".join(
        [
            f"# Soft prompt for `{record['task']}` ({record['method']}), exported by promptmix",
            "",
            f"A PEFT prompt-tuning adapter: {m} virtual tokens × {d}, prepended to the "
            f"{'encoder ' if is_encoder_decoder else ''}input embeddings.",
            "",
            f"- base model: `{base['name_or_path']}`: {base['what']}",
            f"- trained on backbone `{record['backbone']['backbone']}` "
            f"(embedding fingerprint {record['backbone']['fingerprint']});"
            " the prompt only means something in that model's embedding space",
            f"- from: `{record['source']}`",
            f"- text layout promptmix trained with: {layout}",
            "",
            "```python",
            f"from transformers import {auto}",
            "from peft import PeftModel",
            "",
            f"base = {auto}.from_pretrained({base['name_or_path']!r})",
            'model = PeftModel.from_pretrained(base, "<this directory>")',
            "```",
            "",
        ]
    )


def read_adapter(directory: str | os.PathLike) -> AdapterPrompt:
    """A PEFT prompt-tuning adapter's prompt (the m rows PEFT prepends to the input) and what it
    names; refuses other adapter types and pickled weights, naming the file."""
    directory = Path(directory)
    path = directory / ADAPTER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {directory} is no PEFT adapter directory")
    raw = read_json(path)  # a list or other non-object is refused here, naming the file
    peft_type = raw.get("peft_type")
    if peft_type != PeftType.PROMPT_TUNING.value:
        known = peft_type in {t.value for t in PeftType}
        raise ValueError(
            f"{path}: field 'peft_type' is {peft_type!r}"
            f"{'' if known else ' (no PEFT adapter type)'}; only a PROMPT_TUNING adapter holds a soft prompt "
            "that promptmix can use"
        )
    for key in ("num_virtual_tokens", "token_dim"):  # PEFT takes any value; a table needs positive sizes
        value = raw.get(key)
        if (value is not None or key == "num_virtual_tokens") and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ValueError(f"{path}: field {key!r} is {value!r}; it must be a positive whole number")
    try:
        config = PeftConfig.from_pretrained(str(directory))
    except Exception as err:  # PEFT raises TypeError/ValueError/KeyError of its own for odd fields
        raise ValueError(f"{path}: PEFT cannot read this adapter config: {type(err).__name__}: {err}") from None
    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file():
        pickled = (
            "; it has adapter_model.bin, pickled weights promptmix does not load"
            if (directory / "adapter_model.bin").is_file()
            else ""
        )
        raise FileNotFoundError(f"{weights} is missing{pickled}: save the adapter with safetensors (PEFT's default)")
    table = read_safetensors(weights).get(PEFT_KEY)
    assert isinstance(config, PromptTuningConfig)  # PEFT builds the class peft_type names (checked above)
    m, d = config.num_virtual_tokens, config.token_dim
    if table is None or table.dim() != 2 or table.shape[0] < m or (d is not None and table.shape[1] != d):
        raise ValueError(
            f"{weights}: expected tensor {PEFT_KEY!r} of at least {m} rows × {d}, found "
            f"{None if table is None else tuple(table.shape)}"
        )
    if not table.is_floating_point():  # an embedding table of ints or bools is no prompt (and would cast silently)
        raise ValueError(
            f"{weights}: tensor {PEFT_KEY!r} is {str(table.dtype).removeprefix('torch.')}; a prompt's "
            "vectors are floating point"
        )
    check_finite({PEFT_KEY: table[:m]}, weights)
    record = read_json(directory / RECORD) if (directory / RECORD).is_file() else {}
    task_type = getattr(config.task_type, "value", config.task_type)
    return AdapterPrompt(directory, table[:m].float().clone(), config.base_model_name_or_path, task_type, record)


def check_adapter_fits(adapter: AdapterPrompt, backbone_identity: dict[str, Any], same_base: bool | None) -> None:
    """Refuse an adapter made for another model than ``backbone_identity`` describes.

    ``same_base``: whether the adapter's ``base_model_name_or_path`` names this backbone (None:
    it names none, and the caller has said which model it is for). The width must match, and
    so must the embedding fingerprint when promptmix wrote the adapter.
    """
    where, name = adapter.directory, backbone_identity["backbone"]
    width = adapter.prompt.shape[1]
    if width != backbone_identity["hidden_size"]:
        raise ValueError(
            f"{where / ADAPTER_CONFIG}: field 'token_dim' is {width} but backbone {name!r} has hidden size "
            f"{backbone_identity['hidden_size']}: the prompt's vectors cannot enter that model"
        )
    if same_base is False:
        raise ValueError(
            f"{where / ADAPTER_CONFIG}: field 'base_model_name_or_path' is {adapter.base_model!r}, not "
            f"backbone {name!r}: a soft prompt is a set of points in its own model's embedding space and "
            "does not transfer to another model (pass --backbone with the model it was trained on)"
        )
    recorded = (adapter.record.get("backbone") or {}).get("fingerprint")
    if recorded is not None and recorded != backbone_identity["fingerprint"]:
        raise ValueError(
            f"{where / RECORD}: field 'backbone.fingerprint' is {recorded} but backbone {name!r} has "
            f"{backbone_identity['fingerprint']}: the adapter was trained on other embeddings"
        )
