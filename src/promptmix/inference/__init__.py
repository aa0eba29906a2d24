"""Inference: one frozen backbone with every loaded prompt, answering mixed-task batches.

``predictor`` (items -> predictions), ``loader`` (saved methods and library prompts onto one
backbone), ``attention_map`` (ATTEMPT's heatmap). The scoring they share with training's
evaluation is :mod:`promptmix.scoring`; inference imports nothing of :mod:`promptmix.training`.
"""
