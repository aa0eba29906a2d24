"""Inference: one frozen backbone with every loaded prompt, answering mixed-task batches.

``engine`` (tokenised inputs -> batches -> ranked or generated answers: the one engine),
``predictor`` (items -> predictions, through the engine), ``evaluate`` (dev/test metrics, for
training runs and ``promptmix eval``), ``loader`` (saved runs' methods and library prompts onto
one backbone), ``attention_map`` (ATTEMPT's heatmap). Scoring is :mod:`promptmix.scoring`;
saved runs are read through :mod:`promptmix.rundirs`, and inference imports nothing of
:mod:`promptmix.training`.
"""
