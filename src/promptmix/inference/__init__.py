"""Inference: one frozen backbone with every loaded prompt, answering mixed-task batches.

``scoring`` (rank classification, greedy generation), ``predictor`` (items -> predictions),
``runs`` (loading trained runs and library prompts), ``attention_map`` (ATTEMPT's heatmap).
"""
