"""Scoring answers of a prompted model: rank classification and greedy generation.

Both take examples already encoded by :meth:`Backbone.encode` and any mix of tasks (the
``task_ids`` of the model's prompt method), and score the whole batch at once. They sit beside
the backbone because training's dev evaluation and inference both use them.

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
score is the geometric-mean token probability exp(ll / tokens) of that answer re-scored by
teacher forcing (one more forward), a number in (0, 1] like the classification score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from promptmix.backbone import IGNORE_INDEX, PromptedModel, right_pad
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
def sequence_log_likelihoods(model: PromptedModel, features: Sequence[dict[str, list[int]]], task_ids: Tensor) -> tuple[Tensor, Tensor, PromptOutput]:
    """Summed log-likelihood [N] of each row's labels, its label-token count [N], and the
    prompt output, from one teacher-forced forward."""
    batch = {k: v.to(task_ids.device) for k, v in model.backbone.pad(features).items()}
    out = model(batch["input_ids"], batch["attention_mask"], batch["labels"], task_ids)
    return -out.per_example_nll.float(), out.token_counts, out.prompt_output


def _shared_source_log_likelihoods(model: PromptedModel, candidates, counts, task_ids: Tensor) -> tuple[Tensor, PromptOutput]:
    """Summed log-likelihood of every candidate row, running each example's source once: the
    encoder on encoder-decoder models, prompt + input (kept as a KV cache) on decoder-only ones."""
    decoder_only = not model.backbone.is_encoder_decoder
    sources, answers = [], []
    for i, rows in enumerate(candidates):
        # Decoder-only rows are source + answer, labels -100 on the source: split them there.
        cut = sum(1 for x in rows[0]["labels"] if x == IGNORE_INDEX) if decoder_only else None
        sources.append(rows[0]["input_ids"][:cut])
        if any(f["input_ids"][:cut] != sources[-1] for f in rows):
            raise ValueError(f"example {i}: its candidate rows differ before the answer; every candidate of an "
                             "example must be backbone.encode(source, answer) with the same source")
        answers += [f["labels"][cut:] if decoder_only else f["labels"] for f in rows]
    device = task_ids.device
    batch = model.backbone.pad([{"input_ids": x} for x in sources])
    score = model.score_continuations if decoder_only else model.score_label_rows
    out = score(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                right_pad(answers, IGNORE_INDEX).to(device), task_ids, torch.tensor(counts, device=device))
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
def rank_classify(model: PromptedModel, candidates: Sequence[Sequence[dict[str, list[int]]]], task_ids: Tensor) -> list[RankResult]:
    """Rank each example's candidates, all examples and candidates batched together.

    Args:
        candidates: per example, its candidate rows ``backbone.encode(source, word)``, one per
            label word or answer candidate (examples may have different numbers of candidates;
            the candidates of one example must share its encoded source).
        task_ids: [B] the examples' task ids in the model's prompt method.
    """
    counts = [len(c) for c in candidates]
    starts = torch.tensor([0, *counts]).cumsum(0)[:-1].tolist()
    ll, prompt_out = _shared_source_log_likelihoods(model, candidates, counts, task_ids)
    attention = attention_rows(prompt_out, range(len(candidates)))
    results = []
    for i, (start, count) in enumerate(zip(starts, counts)):
        scores = ll[start : start + count].cpu()
        probs = torch.softmax(scores, dim=0)
        results.append(RankResult(int(scores.argmax()), scores.tolist(), probs.tolist(), attention[i]))
    return results


@torch.no_grad()
def greedy_generate(model: PromptedModel, input_ids: Sequence[list[int]], task_ids: Tensor, **generation_kwargs) -> tuple[list[str], list[Tensor | None]]:
    """Greedy answers (decoded text) and each row's prompt attention, in one ``generate``."""
    batch = {k: v.to(task_ids.device) for k, v in model.backbone.pad([{"input_ids": x} for x in input_ids]).items()}
    sequences, prompt_out = model.generate(batch["input_ids"], batch["attention_mask"], task_ids,
                                           return_prompt_output=True, **generation_kwargs)
    return model.backbone.decode(sequences), attention_rows(prompt_out, range(len(input_ids)))


def mean_token_probability(log_likelihood: Tensor, token_counts: Tensor) -> list[float]:
    """exp(ll / tokens) per row: the generation score described in the module docstring."""
    return torch.exp(log_likelihood / token_counts.clamp(min=1)).tolist()
