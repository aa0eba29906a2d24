"""The files of a run directory (``run.dir``), the names writer and readers share.

::

    config.yaml          the resolved TrainConfig (every field, defaults included); its first
                         line holds the sha256 of the rest, so a truncated or edited copy is
                         refused on resume rather than filled with defaults. Written when the
                         run starts; a resume never rewrites it (except to record a raised
                         optim.max_steps)
    .promptmix-run.lock  held by the process training into the directory, for the run's life
    .promptmix-run.pid   that process's pid (named when a second run is refused)
    metrics.jsonl        one JSON object per line: {"step", "epoch", "loss", "lr/<group>", ...}
                         every run.log_every steps, {"step", "dev": {task: metrics, "score"},
                         "dev_seconds"} (dev_seconds: the evaluation's wall time), and at each
                         start {"step", "setup": {distributed, processes, fsdp_units, frozen
                         parameters in all and held per process, optimized_parameters}}
    tb/                  TensorBoard event files (same scalars)
    checkpoints/         resumable state (see promptmix.training.checkpoint); latest.json
    method/              the best-on-dev prompt method (the final one without dev data),
                         written with promptmix.prompts.checkpoint.save_method: method.json
                         (config incl. task names, backbone identity, extra = {stage, tasks,
                         max_source_length: {task: input token limit}, step, dev}) +
                         method.safetensors; load with load_method(dir, backbone)
    best-per-task/<task>/
                         eval.select per-task (a multi-task run): each target's best-on-dev method,
                         the whole method at that target's best step (shared parts included),
                         saved as method/ is; the test scores of results.json come from these, and
                         inference (eval, predict, serve, export) answers each target with its own
                         (promptmix.rundirs.read.find_methods), any other task with method/
    model/               baselines that tune the backbone (finetune stage) instead of method/
    results.json         {stage, tasks, completed, steps, best_step, dev, test,
                         trainable_parameters, seconds, ...}
    tasks/<name>.yaml    a copy of each task file (YAML) the run trained on, file paths made absolute:
                         reading the run registers them, so eval, predict and serve need no --tasks-dir
    README.md, training_curves.png
                         the run's card (promptmix.training.card), written at the end of every invocation
    <task>/              a stage given several data.tasks without data.multi_task trains one
                         run per task here; the directory above holds their combined results.json

Written by :mod:`promptmix.training.rundir` (config.yaml, method/, results.json, tasks/) and the
training loop (metrics.jsonl, tb/, checkpoints/); read back by :mod:`promptmix.rundirs.read`.
"""

RESULTS = "results.json"
TASKS = "tasks"  # copies of the task files a run trained on
CONFIG = "config.yaml"
METHOD = "method"  # the best prompt method
MODEL = "model"  # a baseline's tuned backbone parameters
PER_TASK = "best-per-task"  # eval.select per-task: <run>/best-per-task/<task>, each target's best method
