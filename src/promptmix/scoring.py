"""Scoring answers of a prompted model: rank classification and greedy generation.

Both take examples already encoded (sources by :meth:`Backbone.encode`, candidate answers by
:meth:`Backbone.encode_answer`) and any mix of tasks (the ``task_ids`` of the model's prompt
method), and score the whole batch at once. :mod:`promptmix.inference.engine` batches for them.

Rank classification (T0 / lm-eval-harness style): each example is paired with every label
word c of its task, and the prompt method and the example's source run once per example, not
once per candidate: encoder-decoder models encode the source once and run the decoder once
per candidate; decoder-only models run prompt + input once, keep its key/value cache and
score every candidate as a short continuation of it (both tested equal to full rows),

    ll(c) = Σ_t log P(c_t | x, c_<t)            summed over c's tokens (and eos)
    chosen = argmax_c ll(c),   p(c) = softmax_c ll(c)

so ``p(chosen)`` is the model's probability of its answer *given that the answer is a label
word*. Summing rather than averaging token log-probs is the usual choice: a label is one
event, however many tokens spell it.

Greedy generation (regression, QA, generation tasks): the answer is the greedy decode; its
score is the geometric-mean probability exp(ll / tokens) of the tokens generated (up to and
including the first eos), read from the same ``generate`` call, a number in (0, 1] like the
classification score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from promptmix.backbone import IGNORE_INDEX, PromptedModel, language_model, right_pad
from promptmix.prompts.base import PromptOutput


def attention_rows(prompt_output: PromptOutput, rows: Sequence[int]) -> list[Tensor | None]:
    """Each given row's prompt attention ([k] or [k, m], unpadded), None where it has none."""
    row_of = getattr(prompt_output, "attention_row", None)  # a PromptRouter's output knows its padding
    if row_of is not None:
        return [row_of(r) for r in rows]
    if prompt_output.attention is None:
        return [None] * len(rows)
    return [prompt_output.attention[r] for r in rows]


@torch.no_grad()
def sequence_log_likelihoods(
    model: PromptedModel, features: Sequence[dict[str, list[int]]], task_ids: Tensor
) -> tuple[Tensor, Tensor, PromptOutput]:
    """Summed log-likelihood [N] of each row's labels, its label-token count [N], and the
    prompt output, from one teacher-forced forward."""
    batch = {k: v.to(task_ids.device) for k, v in model.backbone.pad(features).items()}
    out = model(batch["input_ids"], batch["attention_mask"], batch["labels"], task_ids)
    return -out.per_example_nll.float(), out.token_counts, out.prompt_output


def split_candidate_rows(
    model: PromptedModel, candidates: Sequence[Sequence[dict[str, list[int]]]]
) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Candidate rows ``backbone.encode(source, answer)`` -> each example's source ids and its
    candidates' answer ids: for callers that hold joined rows. The engine never joins them."""
    decoder_only = not model.backbone.is_encoder_decoder
    sources, answers = [], []
    for i, rows in enumerate(candidates):
        # Decoder-only rows are source + answer, labels -100 on the source: split them there.
        cut = sum(1 for x in rows[0]["labels"] if x == IGNORE_INDEX) if decoder_only else None
        sources.append(rows[0]["input_ids"][:cut])
        if any(f["input_ids"][:cut] != sources[-1] for f in rows):
            raise ValueError(
                f"example {i}: its candidate rows differ before the answer; every candidate of an "
                "example must be backbone.encode(source, answer) with the same source"
            )
        answers.append([f["labels"][cut:] if decoder_only else f["labels"] for f in rows])
    return sources, answers


def candidate_log_likelihoods(
    model: PromptedModel, sources: Sequence[list[int]], answers: Sequence[Sequence[list[int]]], task_ids: Tensor
) -> tuple[Tensor, PromptOutput]:
    """Summed log-likelihood of every candidate answer (flattened, example by example), running
    each example's source once: the encoder on encoder-decoder models, prompt + input (kept as a
    KV cache) on decoder-only ones. ``sources``: each example's ``backbone.encode(source)`` ids;
    ``answers``: its candidates' :meth:`Backbone.encode_answer` ids."""
    device = task_ids.device
    batch = model.backbone.pad([{"input_ids": x} for x in sources])
    score = model.score_label_rows if model.backbone.is_encoder_decoder else model.score_continuations
    out = score(
        batch["input_ids"].to(device),
        batch["attention_mask"].to(device),
        right_pad([a for rows in answers for a in rows], IGNORE_INDEX).to(device),
        task_ids,
        torch.tensor([len(rows) for rows in answers], device=device),
    )
    assert out.per_example_nll is not None and out.prompt_output is not None  # scoring sets both
    return -out.per_example_nll.float(), out.prompt_output


