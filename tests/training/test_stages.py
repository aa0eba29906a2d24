"""Stages beyond the main job: ATTEMPT-m vs one run per task, few-shot, SPoT, baselines."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
from trainhelpers import PROMPT_LENGTH, config, model_dirs, random_library  # noqa: F401  (fixture)

D = 32  # tiny model width
R = 8  # attn_dim in the tiny configs


def _run_stage(stage, model_dir, tmp_path, **overrides):
    """Run ``stage`` on trainhelpers' small config for the model in ``model_dir`` (``overrides``
    as config's: dotted keys with ``__`` for ``.``)."""
    from promptmix.training.stages import run_stage

    return run_stage(config(stage, model_dir, tmp_path, **overrides))


def test_attempt_m_shares_g_and_mixes_tasks(model_dirs, tmp_path):
    random_library(tmp_path / "prompts", model_dirs["t5"])
    result = _run_stage(
        "attempt",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["cb", "rte"],
        data__multi_task=True,
        library__sources=["sst2", "rte"],
        library__init_from="sst2",
        optim__batch_size=8,
    )
    assert result.tasks == ["cb", "rte"] and set(result.test) == {"cb", "rte", "score"}
    assert result.trainable_parameters == 2 * PROMPT_LENGTH * D + 2 * D * R + 2 * D  # one shared G
    record = json.loads((tmp_path / "run" / "method" / "method.json").read_text())
    assert record["config"]["tasks"] == ["cb", "rte"] and record["config"]["shared_attention"]


def test_one_run_per_task_without_multi_task(model_dirs, tmp_path):
    random_library(tmp_path / "prompts", model_dirs["t5"])
    result = _run_stage(
        "mpt-source",
        model_dirs["t5"],
        tmp_path,
        library__sources=["sst2", "rte"],
        run__dir=str(tmp_path / "mpt-source"),
    )
    targets = _run_stage(
        "mpt-target",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["cb", "rte"],
        library__mpt_source=str(tmp_path / "mpt-source"),
    )
    assert result.completed and targets.completed
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.is_dir()) == ["cb", "rte"]
    for task in ("cb", "rte"):
        record = json.loads((tmp_path / "run" / task / "method" / "method.json").read_text())
        assert record["config"]["tasks"] == [task]
    combined = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(combined["dev"]) == {"cb", "rte", "score"} and combined["trainable_parameters"] == 2 * (
        PROMPT_LENGTH * D + PROMPT_LENGTH + D
    )


def test_few_shot_smaller_than_a_batch(model_dirs, tmp_path):
    """k = 2 per class on CB is 6 examples; batches of 8 are still full (the sampler reshuffles)."""
    result = _run_stage(
        "prompt-tuning",
        model_dirs["llama"],
        tmp_path,
        data__tasks=["cb"],
        data__few_shot_k=2,
        optim__batch_size=8,
        optim__max_steps=2,
    )
    assert result.completed and result.steps == 2


def test_spot_generic_source_and_init(model_dirs, tmp_path):
    from promptmix.prompts.library import PromptLibrary

    _run_stage(
        "source",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["sst2", "rte"],
        library__mixture_prompt="mix",
        run__dir=str(tmp_path / "mix"),
    )
    record = PromptLibrary(tmp_path / "prompts").get("mix")
    assert record.task == "sst2+rte" and "score" in record.metrics
    result = _run_stage(
        "prompt-tuning",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["cb"],
        library__init_from="mix",
        optim__max_steps=1,
        eval__every=0,
    )
    assert result.completed


# LoRA rank 8 on q and v (32 -> 32) of 6 attention blocks: 2 encoder self, 2 decoder self, 2 cross.
@pytest.mark.parametrize("kind, expected", [("lora", 6 * 2 * (8 * D + D * 8)), ("full", None)])
def test_finetune_baselines(model_dirs, tmp_path, kind, expected):
    from promptmix.loading import load_backbone

    result = _run_stage(
        "finetune",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["cb"],
        baseline__kind=kind,
        optim__lr=3e-4,
        optim__max_steps=2,
    )
    full = sum(p.numel() for p in load_backbone(model_dirs["t5"]).model.parameters())
    assert result.trainable_parameters == (expected if expected is not None else full)
    saved = safetensors.torch.load_file(tmp_path / "run" / "model" / "trainable.safetensors")
    assert all(("lora_" in name) == (kind == "lora") for name in saved)
    assert json.loads((tmp_path / "run" / "model" / "model.json").read_text())["kind"] == kind


def test_bitfit_on_a_bias_free_model_says_why(model_dirs, tmp_path):
    with pytest.raises(ValueError, match="no bias parameters"):
        _run_stage("finetune", model_dirs["t5"], tmp_path, data__tasks=["cb"], baseline__kind="bitfit")


