"""benchmarks/serving.py in --smoke mode, so the benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import re
import sys

from tiny_models import REPO

BENCHMARKS = REPO / "benchmarks"


def test_serving_benchmark_smoke(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports benchmarks/_common.py
    spec = importlib.util.spec_from_file_location("serving_benchmark", BENCHMARKS / "serving.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "serving_benchmark", module)
    spec.loader.exec_module(module)
    assert module.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for label in ("mixed-task batches", "single-task batches", "reload a model per task"):
        assert re.search(rf"{label}\s+\d+\.\d", out), out
    levels = re.findall(r"^\s+(\d+)\s+(\d+\.\d)\s+(\d+\.\d)\s+(\d+\.\d)\s+(\d+\.\d)\s+(\d+)%$", out, re.M)
    assert [int(level[0]) for level in levels] == [1, 4], out
    assert float(levels[1][4]) > 1  # concurrent requests were batched together
