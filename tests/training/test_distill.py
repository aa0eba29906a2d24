"""MPT's distillation loss against a hand computation, and on real tiny backbones."""

from __future__ import annotations

import math

import pytest
import torch

from promptmix.backbone import PromptedOutput
from promptmix.prompts.base import PromptOutput
from promptmix.training.config import DistillConfig
from promptmix.training.distill import DistillLoss


class Fixed(torch.nn.Module):
    """A stand-in model returning fixed outputs (decoder-only layout)."""

    def __init__(self, logits, hidden, per_example, counts, masks):
        super().__init__()
        nll = [mean * n for mean, n in zip(per_example, counts)]  # the backbone reports summed NLL
        self.out = PromptedOutput(
            loss=torch.tensor(0.0),
            per_example_nll=torch.tensor(nll),
            token_counts=torch.tensor(counts),
            prompt_output=PromptOutput(torch.zeros(1)),
            label_logits=torch.tensor(logits),
            hidden_states=tuple(torch.tensor(h, dtype=torch.float) for h in hidden),
            hidden_masks=tuple(torch.tensor(masks, dtype=torch.bool) for _ in hidden),
            embedding_states=(),
        )

    def forward(self, *args, **kwargs):
        return self.out


def softmax(values, tau):
    exps = [math.exp(v / tau) for v in values]
    return [e / sum(exps) for e in exps]


def test_distillation_loss_equals_hand_computation():
    # Two examples; the model's output marks example 0's real positions as 1..3 and example
    # 1's as 0..3 (the loss takes the layout from the model, never re-derives it).
    batch = {
        "input_ids": torch.zeros(2, 3, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
        "labels": torch.zeros(2, 3, dtype=torch.long),
        "task_ids": torch.zeros(2, dtype=torch.long),
        "num_label_tokens": 3,
        "num_examples": 2,
    }
    s_logits, t_logits = (
        [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [2.0, 1.0, 0.0]],
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [2.0, 1.0, 0.0]],
    )
    # Hidden states: 2 states (layers), each [B=2, 4 positions, d=2]; s_hidden[state][example].
    s_hidden = [
        [[[1, 2], [3, 4], [5, 6], [7, 8]], [[0, 0], [1, 1], [2, 2], [3, 3]]],
        [[[1, 1], [1, 1], [1, 1], [1, 1]], [[0, 1], [0, 1], [0, 1], [0, 1]]],
    ]
    t_hidden = [
        [[[9, 9], [3, 5], [5, 6], [6, 8]], [[0, 0], [1, 1], [2, 2], [3, 3]]],
        [[[1, 1], [1, 3], [1, 1], [1, 1]], [[0, 1], [0, 1], [2, 1], [0, 1]]],
    ]
    real = [[0, 1, 1, 1], [1, 1, 1, 1]]
    student = Fixed(s_logits, s_hidden, [0.7, 0.4], [1, 2], real)
    teacher = Fixed(t_logits, t_hidden, [0.0, 0.0], [1, 2], real)
    tau, lam = 2.0, 0.9
    loss, logs = DistillLoss(teacher, DistillConfig(weight=lam, temperature=tau))(student, batch)

    ce = (0.7 * 1 + 0.4 * 2) / 3
    kl = 0.0
    for s, t in zip(s_logits, t_logits):
        p, q = softmax(t, tau), softmax(s, tau)
        kl += tau**2 * sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))
    kl /= 3
    # Example 0, real positions 1..3 (position 0 is padding and differs a lot: ignored):
    #   state 0 differs by (0,1) at 1 and (1,0) at 3 -> 2; state 1 by (0,2) at 1 -> 4;
    #   6 over 2 states × 3 positions × 2 dims = 12 entries.
    # Example 1, all 4 positions: state 0 equal; state 1 differs by (2,0) at 2 -> 4 over 16.
    hidden = (6 / 12 + 4 / 16) / 2
    expected = ce + lam * (kl + hidden)
    assert math.isclose(logs["ce"].item(), ce, rel_tol=1e-6)
    assert math.isclose(logs["kl"].item(), kl, rel_tol=1e-5)
    assert math.isclose(logs["hidden"].item(), hidden, rel_tol=1e-6)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_identical_teacher_and_student_give_zero_distillation(tiny_backbone):
    """On real tiny T5 / Llama: a student whose prompt equals the teacher's has L_KL = L_hidden = 0
    (encoder + decoder states for T5, every layer for Llama), and L = L_task."""
    from promptmix.backbone import PromptedModel
    from promptmix.prompts import MPT, SoftPrompt, SoftPromptConfig
    from promptmix.training.data import Collator

    d = tiny_backbone.hidden_size
    prompt = torch.randn(3, d, generator=torch.Generator().manual_seed(0))
    teacher_method = SoftPrompt(SoftPromptConfig(prompt_length=3), d, ["rte"])
    teacher_method.set_prompt("rte", prompt)
    student = PromptedModel(tiny_backbone, MPT.from_teachers({"rte": prompt}, prompt))
    teacher = PromptedModel(tiny_backbone, teacher_method)
    feats = [
        dict(tiny_backbone.encode(s, t), task_id=0)
        for s, t in [("rte a b c", "entailment"), ("rte d", "not_entailment")]
    ]
    batch = Collator(tiny_backbone)(feats)
    batch.update(num_label_tokens=int((batch["labels"] != -100).sum()), num_examples=2)
    loss, logs = DistillLoss(teacher, DistillConfig())(student, batch)
    assert logs["kl"].abs().item() < 1e-6 and logs["hidden"].item() < 1e-10
    torch.testing.assert_close(loss, logs["ce"], atol=1e-6, rtol=0)
    expected_ce = teacher(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["task_ids"]).loss
    torch.testing.assert_close(logs["ce"], expected_ce, atol=1e-6, rtol=1e-6)


