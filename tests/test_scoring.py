"""rank_classify shares each example's source across its candidates (the encoder pass on T5,
prompt + input as a KV cache on decoder-only models): its log-likelihoods must equal scoring
every candidate as a full row, for routed mixed-task batches whose prompts differ in length."""

from __future__ import annotations

import pytest
import torch
from method_factories import make_method

from promptmix.backbone import Backbone, PromptedModel
from promptmix.prompts import METHODS
from promptmix.prompts.router import PromptRouter
from promptmix.scoring import rank_classify, sequence_log_likelihoods
from promptmix.testing import tiny_causal_lm

SOURCES = [  # (source, task, candidate answers): label words and per-example answer lists
    ("rte sentence1: A cat sat on the mat. sentence2: A cat sits.", "rte", ["entailment", "not_entailment"]),
    ("cb premise: It is late. hypothesis: It is early.", "cb", ["entailment", "contradiction", "neutral"]),
    ("sst2 sentence: a good movie", "sst2", ["positive", "negative"]),
    (
        "copa premise: The man fell. What was the cause? choice1: He slipped. choice2: He sang.",
        "copa",
        ["He slipped on the wet floor.", "He sang."],
    ),
    ("cb premise: No. hypothesis: Yes, it is, and it has been for a very long time.", "cb", ["neutral"]),
]


def _router(backbone: Backbone, second: str) -> PromptRouter:
    """rte/sst2 on prompt tuning (m=3) beside cb/copa on ``second`` (m=5): the shorter prompts
    are left-padded, so rows hold padding inside them."""
    d = backbone.hidden_size
    return PromptRouter(
        {
            "short": make_method("prompt-tuning", ["rte", "sst2"], d, prompt_length=3, seed=1),
            "long": make_method(second, ["cb", "copa"], d, prompt_length=5, seed=2),
        }
    )


def _check_against_full_rows(backbone: Backbone, router: PromptRouter) -> None:
    model = PromptedModel(backbone, router)
    candidates = [[backbone.encode(s, a) for a in answers] for s, _, answers in SOURCES]
    task_ids = router.task_ids_for([t for _, t, _ in SOURCES])
    ranked = rank_classify(model, candidates, task_ids)
    rows = [f for c in candidates for f in c]
    full, _, _ = sequence_log_likelihoods(
        model, rows, task_ids.repeat_interleave(torch.tensor([len(c) for c in candidates]))
    )
    shared = torch.tensor([ll for r in ranked for ll in r.log_likelihoods])
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-6)
    for r in ranked:  # the choice and the probabilities follow from the log-likelihoods
        assert r.index == max(range(len(r.log_likelihoods)), key=r.log_likelihoods.__getitem__)
        assert r.probabilities == pytest.approx(torch.softmax(torch.tensor(r.log_likelihoods), 0).tolist(), abs=1e-6)


@pytest.mark.parametrize("second", sorted(METHODS))
def test_rank_classify_equals_full_rows_on_mixed_routed_batches(tiny_backbone, second):
    _check_against_full_rows(tiny_backbone, _router(tiny_backbone, second))


def test_prefix_sharing_holds_under_sliding_window_attention(t5_tokenizer):
    """A window shorter than the rows (Mistral-style) sees the same tokens in the cached
    continuation as in the full row: the prefix is packed pads-first, so distances between real
    tokens are the full row's."""
    from transformers import MistralConfig, MistralForCausalLM

    model = tiny_causal_lm(MistralConfig, MistralForCausalLM, sliding_window=6)
    backbone = Backbone(model, t5_tokenizer, "tiny-mistral")
    _check_against_full_rows(backbone, _router(backbone, "attempt"))


def test_candidates_of_one_example_must_share_its_source(tiny_backbone):
    router = _router(tiny_backbone, "prompt-tuning")
    model = PromptedModel(tiny_backbone, router)
    mixed = [
        [
            tiny_backbone.encode("rte sentence1: a. sentence2: b.", "entailment"),
            tiny_backbone.encode("rte sentence1: c. sentence2: d.", "not_entailment"),
        ]
    ]
    with pytest.raises(ValueError, match="example 0: its candidate rows differ"):
        rank_classify(model, mixed, router.task_ids_for(["rte"]))
