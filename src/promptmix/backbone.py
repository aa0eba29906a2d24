"""The frozen language model and the one place prompts meet it.

``Backbone`` holds a HuggingFace model (every parameter frozen) and its tokenizer;
``PromptedModel`` puts a prompt method in front of it:

    embeds = E(input_ids)                                   # [B, n, d]
    P      = method(embeds, source_mask, task_ids).prompts  # [B, m, d]
    model([P; embeds], mask=[P_mask; attention_mask])

Encoder-decoder models (T5, BART, mT5) get the prompt on the encoder input only; the
decoder gets none, as in both papers. Decoder-only models (Llama, SmolLM2, GPT-2, Qwen2)
get it before the input; labels of prompt slots are ignored and positions are recomputed
from the mask, so a prompt never shifts where the text starts.

Real tokens of every row are kept contiguous: a row whose padding sits inside it (a shorter
prompt left-padded by the router, a left-padded input) is repacked with its padding first
([pads][prompt][text]), and decoder-only generation always packs that way. Relative (T5) and
absolute/rotary (decoder-only, position = running count of real tokens) positions are then
exactly those the example would have alone, whatever the other rows in the batch hold: a
mixed-task batch equals its examples run task by task.

Under a plain HuggingFace ``Trainer`` (see ``tests/training/test_hf_trainer.py``): rows are
``backbone.encode(source, target)`` dicts with a ``task_ids`` int (the task's index in the
method's task list) and :class:`TaskCollator` batches them (``data_collator=TaskCollator(backbone)``;
pass ``remove_unused_columns=False``). ``forward``'s only label argument is ``labels``, so the
Trainer's default ``label_names`` is ``["labels"]`` and ``evaluate()`` reports ``eval_loss``.
``model.config.keys_to_ignore_at_inference`` keeps the prompt method's own outputs out of what
``compute_metrics`` gets: ``(per_example_nll, token_counts)`` per example.
``PromptedModel.state_dict()`` holds the prompt method's state only (``method.*``; the frozen
backbone is left out and not asked for by ``load_state_dict``), so ``Trainer.save_model`` and
its checkpoints write kilobytes, not the backbone; ``save_pretrained`` / ``from_pretrained``
write and read the method's self-describing directory (:mod:`promptmix.prompts.checkpoint`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence
from transformers import DynamicCache
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from promptmix.prompts.base import PromptMethod, PromptOutput
from promptmix.prompts.checkpoint import load_method, save_method

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.generation.utils import GenerateOutput

IGNORE_INDEX = -100
# Decoder-only models see "source<ANSWER_PREFIX> target<eos>"; generation starts after the prefix.
ANSWER_PREFIX = "\nAnswer:"


class LanguageModel(Protocol):
    """What promptmix calls on a backbone's model beyond :class:`PreTrainedModel`: the HF
    task classes it loads (``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM``) mix in
    ``GenerationMixin``, and the encoder-decoder ones build decoder inputs from labels."""

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...

    def compute_transition_scores(
        self,
        sequences: Tensor,
        scores: tuple[Tensor, ...],
        beam_indices: Tensor | None = None,
        normalize_logits: bool = False,
    ) -> Tensor: ...

    def prepare_decoder_input_ids_from_labels(self, labels: Tensor) -> Tensor: ...


def language_model(model: PreTrainedModel) -> LanguageModel:
    """``model`` as the task class it is (:class:`LanguageModel`): PreTrainedModel declares
    none of those methods, and its intersection with GenerationMixin has no type to name."""
    return cast(LanguageModel, model)


@dataclass
class PromptedOutput(ModelOutput):
    """Result of :meth:`PromptedModel.forward`: a transformers ``ModelOutput`` (attributes, or
    keys for the fields that are set), so a plain HF ``Trainer`` reads its ``loss``.

    ``loss``: mean token cross-entropy over the batch's label tokens (HF convention).
    ``per_example_nll`` [B]: each example's negative log-likelihood summed over its own label
    tokens (what rank classification compares, and what a loss over several processes sums);
    ``token_counts`` [B]: its label tokens; ``per_example_loss`` divides the two.
    ``label_logits`` [N, V]: logits at the N label tokens in row-major order (when asked with
    ``return_logits=True``).
    ``hidden_states``: tuple of [B, L_i, d] states (when asked): encoder then decoder states for
    encoder-decoder models, every layer's states for decoder-only ones; each stack's first
    state is its embedding output.
    ``hidden_masks``: with ``hidden_states``, one bool [B, L_i] per state marking the positions
    that hold real tokens in the layout the model actually ran (prompt + input after any
    repacking; for a decoder, the label positions), so nothing outside this module needs to
    know how rows were packed.
    ``embedding_states``: with ``hidden_states``, indices into them of the embedding outputs
    (state 0 of each stack), which are not a layer's output.
    """

    # ModelOutput wants every field after the first to default to None.
    loss: Tensor | None = None
    per_example_nll: Tensor | None = None
    token_counts: Tensor | None = None
    prompt_output: PromptOutput | None = None
    label_logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    hidden_masks: tuple[Tensor, ...] | None = None
    embedding_states: tuple[int, ...] | None = None

    @property
    def per_example_loss(self) -> Tensor | None:
        """[B] each example's mean cross-entropy over its own label tokens."""
        if self.per_example_nll is None:
            return None
        assert self.token_counts is not None  # set together with per_example_nll
        return self.per_example_nll / self.token_counts.clamp(min=1)


