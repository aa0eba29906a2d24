"""Reading saved runs (``promptmix.rundirs``): a run's config sections read back as training
wrote them, and the one rule for a task's input token limit."""

from __future__ import annotations

import pytest
import torch

from promptmix.rundirs.config import saved_config
from promptmix.rundirs.data import source_lengths
from promptmix.tasks import get_task
from promptmix.training.config import load_config
from promptmix.training.rundir import config_text

IDENTITY = {"backbone": "tiny", "hidden_size": 8, "fingerprint": "0123456789abcdef"}  # a saved method's backbone


def test_a_task_s_limit_is_the_recorded_one_else_the_configured_one_else_its_own():
    tasks = {name: get_task(name) for name in ("rte", "multirc", "squad")}
    assert source_lengths(tasks) == {"rte": 256, "multirc": 348, "squad": 256}  # the papers' budgets
    assert source_lengths(tasks, 96) == {"rte": 96, "multirc": 96, "squad": 96}
    assert source_lengths(tasks, 96, {"multirc": 200}) == {"rte": 96, "multirc": 200, "squad": 96}
    assert source_lengths(tasks, per_task={"rte": 64, "cb": 32}) == {"rte": 64, "multirc": 348, "squad": 256}


def test_the_sections_a_reader_needs_are_read_back_as_training_wrote_them(tmp_path):
    config = load_config(
        None,
        {
            "data.tasks": ["rte", "cb"],
            "data.max_source_length": 96,
            "data.label_format": "index",
            "eval.scoring": "generate",
            "eval.max_new_tokens": 8,
            "model.name": "some/backbone",
        },
    )
    (tmp_path / "config.yaml").write_text(config_text(config))
    saved = saved_config(tmp_path)
    assert (saved.data, saved.eval, saved.backbone) == (config.data, config.eval, "some/backbone")
    moved = saved_config(tmp_path, {"data.data_dir": "/elsewhere"})
    assert moved.data.data_dir == "/elsewhere" and moved.data.tasks == ["rte", "cb"]


def test_a_run_without_a_config_gets_the_default_protocol_for_its_tasks(tmp_path):
    saved = saved_config(tmp_path, tasks=["rte"])
    assert saved.data == load_config(None, {"data.tasks": ["rte"]}).data and saved.backbone is None


def test_a_bad_section_is_refused_naming_the_file_and_key(tmp_path):
    (tmp_path / "config.yaml").write_text("data:\n  max_source_length: '96'\n")
    with pytest.raises(ValueError, match=r"config\.yaml: data\.max_source_length: expected"):
        saved_config(tmp_path)


def test_find_methods_answers_a_per_task_selected_task_from_its_own_best_checkpoint(tmp_path):
    """A multi-task run with ``eval.select: per-task`` keeps ``best-per-task/<task>`` for the
    tasks that had a dev value: each of those answers only its task from that directory, and
    the run's own ``method/`` answers the rest; a per-task directory that holds another prompt
    than the run's is the one loaded for its task."""
    from method_factories import make_method

    from promptmix.prompts.checkpoint import save_method
    from promptmix.rundirs.read import find_methods, run_directory

    run = tmp_path / "run"
    tasks = ["cb", "rte", "boolq"]
    save_method(make_method("prompt-tuning", tasks, 8, seed=0), run / "method", IDENTITY)
    for task, seed in (("boolq", 1), ("cb", 2)):
        save_method(make_method("prompt-tuning", tasks, 8, seed=seed), run / "best-per-task" / task, IDENTITY)

    found = find_methods(run)
    # the per-task ones in the method's task order (cb before boolq), then the rest
    assert [(saved.directory, saved.task_names()) for saved in found] == [
        (run / "best-per-task" / "cb", ["cb"]),
        (run / "best-per-task" / "boolq", ["boolq"]),
        (run / "method", ["rte"]),
    ]
    assert {run_directory(saved) for saved in found} == {run}
    loaded = found[0].load(IDENTITY).state_dict()
    expected = make_method("prompt-tuning", tasks, 8, seed=2).state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_find_methods_without_per_task_checkpoints_answers_every_task_from_the_run(tmp_path):
    from method_factories import make_method

    from promptmix.prompts.checkpoint import save_method
    from promptmix.rundirs.read import find_methods

    save_method(make_method("prompt-tuning", ["cb", "rte"], 8), tmp_path / "method", IDENTITY)
    [saved] = find_methods(tmp_path)
    assert (saved.directory, saved.task_names(), saved.tasks) == (tmp_path / "method", ["cb", "rte"], None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty holds no trained prompt method: expected .*method\.json"):
        find_methods(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing does not exist"):
        find_methods(tmp_path / "missing")
