"""Training: one loop (``loop``) into which every stage (``stages``) plugs a loss, a sampler
and parameter groups; configs (``config``), data (``data``), evaluation (``evaluate``), MPT
distillation (``distill``), checkpoints (``checkpoint``), runs (``runs``), baselines
(``baselines``) and the README's main job (``pipeline``)."""

from promptmix.training.config import TrainConfig, load_config
from promptmix.training.runs import StageResult

__all__ = ["StageResult", "TrainConfig", "load_config", "run_stage"]


def run_stage(config: TrainConfig, **kwargs) -> StageResult:
    """Run ``config.stage`` (see :func:`promptmix.training.stages.run_stage`)."""
    from promptmix.training.stages import run_stage as _run

    return _run(config, **kwargs)
