"""Pipelines of training stages sharing one backbone, such as the README's main job (prompt
tuning, ATTEMPT and MPT on a few-shot target from the shipped source prompts -> a table) or
the whole chain from source prompts on (``configs/cpu/pipeline-sources.yaml``).

A pipeline YAML (``configs/cpu/pipeline-sources.yaml``) lists stages, each a preset plus overrides::

    root: runs/pipeline-cpu                 # every stage runs in <root>/<name>; "{root}" expands
    common: {library.root: "{root}/prompts"}   # dotted overrides of every stage
    stages:
      - {name: sources, config: source.yaml}                       # paths relative to this file
      - {name: attempt, config: attempt.yaml, label: ATTEMPT}
      - {name: mpt, config: mpt-target.yaml, label: MPT, set: {library.mpt_source: "{root}/mpt-source"}}

``set`` holds dotted overrides for one stage; ``label`` makes the stage a row of the printed
table. Every stage's config is built and validated when the file is loaded, so a mistake in
the last stage is reported before the first one trains.

Results: each stage's run directory, plus ``<root>/pipeline.json`` (every stage's result)
and ``<root>/table.md`` (the printed table).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from promptmix._io import atomic_write_text
from promptmix._validation import NonEmptyStr, validate, validated
from promptmix.configio import apply_overrides, read_yaml
from promptmix.rundirs.read import register_run_tasks
from promptmix.training.config import TrainConfig
from promptmix.training.rundir import RunExistsError, StageResult, check_fresh
from promptmix.training.runs import load_backbone_for, make_accelerator
from promptmix.training.stages import check_task_names, run_stage


@validated
class PipelineStage:
    name: NonEmptyStr
    """Run subdirectory under root."""
    config: NonEmptyStr
    """The stage's preset (a TrainConfig YAML), relative to the pipeline file."""
    label: str | None = None
    """Row label in the final table (None: not a row)."""
    set: dict[str, Any] = field(default_factory=dict)
    """Dotted overrides for this stage."""


@validated
class PipelineFile:
    """What a pipeline YAML holds (read by :func:`promptmix._validation.validate`)."""

    root: str = "runs/pipeline"
    common: dict[str, Any] = field(default_factory=dict)
    """Dotted overrides of every stage."""
    stages: Annotated[list[PipelineStage], Field(min_length=1, validate_default=True)] = field(default_factory=list)

    def __post_init__(self) -> None:  # a rule between the stages
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline stage names must be unique, got {names}")


@validated
class PipelineConfig(PipelineFile):
    """A pipeline file where it lies, with the command line's overrides."""

    base_dir: str = "."
    """Directory the stage presets are relative to (the pipeline file's)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Applied to every stage last (the CLI's --set)."""

    def __post_init__(self) -> None:  # every stage's config, and one model section across them
        super().__post_init__()
        configs = [self.stage_config(s) for s in self.stages]
        models = {json.dumps(dataclasses.asdict(c.model), sort_keys=True) for c in configs}
        if len(models) > 1:
            raise ValueError("every pipeline stage must use the same model section (they share one loaded backbone)")

    def stage_config(self, stage: PipelineStage) -> TrainConfig:
        path = Path(self.base_dir) / stage.config
        source = f"pipeline stage {stage.name!r} ({path})"

        def build(overrides: dict[str, Any]) -> TrainConfig:
            data = apply_overrides(read_yaml(path), {**self.common, **stage.set, **overrides})
            data = apply_overrides(_expand(data, self.root), {"run.dir": str(Path(self.root) / stage.name)})
            return TrainConfig.from_dict(data, source)

        try:
            return build(self.overrides)
        except ValueError as err:
            blamed = []  # the --set overrides without which the error goes away or changes: name them
            for key in self.overrides:
                try:
                    build({k: v for k, v in self.overrides.items() if k != key})
                except ValueError as other:
                    if str(other) == str(err):
                        continue
                blamed.append(f"--set {key}={self.overrides[key]}")
            if not blamed:
                raise
            raise OverrideError(f"{', '.join(blamed)} (stage {stage.name!r}){str(err)[len(source) :]}") from None

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None, root: str | None = None) -> PipelineConfig:
        spec = validate(PipelineFile, read_yaml(path), str(path))
        try:
            return cls(
                root=root or spec.root,
                common=spec.common,
                stages=spec.stages,
                base_dir=str(Path(path).resolve().parent),
                overrides=overrides or {},
            )
        except OverrideError:
            raise  # about the command line, not the pipeline file
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


