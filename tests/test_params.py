"""Parameter accounting: the papers' per-task counts through the CLI, and every analytic
formula equal to the trainable parameters of a module actually built at those sizes."""

from __future__ import annotations

import pytest

from promptmix import cli
from promptmix.params import PARAM_METHODS, count_parameters, format_count
from promptmix.prompts import METHODS, build_method


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``promptmix.cli.main`` with only this file's subcommands registered, so a broken
    or missing module of another subcommand cannot fail these tests."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", ["params", "prompts"])

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_subcommands_are_registered():
    assert {"params", "prompts"} <= set(cli.SUBCOMMANDS)


T5_BASE = ["--d-model", "768", "--prompt-length", "100"]


@pytest.mark.parametrize(
    "argv, per_task, total",
    [
        (["--method", "attempt"], "231,936", "231,936"),  # ATTEMPT Table 1: 232K
        (["--method", "attempt", "--num-tasks", "8"], "96,192", "769,536"),  # ATTEMPT-m on GLUE: 96K
        (["--method", "attempt", "--num-tasks", "8", "--per-task-attention"], "231,936", "1,855,488"),
        (["--method", "mpt"], "77,668", "77,668"),  # MPT Table 1: 77.6K
        (["--method", "mpt", "--num-tasks", "8"], "10,468", "83,744"),  # MPT-m on GLUE: 10.5K
        (["--method", "prompt-tuning"], "76,800", "76,800"),  # prompt tuning: 76.8K
    ],
)
def test_paper_counts_through_the_cli(run_cli, argv, per_task, total):
    code, out, _ = run_cli("params", *argv, *T5_BASE)
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == f"per task: {per_task}"
    assert lines[2] == f"total:    {total}"


def test_cli_breakdown_and_bad_sizes(run_cli):
    code, out, _ = run_cli("params", "--method", "mpt", "--rank", "2", "--num-tasks", "3", *T5_BASE)
    assert code == 0
    breakdown = dict(line.split() for line in out.splitlines()[3:])
    assert breakdown == {"shared_prompt": "76,800", "task_u": "600", "task_v": "4,608"}
    assert "per task: 27,336" in out  # 76,800/3 + 2·(100 + 768)

    code, _, err = run_cli("params", "--method", "attempt", "--d-model", "0", "--prompt-length", "100")
    assert code == 2
    assert "d_model must be a positive integer, got 0" in err


def test_formulas():
    count = count_parameters("attempt", 768, 100, attn_dim=100, num_tasks=8)
    assert count.total == 8 * 100 * 768 + 2 * 768 * 101
    assert count.per_task == pytest.approx(768 * (100 + 2 * 101 / 8))
    assert sum(count.breakdown.values()) == count.total
    assert count_parameters("mpt", 768, 100, num_tasks=3).per_task == pytest.approx(768 * 100 / 3 + 868)
    assert format_count(26468.0) == "26,468" and format_count(1234.5) == "1,234.5"
    with pytest.raises(ValueError, match="unknown method 'lora'.*prompt-tuning"):
        count_parameters("lora", 768, 100)
    with pytest.raises(ValueError, match="num_tasks must be a positive integer, got 0"):
        count_parameters("mpt", 768, 100, num_tasks=0)


def test_every_registered_method_has_a_formula():
    assert set(METHODS) <= set(PARAM_METHODS), "add the new method's formula to promptmix.params"


def _config(method: str, m: int, tasks: list[str], attn_dim: int, rank: int, shared: bool) -> dict:
    """The config dict ``build_method`` takes, at the sizes ``count_parameters`` is given."""
    config = {"method": method, "prompt_length": m, "tasks": tasks}
    if method == "attempt":
        config.update(source_names=["mnli", "sst2", "qqp"], attn_dim=attn_dim, shared_attention=shared)
    if method == "mpt":
        config.update(rank=rank)
    return config


SIZES = [  # (d, m, attn_dim, num_tasks, rank, shared_attention)
    (768, 100, 100, 1, 1, True),  # the papers' T5-base sizes
    (768, 100, 100, 8, 1, True),
    (13, 7, 5, 3, 2, True),  # odd sizes catch a d/m/r swapped in a formula
    (13, 7, 5, 3, 4, False),
]


@pytest.mark.parametrize("method", sorted(set(METHODS) & set(PARAM_METHODS)))
@pytest.mark.parametrize("d, m, attn_dim, num_tasks, rank, shared", SIZES)
def test_formula_equals_real_module(method, d, m, attn_dim, num_tasks, rank, shared):
    tasks = [f"task{i}" for i in range(num_tasks)]
    module = build_method(_config(method, m, tasks, attn_dim, rank, shared), hidden_size=d)
    count = count_parameters(method, d, m, attn_dim=attn_dim, num_tasks=num_tasks, rank=rank, shared_attention=shared)
    assert count.total == module.num_trainable_parameters()
    # Nothing trainable hides outside the param groups (ATTEMPT's source prompts are buffers).
    assert count.total == sum(p.numel() for p in module.parameters() if p.requires_grad)