@dataclass
class RankResult:
    """One example's rank classification: ``index`` of the chosen candidate, each candidate's
    summed ``log_likelihoods`` and ``probabilities`` (softmax over the candidates)."""

    index: int
    log_likelihoods: list[float]
    probabilities: list[float]
    attention: Tensor | None = None


@torch.no_grad()
def rank_candidates(
    model: PromptedModel, sources: Sequence[list[int]], answers: Sequence[Sequence[list[int]]], task_ids: Tensor
) -> list[RankResult]:
    """Rank each example's candidate answers, all examples and candidates batched together.

    Args:
        sources: per example, its source ids (``backbone.encode(source)["input_ids"]``), once.
        answers: per example, the ids of each candidate (:meth:`Backbone.encode_answer`;
            examples may have different numbers of candidates).
        task_ids: [B] the examples' task ids in the model's prompt method.
    """
    ll, prompt_out = candidate_log_likelihoods(model, sources, answers, task_ids)
    attention = attention_rows(prompt_out, range(len(sources)))
    results, start = [], 0
    for i, rows in enumerate(answers):
        scores = ll[start : start + len(rows)].cpu()
        start += len(rows)
        probs = torch.softmax(scores, dim=0)
        results.append(RankResult(int(scores.argmax()), scores.tolist(), probs.tolist(), attention[i]))
    return results


@torch.no_grad()
def rank_classify(
    model: PromptedModel, candidates: Sequence[Sequence[dict[str, list[int]]]], task_ids: Tensor
) -> list[RankResult]:
    """:func:`rank_candidates` for candidates given as joined rows ``backbone.encode(source,
    word)``, one per label word or answer candidate (the candidates of one example must share
    its encoded source; a ValueError names the example whose do not)."""
    sources, answers = split_candidate_rows(model, candidates)
    return rank_candidates(model, sources, answers, task_ids)


@dataclass
class Generation:
    """One greedy answer: its decoded ``text``, ``score`` (the geometric-mean probability of its
    generated tokens, eos included when generated) and the row's prompt ``attention``."""

    text: str
    score: float
    attention: Tensor | None = None


@torch.no_grad()
def generate_scored(
    model: PromptedModel, input_ids: Sequence[list[int]], task_ids: Tensor, **generation_kwargs
) -> list[Generation]:
    """Greedy answers with their scores in one ``generate``: the scores are the token
    log-probabilities generate already computed (``compute_transition_scores`` on its raw
    logits), not a second forward over the decoded text."""
    backbone = model.backbone
    batch = {k: v.to(task_ids.device) for k, v in backbone.pad([{"input_ids": x} for x in input_ids]).items()}
    out, prompt_out = model.generate(
        batch["input_ids"],
        batch["attention_mask"],
        task_ids,
        return_prompt_output=True,
        return_dict_in_generate=True,
        output_logits=True,
        **generation_kwargs,
    )
    assert not isinstance(out, Tensor) and out.logits is not None  # return_dict_in_generate, output_logits
    # Raw logits, normalised: the model's own probabilities, whatever logits processors greedy search ran.
    lm = language_model(model.model)
    logprobs = lm.compute_transition_scores(out.sequences, out.logits, normalize_logits=True).float()
    eos = backbone.tokenizer.eos_token_id
    ended = (out.sequences == eos).long().cumsum(dim=1)
    counted = (ended - (out.sequences == eos).long()) == 0  # tokens up to and including the first eos
    ll = torch.where(counted, logprobs, 0.0).sum(dim=1)  # after eos come pads, whose log-probability may be -inf
    scores = torch.exp(ll / counted.sum(dim=1).clamp(min=1)).tolist()
    texts = backbone.decode(out.sequences)
    return [Generation(t, s, a) for t, s, a in zip(texts, scores, attention_rows(prompt_out, range(len(input_ids))))]
