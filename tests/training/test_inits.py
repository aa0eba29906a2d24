"""Where prompts start: per-task inits, the MPT student's P*, and no teacher when λ = 0."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
from trainhelpers import PROMPT_LENGTH, config, model_dirs, random_library  # noqa: F401  (fixture)

SIX = ["sst2", "qqp", "mrpc", "rte", "cb", "wic"]


def _ctx(model_dir, tmp_path, seed=42, resume=False, **extra):
    from promptmix.loading import load_backbone

    return SimpleNamespace(
        config=config("source", model_dir, tmp_path, data__tasks=["sst2"], run__seed=seed, **extra),
        backbone=load_backbone(model_dir),
        resume=resume,
    )


def _one_task_prompts(ctx, tasks):
    """Each task's init as the per-task stages build it: one SoftPrompt per task."""
    from promptmix.training.stages import _soft_prompt

    return {task: _soft_prompt(ctx, [task]).task_prompt(task) for task in tasks}


def test_per_task_inits_differ_across_tasks_and_repeat_across_runs(model_dirs, tmp_path):
    first = _one_task_prompts(_ctx(model_dirs["t5"], tmp_path), SIX)
    for a, b in itertools.combinations(SIX, 2):
        assert not torch.allclose(first[a], first[b]), f"{a} and {b} start from the same prompt"
    rerun = _one_task_prompts(_ctx(model_dirs["t5"], tmp_path), SIX)
    resumed = _one_task_prompts(_ctx(model_dirs["t5"], tmp_path, resume=True), SIX)
    other_seed = _one_task_prompts(_ctx(model_dirs["t5"], tmp_path, seed=43), SIX)
    for task in SIX:
        assert torch.equal(first[task], rerun[task]) and torch.equal(first[task], resumed[task])
        assert not torch.equal(first[task], other_seed[task])


def test_source_stage_children_start_apart(model_dirs, tmp_path):
    """The source stage trains one run per task; at a vanishing learning rate each run's final
    prompt is its init: they differ between tasks and repeat exactly in a second run."""
    from promptmix.training.stages import run_stage

    def finals(run_dir):
        run_stage(
            config(
                "source",
                model_dirs["llama"],
                tmp_path,
                data__tasks=["sst2", "rte", "cb"],
                optim__lr=1e-12,
                optim__max_steps=1,
                eval__every=0,
                eval__test=False,
                run__dir=str(tmp_path / run_dir),
            )
        )
        return {
            t: safetensors.torch.load_file(tmp_path / run_dir / t / "method" / "method.safetensors")
            for t in ("sst2", "rte", "cb")
        }

    first, second = finals("a"), finals("b")
    for a, b in itertools.combinations(first, 2):
        assert not any(torch.allclose(first[a][k], first[b][k], atol=1e-6) for k in first[a])
    for task in first:
        assert all(torch.equal(first[task][k], second[task][k]) for k in first[task])


@pytest.mark.parametrize("init", ["vocab", "teacher-mean"])
def test_mpt_student_starts_as_configured(model_dirs, tmp_path, init):
    """Default (the paper): P* = embeddings of distinct ids from the 5,000 most frequent
    non-special ones, not the teachers' mean; 'teacher-mean' is the named extension."""
    from promptmix.prompts.init import VOCAB_TOP_K, special_ids
    from promptmix.training.stages import mpt_student

    ctx = _ctx(model_dirs["t5"], tmp_path, method__mpt__init=init)
    gen = torch.Generator().manual_seed(0)
    teachers = {t: torch.randn(PROMPT_LENGTH, ctx.backbone.hidden_size, generator=gen) for t in ("sst2", "rte")}
    student = mpt_student(ctx, teachers)
    p_star = student.shared_prompt.detach()
    mean = (teachers["sst2"] + teachers["rte"]) / 2
    torch.testing.assert_close(student.export_prompt("rte"), p_star, atol=0, rtol=0)  # u v = 1
    if init == "teacher-mean":
        torch.testing.assert_close(p_star, mean)
        return
    assert not torch.allclose(p_star, mean, atol=1e-3)
    emb = ctx.backbone.embeddings.detach()
    skip = special_ids(ctx.backbone.tokenizer)
    pool = [i for i in range(emb.shape[0]) if i not in skip][:VOCAB_TOP_K]
    ids = [int((emb[pool] == row).all(-1).nonzero()[0, 0]) for row in p_star]  # each row is a vocabulary row
    assert len(set(ids)) == PROMPT_LENGTH
    assert torch.equal(
        p_star, mpt_student(_ctx(model_dirs["t5"], tmp_path, method__mpt__init=init), teachers).shared_prompt.detach()
    )


@pytest.mark.parametrize("weight, teacher_calls", [(0.0, 0), (0.9, 2)])
def test_teacher_runs_only_when_distilling(model_dirs, tmp_path, monkeypatch, weight, teacher_calls):
    """λ = 0 (the decomposition-only ablation): no teacher forward at all; λ = 0.9: one per step."""
    from promptmix.backbone import PromptedModel
    from promptmix.prompts import SoftPrompt
    from promptmix.training.stages import run_stage

    random_library(tmp_path / "prompts", model_dirs["t5"])
    calls = {"teacher": 0, "student": 0}
    forward = PromptedModel.forward

    def counting(self, *args, **kwargs):
        calls["teacher" if isinstance(self.method, SoftPrompt) else "student"] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(PromptedModel, "forward", counting)
    result = run_stage(
        config(
            "mpt-source",
            model_dirs["t5"],
            tmp_path,
            library__sources=["sst2", "rte"],
            distill__weight=weight,
            optim__max_steps=2,
            eval__every=0,
            eval__test=False,
            eval__scoring="generate",
        )
    )
    assert result.completed
    assert calls["teacher"] == teacher_calls and calls["student"] >= 2


@pytest.mark.parametrize("kind", ["t5", "llama"])
def test_class_label_init_puts_the_label_words_first(model_dirs, tmp_path, kind):
    """Lester et al.'s class-label init: vector i = the mean embedding of label word i's tokens
    (as the word follows the input), the rest = the vocab draw of the same seed."""
    from promptmix.prompts.init import initial_prompt
    from promptmix.tasks import get_task

    ctx = _ctx(model_dirs[kind], tmp_path, method__prompt_tuning__init="class-label")
    prompt = _one_task_prompts(ctx, ["cb"])["cb"]
    vocab = _one_task_prompts(_ctx(model_dirs[kind], tmp_path), ["cb"])["cb"]
    tok, table = ctx.backbone.tokenizer, ctx.backbone.embeddings.detach().float()
    words = get_task("cb").label_words
    assert len(words) == 3 and PROMPT_LENGTH == 4
    for i, word in enumerate(words):
        ids = [t for t in tok(" " + word, add_special_tokens=False)["input_ids"] if t not in tok.all_special_ids]
        assert torch.allclose(prompt[i], table[ids].mean(0)), word
    assert torch.equal(prompt[3], vocab[3])  # past the labels: the vocab draw, unchanged
    with pytest.raises(ValueError, match="label words"):
        initial_prompt(table, 4, "class-label", tokenizer=tok, label_words=None)
