"""Training configuration: one dataclass per section, each field with its help, loaded from YAML.

A run is described by a :class:`TrainConfig` with sections ``model``, ``data``, ``method``,
``library``, ``distill``, ``baseline``, ``optim``, ``eval`` and ``run``. ``method`` holds one
section per prompt method, each that method's own config dataclass (``method.prompt_tuning``:
:class:`~promptmix.prompts.soft.SoftPromptConfig`, ``method.attempt``, ``method.mpt``); a stage
uses the one it trains. YAML presets under ``configs/`` hold the same structure
(:mod:`promptmix.configio` reads them with their ``include:`` files, applies
``--set optim.lr=0.1`` style overrides and validates the result with pydantic against the
dataclasses' types: strictly, so an int where a float is meant is fine, a string, a bool or a
non-finite number is not). Each section's ``__post_init__`` checks its values; errors name
the file, the section and the key, with the nearest valid names. ``configio.config_keys``
lists every key with its type, default and help (``promptmix train --help`` prints it).

The papers' settings are the defaults (T5-base, m = 100, Adam(W) with weight decay 1e-5,
500 warmup steps then linear decay, batch 32, lr 0.3, input length 256).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from promptmix.configio import apply_overrides, parse_override, read_yaml, validate
from promptmix.prompts import AttemptConfig, MPTConfig, SoftPromptConfig

STAGES = ("source", "prior", "attempt", "mpt-source", "mpt-target", "prompt-tuning", "finetune")
DTYPES = ("float32", "bfloat16", "float16")
MIXED_PRECISION = ("no", "bf16", "fp16")
SCORING = ("rank", "generate")
MIXING = ("proportional", "stochastic")
BASELINES = ("full", "bitfit", "lora")
OPTIMIZERS = ("adamw", "adam")
LABEL_FORMATS = ("words", "index")
EPOCH = "epoch"  # eval.every: once per epoch
SELECT = ("mean", "per-task")


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class ModelConfig:
    name: str = _help("HF hub id, local directory or alias (smollm2-135m) of the frozen backbone", "t5-base")
    dtype: str = _help("backbone parameter dtype: float32, bfloat16 or float16", "float32")
    backbone_dropout: float | None = _help(
        "None keeps the model config's dropout (the papers' choice: T5's 0.1 stays on); a float overrides it", None
    )
    backbone_eval_mode: bool = _help(
        "run the frozen backbone in eval mode while prompts train (no dropout at all; ~1/3 faster on CPU)", False
    )
    gradient_checkpointing: bool = _help(
        "recompute backbone activations in backward (HF only checkpoints modules in train mode)", False
    )

    def __post_init__(self) -> None:
        _check(bool(self.name), "model.name is empty")
        _check(self.dtype in DTYPES, f"model.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.backbone_dropout is not None:
            _check(
                0.0 <= self.backbone_dropout < 1.0,
                f"model.backbone_dropout must be in [0, 1), got {self.backbone_dropout}",
            )


@dataclass
class DataConfig:
    data_dir: str | None = _help(
        "directory of the datasets in their original layouts (relative to the cwd)", "../shared/data"
    )
    tasks: list[str] = _help(
        "tasks trained on (targets; sources for 'source'); empty: from the library sources", factory=list
    )
    task_options: dict[str, dict[str, Any]] = _help(
        "options for promptmix.tasks.get_task of each task when it is used, e.g. {qqp: {files: {train: ...}}}",
        factory=dict,
    )
    max_source_length: int | None = _help(
        "input token budget; None uses each task's own (256; MultiRC 348; MRQA 512)", None
    )
    max_target_length: int = _help("target token budget", 128)
    max_train_examples: int | None = _help("seeded cap on each task's training split", None)
    max_dev_examples: int | None = _help("seeded cap on each task's dev split (None: all)", None)
    max_test_examples: int | None = _help("seeded cap on each task's test split (None: all)", None)
    few_shot_k: int | None = _help("train on k examples per class (k in total for non-classification)", None)
    split_seed: int = _help("seed of the dev/test partition, caps and (unless few_shot_seed) few-shot draws", 42)
    few_shot_seed: int | None = _help(
        "seed of the few-shot draw alone, so repeated draws (the papers average several) keep one dev/test partition; "
        "None: split_seed",
        None,
    )
    label_format: str = _help(
        "target text of classification tasks: 'words' (the label word, 'entailment'; promptmix's default) or 'index' "
        "(the label's index, '0', '1', '2', as the official ATTEMPT code trains); dev/test scoring ranks or parses the "
        "same format, metrics are unchanged. promptmix eval reads it from the run's config; predict and serve answer "
        "in label words, so serve an index-trained run's prompts knowing that",
        "words",
    )
    mixing: str = _help(
        "'proportional': the tasks concatenated and shuffled, each task's share of an epoch its mixing rate (ATTEMPT-m); "
        "'stochastic': MPT's task sampling, each batch K tasks (K from [2, kappa]) drawn by rate and the batch split "
        "among them in proportion to their rates",
        "proportional",
    )
    mixing_cap: int | None = _help(
        "T5's examples-proportional mixing limit K: a task's rate counts at most this many examples, and an epoch is "
        "sum(min(n, cap)) examples (both mixings); None: no cap",
        None,
    )
    mixing_temperature: float = _help(
        "mixing rates ∝ min(n, cap) ** (1 / temperature) (T5 Sec. 3.5.2; both mixings): 1 keeps the examples' "
        "proportions, larger flattens them toward equal",
        1.0,
    )
    kappa: int | None = _help("MPT: the most tasks in one batch (K drawn from [2, κ]); None: all tasks", None)
    length_grouped: bool = _help(
        "batches of similar input length (dynamic padding wastes less); on a mixture most of a batch is then one task, "
        "where the papers concatenate and shuffle (false)",
        False,
    )
    multi_task: bool = _help(
        "several data.tasks: one multi-task run (ATTEMPT-m, MPT-m) instead of one run per task in <run>/<task>", False
    )

    def __post_init__(self) -> None:
        _check(self.mixing in MIXING, f"data.mixing must be one of {MIXING}, got {self.mixing!r}")
        _check(
            self.label_format in LABEL_FORMATS,
            f"data.label_format must be one of {LABEL_FORMATS}, got {self.label_format!r}",
        )
        _check(self.max_target_length >= 1, "data.max_target_length must be >= 1")
        for name in (
            "max_source_length",
            "max_train_examples",
            "max_dev_examples",
            "max_test_examples",
            "few_shot_k",
            "mixing_cap",
        ):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"data.{name} must be >= 1 or null, got {value}")
        _check(self.kappa is None or self.kappa >= 2, f"data.kappa must be >= 2 or null, got {self.kappa}")
        _check(self.mixing_temperature > 0, "data.mixing_temperature must be > 0")
        _check(len(set(self.tasks)) == len(self.tasks), f"data.tasks has duplicates: {self.tasks}")
        _check(
            all(isinstance(v, dict) for v in self.task_options.values()),
            "data.task_options maps task names to option mappings, e.g. {qqp: {skip_malformed: true}}",
        )


@dataclass
class MethodSection:
    """One config per prompt method, each the method's own dataclass (with its own checks); a
    stage uses the one it trains: ``prompt_tuning`` for source, prompt-tuning (SPoT) and the
    MPT teachers, ``attempt`` for prior and attempt, ``mpt`` for mpt-source (mpt-target takes
    the source run's). Stages that start from library prompts take ``prompt_length`` from them."""

    prompt_tuning: SoftPromptConfig = _help(
        "prompt tuning (Lester et al., 2021): new soft prompts", factory=SoftPromptConfig
    )
    attempt: AttemptConfig = _help(
        "ATTEMPT (Asai et al., 2022): the attention module G and its variants", factory=AttemptConfig
    )
    mpt: MPTConfig = _help("MPT (Wang et al., 2023): the decomposition P* ∘ (u_k v_k)", factory=MPTConfig)


@dataclass
class LibraryConfig:
    root: str = _help("prompt library directory", "prompts")
    sources: list[str] = _help("library entries used as source prompts / teachers / SPoT candidates", factory=list)
    init_from: str | None = _help(
        "entry initialising target prompts (ATTEMPT: one of sources); prompt-tuning: an entry (SPoT) or 'auto' (SPoT-t)",
        None,
    )
    save_prefix: str = _help("source stage: library entry name = prefix + task name", "")
    mixture_prompt: str | None = _help(
        "source stage: train ONE prompt on the mixture of data.tasks, saved under this name (SPoT-g)", None
    )
    attention_prior: str | None = _help("ATTEMPT: run directory of a 'prior' run whose G initialises this one", None)
    mpt_source: str | None = _help(
        "mpt-target: run directory of the 'mpt-source' run (or a shipped one, e.g. promptmix:smollm2-135m/mpt-source)",
        None,
    )
    probe_steps: int | None = _help(
        "SPoT-targeted (init_from='auto'): steps of the probe prompt-tuning run on the target; None: the paper's "
        "length (ATTEMPT App. C.6), 20 epochs below 10,000 training examples and 5 above",
        None,
    )

    def __post_init__(self) -> None:
        _check(len(set(self.sources)) == len(self.sources), f"library.sources has duplicates: {self.sources}")
        _check(self.probe_steps is None or self.probe_steps >= 1, "library.probe_steps must be >= 1 or null")


@dataclass
class DistillConfig:
    weight: float = _help("λ in L = L_task + λ (L_KL + L_hidden) (MPT Eq. 5: 0.9)", 0.9)
    temperature: float = _help(
        "softmax temperature τ of teacher and student (KL scaled by τ²); not given in the paper", 2.0
    )
    use_kl: bool = _help("include L_KL (ablation: False)", True)
    use_hidden: bool = _help("include L_hidden (ablation 'without hidden loss': False)", True)
    hidden_embeddings: bool = _help(
        "include the embedding outputs (state 0 of each stack) in L_hidden; at prompt positions that is the prompt itself, "
        "a direct prompt-to-prompt distance the paper reports as a different variant",
        False,
    )
    hidden_rms_norm: bool = _help(
        "divide every hidden vector by its RMS before the MSE: for decoder-only models whose residual stream carries "
        "massive activations (SmolLM2: mean square ~77,000 in layers 12-28), which would make L_hidden swamp the rest",
        False,
    )

    def __post_init__(self) -> None:
        _check(self.weight >= 0, "distill.weight must be >= 0")
        _check(self.temperature > 0, "distill.temperature must be > 0")


@dataclass
class BaselineConfig:
    kind: str = _help("finetune stage: 'full' (every parameter), 'bitfit' (biases only) or 'lora' (PEFT)", "full")
    lora_r: int = _help("LoRA rank", 8)
    lora_alpha: int = _help("LoRA alpha", 16)
    lora_dropout: float = _help("LoRA dropout", 0.0)
    lora_target_modules: list[str] | None = _help("LoRA target modules; None: PEFT's default for the model type", None)

    def __post_init__(self) -> None:
        _check(self.kind in BASELINES, f"baseline.kind must be one of {BASELINES}, got {self.kind!r}")
        _check(self.lora_r >= 1 and 0 <= self.lora_dropout < 1, "baseline.lora_r must be >= 1, lora_dropout in [0, 1)")


@dataclass
class OptimConfig:
    optimizer: str = _help("'adamw' (decoupled weight decay) or 'adam' (L2 decay, as torch.optim.Adam)", "adamw")
    lr: float = _help("learning rate of every parameter group not in group_lr", 0.3)
    group_lr: dict[str, float] = _help(
        "per-group rates: ATTEMPT {attention: 0.1}, MPT target {task_vectors: 0.4}", factory=dict
    )
    weight_decay: float = _help("weight decay", 1e-5)
    warmup_steps: int = _help(
        "linear warm-up steps, then linear decay to 0 at the last step; not clamped to the run's length (a run shorter "
        "than its warm-up ends below the peak rate, as in the official code)",
        500,
    )
    warmup_ratio: float | None = _help(
        "warm-up as a fraction of the run's steps (ceil(ratio × steps), as transformers' TrainingArguments); "
        "replaces warmup_steps when set",
        None,
    )
    epochs: float | None = _help(
        "epochs; None: the papers' rule, 20 below 10,000 training examples, else 10 (MRQA and sources: set 5), counted "
        "over the run's examples, summed over a multi-task run's tasks (the official multi-task configs state their "
        "own: the -m presets set them); ignored with max_steps",
        None,
    )
    max_steps: int | None = _help("optimizer steps; overrides epochs", None)
    batch_size: int = _help("GLOBAL examples per optimizer step (over processes and accumulation)", 32)
    gradient_accumulation_steps: int = _help("micro-batches per optimizer step and process", 1)
    max_grad_norm: float | None = _help("gradient clipping norm (None: no clipping)", 1.0)
    mixed_precision: str = _help("'no', 'bf16' or 'fp16' (autocast via Accelerate)", "no")
    adam_eps: float = _help("Adam epsilon", 1e-8)

    def __post_init__(self) -> None:
        _check(self.optimizer in OPTIMIZERS, f"optim.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.lr > 0 and all(v > 0 for v in self.group_lr.values()), "learning rates must be > 0")
        _check(self.weight_decay >= 0 and self.warmup_steps >= 0, "optim.weight_decay and warmup_steps must be >= 0")
        _check(
            self.warmup_ratio is None or 0 <= self.warmup_ratio < 1,
            f"optim.warmup_ratio must be in [0, 1) or null, got {self.warmup_ratio}",
        )
        _check(self.epochs is None or self.epochs > 0, "optim.epochs must be > 0 or null")
        _check(self.max_steps is None or self.max_steps >= 1, "optim.max_steps must be >= 1 or null")
        _check(
            self.batch_size >= 1 and self.gradient_accumulation_steps >= 1,
            "optim.batch_size and gradient_accumulation_steps must be >= 1",
        )
        _check(
            self.batch_size % self.gradient_accumulation_steps == 0,
            f"optim.batch_size {self.batch_size} is not divisible by gradient_accumulation_steps {self.gradient_accumulation_steps}",
        )
        _check(self.max_grad_norm is None or self.max_grad_norm > 0, "optim.max_grad_norm must be > 0 or null")
        _check(self.mixed_precision in MIXED_PRECISION, f"optim.mixed_precision must be one of {MIXED_PRECISION}")


@dataclass
class EvalConfig:
    every: int | str = _help(
        "evaluate on dev every N optimizer steps (0: only at the end), or 'epoch': after every epoch's last batch, as "
        "the official ATTEMPT and MPT code does (keeping the best); the last step is always evaluated",
        1000,
    )
    scoring: str = _help("'rank' (rank classification over label words, where a task has them) or 'generate'", "rank")
    batch_size: int = _help("examples per evaluation forward", 32)
    max_new_tokens: int = _help("generation length", 16)
    test: bool = _help("score the best checkpoint on the test split at the end", True)
    at_start: bool = _help(
        "also evaluate the initial prompt, before the first step (a transferred start's head start, "
        "measured; the step-0 prompt can be the best)",
        False,
    )
    select: str = _help(
        "checkpoint selection of a multi-task run: 'mean' keeps the checkpoint with the best dev mean over the targets "
        "(<run>/method); 'per-task' keeps, in addition, each target's own best checkpoint (<run>/best-per-task/<task>/, "
        "the whole method at that target's best step, shared parts included) and scores each target on test with it, "
        "as training one run per target would (a target without a dev value: with <run>/method)",
        "mean",
    )
    patience: int | None = _help(
        "stop training once this many dev evaluations in a row bring no new best (the dev curve has flattened); "
        "None: train to the end",
        None,
    )

    def __post_init__(self) -> None:
        _check(
            self.every == EPOCH if isinstance(self.every, str) else self.every >= 0,
            f"eval.every must be an integer >= 0 or {EPOCH!r}, got {self.every!r}",
        )
        _check(self.patience is None or self.patience >= 1, "eval.patience must be >= 1 or null")
        _check(self.select in SELECT, f"eval.select must be one of {SELECT}, got {self.select!r}")
        _check(self.scoring in SCORING, f"eval.scoring must be one of {SCORING}, got {self.scoring!r}")
        _check(self.batch_size >= 1 and self.max_new_tokens >= 1, "eval.batch_size and max_new_tokens must be >= 1")


@dataclass
class RunConfig:
    dir: str = _help("run directory (config, metrics, checkpoints, results)", "runs/default")
    seed: int = _help("seed of initialisation, data order and dropout", 42)
    save_every: int = _help("checkpoint every N optimizer steps (0: only at the end)", 1000)
    keep_checkpoints: int = _help("resumable checkpoints kept", 2)
    log_every: int = _help("metrics.jsonl / TensorBoard every N steps", 10)
    stop_after: int | None = _help(
        "stop (with a checkpoint) after this many steps in this invocation; resume later", None
    )
    progress: bool = _help(
        "tqdm progress bar (plain lines, one per log_every steps, when stderr is not a terminal)", True
    )
    tensorboard: bool = _help("write TensorBoard events under <dir>/tb (when log_with is not given)", True)
    log_with: list[str] | str | None = _help(
        "experiment trackers, through Accelerate's trackers: tensorboard (<dir>/tb), wandb, mlflow, comet_ml, aim, "
        "clearml, dvclive, swanlab, trackio, all, or a name registered with accelerate.tracking.register_tracker_class; "
        "tags train/... and eval/...; project/experiment promptmix (wandb: $WANDB_PROJECT if set, runs named "
        "<run dir>/<job>; mlflow: $MLFLOW_EXPERIMENT_NAME if set); other settings from each tracker's environment "
        "(WANDB_API_KEY, MLFLOW_TRACKING_URI, ...). None: [tensorboard] if run.tensorboard, else none",
        None,
    )
    deterministic: bool = _help(
        "train under torch.use_deterministic_algorithms (warn_only), restored afterwards: on CPU with more than one "
        "thread the backward of the prompt gather (prompts[task_ids], an index_put_ with accumulate) otherwise adds "
        "rows with parallel atomic adds, so two runs on one seed part after a few steps; deterministic, it adds them "
        "in order. On CUDA set CUBLAS_WORKSPACE_CONFIG=:4096:8 as well (torch warns where an op has no deterministic "
        "kernel)",
        True,
    )

    def __post_init__(self) -> None:
        _check(
            self.save_every >= 0 and self.keep_checkpoints >= 1 and self.log_every >= 1,
            "run.save_every >= 0, keep_checkpoints >= 1, log_every >= 1",
        )
        _check(self.stop_after is None or self.stop_after >= 1, "run.stop_after must be >= 1 or null")


@dataclass
class TrainConfig:
    """A whole run. ``stage`` is one of :data:`STAGES`."""

    # Strict types (see the module docstring), unknown keys refused, no inf or nan.
    __pydantic_config__ = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    stage: str = _help(f"the stage this run trains: {', '.join(STAGES)}", "prompt-tuning")
    model: ModelConfig = _help("the frozen backbone", factory=ModelConfig)
    data: DataConfig = _help("tasks, splits and how batches mix them", factory=DataConfig)
    method: MethodSection = _help("the prompt methods' own configs", factory=MethodSection)
    library: LibraryConfig = _help("prompts trained earlier: where they are, which to use", factory=LibraryConfig)
    distill: DistillConfig = _help("MPT distillation (mpt-source)", factory=DistillConfig)
    baseline: BaselineConfig = _help("the finetune stage's baselines", factory=BaselineConfig)
    optim: OptimConfig = _help("optimizer, schedule and batch size", factory=OptimConfig)
    eval: EvalConfig = _help("dev and test scoring", factory=EvalConfig)
    run: RunConfig = _help("the run directory, seed, checkpoints and logs", factory=RunConfig)

    def __post_init__(self) -> None:
        _check(self.stage in STAGES, f"stage must be one of {STAGES}, got {self.stage!r}")
        lib, data = self.library, self.data
        needs_sources = {"prior": "source prompts", "attempt": "source prompts", "mpt-source": "teacher prompts"}
        if self.stage in needs_sources:
            _check(bool(lib.sources), f"stage {self.stage!r} needs library.sources ({needs_sources[self.stage]})")
        if self.stage in ("source", "attempt", "mpt-target", "prompt-tuning", "finetune"):
            _check(bool(data.tasks), f"stage {self.stage!r} needs data.tasks")
        if self.stage == "attempt" and self.method.attempt.use_target:
            _check(
                lib.init_from is not None,
                "stage 'attempt' needs library.init_from (the source prompt copied into the target prompt)",
            )
        if self.stage == "mpt-target":
            _check(
                lib.mpt_source is not None, "stage 'mpt-target' needs library.mpt_source (an mpt-source run directory)"
            )
        if self.stage == "prompt-tuning" and lib.init_from == "auto":
            _check(bool(lib.sources), "library.init_from='auto' (SPoT-targeted) needs library.sources as candidates")
        if self.stage in ("source", "prior", "mpt-source") and data.multi_task:
            raise ValueError(
                f"data.multi_task does not apply to stage {self.stage!r} (source prompts are per task; "
                "prior and mpt-source always train on the source mixture; SPoT-g: library.mixture_prompt)"
            )
        if self.model.gradient_checkpointing and self.model.backbone_eval_mode:
            raise ValueError(
                "model.gradient_checkpointing does nothing with backbone_eval_mode (HF checkpoints only in train mode)"
            )
        if self.model.backbone_eval_mode and self.stage == "finetune":
            raise ValueError(
                "model.backbone_eval_mode applies to a frozen backbone; the finetune stage trains it (use backbone_dropout: 0.0)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>") -> TrainConfig:
        """Build and validate; errors name ``source``, the section and the key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a config must be a mapping of sections, got {type(data).__name__}")
        return validate(cls, _upgrade(data), source)


# The method section before each method had its own config was one flat mapping; run
# directories written then still hold one in config.yaml: old key -> (section, key).
LEGACY_METHOD_KEYS = {
    "prompt_length": [("prompt_tuning", "prompt_length"), ("attempt", "prompt_length"), ("mpt", "prompt_length")],
    "init": [("prompt_tuning", "init")],
    "init_text": [("prompt_tuning", "init_text")],
    **{
        key: [("attempt", key)]
        for key in ("attention", "use_target", "shared_attention", "attn_dim", "temperature", "learn_temperature")
    },
    "mpt_rank": [("mpt", "rank")],
    "mpt_init": [("mpt", "init")],
}


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a method section in the old flat shape (every key in LEGACY_METHOD_KEYS)
    moved into the per-method sections; any other shape unchanged."""
    method = data.get("method")
    if not isinstance(method, dict) or not method or not set(method) <= set(LEGACY_METHOD_KEYS):
        return data
    sections: dict[str, dict[str, Any]] = {}
    for key, value in method.items():
        for section, new_key in LEGACY_METHOD_KEYS[key]:
            sections.setdefault(section, {})[new_key] = value
    return {**data, "method": sections}


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None, stage: str | None = None
) -> TrainConfig:
    """Read a YAML preset (or start from the defaults), apply overrides and validate."""
    data = read_yaml(path) if path is not None else {}
    if stage is not None:
        if data.get("stage") not in (None, stage):
            raise ValueError(f"{path} is a {data['stage']!r} config but stage {stage!r} was asked for")
        data["stage"] = stage
    source = str(path) if path is not None else "<defaults>"
    try:
        return TrainConfig.from_dict(apply_overrides(data, overrides or []), source)
    except ValueError as err:
        blamed = _blamed_overrides(data, overrides or [], source, str(err))
        if not blamed:
            raise
        raise ValueError(f"{', '.join(f'--set {item}' for item in blamed)}{str(err)[len(source) :]}") from None


def _blamed_overrides(
    data: dict[str, Any], overrides: list[str] | dict[str, Any], source: str, message: str
) -> list[str]:
    """The overrides (as ``KEY=VALUE``) without which validation no longer fails with ``message``:
    the ones an error is about, so it names them rather than the preset file."""
    items = list(overrides.items()) if isinstance(overrides, dict) else [parse_override(o) for o in overrides]
    texts = [f"{k}={v}" for k, v in overrides.items()] if isinstance(overrides, dict) else list(overrides)
    blamed = []
    for i, text in enumerate(texts):
        try:
            TrainConfig.from_dict(apply_overrides(data, dict(items[:i] + items[i + 1 :])), source)
        except ValueError as other:
            if str(other) == message:
                continue
        blamed.append(text)
    return blamed
