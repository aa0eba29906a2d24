"""`promptmix eval --split validation` is --split dev (the name lm-eval and datasets use)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from promptmix.cli import main


@pytest.mark.parametrize("given, scored", [("validation", "dev"), ("dev", "dev"), ("test", "test")])
def test_validation_is_an_alias_of_dev(monkeypatch, capsys, tmp_path, given, scored):
    import promptmix.cli.eval as cli_eval

    seen = []
    loaded = SimpleNamespace(
        backbone=None,
        method=None,
        tasks={"rte": SimpleNamespace(dev=[1, 2], test=[1])},
        task_ids=lambda: {"rte": 0},
        source_lengths=lambda: {"rte": 256},
        config=SimpleNamespace(eval=None, data=None),
        sources={"rte": str(tmp_path)},
    )
    monkeypatch.setattr(cli_eval, "load_run_with_data", lambda *a, **k: loaded)
    monkeypatch.setattr(cli_eval, "PromptedModel", lambda *a: SimpleNamespace(eval=lambda: None))
    monkeypatch.setattr(
        cli_eval,
        "evaluate",
        lambda model, tasks, split, *a: seen.append(split) or {"rte": {"accuracy": 50.0}, "score": 50.0},
    )
    assert main(["eval", "--run", str(tmp_path), "--split", given]) == 0
    assert seen == [scored] and f"rte ({scored}, " in capsys.readouterr().out
    assert main(["eval", "--run", str(tmp_path), "--split", given, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 50.0
