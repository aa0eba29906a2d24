"""Reading saved runs: what a training run leaves in its directory, read back without training.

``layout`` (the files of a run directory), ``config`` (the sections of a run's config.yaml that
reading it needs: ``DataConfig``, ``EvalConfig``), ``data`` (each task's splits under a run's
protocol, ``TaskData``, ``load_tasks``, and ``source_lengths``: the one rule for a task's input
token limit), ``read`` (``find_methods``: every method a run holds; ``register_run_tasks``;
``saved_source_lengths``; ``load_run_with_data``: a run with its backbone and data).

Training writes run directories (:mod:`promptmix.training.rundir`) and imports this package;
inference, serving and the commands that predict, serve, evaluate or draw attention read runs
through it alone. It imports nothing of :mod:`promptmix.training` or :mod:`promptmix.inference`.
Nothing is imported here.
"""
