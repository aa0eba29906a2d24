"""Training configuration: one dataclass per section, validated on construction, loaded from YAML.

A run is described by a :class:`TrainConfig` with sections ``model``, ``data``, ``method``,
``library``, ``distill``, ``baseline``, ``optim``, ``eval`` and ``run``. YAML presets under
``configs/`` hold the same structure; ``include: other.yaml`` (relative path) merges another
file first, so presets share a base. Unknown keys are errors that name the key, the section
and the nearest valid names. ``--set optim.lr=0.1`` style overrides go through the same path.

The papers' settings are the defaults (T5-base, m = 100, Adam(W) with weight decay 1e-5,
500 warmup steps then linear decay, batch 32, lr 0.3, input length 256).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptmix.training.yamlio import apply_overrides, read_yaml

STAGES = ("source", "prior", "attempt", "mpt-source", "mpt-target", "prompt-tuning", "finetune")
DTYPES = ("float32", "bfloat16", "float16")
MIXED_PRECISION = ("no", "bf16", "fp16")
SCORING = ("rank", "generate")
MIXING = ("proportional", "stochastic")
BASELINES = ("full", "bitfit", "lora")
OPTIMIZERS = ("adamw", "adam")
INITS = ("vocab", "text", "random")
ATTENTION = ("instance", "token", "constant")
MPT_INITS = ("vocab", "teacher-mean")


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
        "None keeps the model config's dropout (the papers' choice: T5's 0.1 stays on); a float overrides it", None)
    backbone_eval_mode: bool = _help(
        "run the frozen backbone in eval mode while prompts train (no dropout at all; ~1/3 faster on CPU)", False)
    gradient_checkpointing: bool = _help(
        "recompute backbone activations in backward (HF only checkpoints modules in train mode)", False)

    def __post_init__(self) -> None:
        _check(bool(self.name), "model.name is empty")
        _check(self.dtype in DTYPES, f"model.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.backbone_dropout is not None:
            _check(0.0 <= self.backbone_dropout < 1.0, f"model.backbone_dropout must be in [0, 1), got {self.backbone_dropout}")


@dataclass
class DataConfig:
    data_dir: str | None = _help("directory of the datasets in their original layouts (relative to the cwd)", "../shared/data")
    tasks: list[str] = _help("tasks trained on (targets; sources for 'source'); empty: from the library sources", factory=list)
    task_options: dict[str, dict[str, Any]] = _help(
        "options for promptmix.tasks.get_task of each task when it is used, e.g. {qqp: {files: {train: ...}}}", factory=dict)
    max_source_length: int | None = _help("input token budget; None uses each task's own (256; MultiRC 348; MRQA 512)", None)
    max_target_length: int = _help("target token budget", 128)
    max_train_examples: int | None = _help("seeded cap on each task's training split", None)
    max_dev_examples: int | None = _help("seeded cap on each task's dev split (None: all)", None)
    max_test_examples: int | None = _help("seeded cap on each task's test split (None: all)", None)
    few_shot_k: int | None = _help("train on k examples per class (k in total for non-classification)", None)
    split_seed: int = _help("seed of the dev/test partition, caps and (unless few_shot_seed) few-shot draws", 42)
    few_shot_seed: int | None = _help(
        "seed of the few-shot draw alone, so repeated draws (the papers average several) keep one dev/test partition; "
        "None: split_seed", None)
    mixing: str = _help("'proportional' (examples-proportional, ATTEMPT-m) or 'stochastic' (MPT task sampling)", "proportional")
    mixing_cap: int | None = _help("examples-proportional mixing cap K (T5); None: no cap", None)
    mixing_temperature: float = _help("rates ∝ min(n, cap) ** (1 / temperature)", 1.0)
    kappa: int | None = _help("MPT: the most tasks in one batch (K drawn from [2, κ]); None: all tasks", None)
    length_grouped: bool = _help("batches of similar input length (dynamic padding wastes less)", False)
    multi_task: bool = _help(
        "several data.tasks: one multi-task run (ATTEMPT-m, MPT-m) instead of one run per task in <run>/<task>", False)

    def __post_init__(self) -> None:
        _check(self.mixing in MIXING, f"data.mixing must be one of {MIXING}, got {self.mixing!r}")
        _check(self.max_target_length >= 1, "data.max_target_length must be >= 1")
        for name in ("max_source_length", "max_train_examples", "max_dev_examples", "max_test_examples", "few_shot_k", "mixing_cap"):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"data.{name} must be >= 1 or null, got {value}")
        _check(self.kappa is None or self.kappa >= 2, f"data.kappa must be >= 2 or null, got {self.kappa}")
        _check(self.mixing_temperature > 0, "data.mixing_temperature must be > 0")
        _check(len(set(self.tasks)) == len(self.tasks), f"data.tasks has duplicates: {self.tasks}")
        _check(all(isinstance(v, dict) for v in self.task_options.values()),
               "data.task_options maps task names to option mappings, e.g. {qqp: {skip_malformed: true}}")


@dataclass
class MethodConfig:
    prompt_length: int = _help("m (l for MPT): prompt vectors per input; target stages take it from the source prompts", 100)
    init: str = _help("new prompts: 'vocab' (5,000 most frequent ids), 'text' or 'random'", "vocab")
    init_text: str | None = _help("text whose embeddings initialise a prompt when init='text'", None)
    attention: str = _help("ATTEMPT: 'instance' (Eq. 3), 'token' (App. A.5) or 'constant' (no-attention ablation)", "instance")
    use_target: bool = _help("ATTEMPT: False is the no-target ablation", True)
    shared_attention: bool = _help("ATTEMPT: one G for all target tasks (ATTEMPT-m) or one per task", True)
    attn_dim: int = _help("ATTEMPT: r, G's bottleneck width", 100)
    temperature: float | None = _help("ATTEMPT: softmax temperature T; None: d·e", None)
    learn_temperature: bool = _help("ATTEMPT: train log T with G", False)
    mpt_rank: int = _help("MPT: rank of u_k v_k (the paper: 1)", 1)
    mpt_init: str = _help(
        "mpt-source: the student's P* at the start: 'vocab' (the paper: sampled vocabulary embeddings, as method.init='vocab') "
        "or 'teacher-mean' (this project's extension: the mean of the teacher prompts)", "vocab")

    def __post_init__(self) -> None:
        _check(self.prompt_length >= 1, "method.prompt_length must be >= 1")
        _check(self.init in INITS, f"method.init must be one of {INITS}, got {self.init!r}")
        _check(self.init != "text" or bool(self.init_text), "method.init='text' needs method.init_text")
        _check(self.attention in ATTENTION, f"method.attention must be one of {ATTENTION}, got {self.attention!r}")
        _check(self.attn_dim >= 1 and self.mpt_rank >= 1, "method.attn_dim and method.mpt_rank must be >= 1")
        _check(self.temperature is None or self.temperature > 0, "method.temperature must be > 0 or null")
        _check(self.mpt_init in MPT_INITS, f"method.mpt_init must be one of {MPT_INITS}, got {self.mpt_init!r}")


@dataclass
class LibraryConfig:
    root: str = _help("prompt library directory", "prompts")
    sources: list[str] = _help("library entries used as source prompts / teachers / SPoT candidates", factory=list)
    init_from: str | None = _help(
        "entry initialising target prompts (ATTEMPT: one of sources); prompt-tuning: an entry (SPoT) or 'auto' (SPoT-t)", None)
    save_prefix: str = _help("source stage: library entry name = prefix + task name", "")
    mixture_prompt: str | None = _help("source stage: train ONE prompt on the mixture of data.tasks, saved under this name (SPoT-g)", None)
    attention_prior: str | None = _help("ATTEMPT: run directory of a 'prior' run whose G initialises this one", None)
    mpt_source: str | None = _help(
        "mpt-target: run directory of the 'mpt-source' run (or a shipped one, e.g. promptmix:smollm2-135m/mpt-source)", None)
    probe_steps: int | None = _help(
        "SPoT-targeted (init_from='auto'): steps of the probe prompt-tuning run on the target; None: the paper's "
        "length (ATTEMPT App. C.6), 20 epochs below 10,000 training examples and 5 above", None)

    def __post_init__(self) -> None:
        _check(len(set(self.sources)) == len(self.sources), f"library.sources has duplicates: {self.sources}")
        _check(self.probe_steps is None or self.probe_steps >= 1, "library.probe_steps must be >= 1 or null")


@dataclass
class DistillConfig:
    weight: float = _help("λ in L = L_task + λ (L_KL + L_hidden) (MPT Eq. 5: 0.9)", 0.9)
    temperature: float = _help("softmax temperature τ of teacher and student (KL scaled by τ²); not given in the paper", 2.0)
    use_kl: bool = _help("include L_KL (ablation: False)", True)
    use_hidden: bool = _help("include L_hidden (ablation 'without hidden loss': False)", True)
    hidden_embeddings: bool = _help(
        "include the embedding outputs (state 0 of each stack) in L_hidden; at prompt positions that is the prompt itself, "
        "a direct prompt-to-prompt distance the paper reports as a different variant", False)
    hidden_rms_norm: bool = _help(
        "divide every hidden vector by its RMS before the MSE: for decoder-only models whose residual stream carries "
        "massive activations (SmolLM2: mean square ~77,000 in layers 12-28), which would make L_hidden swamp the rest", False)

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
    group_lr: dict[str, float] = _help("per-group rates: ATTEMPT {attention: 0.1}, MPT target {task_vectors: 0.4}", factory=dict)
    weight_decay: float = _help("weight decay", 1e-5)
    warmup_steps: int = _help("linear warmup steps, then linear decay to 0", 500)
    epochs: float | None = _help(
        "epochs; None: the papers' rule, 20 below 10,000 training examples, else 10 (MRQA and sources: set 5); ignored with max_steps", None)
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
        _check(self.epochs is None or self.epochs > 0, "optim.epochs must be > 0 or null")
        _check(self.max_steps is None or self.max_steps >= 1, "optim.max_steps must be >= 1 or null")
        _check(self.batch_size >= 1 and self.gradient_accumulation_steps >= 1, "optim.batch_size and gradient_accumulation_steps must be >= 1")
        _check(self.batch_size % self.gradient_accumulation_steps == 0,
               f"optim.batch_size {self.batch_size} is not divisible by gradient_accumulation_steps {self.gradient_accumulation_steps}")
        _check(self.max_grad_norm is None or self.max_grad_norm > 0, "optim.max_grad_norm must be > 0 or null")
        _check(self.mixed_precision in MIXED_PRECISION, f"optim.mixed_precision must be one of {MIXED_PRECISION}")


@dataclass
class EvalConfig:
    every: int = _help("evaluate on dev every N optimizer steps (0: only at the end)", 1000)
    scoring: str = _help("'rank' (rank classification over label words, where a task has them) or 'generate'", "rank")
    batch_size: int = _help("examples per evaluation forward", 32)
    max_new_tokens: int = _help("generation length", 16)
    test: bool = _help("score the best checkpoint on the test split at the end", True)
    patience: int | None = _help(
        "stop training once this many dev evaluations in a row bring no new best (the dev curve has flattened); "
        "None: train to the end", None)

    def __post_init__(self) -> None:
        _check(self.every >= 0, "eval.every must be >= 0")
        _check(self.patience is None or self.patience >= 1, "eval.patience must be >= 1 or null")
        _check(self.scoring in SCORING, f"eval.scoring must be one of {SCORING}, got {self.scoring!r}")
        _check(self.batch_size >= 1 and self.max_new_tokens >= 1, "eval.batch_size and max_new_tokens must be >= 1")


@dataclass
class RunConfig:
    dir: str = _help("run directory (config, metrics, checkpoints, results)", "runs/default")
    seed: int = _help("seed of initialisation, data order and dropout", 42)
    save_every: int = _help("checkpoint every N optimizer steps (0: only at the end)", 1000)
    keep_checkpoints: int = _help("resumable checkpoints kept", 2)
    log_every: int = _help("metrics.jsonl / TensorBoard every N steps", 10)
    stop_after: int | None = _help("stop (with a checkpoint) after this many steps in this invocation; resume later", None)
    progress: bool = _help("tqdm progress bar", True)
    tensorboard: bool = _help("write TensorBoard events under <dir>/tb", True)

    def __post_init__(self) -> None:
        _check(self.save_every >= 0 and self.keep_checkpoints >= 1 and self.log_every >= 1,
               "run.save_every >= 0, keep_checkpoints >= 1, log_every >= 1")
        _check(self.stop_after is None or self.stop_after >= 1, "run.stop_after must be >= 1 or null")


SECTIONS: dict[str, type] = {
    "model": ModelConfig, "data": DataConfig, "method": MethodConfig, "library": LibraryConfig,
    "distill": DistillConfig, "baseline": BaselineConfig, "optim": OptimConfig, "eval": EvalConfig, "run": RunConfig,
}


@dataclass
class TrainConfig:
    """A whole run. ``stage`` is one of :data:`STAGES`."""

    stage: str = "prompt-tuning"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        _check(self.stage in STAGES, f"stage must be one of {STAGES}, got {self.stage!r}")
        lib, data = self.library, self.data
        needs_sources = {"prior": "source prompts", "attempt": "source prompts", "mpt-source": "teacher prompts"}
        if self.stage in needs_sources:
            _check(bool(lib.sources), f"stage {self.stage!r} needs library.sources ({needs_sources[self.stage]})")
        if self.stage in ("source", "attempt", "mpt-target", "prompt-tuning", "finetune"):
            _check(bool(data.tasks), f"stage {self.stage!r} needs data.tasks")
        if self.stage == "attempt" and self.method.use_target:
            _check(lib.init_from is not None, "stage 'attempt' needs library.init_from (the source prompt copied into the target prompt)")
        if self.stage == "mpt-target":
            _check(lib.mpt_source is not None, "stage 'mpt-target' needs library.mpt_source (an mpt-source run directory)")
        if self.stage == "prompt-tuning" and lib.init_from == "auto":
            _check(bool(lib.sources), "library.init_from='auto' (SPoT-targeted) needs library.sources as candidates")
        if self.stage in ("source", "prior", "mpt-source") and data.multi_task:
            raise ValueError(f"data.multi_task does not apply to stage {self.stage!r} (source prompts are per task; "
                             "prior and mpt-source always train on the source mixture; SPoT-g: library.mixture_prompt)")
        if self.model.gradient_checkpointing and self.model.backbone_eval_mode:
            raise ValueError("model.gradient_checkpointing does nothing with backbone_eval_mode (HF checkpoints only in train mode)")
        if self.model.backbone_eval_mode and self.stage == "finetune":
            raise ValueError("model.backbone_eval_mode applies to a frozen backbone; the finetune stage trains it (use backbone_dropout: 0.0)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>") -> TrainConfig:
        """Build and validate; errors name ``source``, the section and the key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a config must be a mapping of sections, got {type(data).__name__}")
        unknown = sorted(set(data) - set(SECTIONS) - {"stage"})
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {unknown}{_near(unknown[0], [*SECTIONS, 'stage'])}; "
                             f"sections: stage, {', '.join(SECTIONS)}")
        sections = {}
        for name, kind in SECTIONS.items():
            sections[name] = _section(kind, data.get(name) or {}, f"{source}: {name}")
        try:
            return cls(stage=data.get("stage", cls.stage), **sections)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None


