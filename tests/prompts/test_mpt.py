"""MPT: Eq. 2 by hand at rank 1 and 2, the task-vector init, target adaptation by the mean of
the source vectors, exported prompts, exact parameter counts, mixed batches, round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prompted_checks import assert_mixed_batch_equals_task_by_task

from promptmix.prompts import MPT, MPTConfig, SoftPrompt, SoftPromptConfig, build_method

L, D = 3, 4
P_STAR = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0], [4.0, 0.5, -3.0, 1.0]])


def t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float32)


def model(tasks=("rte", "cb"), rank=1, length=L, d=D, seed=0) -> MPT:
    """An MPT with non-trivial random P*, u, v (prompt length ``length``)."""
    torch.manual_seed(seed)
    method = MPT(MPTConfig(prompt_length=length, rank=rank), d, list(tasks))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return method


@torch.no_grad()
def prompts(method, task_ids, d=D):
    ids = torch.tensor(task_ids)
    return method(torch.zeros(len(ids), 2, d), torch.ones(len(ids), 2), ids).prompts


def test_rank_one_prompt_is_p_star_times_outer_product():
    method = MPT(MPTConfig(prompt_length=L), D, ["rte", "cb"])
    u, v = np.array([2.0, -1.0, 0.5]), np.array([1.0, 3.0, -2.0, 0.25])
    method.set_shared_prompt(t(P_STAR))
    method.set_task_vectors("cb", t(u[:, None]), t(v[None, :]))
    want = np.array([[P_STAR[i, j] * u[i] * v[j] for j in range(D)] for i in range(L)])
    np.testing.assert_allclose(prompts(method, [1])[0].numpy(), want, atol=1e-6)
    np.testing.assert_allclose(prompts(method, [0])[0].numpy(), P_STAR, atol=1e-6)  # rte: u v = 1


def test_rank_two_prompt_is_p_star_times_low_rank_product():
    method = MPT(MPTConfig(prompt_length=L, rank=2), D, ["rte"])
    u = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]])
    v = np.array([[1.0, 0.0, -1.0, 2.0], [0.5, 1.0, 1.0, -0.5]])
    method.set_shared_prompt(t(P_STAR))
    method.set_task_vectors("rte", t(u), t(v))
    want = np.array([[P_STAR[i, j] * (u[i, 0] * v[0, j] + u[i, 1] * v[1, j]) for j in range(D)] for i in range(L)])
    np.testing.assert_allclose(prompts(method, [0])[0].numpy(), want, atol=1e-6)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_fresh_task_vectors_multiply_to_ones(rank):
    method = MPT(MPTConfig(prompt_length=L, rank=rank), D, ["a", "b"])
    torch.testing.assert_close(torch.bmm(method.u, method.v), torch.ones(2, L, D))
    method.set_shared_prompt(t(P_STAR))
    torch.testing.assert_close(prompts(method, [0, 1]), t(P_STAR).expand(2, L, D))


def test_rank_two_is_really_used_after_training():
    """u = 1, v = 1/r would give both components identical gradients forever (rank 1)."""
    torch.manual_seed(0)
    method = MPT(MPTConfig(prompt_length=6, rank=2), 5, ["a"])
    method.set_shared_prompt(torch.randn(6, 5))
    goal = torch.randn(6, 5)
    optim = torch.optim.Adam(method.parameters(), lr=0.05)
    for _ in range(20):
        optim.zero_grad()
        ((method(torch.zeros(1, 1, 5), torch.ones(1, 1), torch.tensor([0])).prompts[0] - goal) ** 2).sum().backward()
        optim.step()
    assert torch.linalg.matrix_rank(method.u[0] @ method.v[0]).item() == 2


def test_add_task_and_for_targets_start_from_the_mean_source_vectors():
    source = model(tasks=("mnli", "sst2", "qqp"), rank=2)
    mean_u, mean_v = source.u.detach().mean(0), source.v.detach().mean(0)
    target = MPT.for_targets(source, ["rte", "cb"])
    assert target.task_names == ["rte", "cb"] and target.config.rank == 2
    assert torch.equal(target.shared_prompt, source.shared_prompt)
    assert target.shared_prompt.data_ptr() != source.shared_prompt.data_ptr()  # a copy
    for task in ("rte", "cb"):
        u, v = target.task_vectors(task)
        torch.testing.assert_close(u, mean_u)
        torch.testing.assert_close(v, mean_v)
    source.add_task("boolq")
    torch.testing.assert_close(source.task_vectors("boolq")[0], mean_u)
    torch.testing.assert_close(source.task_vectors("boolq")[1], mean_v)
    with pytest.raises(ValueError, match="holds none"):
        MPT(MPTConfig(prompt_length=L), D).add_task("x")


def test_export_prompt_equals_forward_and_loads_into_a_soft_prompt():
    method = model(tasks=("rte", "cb"), rank=2)
    soft = SoftPrompt(SoftPromptConfig(prompt_length=L), D, ["cb"])
    soft.set_prompt("cb", method.export_prompt("cb"))
    embeds, mask = torch.randn(1, 2, D), torch.ones(1, 2)
    forward = method(embeds, mask, torch.tensor([1])).prompts
    torch.testing.assert_close(method.export_prompt("cb"), forward[0].detach(), atol=0, rtol=0)
    torch.testing.assert_close(soft(embeds, mask, torch.tensor([0])).prompts, forward, atol=0, rtol=0)


def test_from_teachers_starts_every_task_at_the_given_student_prompt():
    gen = torch.Generator().manual_seed(0)
    teachers = {"mnli": torch.randn(L, D, generator=gen), "sst2": torch.randn(L, D, generator=gen)}
    student = torch.randn(L, D, generator=gen)
    method = MPT.from_teachers(teachers, student, rank=2)
    torch.testing.assert_close(prompts(method, [0, 1]), student.expand(2, L, D))
    # the project's extension: the teachers' mean
    method = MPT.from_teachers(teachers, "teacher-mean", rank=2)
    mean = (teachers["mnli"] + teachers["sst2"]) / 2
    torch.testing.assert_close(prompts(method, [0, 1]), mean.expand(2, L, D))
    with pytest.raises(ValueError, match=r"teacher prompt 'b' has length 2 .* length 3"):
        MPT.from_teachers({"a": torch.zeros(3, D), "b": torch.zeros(2, D)}, "teacher-mean")
    with pytest.raises(ValueError, match=r"'teacher-mean'"):
        MPT.from_teachers(teachers, "mean")


def test_parameter_counts_match_the_paper():
    def count(n, rank=1):
        return MPT(MPTConfig(prompt_length=100, rank=rank), 768, [f"t{i}" for i in range(n)]).num_trainable_parameters()

    assert count(1) == 77_668
    assert count(8) == 100 * 768 + 8 * (100 + 768)
    assert count(3, rank=4) == 100 * 768 + 3 * 4 * (100 + 768)


def test_mixed_batch_equals_task_by_task_and_gradients_reach_every_group():
    method = model(tasks=("rte", "cb", "wic"), rank=2)
    ids = torch.tensor([2, 0, 1, 2, 0])
    embeds, mask = torch.randn(5, 3, D), torch.ones(5, 3)
    mixed = method(embeds, mask, ids).prompts
    for k in range(3):
        rows = (ids == k).nonzero()[:, 0]
        torch.testing.assert_close(mixed[rows], method(embeds[rows], mask[rows], ids[rows]).prompts, atol=0, rtol=0)
    assert set(method.param_groups()) == {"shared_prompt", "task_vectors"}
    (mixed**2).sum().backward()
    for p in (method.shared_prompt, method.u, method.v):
        assert p.grad is not None and (p.grad.flatten(1).abs().sum(1) > 0).all()


@pytest.mark.parametrize("rank", [1, 2])
def test_round_trip_through_config_and_state_dict(rank):
    method = model(rank=rank)
    rebuilt = build_method(method.to_config())
    rebuilt.load_state_dict(method.state_dict())
    assert torch.equal(prompts(method, [0, 1, 1]), prompts(rebuilt, [0, 1, 1]))


def test_config_and_shape_errors():
    with pytest.raises(ValueError, match="rank"):
        MPTConfig(rank=0)
    method = model()
    with pytest.raises(ValueError, match=r"shared prompt has length 5 .* length 3"):
        method.set_shared_prompt(torch.zeros(5, D))
    with pytest.raises(KeyError, match="holds"):
        method.export_prompt("boolq")


def test_through_a_prompted_backbone_mixed_batch_equals_task_by_task(tiny_backbone):
    assert_mixed_batch_equals_task_by_task(tiny_backbone, model(rank=2, length=4, d=32))