@pytest.mark.parametrize("probe_steps", [None, 3])
def test_spot_targeted_probes_as_long_as_the_paper_and_picks_the_most_similar_source(model_dirs, tmp_path, probe_steps):
    """library.probe_steps null: the probe trains 20 epochs on CB's 18 fixture examples
    (below 10,000: ATTEMPT App. C.6), i.e. 20 × ceil(18 / 4) steps; then the target starts from
    the source prompt most cosine-similar to the probe's prompt."""
    import math

    import torch.nn.functional as F

    from promptmix.loading import load_backbone
    from promptmix.prompts.checkpoint import load_method
    from promptmix.prompts.library import PromptLibrary

    sources = random_library(tmp_path / "prompts", model_dirs["t5"])
    result = _run_stage(
        "prompt-tuning",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["cb"],
        library__init_from="auto",
        library__sources=sources,
        library__probe_steps=probe_steps,
        optim__max_steps=1,
        eval__every=0,
    )
    probe = json.loads((tmp_path / "run" / "probe" / "results.json").read_text())
    assert probe["steps"] == (20 * math.ceil(18 / 4) if probe_steps is None else probe_steps)
    backbone = load_backbone(model_dirs["t5"])
    target = load_method(tmp_path / "run" / "probe" / "method", backbone).task_prompt("cb").mean(0)
    lib = PromptLibrary(tmp_path / "prompts")
    sims = {s: float(F.cosine_similarity(target, lib.load(s, backbone).mean(0), dim=0)) for s in sources}
    assert result.extra["spot_targeted"]["cb"]["chosen"] == max(sims, key=sims.get)


def test_source_prompts_carry_a_card(model_dirs, tmp_path):
    """The library entry of a source prompt says how good it is beside the majority-class floor
    (here computed by hand from the fixture files) and how it was made."""
    from collections import Counter

    from promptmix.prompts.library import PromptLibrary
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.stages import run_stage

    cfg = config(
        "source", model_dirs["t5"], tmp_path, data__tasks=["sst2"], eval__patience=1, optim__max_steps=6, eval__every=2
    )
    result = run_stage(cfg)
    card = PromptLibrary(tmp_path / "prompts").get("sst2").card
    data = load_tasks(cfg.data, ["sst2"])["sst2"]
    guess = Counter(ex.target for ex in data.train).most_common(1)[0][0]
    majority = 100 * sum(ex.target == guess for ex in data.dev) / len(data.dev)
    assert card["metric"] == "accuracy" and card["majority_dev_score"] == pytest.approx(majority)
    by_answer = {w: 100 * sum(ex.target == w for ex in data.dev) / len(data.dev) for w in ("negative", "positive")}
    best = max(by_answer, key=by_answer.get)
    assert (card["best_constant_answer"], card["best_constant_dev_score"]) == (best, pytest.approx(by_answer[best]))
    assert card["dev_score"] == result.dev["sst2"]["accuracy"] and card["best_step"] == result.best_step
    assert card["examples_seen"] == result.best_step * 4 and card["seed"] == 42
    assert card["settings"]["prompt_length"] == PROMPT_LENGTH and card["settings"]["patience"] == 1
    assert card["command"] and "versions" in card and card["git_revision"]
    # patience 1: the run ends at the first dev evaluation without a new best
    assert card["steps"] == result.steps <= 6 and (card["steps"] == 6 or card["early_stopped"])


def test_the_floor_is_the_best_constant_answer_not_the_majority_class():
    """MRPC scores the mean of F1 (of "equivalent") and accuracy. With 7 "not_equivalent" and 3
    "equivalent" dev examples, the majority answer scores (F1 0 + accuracy 70) / 2 = 35.0, while
    answering "equivalent" everywhere scores (F1 2*3/(3+10) = 46.15 + accuracy 30) / 2 = 38.08:
    the rarer answer is the floor a prompt must clear."""
    from promptmix.rundirs.data import TaskData
    from promptmix.tasks import get_task
    from promptmix.tasks.example import Example
    from promptmix.training.stages import best_constant_score, constant_score, majority_score

    def examples(n_not: int, n_eq: int) -> list[Example]:
        labels = ["not_equivalent"] * n_not + ["equivalent"] * n_eq
        return [Example(source=f"s{i}", target=label, task="mrpc", label=label) for i, label in enumerate(labels)]

    data = TaskData(get_task("mrpc"), train=examples(6, 4), dev=examples(7, 3), test=[])
    assert majority_score(data) == pytest.approx(35.0)
    assert constant_score(data, "equivalent") == pytest.approx((100 * 6 / 13 + 30) / 2)
    answer, score = best_constant_score(data)
    assert answer == "equivalent" and score == pytest.approx(38.0769, abs=1e-4)
    assert constant_score(data, "equivalent", "test") is None and best_constant_score(data, "test") is None


def test_few_shot_seed_redraws_the_training_set_and_keeps_dev_and_test(tmp_path):
    """data.few_shot_seed changes the k-shot draw alone; split_seed would also move dev/test."""
    from trainhelpers import FIXTURES

    from promptmix.rundirs.data import load_tasks
    from promptmix.training.config import DataConfig

    def splits(**extra):
        (data,) = load_tasks(DataConfig(data_dir=str(FIXTURES), few_shot_k=2, **extra), ["cb"]).values()
        return [[ex.source for ex in part] for part in (data.train, data.dev, data.test)]

    base, redrawn, resplit = splits(), splits(few_shot_seed=7), splits(split_seed=7)
    assert base == splits(few_shot_seed=42)  # None means split_seed
    assert redrawn[0] != base[0] and redrawn[1:] == base[1:]
    assert resplit[1:] != base[1:]