def test_rms_normalised_hidden_mse_by_hand():
    """hidden_rms_norm: s = (3, 4) -> (3, 4) / 3.5355; t = (1, 0) -> (1, 0) / 0.7071;
    squared differences 0.32 + 1.28 over 2 entries = 0.8 (and scale-free: 1000 s gives the same)."""
    from promptmix.training.distill import hidden_mse_per_example

    mask = [torch.tensor([[True]])]
    s, t = torch.tensor([[[3.0, 4.0]]]), torch.tensor([[[1.0, 0.0]]])
    assert math.isclose(hidden_mse_per_example((s,), (t,), mask, rms_norm=True).item(), 0.8, rel_tol=1e-5)
    assert math.isclose(hidden_mse_per_example((1000 * s,), (t,), mask, rms_norm=True).item(), 0.8, rel_tol=1e-5)
    assert math.isclose(hidden_mse_per_example((s,), (t,), mask).item(), (4 + 16) / 2, rel_tol=1e-6)


def _uneven_batch(backbone):
    """Two right-padded examples of different lengths (the tokenizers' default padding)."""
    from promptmix.training.data import Collator

    pairs = [("rte premise one two three four five six seven", "entailment"), ("rte short", "not_entailment")]
    feats = [dict(backbone.encode(s, t), task_id=0) for s, t in pairs]
    batch = Collator(backbone)(feats)
    assert batch["attention_mask"][1, -1] == 0  # padded on the right
    batch.update(num_label_tokens=int((batch["labels"] != -100).sum()), num_examples=2)
    return feats, batch


def _teacher_and_student(backbone, length=3):
    from promptmix.backbone import PromptedModel
    from promptmix.prompts import MPT, SoftPrompt, SoftPromptConfig

    d = backbone.hidden_size
    gen = torch.Generator().manual_seed(1)
    teacher_prompt, student_prompt = torch.randn(length, d, generator=gen), torch.randn(length, d, generator=gen)
    teacher_method = SoftPrompt(SoftPromptConfig(prompt_length=length), d, ["rte"])
    teacher_method.set_prompt("rte", teacher_prompt)
    return PromptedModel(backbone, teacher_method), PromptedModel(
        backbone, MPT.from_teachers({"rte": teacher_prompt}, student_prompt)
    )


@pytest.mark.parametrize("with_embeddings", [False, True])
def test_hidden_loss_on_an_uneven_right_padded_batch_equals_each_example_alone(tiny_backbone, with_embeddings):
    """Teacher != student, rows of different lengths padded on the right: L_hidden equals the
    per-example MSE computed on each example run alone (no padding, every position real),
    over the layers' outputs only by default (state 0 of each stack, the embedding output,
    only with hidden_embeddings)."""
    teacher, student = _teacher_and_student(tiny_backbone)
    feats, batch = _uneven_batch(tiny_backbone)
    _, logs = DistillLoss(teacher, DistillConfig(weight=0.9, hidden_embeddings=with_embeddings))(student, batch)

    config = tiny_backbone.model.config
    # indices of the embedding outputs: encoder and decoder state 0 (T5), state 0 (Llama)
    embedding = {0, config.num_layers + 1} if tiny_backbone.is_encoder_decoder else {0}
    per_example = []
    for feat in feats:
        ids, labels = torch.tensor([feat["input_ids"]]), torch.tensor([feat["labels"]])
        args = (ids, torch.ones_like(ids), labels, torch.zeros(1, dtype=torch.long))
        with torch.no_grad():
            s = student(*args, output_hidden_states=True).hidden_states
            t = teacher(*args, output_hidden_states=True).hidden_states
        keep = [i for i in range(len(s)) if with_embeddings or i not in embedding]
        squared = sum(float(((s[i] - t[i]) ** 2).sum()) for i in keep)
        entries = sum(s[i].numel() for i in keep)
        per_example.append(squared / entries)
    assert math.isclose(logs["hidden"].item(), sum(per_example) / 2, rel_tol=1e-4)


def test_teacher_runs_deterministically_while_the_student_keeps_its_dropout(t5_tokenizer):
    """A T5 with dropout 0.1, student and backbone in training mode (the T5 presets): two
    teacher passes on one batch are bit-identical; the student's dropout still acts; every
    module's mode is restored afterwards."""
    from tiny_models import tiny_t5

    from promptmix.backbone import Backbone

    backbone = Backbone(tiny_t5(dropout=0.1).train(), t5_tokenizer, "tiny-t5-dropout")
    teacher, student = _teacher_and_student(backbone)
    student.train()
    captured = []
    teacher.register_forward_hook(lambda module, args, out: captured.append(out.label_logits.detach().clone()))
    _, batch = _uneven_batch(backbone)
    loss_fn = DistillLoss(teacher, DistillConfig())
    _, first = loss_fn(student, batch)
    _, second = loss_fn(student, batch)
    assert len(captured) == 2 and torch.equal(captured[0], captured[1])
    assert not torch.equal(first["ce"], second["ce"])  # the student's dropout acts
    assert all(m.training for m in backbone.model.modules()) and student.training


def test_no_teacher_without_a_distillation_term():
    with pytest.raises(ValueError, match="needs a teacher"):
        DistillLoss(None, DistillConfig(weight=0.9))
    DistillLoss(None, DistillConfig(weight=0.0))  # decomposition only
    DistillLoss(None, DistillConfig(use_kl=False, use_hidden=False))
