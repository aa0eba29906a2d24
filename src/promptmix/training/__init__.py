"""Training: one loop (``loop``) into which every stage (``stages``: ``run_stage``) plugs a loss,
a sampler and parameter groups; configs (``config``: ``TrainConfig``, ``load_config``; read by
:mod:`promptmix.configio`), batches (``data``), MPT distillation (``distill``), checkpoints
(``checkpoint``), writing the run directory (``rundir``: ``StageResult``; reading it back is
:mod:`promptmix.rundirs`) and what every stage does in it (``runs``), baselines
(``baselines``) and the README's main job (``pipeline``). Dev and test scoring is
:mod:`promptmix.inference.evaluate`.

Nothing is imported here, so reading a config (``promptmix train --help``) does not load the
training stack (transformers, accelerate).
"""