def _near(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _section(kind: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where}: must be a mapping of keys, got {values!r}")
    names = [f.name for f in dataclasses.fields(kind)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}{_near(unknown[0], names)}; valid keys: {', '.join(names)}")
    values = {key: _coerce(kind, key, value, where) for key, value in values.items()}
    try:
        return kind(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def _coerce(kind: type, key: str, value: Any, where: str) -> Any:
    """Check a value against its field's annotation. YAML reads ``1e-5`` as a string and
    ``lr: 1`` as an int; both are accepted where a float is meant."""
    annotation = {f.name: f.type for f in dataclasses.fields(kind)}[key]
    if value is None:
        return value
    base = str(annotation).split(" ")[0].split("[")[0]  # float, int, bool, str, list, dict
    ok = {
        "float": isinstance(value, (int, float, str)) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list),
        "dict": isinstance(value, dict),
    }.get(base, True)
    if ok and base == "float":
        try:
            value = float(value)
        except ValueError:
            ok = False
        ok = ok and math.isfinite(value)
    if not ok:
        raise ValueError(f"{where}.{key}: expected {annotation}, got {value!r}")
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None,
                stage: str | None = None) -> TrainConfig:
    """Read a YAML preset (or start from the defaults), apply overrides and validate."""
    data = read_yaml(path) if path is not None else {}
    if stage is not None:
        if data.get("stage") not in (None, stage):
            raise ValueError(f"{path} is a {data['stage']!r} config but stage {stage!r} was asked for")
        data["stage"] = stage
    data = apply_overrides(data, overrides or [])
    return TrainConfig.from_dict(data, str(path) if path is not None else "<defaults>")
