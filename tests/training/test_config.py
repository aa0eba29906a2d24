"""Every YAML preset loads and validates; bad configs fail naming the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from promptmix.training.config import TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Files named _*.yaml and base/ are shared fragments (included by presets), not presets.
PRESETS = sorted(
    p
    for p in CONFIGS.rglob("*.yaml")
    if not p.name.startswith("_")
    and p.parent.name not in ("base", "accelerate")
    and p.name not in ("base.yaml", "pipeline.yaml", "pipeline-sources.yaml")
)


def test_there_are_presets_for_the_papers_experiments():
    names = {str(p.relative_to(CONFIGS)) for p in PRESETS}
    for expected in (
        "source/prompts.yaml",
        "attempt/prior.yaml",
        "attempt/glue.yaml",
        "attempt/superglue-m.yaml",
        "attempt/mrqa.yaml",
        "attempt/others-m.yaml",
        "attempt/fewshot-k16.yaml",
        "attempt/ablation-no-target.yaml",
        "mpt/source.yaml",
        "mpt/glue-m.yaml",
        "mpt/fewshot-k32.yaml",
        "mpt/ablation-no-hidden.yaml",
        "baselines/spot-targeted.yaml",
        "baselines/lora.yaml",
        "cpu/attempt.yaml",
    ):
        assert expected in names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_preset_loads_and_validates(path):
    config = load_config(path)
    assert config.run.dir.startswith("runs/")
    # Presets say every choice: the resolved config round-trips through YAML unchanged.
    assert TrainConfig.from_dict(yaml.safe_load(config.to_yaml())) == config
    if path.parent.name not in ("cpu", "smollm2"):  # the SmolLM2 presets are sized for CPU, not the papers
        assert config.model.name in ("t5-base", "facebook/bart-base")
        assert config.optim.weight_decay == 1e-5 and config.optim.warmup_steps in (500, 30)
        assert config.eval.scoring == "generate"  # the papers' text-to-text protocol
        assert config.method.mpt.init == "vocab" and not config.distill.hidden_embeddings
        assert config.library.probe_steps is None  # SPoT-t probes as long as the paper


def test_paper_hyperparameters():
    attempt = load_config(CONFIGS / "attempt" / "superglue.yaml")
    assert (attempt.optim.lr, attempt.optim.group_lr) == (0.3, {"attention": 0.1})
    assert (
        attempt.method.prompt_tuning.prompt_length == 100
        and attempt.method.attempt.attn_dim == 100
        and attempt.optim.batch_size == 32
    )
    assert load_config(CONFIGS / "attempt" / "glue.yaml").optim.group_lr == {"attention": 0.3}
    assert load_config(CONFIGS / "attempt" / "glue-m.yaml").data.multi_task
    mpt = load_config(CONFIGS / "mpt" / "superglue.yaml")
    assert (mpt.optim.lr, mpt.optim.group_lr) == (0.3, {"task_vectors": 0.4})
    source = load_config(CONFIGS / "mpt" / "source.yaml")
    assert source.distill.weight == 0.9 and source.data.mixing == "stochastic" and source.optim.epochs == 5
    assert load_config(CONFIGS / "attempt" / "ablation-no-attention.yaml").optim.group_lr == {}
    decomposition_only = load_config(CONFIGS / "mpt" / "ablation-decomposition-only.yaml")
    assert decomposition_only.distill.weight == 0.0 and decomposition_only.method.mpt.init == "vocab"
    for k in (
        4,
        16,
        32,
    ):  # the papers' few-shot PT: one prompt on the 8 GLUE tasks, then transferred (ATTEMPT App. C.8)
        fewshot = load_config(CONFIGS / "baselines" / f"spot-generic-fewshot-k{k}.yaml")
        assert fewshot.stage == "prompt-tuning" and fewshot.data.few_shot_k == k
        assert fewshot.library.init_from == load_config(CONFIGS / "source" / "spot-generic.yaml").library.mixture_prompt
        vocab = load_config(CONFIGS / "baselines" / f"prompt-tuning-fewshot-k{k}.yaml")  # prompt tuning from vocabulary
        assert (vocab.stage, vocab.data.few_shot_k, vocab.library.init_from, vocab.method.prompt_tuning.init) == (
            "prompt-tuning",
            k,
            None,
            "vocab",
        )
        assert vocab.run.dir != fewshot.run.dir
    # G's rate (ATTEMPT App. C.5): 0.1 on SuperGLUE and the Others multi-task run, 0.3 elsewhere
    assert load_config(CONFIGS / "attempt" / "others.yaml").optim.group_lr == {"attention": 0.3}
    assert load_config(CONFIGS / "attempt" / "others-m.yaml").optim.group_lr == {"attention": 0.1}
    for method in ("attempt", "mpt"):  # MultiRC trains apart from the -m SuperGLUE group (ATTEMPT App. C.7)
        assert "multirc" not in load_config(CONFIGS / method / "superglue-m.yaml").data.tasks
    glue8 = load_config(CONFIGS / "source" / "spot-generic.yaml").data.tasks
    assert sorted(glue8) == sorted(["mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola"])


def test_pipeline_presets_validate_every_stage():
    from promptmix.training.pipeline import PipelineConfig

    # the main job: three methods on few-shot CB from the shipped sources, at one budget
    pipeline = PipelineConfig.load(CONFIGS / "cpu" / "pipeline.yaml")
    stages = {s.name: pipeline.stage_config(s) for s in pipeline.stages}
    assert [c.stage for c in stages.values()] == ["prompt-tuning", "attempt", "mpt-target"]
    assert stages["mpt"].library.mpt_source == "promptmix:smollm2-135m/mpt-source"
    from promptmix.prompts.library import PromptLibrary, resolve_library_root

    shipped = PromptLibrary(resolve_library_root("promptmix:smollm2-135m")).names()
    assert sorted(stages["attempt"].library.sources) == sorted(shipped) == ["mnli", "sst2"]
    assert stages["attempt"].library.init_from == "mnli"
    assert {
        (c.library.root, c.model.name, tuple(c.data.tasks), c.data.few_shot_k, c.optim.max_steps, c.run.seed)
        for c in stages.values()
    } == {("promptmix:smollm2-135m", "smollm2-135m", ("cb",), 16, 100, 1)}
    # the calibrated recipe, with the method rates scaled as the prompt rate
    assert {(c.optim.lr, c.optim.warmup_ratio) for c in stages.values()} == {(0.1, 0.1)}
    assert stages["attempt"].optim.group_lr == {"attention": 0.1}
    assert stages["mpt"].optim.group_lr == {"task_vectors": 0.13}
    assert [c.run.dir for c in stages.values()] == [
        f"runs/pipeline-cpu/{n}" for n in ("prompt-tuning", "attempt", "mpt")
    ]
    # the whole chain from scratch, sources included, into its own library
    pipeline = PipelineConfig.load(CONFIGS / "cpu" / "pipeline-sources.yaml")
    stages = {s.name: pipeline.stage_config(s) for s in pipeline.stages}
    assert [c.stage for c in stages.values()] == ["source", "prompt-tuning", "attempt", "mpt-source", "mpt-target"]
    assert stages["mpt"].library.mpt_source == "runs/pipeline-cpu/mpt-source"
    assert all(
        c.library.root == "runs/pipeline-cpu/prompts" and c.model.name == "smollm2-135m" for c in stages.values()
    )


def test_accelerate_configs_parse():
    for name in ("ddp", "fsdp", "deepspeed_zero2"):
        data = yaml.safe_load((CONFIGS / "accelerate" / f"{name}.yaml").read_text())
        assert data["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.lrr=0.1"], "optim: unknown key(s) ['lrr'] (did you mean lr?)"),
        (["optimiser.lr=0.1"], "unknown section(s) ['optimiser'] (did you mean optim?)"),
        (["optim.lr=fast"], "optim.lr: expected float, got 'fast'"),
        (["data.mixing=random"], "data.mixing must be one of"),
        (["optim.batch_size=30", "optim.gradient_accumulation_steps=4"], "not divisible"),
        (["stage=attempt"], "needs library.sources"),
        (["stage=finetune", "model.backbone_eval_mode=true"], "backbone_eval_mode applies to a frozen backbone"),
    ],
)
def test_bad_configs_name_the_problem(overrides, message):
    with pytest.raises(ValueError) as err:
        load_config(None, ["data.tasks=[rte]", *overrides])
    assert message in str(err.value)


def test_include_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("optim: {lr: 0.1, group_lr: {attention: 0.2}}\ndata: {tasks: [rte]}\n")
    (tmp_path / "child.yaml").write_text(
        "include: base.yaml\nstage: attempt\noptim: {warmup_steps: 5}\nlibrary: {sources: [a], init_from: a}\n"
    )
    config = load_config(tmp_path / "child.yaml", ["optim.epochs=3", "data.tasks=[rte, cb]"])
    assert (config.optim.lr, config.optim.group_lr, config.optim.warmup_steps, config.optim.epochs) == (
        0.1,
        {"attention": 0.2},
        5,
        3.0,
    )
    assert config.data.tasks == ["rte", "cb"]
    with pytest.raises(ValueError, match="is a 'attempt' config but stage 'source'"):
        load_config(tmp_path / "child.yaml", stage="source")


def _leaves(section: dict, prefix: str = "") -> list[str]:
    """Dotted keys of a config dict (a non-empty mapping is a section, an empty one a value)."""
    keys = []
    for name, value in section.items():
        keys += _leaves(value, f"{prefix}{name}.") if isinstance(value, dict) and value else [prefix + name]
    return keys


def test_train_help_lists_every_config_key_with_type_default_and_help(capsys):
    from promptmix.cli import main
    from promptmix.configio import config_keys

    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    keys = config_keys(TrainConfig)
    assert [k.key for k in keys] == _leaves(load_config(None, ["data.tasks=[rte]"]).to_dict())
    flat = " ".join(out.split())
    for key in keys:
        assert key.help, f"{key.key} has no help text"
        assert f"{key.key}: {key.type} = {json.dumps(key.default)}" in out
        assert " ".join(key.help.split()) in flat, key.key
    assert "method.attempt.attn_dim: int = 100" in out and 'method.mpt.init: str = "vocab"' in out


def test_yaml_12_numbers_and_strict_types():
    assert load_config(None, ["data.tasks=[rte]", "optim.lr=1e-3", "optim.weight_decay=0"]).optim.lr == 0.001
    for override, message in [
        ("optim.lr=true", "optim.lr: expected float, got True"),
        ("run.seed=1.5", "run.seed: expected int, got 1.5"),
        ("optim.lr=.nan", "optim.lr: expected a finite number"),
        ("method.attempt.attn_dim=0", "method.attempt.attn_dim must be >= 1, got 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            load_config(None, ["data.tasks=[rte]", override])


def test_a_run_config_with_the_old_flat_method_section_still_loads():
    old = {
        "prompt_length": 16,
        "init": "vocab",
        "init_text": None,
        "attention": "token",
        "use_target": True,
        "shared_attention": False,
        "attn_dim": 32,
        "temperature": None,
        "learn_temperature": False,
        "mpt_rank": 2,
        "mpt_init": "teacher-mean",
    }
    config = TrainConfig.from_dict(
        {"stage": "attempt", "data": {"tasks": ["rte"]}, "library": {"sources": ["a"], "init_from": "a"}, "method": old}
    )
    method = config.method
    assert (method.prompt_tuning.prompt_length, method.prompt_tuning.init, method.attempt.attention) == (
        16,
        "vocab",
        "token",
    )
    assert (method.attempt.attn_dim, method.attempt.shared_attention, method.mpt.rank, method.mpt.init) == (
        32,
        False,
        2,
        "teacher-mean",
    )
    with pytest.raises(
        ValueError, match=re.escape("method: unknown key(s) ['attn_dim'] (did you mean attempt.attn_dim")
    ):
        load_config(None, ["data.tasks=[rte]", "method.attn_dim=3", "method.attempt.use_target=false"])


PAPER_PRESETS = [p for p in PRESETS if p.parent.name not in ("cpu", "smollm2")]
# The multi-task presets' epochs, as the official configs (attempt/configs/attempt/multi_task_*.json)
# or the rule for their largest tasks; every other paper preset states its own or takes the rule (None).
MULTI_TASK_EPOCHS = {
    "attempt/superglue-m.yaml": 20,
    "mpt/superglue-m.yaml": 20,
    "attempt/others-m.yaml": 10,
    "attempt/glue-m.yaml": 10,
    "mpt/glue-m.yaml": 10,
    "attempt/mrqa-m.yaml": 5,
}


@pytest.mark.parametrize("path", PAPER_PRESETS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_print_config_shows_each_paper_presets_cadence_warmup_and_epochs(path, capsys):
    """``promptmix train STAGE --config P --print-config`` prints the resolved config without
    training: every paper preset scores dev once per epoch (the official evaluation_strategy),
    except the few-shot ones (an epoch of k-shot data is a batch or two: every 50 of their 300
    steps), warms up 500 steps (few-shot 30) and shuffles its batches; multi-task presets state
    the official configs' epochs."""
    from promptmix.cli import main

    stage = yaml.safe_load(path.read_text()).get("stage") or load_config(path).stage
    assert main(["train", stage, "--config", str(path), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_config(path).to_dict()
    name = str(path.relative_to(CONFIGS))
    fewshot = printed["data"]["few_shot_k"] is not None
    assert printed["eval"]["every"] == (50 if fewshot else "epoch"), name
    assert printed["optim"]["warmup_steps"] == (30 if fewshot else 500) and printed["optim"]["warmup_ratio"] is None
    assert printed["data"]["length_grouped"] is False and printed["data"]["label_format"] == "words"
    assert "label_format: words" in (CONFIGS / "base" / "t5-base.yaml").read_text()  # said in the preset, not a default
    if printed["data"]["multi_task"]:
        assert printed["optim"]["epochs"] == MULTI_TASK_EPOCHS[name], name
        assert (
            printed["eval"]["select"] == "mean" and "select: mean" in path.read_text()
        )  # stated, as the official code
    assert set(MULTI_TASK_EPOCHS) <= {str(p.relative_to(CONFIGS)) for p in PAPER_PRESETS}


def test_an_override_error_names_the_override_not_the_preset(tmp_path):
    """`--set optim.lrr=0.1` was reported against the preset file, which holds no such key."""
    from promptmix.training.config import load_config

    preset = tmp_path / "preset.yaml"
    preset.write_text("stage: attempt\noptim: {lr: 0.3}\n")
    with pytest.raises(ValueError) as err:
        load_config(preset, ["data.tasks=[rte]", "optim.lrr=0.1"])
    assert str(err.value).startswith("--set optim.lrr=0.1: optim: unknown key(s) ['lrr'] (did you mean lr")
    with pytest.raises(ValueError, match=r"^--set optim.lr=fast: optim.lr: expected"):
        load_config(preset, ["optim.lr=fast"])
    preset.write_text("stage: attempt\noptim: {lrr: 0.3}\n")  # the file's own mistake is still the file's
    with pytest.raises(ValueError, match=rf"^{preset}: optim: unknown key"):
        load_config(preset, ["optim.lr=0.1"])


def test_a_pipeline_override_error_names_the_override(tmp_path):
    from promptmix.training.pipeline import PipelineConfig

    (tmp_path / "pt.yaml").write_text("stage: prompt-tuning\ndata: {tasks: [rte]}\n")
    (tmp_path / "pipe.yaml").write_text("stages: [{name: pt, config: pt.yaml}]\n")
    with pytest.raises(ValueError) as err:
        PipelineConfig.load(tmp_path / "pipe.yaml", {"optim.lrr": 0.1, "optim.max_steps": 3})
    assert str(err.value).startswith("--set optim.lrr=0.1 (stage 'pt'): optim: unknown key(s) ['lrr']"), str(err.value)