class OverrideError(ValueError):
    """A --set override is what makes a stage's config invalid (the message names it)."""


def _expand(value: Any, root: str) -> Any:
    """Replace "{root}" in every string of a config tree."""
    if isinstance(value, dict):
        return {k: _expand(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, root) for v in value]
    return value.replace("{root}", root) if isinstance(value, str) else value


def run_pipeline(
    config: PipelineConfig, *, resume: bool = False, echo: Any = print
) -> list[tuple[PipelineStage, StageResult]]:
    """Run every stage in order (one backbone, one Accelerator) and print the table."""
    started = time.monotonic()
    configs = [config.stage_config(s) for s in config.stages]
    if not resume:  # before the backbone loads, and naming the pipeline's own flag
        for stage, stage_config in zip(config.stages, configs):
            try:
                check_fresh(Path(stage_config.run.dir), resume)
            except RunExistsError:
                raise RunExistsError(
                    f"{config.root} already holds a run (stage {stage.name!r} in {stage_config.run.dir}); "
                    "pass --resume to continue it or choose another --root"
                ) from None
    for stage_config in configs:
        if resume:  # the task files each stage's run keeps: resuming needs no --tasks-dir (as run_stage does)
            register_run_tasks(stage_config.run.dir)
        check_task_names(stage_config)
    accelerator = make_accelerator(configs[0])
    echo(f"loading backbone {configs[0].model.name} ...")
    backbone = load_backbone_for(configs[0])
    results = []
    for i, (stage, stage_config) in enumerate(zip(config.stages, configs), 1):
        echo(
            f"[{i}/{len(configs)}] {stage.name}: {stage_config.stage} "
            f"on {', '.join(stage_config.data.tasks or stage_config.library.sources)}"
        )
        result = run_stage(stage_config, resume=resume, backbone=backbone, accelerator=accelerator)
        echo(f"    done in {result.seconds:.0f} s; dev {_score(result.dev)}, test {_score(result.test)}")
        results.append((stage, result))
    table = format_table(results, time.monotonic() - started, configs)
    if accelerator.is_main_process:
        root = Path(config.root)
        atomic_write_text(root / "table.md", table + "\n")
        record = [{"name": s.name, "label": s.label, **r.to_dict()} for s, r in results]
        atomic_write_text(root / "pipeline.json", json.dumps(record, indent=2) + "\n")
        echo(table)
    return results


def _score(metrics: dict[str, Any]) -> str:
    score = metrics.get("score")
    return f"{score:.1f}" if isinstance(score, (int, float)) else "-"


def format_table(
    results: list[tuple[PipelineStage, StageResult]], seconds: float, configs: list[TrainConfig] | None = None
) -> str:
    """The Markdown table of the labelled stages (and the source prompts' dev scores), with how
    the rows were scored and on what training data."""
    lines = [
        "| method | trainable params | target dev score | target test score | train time |",
        "|---|---:|---:|---:|---:|",
    ]
    for stage, result in results:
        if stage.label is not None:
            lines.append(
                f"| {stage.label} | {result.trainable_parameters:,} | {_score(result.dev)} | "
                f"{_score(result.test)} | {result.seconds:.0f} s |"
            )
    sources = [r for _, r in results if r.stage == "source" and not r.extra.get("mixture")]
    for result in sources:
        scores = ", ".join(
            f"{task} {m['score']:.1f}" for task, m in result.dev.items() if isinstance(m, dict) and "score" in m
        )
        lines.append(f"\nsource prompts (dev score): {scores}")
    labelled = [c for (stage, _), c in zip(results, configs or []) if stage.label is not None]
    if labelled:
        data, scoring = labelled[0].data, sorted({c.eval.scoring for c in labelled})
        shots = f"k = {data.few_shot_k} training examples per class" if data.few_shot_k else "all training examples"
        how = "rank classification over the label words" if scoring == ["rank"] else "see eval.scoring"
        lines.append(
            f"\nscoring: {', '.join(scoring)} ({how}); "
            f"target {', '.join(data.tasks)}, {shots}, {labelled[0].optim.max_steps} steps per method"
        )
    lines.append(f"\ntotal wall time {seconds / 60:.1f} min")
    return "\n".join(lines)
