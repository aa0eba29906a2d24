"""The parts of a run's config that reading the run back needs, and reading them.

A run's ``config.yaml`` holds its whole :class:`promptmix.training.config.TrainConfig`. Reading
the run back needs two of its sections: ``data`` (which examples of each task, under which
protocol, and the input limit) and ``eval`` (how they are scored), plus the backbone it trained
on. Those sections are defined here, below training, which composes them into its TrainConfig,
so that reading a run imports nothing of training. config.yaml is parsed as every config file
is (:func:`promptmix.configio.read_yaml`: YAML 1.2 numbers, alias bombs refused) and the
sections are validated as training validates them (:func:`promptmix._validation.validate`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from promptmix._validation import NonNegativeInt, PositiveFloat, PositiveInt, validate, validated
from promptmix.configio import apply_overrides, option, read_yaml, require
from promptmix.rundirs.layout import CONFIG

Scoring = Literal["rank", "generate"]
Mixing = Literal["proportional", "stochastic"]
LabelFormat = Literal["words", "index"]
Select = Literal["mean", "per-task"]
SCORING, MIXING, LABEL_FORMATS, SELECT = get_args(Scoring), get_args(Mixing), get_args(LabelFormat), get_args(Select)
EPOCH = "epoch"  # eval.every: once per epoch


@validated
class DataConfig:
    data_dir: str | None = option(
        "directory of the datasets in their original layouts (relative to the cwd)", "../shared/data"
    )
    tasks: list[str] = option(
        "tasks trained on (targets; sources for 'source'); empty: from the library sources", factory=list
    )
    task_options: dict[str, dict[str, Any]] = option(
        "options for promptmix.tasks.get_task of each task when it is used, e.g. {qqp: {files: {train: ...}}}",
        factory=dict,
    )
    max_source_length: PositiveInt | None = option(
        "input token budget; None uses each task's own (256; MultiRC 348; MRQA 512)", None
    )
    max_target_length: PositiveInt = option("target token budget", 128)
    max_train_examples: PositiveInt | None = option("seeded cap on each task's training split", None)
    max_dev_examples: PositiveInt | None = option("seeded cap on each task's dev split (None: all)", None)
    max_test_examples: PositiveInt | None = option("seeded cap on each task's test split (None: all)", None)
    few_shot_k: PositiveInt | None = option("train on k examples per class (k in total for non-classification)", None)
    few_shot_short_class: Literal["error", "all"] = option(
        "a class with fewer than few_shot_k training examples: 'error' refuses the draw, naming the class; 'all' "
        "trains on all of that class's examples in every draw (CB has 16 'neutral' in all) and k of each other class",
        "error",
    )
    split_seed: int = option("seed of the dev/test partition, caps and (unless few_shot_seed) few-shot draws", 42)
    few_shot_seed: int | None = option(
        "seed of the few-shot draw alone, so repeated draws (the papers average several) keep one dev/test partition; "
        "None: split_seed",
        None,
    )
    label_format: LabelFormat = option(
        "target text of classification tasks: 'words' (the label word, 'entailment'; promptmix's default) or 'index' "
        "(the label's index, '0', '1', '2', as the official ATTEMPT code trains); dev/test scoring ranks or parses the "
        "same format, metrics are unchanged. promptmix eval reads it from the run's config; predict and serve answer "
        "in label words, so serve an index-trained run's prompts knowing that",
        "words",
    )
    mixing: Mixing = option(
        "'proportional': the tasks concatenated and shuffled, each task's share of an epoch its mixing rate "
        "(ATTEMPT-m); 'stochastic': MPT's task sampling, each batch K tasks (K from [2, kappa]) drawn by rate and the "
        "batch split among them in proportion to their rates",
        "proportional",
    )
    mixing_cap: PositiveInt | None = option(
        "T5's examples-proportional mixing limit K: a task's rate counts at most this many examples, and an epoch is "
        "sum(min(n, cap)) examples (both mixings); None: no cap",
        None,
    )
    mixing_temperature: PositiveFloat = option(
        "mixing rates ∝ min(n, cap) ** (1 / temperature) (T5 Sec. 3.5.2; both mixings): 1 keeps the examples' "
        "proportions, larger flattens them toward equal",
        1.0,
    )
    kappa: Annotated[int, Field(ge=2)] | None = option(
        "MPT: the most tasks in one batch (K drawn from [2, κ]); None: all tasks", None
    )
    length_grouped: bool = option(
        "batches of similar input length (dynamic padding wastes less); on a mixture most of a batch is then one task, "
        "where the papers concatenate and shuffle (false)",
        False,
    )
    multi_task: bool = option(
        "several data.tasks: one multi-task run (ATTEMPT-m, MPT-m) instead of one run per task in <run>/<task>", False
    )

    def __post_init__(self) -> None:  # a rule between the items of one list, which no bound can say
        require(len(set(self.tasks)) == len(self.tasks), f"data.tasks has duplicates: {self.tasks}")


@validated
class EvalConfig:
    every: NonNegativeInt | Literal["epoch"] = option(
        "evaluate on dev every N optimizer steps (0: only at the end), or 'epoch': after every epoch's last batch, as "
        "the official ATTEMPT and MPT code does (keeping the best); the last step is always evaluated",
        1000,
    )
    scoring: Scoring = option(
        "'rank' (rank classification over label words, where a task has them) or 'generate'", "rank"
    )
    batch_size: PositiveInt = option("examples per evaluation forward", 32)
    max_new_tokens: PositiveInt = option("generation length", 16)
    test: bool = option("score the best checkpoint on the test split at the end", True)
    at_start: bool = option(
        "also evaluate the initial prompt, before the first step (a transferred start's head start, "
        "measured; the step-0 prompt can be the best)",
        False,
    )
    select: Select = option(
        "checkpoint selection of a multi-task run: 'mean' keeps the checkpoint with the best dev mean over the targets "
        "(<run>/method); 'per-task' keeps, in addition, each target's own best checkpoint "
        "(<run>/best-per-task/<task>/, the whole method at that target's best step, shared parts included) and scores "
        "each target on test with it, as training one run per target would (a target without a dev value: with "
        "<run>/method)",
        "mean",
    )
    patience: PositiveInt | None = option(
        "stop training once this many dev evaluations in a row bring no new best (the dev curve has flattened); "
        "None: train to the end",
        None,
    )


@validated
class SavedConfig:
    """What reading a run takes from its config.yaml (see the module docstring)."""

    data: DataConfig = option("tasks, splits and input limits", factory=DataConfig)
    eval: EvalConfig = option("dev and test scoring", factory=EvalConfig)
    backbone: str | None = option("model.name: the backbone the run trained on (None: no config.yaml)", None)


def saved_config(
    run: str | os.PathLike, overrides: Mapping[str, Any] | None = None, *, tasks: Sequence[str] = ()
) -> SavedConfig:
    """The data and eval sections and the backbone of ``<run>/config.yaml``, ``overrides``
    (``{"data.data_dir": ...}``) applied and validated; a run without a config.yaml (a bare
    save_method directory) gets the defaults for ``tasks``."""
    path = Path(run) / CONFIG
    if path.is_file():
        written = read_yaml(path)
        model = written.get("model")
        sections = {
            "data": written.get("data"),
            "eval": written.get("eval"),
            "backbone": model.get("name") if isinstance(model, dict) else None,
        }
    else:
        sections = {"data": {"tasks": list(tasks)}}
    source = str(path) if path.is_file() else "<defaults>"
    return validate(SavedConfig, apply_overrides(sections, dict(overrides or {})), source)
