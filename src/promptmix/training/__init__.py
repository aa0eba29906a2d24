"""Training: one loop (``loop``) into which every stage (``stages``: ``run_stage``) plugs a loss,
a sampler and parameter groups; configs (``config``: ``TrainConfig``, ``load_config``; read by
:mod:`promptmix.configio`), data (``data``), evaluation (``evaluate``), MPT distillation (``distill``),
checkpoints (``checkpoint``), the run directory (``rundir``: ``StageResult``, ``find_methods``)
and what every stage does in it (``runs``), baselines (``baselines``) and the README's main job
(``pipeline``).

Nothing is imported here, so reading a config (``promptmix train --help``) does not load the
training stack (transformers, accelerate).
"""
