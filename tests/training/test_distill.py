"""MPT's distillation loss against a hand computation, and on real tiny backbones."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from promptmix.backbone import PromptedOutput
from promptmix.prompts.base import PromptOutput
from promptmix.training.config import DistillConfig
from promptmix.training.distill import DistillLoss


class Fixed(torch.nn.Module):
    """A stand-in model returning fixed outputs (decoder-only layout)."""

    def __init__(self, logits, hidden, per_example, counts):
        super().__init__()
        self.out = PromptedOutput(loss=torch.tensor(0.0), per_example_loss=torch.tensor(per_example),
                                  token_counts=torch.tensor(counts), prompt_output=PromptOutput(torch.zeros(1)),
                                  label_logits=torch.tensor(logits),
                                  hidden_states=tuple(torch.tensor(h, dtype=torch.float) for h in hidden))
        self.backbone = SimpleNamespace(is_encoder_decoder=False, model=SimpleNamespace(config=None))

    def forward(self, *args, **kwargs):
        return self.out


def softmax(values, tau):
    exps = [math.exp(v / tau) for v in values]
    return [e / sum(exps) for e in exps]


def test_distillation_loss_equals_hand_computation():
    # Two examples, prompt length 1, input widths 2 and 3 of a 3-wide batch: after the
    # backbone packs pads first, example 0's real positions are 1..3, example 1's 0..3.
    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
             "labels": torch.zeros(2, 3, dtype=torch.long), "task_ids": torch.zeros(2, dtype=torch.long),
             "num_label_tokens": 3, "num_examples": 2}
    s_logits, t_logits = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [2.0, 1.0, 0.0]], [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [2.0, 1.0, 0.0]]
    # Hidden states: 2 states (layers), each [B=2, 4 positions, d=2]; s_hidden[state][example].
    s_hidden = [[[[1, 2], [3, 4], [5, 6], [7, 8]], [[0, 0], [1, 1], [2, 2], [3, 3]]],
                [[[1, 1], [1, 1], [1, 1], [1, 1]], [[0, 1], [0, 1], [0, 1], [0, 1]]]]
    t_hidden = [[[[9, 9], [3, 5], [5, 6], [6, 8]], [[0, 0], [1, 1], [2, 2], [3, 3]]],
                [[[1, 1], [1, 3], [1, 1], [1, 1]], [[0, 1], [0, 1], [2, 1], [0, 1]]]]
    student = Fixed(s_logits, s_hidden, [0.7, 0.4], [1, 2])
    teacher = Fixed(t_logits, t_hidden, [0.0, 0.0], [1, 2])
    tau, lam = 2.0, 0.9
    loss, logs = DistillLoss(teacher, DistillConfig(weight=lam, temperature=tau), prompt_length=1)(student, batch)

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
    teacher_method = SoftPrompt(SoftPromptConfig(prompt_length=3, tasks=["rte"]), d)
    teacher_method.set_prompt("rte", prompt)
    student = PromptedModel(tiny_backbone, MPT.from_teachers({"rte": prompt}))
    teacher = PromptedModel(tiny_backbone, teacher_method)
    feats = [dict(tiny_backbone.encode(s, t), task_id=0) for s, t in [("rte a b c", "entailment"), ("rte d", "not_entailment")]]
    batch = Collator(tiny_backbone.tokenizer)(feats)
    batch.update(num_label_tokens=int((batch["labels"] != -100).sum()), num_examples=2)
    loss, logs = DistillLoss(teacher, DistillConfig(), prompt_length=3)(student, batch)
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
