"""Training configuration: one dataclass per section, each field with its help, loaded from YAML.

A run is described by a :class:`TrainConfig` with sections ``model``, ``data``, ``method``,
``library``, ``distill``, ``baseline``, ``optim``, ``eval`` and ``run``. ``method`` holds one
section per prompt method, each that method's own config dataclass (``method.prompt_tuning``:
:class:`~promptmix.prompts.soft.SoftPromptConfig`, ``method.attempt``, ``method.mpt``); a stage
uses the one it trains. ``data`` and ``eval`` are :class:`~promptmix.rundirs.config.DataConfig`
and :class:`~promptmix.rundirs.config.EvalConfig`, defined below training because reading a
saved run back (its data, how it is scored) needs them too. YAML presets under ``configs/``
hold the same structure (:mod:`promptmix.configio` reads them with their ``include:`` files,
applies ``--set optim.lr=0.1`` style overrides and validates the result with
:func:`promptmix._validation.validate`: strictly, so an int where a float is meant is fine, a
string, a bool or a non-finite number is not). Each field declares its choices (``Literal``)
and bounds (``PositiveInt``, ...); ``__post_init__`` holds only the rules between fields.
Errors name the file, the section, the key and the value, with the nearest valid names.
``configio.config_keys`` lists every key with its type, default and help (``promptmix train
--help`` prints it).

The papers' settings are the defaults (T5-base, m = 100, Adam(W) with weight decay 1e-5,
500 warmup steps then linear decay, batch 32, lr 0.3, input length 256).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from promptmix._validation import (
    Fraction,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    validate,
    validated,
)
from promptmix.configio import apply_overrides, option, parse_override, read_yaml, require
from promptmix.prompts import AttemptConfig, MPTConfig, SoftPromptConfig
from promptmix.rundirs.config import DataConfig, EvalConfig

Stage = Literal["source", "prior", "attempt", "mpt-source", "mpt-target", "prompt-tuning", "finetune"]
Dtype = Literal["float32", "bfloat16", "float16"]
MixedPrecision = Literal["no", "bf16", "fp16"]
Baseline = Literal["full", "bitfit", "lora"]
Optimizer = Literal["adamw", "adam"]
STAGES, DTYPES, MIXED_PRECISION = get_args(Stage), get_args(Dtype), get_args(MixedPrecision)
BASELINES, OPTIMIZERS = get_args(Baseline), get_args(Optimizer)


@validated
class ModelConfig:
    name: NonEmptyStr = option("HF hub id, local directory or alias (smollm2-135m) of the frozen backbone", "t5-base")
    dtype: Dtype = option("backbone parameter dtype: float32, bfloat16 or float16", "float32")
    backbone_dropout: Fraction | None = option(
        "None keeps the model config's dropout (the papers' choice: T5's 0.1 stays on); a float overrides it", None
    )
    backbone_eval_mode: bool = option(
        "run the frozen backbone in eval mode while prompts train (no dropout at all; ~1/3 faster on CPU)", False
    )
    gradient_checkpointing: bool = option(
        "recompute backbone activations in backward (HF only checkpoints modules in train mode)", False
    )


@validated
class MethodSection:
    """One config per prompt method, each the method's own dataclass (with its own checks); a
    stage uses the one it trains: ``prompt_tuning`` for source, prompt-tuning (SPoT) and the
    MPT teachers, ``attempt`` for prior and attempt, ``mpt`` for mpt-source (mpt-target takes
    the source run's). Stages that start from library prompts take ``prompt_length`` from them."""

    prompt_tuning: SoftPromptConfig = option(
        "prompt tuning (Lester et al., 2021): new soft prompts", factory=SoftPromptConfig
    )
    attempt: AttemptConfig = option(
        "ATTEMPT (Asai et al., 2022): the attention module G and its variants", factory=AttemptConfig
    )
    mpt: MPTConfig = option("MPT (Wang et al., 2023): the decomposition P* ∘ (u_k v_k)", factory=MPTConfig)


@validated
class LibraryConfig:
    root: str = option("prompt library directory", "prompts")
    sources: list[str] = option("library entries used as source prompts / teachers / SPoT candidates", factory=list)
    init_from: str | None = option(
        "entry initialising target prompts (ATTEMPT: one of sources); "
        "prompt-tuning: an entry (SPoT) or 'auto' (SPoT-t)",
        None,
    )
    save_prefix: str = option("source stage: library entry name = prefix + task name", "")
    mixture_prompt: str | None = option(
        "source stage: train ONE prompt on the mixture of data.tasks, saved under this name (SPoT-g)", None
    )
    attention_prior: str | None = option("ATTEMPT: run directory of a 'prior' run whose G initialises this one", None)
    mpt_source: str | None = option(
        "mpt-target: run directory of the 'mpt-source' run (or a shipped one, e.g. promptmix:smollm2-135m/mpt-source)",
        None,
    )
    probe_steps: PositiveInt | None = option(
        "SPoT-targeted (init_from='auto'): steps of the probe prompt-tuning run on the target; None: the paper's "
        "length (ATTEMPT App. C.6), 20 epochs below 10,000 training examples and 5 above",
        None,
    )

    def __post_init__(self) -> None:  # a rule between the items of one list
        require(len(set(self.sources)) == len(self.sources), f"library.sources has duplicates: {self.sources}")


@validated
class DistillConfig:
    weight: NonNegativeFloat = option("λ in L = L_task + λ (L_KL + L_hidden) (MPT Eq. 5: 0.9)", 0.9)
    temperature: PositiveFloat = option(
        "softmax temperature τ of teacher and student (KL scaled by τ²); not given in the paper", 2.0
    )
    use_kl: bool = option("include L_KL (ablation: False)", True)
    use_hidden: bool = option("include L_hidden (ablation 'without hidden loss': False)", True)
    hidden_embeddings: bool = option(
        "include the embedding outputs (state 0 of each stack) in L_hidden; at prompt positions that is the prompt "
        "itself, a direct prompt-to-prompt distance the paper reports as a different variant",
        False,
    )
    hidden_rms_norm: bool = option(
        "divide every hidden vector by its RMS before the MSE: for decoder-only models whose residual stream carries "
        "massive activations (SmolLM2: mean square ~77,000 in layers 12-28), which would make L_hidden swamp the rest",
        False,
    )


@validated
class BaselineConfig:
    kind: Baseline = option("finetune stage: 'full' (every parameter), 'bitfit' (biases only) or 'lora' (PEFT)", "full")
    lora_r: PositiveInt = option("LoRA rank", 8)
    lora_alpha: int = option("LoRA alpha", 16)
    lora_dropout: Fraction = option("LoRA dropout", 0.0)
    lora_target_modules: list[str] | None = option("LoRA target modules; None: PEFT's default for the model type", None)


@validated
class OptimConfig:
    optimizer: Optimizer = option("'adamw' (decoupled weight decay) or 'adam' (L2 decay, as torch.optim.Adam)", "adamw")
    lr: PositiveFloat = option("learning rate of every parameter group not in group_lr", 0.3)
    group_lr: dict[str, PositiveFloat] = option(
        "per-group rates: ATTEMPT {attention: 0.1}, MPT target {task_vectors: 0.4}", factory=dict
    )
    weight_decay: NonNegativeFloat = option("weight decay", 1e-5)
    warmup_steps: NonNegativeInt = option(
        "linear warm-up steps, then linear decay to 0 at the last step; not clamped to the run's length (a run shorter "
        "than its warm-up ends below the peak rate, as in the official code)",
        500,
    )
    warmup_ratio: Fraction | None = option(
        "warm-up as a fraction of the run's steps (ceil(ratio × steps), as transformers' TrainingArguments); "
        "replaces warmup_steps when set",
        None,
    )
    epochs: PositiveFloat | None = option(
        "epochs; None: the papers' rule, 20 below 10,000 training examples, else 10 (MRQA and sources: set 5), counted "
        "over the run's examples, summed over a multi-task run's tasks (the official multi-task configs state their "
        "own: the -m presets set them); ignored with max_steps",
        None,
    )
    max_steps: PositiveInt | None = option("optimizer steps; overrides epochs", None)
    batch_size: PositiveInt = option("GLOBAL examples per optimizer step (over processes and accumulation)", 32)
    gradient_accumulation_steps: PositiveInt = option("micro-batches per optimizer step and process", 1)
    max_grad_norm: PositiveFloat | None = option("gradient clipping norm (None: no clipping)", 1.0)
    mixed_precision: MixedPrecision = option("'no', 'bf16' or 'fp16' (autocast via Accelerate)", "no")
    adam_eps: float = option("Adam epsilon", 1e-8)

    def __post_init__(self) -> None:
        require(
            self.batch_size % self.gradient_accumulation_steps == 0,
            f"optim.batch_size {self.batch_size} is not divisible by "
            f"gradient_accumulation_steps {self.gradient_accumulation_steps}",
        )


@validated
class RunConfig:
    dir: str = option("run directory (config, metrics, checkpoints, results)", "runs/default")
    seed: int = option("seed of initialisation, data order and dropout", 42)
    save_every: NonNegativeInt = option("checkpoint every N optimizer steps (0: only at the end)", 1000)
    keep_checkpoints: PositiveInt = option("resumable checkpoints kept", 2)
    log_every: PositiveInt = option("metrics.jsonl / TensorBoard every N steps", 10)
    stop_after: PositiveInt | None = option(
        "stop (with a checkpoint) after this many steps in this invocation; resume later", None
    )
    progress: bool = option(
        "tqdm progress bar (plain lines, one per log_every steps, when stderr is not a terminal)", True
    )
    tensorboard: bool = option("write TensorBoard events under <dir>/tb (when log_with is not given)", True)
    log_with: list[str] | str | None = option(
        "experiment trackers, through Accelerate's trackers: tensorboard (<dir>/tb), wandb, mlflow, comet_ml, aim, "
        "clearml, dvclive, swanlab, trackio, all, or a name registered with "
        "accelerate.tracking.register_tracker_class; "
        "tags train/... and eval/...; project/experiment promptmix (wandb: $WANDB_PROJECT if set, runs named "
        "<run dir>/<job>; mlflow: $MLFLOW_EXPERIMENT_NAME if set); other settings from each tracker's environment "
        "(WANDB_API_KEY, MLFLOW_TRACKING_URI, ...). None: [tensorboard] if run.tensorboard, else none",
        None,
    )
    deterministic: bool = option(
        "train under torch.use_deterministic_algorithms (warn_only), restored afterwards: on CPU with more than one "
        "thread the backward of the prompt gather (prompts[task_ids], an index_put_ with accumulate) otherwise adds "
        "rows with parallel atomic adds, so two runs on one seed part after a few steps; deterministic, it adds them "
        "in order. On CUDA set CUBLAS_WORKSPACE_CONFIG=:4096:8 as well (torch warns where an op has no deterministic "
        "kernel)",
        True,
    )


@validated
class TrainConfig:
    """A whole run. ``stage`` is one of :data:`STAGES`."""

    stage: Stage = option(f"the stage this run trains: {', '.join(STAGES)}", "prompt-tuning")
    model: ModelConfig = option("the frozen backbone", factory=ModelConfig)
    data: DataConfig = option("tasks, splits and how batches mix them", factory=DataConfig)
    method: MethodSection = option("the prompt methods' own configs", factory=MethodSection)
    library: LibraryConfig = option("prompts trained earlier: where they are, which to use", factory=LibraryConfig)
    distill: DistillConfig = option("MPT distillation (mpt-source)", factory=DistillConfig)
    baseline: BaselineConfig = option("the finetune stage's baselines", factory=BaselineConfig)
    optim: OptimConfig = option("optimizer, schedule and batch size", factory=OptimConfig)
    eval: EvalConfig = option("dev and test scoring", factory=EvalConfig)
    run: RunConfig = option("the run directory, seed, checkpoints and logs", factory=RunConfig)

    def __post_init__(self) -> None:  # rules between sections
        lib, data = self.library, self.data
        needs_sources = {"prior": "source prompts", "attempt": "source prompts", "mpt-source": "teacher prompts"}
        if self.stage in needs_sources:
            require(bool(lib.sources), f"stage {self.stage!r} needs library.sources ({needs_sources[self.stage]})")
        if self.stage in ("source", "attempt", "mpt-target", "prompt-tuning", "finetune"):
            require(bool(data.tasks), f"stage {self.stage!r} needs data.tasks")
        if self.stage == "attempt" and self.method.attempt.use_target:
            require(
                lib.init_from is not None,
                "stage 'attempt' needs library.init_from (the source prompt copied into the target prompt)",
            )
        if self.stage == "mpt-target":
            require(
                lib.mpt_source is not None, "stage 'mpt-target' needs library.mpt_source (an mpt-source run directory)"
            )
        if self.stage == "prompt-tuning" and lib.init_from == "auto":
            require(bool(lib.sources), "library.init_from='auto' (SPoT-targeted) needs library.sources as candidates")
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
                "model.backbone_eval_mode applies to a frozen backbone; "
                "the finetune stage trains it (use backbone_dropout: 0.0)"
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