@dataclass
class Backbone:
    """A frozen HF language model, its tokenizer and what identifies it.

    Build one with :func:`promptmix.loading.load_backbone` (hub id, local path or alias) or
    directly from objects you already hold; the constructor freezes every parameter.
    """

    model: PreTrainedModel
    tokenizer: Any
    name: str
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.model.requires_grad_(False)
        if self.tokenizer is not None and self.tokenizer.pad_token_id is None:
            # Decoder-only tokenizers often lack a pad token; padded slots are masked anyway.
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    @property
    def hidden_size(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def embeddings(self) -> Tensor:
        """The input-embedding matrix [V, d]."""
        # get_input_embeddings() is typed nn.Module, whose attributes type as Tensor | Module.
        return cast(Tensor, self.model.get_input_embeddings().weight)

    def fingerprint(self) -> str:
        """sha256 of the input-embedding matrix (fp32 bytes): prompts only transfer between
        backbones whose embedding spaces are identical."""
        if self._fingerprint is None:
            # A copy: numpy would otherwise share (and pin) the live weight's storage, which FSDP
            # must be able to free when it reshards.
            weight = self.embeddings.detach().to("cpu", torch.float32, copy=True).contiguous()
            self._fingerprint = hashlib.sha256(weight.numpy().tobytes()).hexdigest()[:16]
        return self._fingerprint

    def identity(self) -> dict[str, Any]:
        """What prompt files record about the backbone they were trained on."""
        return {"backbone": self.name, "hidden_size": self.hidden_size, "fingerprint": self.fingerprint()}

    # -- tokenisation: the text layout each backbone kind expects ------------------------------
    def encode(
        self, source: str, target: str | None = None, *, max_source_length: int = 256, max_target_length: int = 128
    ) -> dict[str, list[int]]:
        """One example -> ``input_ids`` (and ``labels`` when ``target`` is given).

        Encoder-decoder: input_ids = source, labels = target. Decoder-only: input_ids =
        source + answer prefix (+ target + eos), labels = -100 except on target + eos; the
        source is truncated, never the answer prefix.
        """
        tok = self.tokenizer
        if self.is_encoder_decoder:
            out = {"input_ids": tok(source, truncation=True, max_length=max_source_length)["input_ids"]}
            if target is not None:
                out["labels"] = self.encode_answer(target, max_target_length=max_target_length)
            return out
        prefix = tok(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
        src = tok(source, truncation=True, max_length=max(1, max_source_length - len(prefix)))["input_ids"] + prefix
        if target is None:
            return {"input_ids": src}
        tgt = self.encode_answer(target, max_target_length=max_target_length)
        return {"input_ids": src + tgt, "labels": [IGNORE_INDEX] * len(src) + tgt}

    def encode_answer(self, target: str, *, max_target_length: int = 128) -> list[int]:
        """The answer tokens :meth:`encode` puts after (decoder-only) or beside (encoder-decoder)
        the source, eos included: what is scored when ``target`` is a candidate answer. Kept
        apart so a source with several candidates is tokenised once, not once per candidate."""
        tok = self.tokenizer
        if self.is_encoder_decoder:
            return tok(text_target=target, truncation=True, max_length=max_target_length)["input_ids"]
        return tok(" " + target, add_special_tokens=False)["input_ids"][: max_target_length - 1] + [tok.eos_token_id]

    def pad(self, features: Sequence[Mapping[str, list[int]]]) -> dict[str, Tensor]:
        """Encoded examples -> a batch: ``input_ids`` and ``attention_mask`` [B, n], right-padded
        (and ``labels`` padded with -100 when the features have them). Training and scoring both
        batch this way; :class:`PromptedModel` repacks a row pads-first where it needs to."""
        ids = [f["input_ids"] for f in features]
        batch = {
            "input_ids": right_pad(ids, self.tokenizer.pad_token_id),
            "attention_mask": right_pad([[1] * len(x) for x in ids], 0),
        }
        if "labels" in features[0]:
            batch["labels"] = right_pad([f["labels"] for f in features], IGNORE_INDEX)
        return batch

    def decode(self, sequences: Tensor) -> list[str]:
        return [s.strip() for s in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)]


@dataclass
class TaskCollator:
    """A ``data_collator`` for HF ``Trainer`` (or a ``DataLoader``): rows of
    ``backbone.encode(source, target)`` plus a ``task_ids`` int -> :meth:`Backbone.pad`'s batch
    with ``task_ids`` [B]. A row without ``task_ids`` is task 0 (a single-task method)."""

    backbone: Backbone

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        batch = self.backbone.pad(rows)
        batch["task_ids"] = torch.tensor([int(r.get("task_ids", 0)) for r in rows], dtype=torch.long)
        return batch


def right_pad(rows: Sequence[Sequence[int]], value: int) -> Tensor:
    """[len(rows), longest] long tensor of the rows, right-padded with ``value``."""
    return pad_sequence([torch.tensor(r, dtype=torch.long) for r in rows], batch_first=True, padding_value=value)


def _hidden(states: tuple[Tensor, ...], masks: tuple[Tensor, ...], embedding: tuple[int, ...]) -> dict[str, Any]:
    """PromptedOutput's hidden-state fields: the states as run, their real-position masks and
    the embedding outputs' indices."""
    return {"hidden_states": states, "hidden_masks": masks, "embedding_states": embedding}


def _contiguous(mask: Tensor) -> bool:
    """True when every row's real tokens form one run (e.g. [prompt][text][pads]): then
    positions are already those of the example alone and no reordering is needed."""
    starts = (mask[:, 1:] > mask[:, :-1]).sum(dim=1) + (mask[:, 0] > 0)
    return bool((starts <= 1).all())


def _pack_left(mask: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """Reorder each row so padded positions (mask 0) come first, keeping the order of the
    real ones. Returns the reordered mask followed by each tensor reordered the same way."""
    order = torch.sort(mask.to(torch.int8), dim=1, stable=True).indices  # pads (0) first
    out = [mask.gather(1, order)]
    for t in tensors:
        index = order.view(*order.shape, *([1] * (t.dim() - 2))).expand(*order.shape, *t.shape[2:])
        out.append(t.gather(1, index))
    return tuple(out)


def _positions(mask: Tensor) -> Tensor:
    """Decoder position of each slot: the running count of real tokens before it."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


# PromptedOutput fields that are no predictions: HF Trainer leaves them out of what it gathers
# for compute_metrics (it reads this list from model.config).
NOT_PREDICTIONS = ["prompt_output", "hidden_states", "hidden_masks", "embedding_states"]


def _prompted_config(backbone: Backbone, method: PromptMethod) -> Any:
    """``PromptedModel.config``: a transformers config naming the backbone and the method (what
    Trainer's loggers record) whose ``keys_to_ignore_at_inference`` keeps the outputs that are
    not predictions out of ``compute_metrics``' predictions (then ``(per_example_nll,
    token_counts)``, and ``label_logits`` when asked)."""
    from transformers import PretrainedConfig

    # transformers wraps the config dataclass's __init__ to take extra keys (attributes) at run
    # time, which the dataclass signature mypy reads does not show.
    config = PretrainedConfig(  # type: ignore[call-arg]
        backbone=backbone.name, hidden_size=backbone.hidden_size, prompt_method=type(method).__name__
    )
    config.keys_to_ignore_at_inference = list(NOT_PREDICTIONS)
    return config


def _drop_backbone_state(module: PromptedModel, state: dict[str, Any], prefix: str, _metadata: Any) -> dict[str, Any]:
    """state_dict hook of :class:`PromptedModel`: leave out the frozen backbone's tensors."""
    for key in [k for k in state if k.startswith(prefix + "model.")]:
        del state[key]
    return state


def _backbone_never_missing(module: PromptedModel, incompatible: Any) -> None:
    """load_state_dict post-hook of :class:`PromptedModel`: the backbone is not in its state, so
    its weights are not missing (torch lets the hook edit the report in place). A backbone whose
    weights are not there (on the meta device, as a loader that fills the model from its
    state_dict leaves it) is missing all the same, so a strict load says which keys."""
    if any(p.is_meta for p in module.model.parameters()):
        return
    frozen = {f"model.{name}" for name, _ in module.model.state_dict().items()}
    incompatible.missing_keys[:] = [
        k for k in incompatible.missing_keys if not any(k == f or k.endswith("." + f) for f in frozen)
    ]


def _cache_keyword(module: nn.Module) -> str:
    """The KV-cache argument's name: transformers 5 calls it ``cache`` (``past_key_values``, the
    4.x name, is deprecated there and logs a warning)."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def _new_cache(model: PreTrainedModel) -> Any:
    """An empty transformers ``DynamicCache`` for ``model`` (built from its config where the
    installed version takes one, so sliding-window layers get their own cache layers)."""
    takes_config = "config" in inspect.signature(DynamicCache).parameters
    return DynamicCache(config=model.config) if takes_config else DynamicCache()


class PromptedModel(nn.Module):
    """A frozen backbone with a prompt method in front.

    Args:
        backbone: the frozen model and tokenizer.
        method: any :class:`PromptMethod`; its parameters are the only trainable ones.

    Shapes: ``input_ids``, ``attention_mask``, ``labels`` [B, n] (decoder-only) or labels
    [B, t] (encoder-decoder); ``task_ids`` [B], one task per example.

    ``state_dict()`` is the method's state only (keys ``method.*``): the backbone is frozen and
    identified by its name and fingerprint, never copied into checkpoints, and
    ``load_state_dict`` does not report its weights as missing.
    """

    def __init__(self, backbone: Backbone, method: PromptMethod) -> None:
        super().__init__()
        if method.hidden_size != backbone.hidden_size:
            raise ValueError(
                f"prompt method is {method.hidden_size} wide "
                f"but backbone {backbone.name!r} has hidden size {backbone.hidden_size}"
            )
        self.backbone = backbone
        self.model = backbone.model
        self.method = method
        self.config = _prompted_config(backbone, method)
        self._register_state_dict_hook(_drop_backbone_state)
        self.register_load_state_dict_post_hook(_backbone_never_missing)

    def save_pretrained(
        self, save_directory: str, state_dict: Any = None, is_main_process: bool = True, **_: Any
    ) -> str:
        """Write the prompt method (not the backbone) to ``save_directory``: ``method.json`` +
        ``method.safetensors`` (:func:`promptmix.prompts.checkpoint.save_method`), which
        :meth:`from_pretrained` and every promptmix command read. ``state_dict`` and other
        ``PreTrainedModel.save_pretrained`` arguments are accepted and ignored (the method's
        own state is written); only the main process writes."""
        if is_main_process:
            save_method(self.method, save_directory, self.backbone)
        return str(save_directory)

    @classmethod
    def from_pretrained(cls, directory: str, backbone: Backbone) -> PromptedModel:
        """The method saved in ``directory`` (by :meth:`save_pretrained` or a training run) in
        front of ``backbone``; a method trained on another backbone is refused."""
        return cls(backbone, load_method(directory, backbone))

    @property
    def _no_split_modules(self) -> list[str] | None:
        """The backbone's transformer-layer classes: FSDP's transformer auto-wrap policy reads this
        attribute to shard the model layer by layer."""
        return getattr(self.model, "_no_split_modules", None)

    def _prompted_inputs(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        task_ids: Tensor,
        labels: Tensor | None,
        *,
        pads_first: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor | None, PromptOutput]:
        embeds = self.model.get_input_embeddings()(input_ids)  # [B, n, d]
        source_mask = attention_mask
        if labels is not None and not self.backbone.is_encoder_decoder:
            source_mask = attention_mask * (labels == IGNORE_INDEX)  # the method never sees the answer
        out = self.method(embeds, source_mask, task_ids)
        prompts = out.prompts.to(embeds.dtype)
        B, m = prompts.shape[:2]
        pmask = out.prompt_mask if out.prompt_mask is not None else attention_mask.new_ones(B, m)
        embeds = torch.cat([prompts, embeds], dim=1)
        mask = torch.cat([pmask.to(attention_mask.dtype), attention_mask], dim=1)
        if labels is not None and not self.backbone.is_encoder_decoder:
            labels = torch.cat([labels.new_full((B, m), IGNORE_INDEX), labels], dim=1)
        if not pads_first and _contiguous(mask):
            return embeds, mask, labels, out  # right padding only: nothing to move (the common case)
        if labels is not None and not self.backbone.is_encoder_decoder:
            mask, embeds, labels = _pack_left(mask, embeds, labels)
        else:
            mask, embeds = _pack_left(mask, embeds)
        return embeds, mask, labels, out

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        labels: Tensor | None = None,
        task_ids: Tensor | None = None,
        *,
        return_logits: bool = False,
        output_hidden_states: bool = False,
    ) -> PromptedOutput:
        if task_ids is None:
            task_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        embeds, mask, labels, prompt_out = self._prompted_inputs(input_ids, attention_mask, task_ids, labels)
        if self.backbone.is_encoder_decoder:
            return self._forward_seq2seq(
                labels, prompt_out, return_logits, output_hidden_states, inputs_embeds=embeds, attention_mask=mask
            )
        return self._forward_causal(embeds, mask, labels, prompt_out, return_logits, output_hidden_states)

    def _forward_seq2seq(
        self, labels, prompt_out, return_logits, output_hidden_states, **encoder_inputs
    ) -> PromptedOutput:
        """Decoder loss over ``labels``; ``encoder_inputs`` are the prompted ``inputs_embeds`` or
        ready ``encoder_outputs``, with their ``attention_mask``."""
        if labels is None:
            raise ValueError("forward needs labels for an encoder-decoder backbone; use generate() to predict")
        decoder_input_ids = language_model(self.model).prepare_decoder_input_ids_from_labels(labels=labels)
        out = self.model(
            **encoder_inputs,
            decoder_input_ids=decoder_input_ids,
            output_hidden_states=output_hidden_states,
            use_cache=False,
        )
        target_mask = labels != IGNORE_INDEX
        hidden = {}
        if output_hidden_states:
            enc, dec = out.encoder_hidden_states, out.decoder_hidden_states
            source_mask = encoder_inputs["attention_mask"].bool()
            hidden = _hidden((*enc, *dec), (source_mask,) * len(enc) + (target_mask,) * len(dec), (0, len(enc)))
        return self._loss(out.logits[target_mask], labels[target_mask], target_mask, prompt_out, return_logits, hidden)

    def _forward_causal(self, embeds, mask, labels, prompt_out, return_logits, output_hidden_states) -> PromptedOutput:
        out = self.model.base_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=_positions(mask),
            output_hidden_states=output_hidden_states,
            use_cache=False,
        )
        hidden = (
            _hidden(tuple(out.hidden_states), (mask.bool(),) * len(out.hidden_states), (0,))
            if output_hidden_states
            else {}
        )
        if labels is None:
            return PromptedOutput(None, None, None, prompt_out, **hidden)
        # Position i predicts token i+1; only label positions need the (vocab-sized) LM head.
        target_mask = labels[:, 1:] != IGNORE_INDEX  # [B, L-1]
        logits = self._lm_head(out.last_hidden_state[:, :-1][target_mask])  # [N, V]
        return self._loss(logits, labels[:, 1:][target_mask], target_mask, prompt_out, return_logits, hidden)

    @torch.no_grad()
    def score_label_rows(
        self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor, task_ids: Tensor, counts: Tensor
    ) -> PromptedOutput:
        """Encoder-decoder only: score several label rows per example, running the prompt method
        and the encoder once per example rather than once per label row.

        ``input_ids``, ``attention_mask`` [B, n] and ``task_ids`` [B] are the examples;
        ``labels`` [R, t] holds ``counts[b]`` consecutive rows for example b (R = counts.sum()).
        The output is per label row, as :meth:`forward` on the examples repeated would give
        (same losses up to float summation order); ``prompt_output`` is per example.
        """
        if not self.backbone.is_encoder_decoder:
            raise ValueError(
                "score_label_rows shares the encoder pass; decoder-only models share the prefix's "
                "key/value cache with score_continuations()"
            )
        embeds, mask, _, prompt_out = self._prompted_inputs(input_ids, attention_mask, task_ids, None)
        encoded = self.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask)
        rows = torch.repeat_interleave(
            torch.arange(input_ids.shape[0], device=input_ids.device), counts.to(input_ids.device)
        )
        return self._forward_seq2seq(
            labels,
            prompt_out,
            False,
            False,
            attention_mask=mask[rows],
            encoder_outputs=BaseModelOutput(last_hidden_state=encoded.last_hidden_state[rows]),
        )

    @torch.no_grad()
    def score_continuations(
        self, input_ids: Tensor, attention_mask: Tensor, continuations: Tensor, task_ids: Tensor, counts: Tensor
    ) -> PromptedOutput:
        """Decoder-only only: score several continuations per example (rank classification's
        candidate answers), running the prompt method and prompt + input once per example and
        every continuation as a short extension of that prefix's key/value cache.

        ``input_ids``, ``attention_mask`` [B, n] and ``task_ids`` [B] are the examples' prefixes
        (source + answer prefix, padded on either side); ``continuations`` [R, t] holds ``counts[b]``
        consecutive rows of answer tokens for example b, right-padded with -100. The output is
        per continuation, as :meth:`forward` on the full rows (prefix + continuation) would
        give up to float summation order; ``prompt_output`` is per example.
        """
        if self.backbone.is_encoder_decoder:
            raise ValueError(
                "score_continuations extends a decoder-only prefix; encoder-decoder models use score_label_rows()"
            )
        # Pads first ([pads][prompt][input]): every prefix ends in the last column, and the distance
        # between any two real tokens is the full row's, which sliding-window attention needs.
        embeds, mask, _, prompt_out = self._prompted_inputs(input_ids, attention_mask, task_ids, None, pads_first=True)
        cache = _new_cache(self.model)
        base = self.model.base_model
        prefix = base(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=_positions(mask),
            use_cache=True,
            **{_cache_keyword(base): cache},
        )
        rows = torch.repeat_interleave(torch.arange(mask.shape[0], device=mask.device), counts.to(mask.device))
        states = prefix.last_hidden_state[rows, -1:]  # [R, 1, d]: predicts each answer's first token
        target_mask = continuations != IGNORE_INDEX  # [R, t]
        if continuations.shape[1] > 1:
            # Every answer token but the last is fed on top of its example's cached prefix: the
            # cache is indexed per row, the mask covers the prefix then the answer (right-padded),
            # and positions continue from the prefix's real-token count, as in the full row.
            cache.batch_select_indices(rows)
            feed = continuations[:, :-1].clamp(min=0)
            feed_mask = torch.cat([mask[rows], target_mask[:, :-1].to(mask.dtype)], dim=1)
            positions = mask.sum(dim=1)[rows, None] + torch.arange(feed.shape[1], device=mask.device)
            tail = base(
                input_ids=feed,
                attention_mask=feed_mask,
                position_ids=positions,
                use_cache=True,
                **{_cache_keyword(base): cache},
            )
            states = torch.cat([states, tail.last_hidden_state], dim=1)  # [R, t, d]: state j predicts token j
        logits = self._lm_head(states[target_mask])
        return self._loss(logits, continuations[target_mask], target_mask, prompt_out, False, {})

    def _lm_head(self, states: Tensor) -> Tensor:
        """Decoder-only logits [N, V] of hidden states [N, d] (with the model's final soft-capping)."""
        logits = self.model.get_output_embeddings()(states)
        softcap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / softcap) * softcap if softcap else logits

    @staticmethod
    def _loss(logits, targets, target_mask, prompt_out, return_logits, hidden) -> PromptedOutput:
        token_loss = F.cross_entropy(logits.float(), targets, reduction="none")  # [N]
        counts = target_mask.sum(dim=1)  # [B]
        rows = target_mask.nonzero()[:, 0]
        nll = torch.zeros(target_mask.shape[0], device=logits.device).index_add(0, rows, token_loss)  # [B], summed
        return PromptedOutput(
            loss=token_loss.sum() / counts.sum().clamp(min=1),
            per_example_nll=nll,
            token_counts=counts,
            prompt_output=prompt_out,
            label_logits=logits if return_logits else None,
            **hidden,
        )

    @overload
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        task_ids: Tensor | None = None,
        *,
        return_prompt_output: Literal[False] = False,
        **generation_kwargs: Any,
    ) -> Tensor | GenerateOutput: ...

    @overload
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        task_ids: Tensor | None = None,
        *,
        return_prompt_output: Literal[True],
        **generation_kwargs: Any,
    ) -> tuple[Tensor | GenerateOutput, PromptOutput]: ...

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        task_ids: Tensor | None = None,
        *,
        return_prompt_output: bool = False,
        **generation_kwargs: Any,
    ) -> Tensor | GenerateOutput | tuple[Tensor | GenerateOutput, PromptOutput]:
        """Generate the answer tokens only (no input, no decoder start token): [B, T].

        ``generation_kwargs`` go to HF ``generate`` (``max_new_tokens``, ``num_beams``, ...);
        greedy decoding unless they say otherwise. With ``return_dict_in_generate=True`` the
        result is HF's generate output, its ``sequences`` cut the same way (answer tokens only).
        """
        if task_ids is None:
            task_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        # Decoder-only generation appends after the last position, so every pad must come first.
        pads_first = not self.backbone.is_encoder_decoder
        embeds, mask, _, prompt_out = self._prompted_inputs(
            input_ids, attention_mask, task_ids, None, pads_first=pads_first
        )
        tok = self.backbone.tokenizer
        kwargs = {"do_sample": False, "max_new_tokens": 32, "pad_token_id": tok.pad_token_id, **generation_kwargs}
        out = language_model(self.model).generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
        sequences = out if isinstance(out, Tensor) else out.sequences  # return_dict_in_generate: a GenerateOutput
        if self.backbone.is_encoder_decoder:
            sequences = sequences[:, 1:]  # drop the decoder start token
        if not isinstance(out, Tensor):
            out.sequences = sequences  # one token per step left: compute_transition_scores lines them up
            sequences = out
        return (sequences, prompt_out) if return_prompt_output else sequences
