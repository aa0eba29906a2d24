"""ATTEMPT: Eq. 3-4 (and App. A.5, the ablations) against a step-by-step numpy reference,
mixed-task batches, what trains and what stays frozen, exact parameter counts, round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from prompted_checks import assert_mixed_batch_equals_task_by_task

from promptmix.prompts import Attempt, AttemptConfig, build_method

# -- a small hand-set example: d = 4, m = 2, t = 2 sources, r = 2 --------------------------------
D, M, R = 4, 2, 2
SOURCES = np.array(
    [
        [[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]],  # "mnli"
        [[-1.0, 4.0, 2.0, 0.0], [2.0, -3.0, 1.0, -1.0]],  # "sst2"
    ]
)
TARGET = np.array([[0.5, 0.5, -2.0, 1.0], [3.0, -1.0, 0.0, 0.5]])
EMBEDS = np.array(
    [
        [[1.0, 0.0, -1.0, 2.0], [0.5, 2.0, 0.0, -1.0], [100.0, 100.0, 100.0, 100.0]],  # last is padding
        [[-2.0, 1.0, 3.0, 0.0], [0.0, -1.0, 1.0, 1.0], [1.0, 0.5, -0.5, 4.0]],
    ]
)
MASK = np.array([[1, 1, 0], [1, 1, 1]])
W_DOWN = np.array([[0.5, -1.0, 0.25, 1.0], [-0.5, 0.5, 1.0, 0.0]])  # [r, d]
W_UP = np.array([[1.0, 0.0], [-1.0, 2.0], [0.5, 0.5], [0.0, -1.5]])  # [d, r]
LN_W = np.array([3.0, -2.0, 1.0, 4.0])
LN_B = np.array([0.5, 0.0, -1.0, 0.25])


def silu(z):
    return z / (1.0 + np.exp(-z))


def reference(embeds, mask, sources, target, w_down, w_up, ln_w, ln_b, temperature, token=False):
    """Eq. 3-4 written out for one example at a time (target None: the no-target ablation)."""
    prompts, weights = [], []
    for x, keep in zip(embeds, mask):
        x_hat = np.max(x[keep.astype(bool)], axis=0)  # max-pool over real tokens
        h = w_up @ silu(w_down @ x_hat)  # W_up SiLU(W_down X̂)
        h = (h - h.mean()) / np.sqrt(h.var() + 1e-5) * ln_w + ln_b  # LayerNorm (biased var)
        cands = list(sources) + ([target] if target is not None else [])
        if token:  # one score per prompt position
            logits = np.array([[p[pos] @ h for pos in range(len(p))] for p in cands]) / temperature  # [k, m]
        else:
            logits = np.array([np.max(p, axis=0) @ h for p in cands]) / temperature  # [k]
        a = np.exp(logits) / np.exp(logits).sum(axis=0)
        w = a if token else a[:, None] * np.ones((len(cands), len(cands[0])))  # [k, m]
        mixed = sum(w[j][:, None] * cands[j] for j in range(len(cands)))
        prompts.append(mixed + (target if target is not None else 0.0))
        weights.append(a)
    return np.stack(prompts), np.stack(weights)


def t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float32)


def hand_model(**kw) -> Attempt:
    kw = {"attn_dim": R, **kw}
    method = Attempt(AttemptConfig(prompt_length=M, **kw), D, ["rte"], ["mnli", "sst2"])
    method.set_source_prompts(["mnli", "sst2"], t(SOURCES))
    if method.prompts is not None:
        method.set_prompt("rte", t(TARGET))
    if kw.get("attention") != "constant":
        method.load_attention_prior(
            {"down_proj": t(W_DOWN), "up_proj": t(W_UP), "ln_weight": t(LN_W), "ln_bias": t(LN_B)}
        )
    return method


@torch.no_grad()
def run(method, task_ids=(0, 0)):
    return method(t(EMBEDS), torch.tensor(MASK), torch.tensor(task_ids))


def test_instance_prompt_matches_hand_computation():
    method = hand_model()
    assert method.temperature == pytest.approx(D * math.e)  # default T = d·e
    out = run(method)
    want_p, want_a = reference(EMBEDS, MASK, SOURCES, TARGET, W_DOWN, W_UP, LN_W, LN_B, D * math.e)
    np.testing.assert_allclose(out.attention.numpy(), want_a, atol=1e-5)
    np.testing.assert_allclose(out.prompts.numpy(), want_p, atol=1e-5)
    assert out.attention.shape == (2, 3)  # mnli, sst2, target
    # The padded 100s would win the max-pool if the mask were ignored: the answer would differ.
    leaky_p, _ = reference(EMBEDS, np.ones_like(MASK), SOURCES, TARGET, W_DOWN, W_UP, LN_W, LN_B, D * math.e)
    assert not np.allclose(leaky_p[0], want_p[0], atol=1e-3)


def test_explicit_temperature_is_used():
    out = run(hand_model(temperature=1.0))
    want_p, want_a = reference(EMBEDS, MASK, SOURCES, TARGET, W_DOWN, W_UP, LN_W, LN_B, 1.0)
    np.testing.assert_allclose(out.attention.numpy(), want_a, atol=1e-5)
    np.testing.assert_allclose(out.prompts.numpy(), want_p, atol=1e-4)
    _, default_a = reference(EMBEDS, MASK, SOURCES, TARGET, W_DOWN, W_UP, LN_W, LN_B, D * math.e)
    assert np.abs(want_a - default_a).max() > 0.3  # the two temperatures are told apart


def test_token_level_matches_hand_computation():
    out = run(hand_model(attention="token"))
    want_p, want_a = reference(EMBEDS, MASK, SOURCES, TARGET, W_DOWN, W_UP, LN_W, LN_B, D * math.e, token=True)
    assert out.attention.shape == (2, 3, M)
    np.testing.assert_allclose(out.attention.numpy(), want_a, atol=1e-5)
    np.testing.assert_allclose(out.prompts.numpy(), want_p, atol=1e-5)
    assert not np.allclose(want_a[:, :, 0], want_a[:, :, 1])  # positions really differ


def test_constant_variant_averages_the_sources_without_g():
    method = hand_model(attention="constant")
    out = run(method)
    np.testing.assert_allclose(out.prompts.numpy()[0], TARGET + SOURCES.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(out.attention.numpy(), [[0.5, 0.5, 0.0]] * 2)
    assert set(method.param_groups()) == {"prompts"}
    assert [n for n, _ in method.named_parameters()] == ["prompts"]


def test_no_target_variant_mixes_sources_only():
    method = hand_model(use_target=False)
    out = run(method)
    want_p, want_a = reference(EMBEDS, MASK, SOURCES, None, W_DOWN, W_UP, LN_W, LN_B, D * math.e)
    assert out.attention.shape == (2, 2)
    np.testing.assert_allclose(out.attention.numpy(), want_a, atol=1e-5)
    np.testing.assert_allclose(out.prompts.numpy(), want_p, atol=1e-5)
    assert set(method.param_groups()) == {"attention"} and method.prompts is None


def test_single_source_prompt():
    method = Attempt.from_prompts({"mnli": t(SOURCES[0])}, ["rte"], init_from="mnli", attn_dim=R)
    method.set_prompt("rte", t(TARGET))
    method.load_attention_prior({"down_proj": t(W_DOWN), "up_proj": t(W_UP), "ln_weight": t(LN_W), "ln_bias": t(LN_B)})
    out = run(method)
    want_p, want_a = reference(EMBEDS, MASK, SOURCES[:1], TARGET, W_DOWN, W_UP, LN_W, LN_B, D * math.e)
    np.testing.assert_allclose(out.attention.numpy(), want_a, atol=1e-5)
    np.testing.assert_allclose(out.prompts.numpy(), want_p, atol=1e-5)


# -- random small models ---------------------------------------------------------------------------
def random_model(d=8, m=3, tasks=("rte", "cb"), n_sources=3, seed=0, **kw) -> Attempt:
    gen = torch.Generator().manual_seed(seed)
    sources = {f"s{i}": torch.randn(m, d, generator=gen) * 3 for i in range(n_sources)}
    torch.manual_seed(seed)
    method = Attempt.from_prompts(
        sources, list(tasks), init_from="s0" if kw.get("use_target", True) else None, attn_dim=4, **kw
    )
    with torch.no_grad():
        for p in method.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    return method


def random_batch(b=5, n=6, d=8, seed=1):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, n, dtype=torch.long)
    for i in range(b):
        mask[i, n - i % 3 :] = 0
    return torch.randn(b, n, d, generator=gen), mask


VARIANTS = [
    {},
    {"shared_attention": False},
    {"attention": "token"},
    {"attention": "token", "shared_attention": False},
    {"attention": "constant"},
    {"use_target": False, "shared_attention": False},
    {"learn_temperature": True, "temperature": 3.0},
]


@pytest.mark.parametrize("kw", VARIANTS, ids=str)
def test_mixed_batch_equals_task_by_task(kw):
    method = random_model(**kw)
    embeds, mask = random_batch()
    ids = torch.tensor([0, 1, 1, 0, 1])
    mixed = method(embeds, mask, ids)
    for k in (0, 1):
        rows = (ids == k).nonzero()[:, 0]
        alone = method(embeds[rows], mask[rows], ids[rows])
        torch.testing.assert_close(mixed.prompts[rows], alone.prompts, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(mixed.attention[rows], alone.attention, atol=1e-6, rtol=1e-6)
    # ... and the two tasks really differ, so the equality above is not vacuous
    assert not torch.allclose(method(embeds, mask, torch.zeros(5, dtype=torch.long)).prompts, mixed.prompts)


@pytest.mark.parametrize("kw", VARIANTS, ids=str)
def test_attention_rows_sum_to_one(kw):
    method = random_model(**kw)
    out = method(*random_batch(), torch.tensor([0, 1, 1, 0, 1]))
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(out.attention.shape[:1] + out.attention.shape[2:]))


@pytest.mark.parametrize("shared", [True, False])
def test_gradients_reach_target_and_g_never_the_sources(shared):
    method = random_model(shared_attention=shared, learn_temperature=True)
    sources = method.source_prompts.clone()
    assert "source_prompts" in method.state_dict() and "source_prompts" not in dict(method.named_parameters())
    optim = torch.optim.Adam([p for g in method.param_groups().values() for p in g], lr=0.1)
    embeds, mask = random_batch()
    (method(embeds, mask, torch.tensor([0, 1, 1, 0, 1])).prompts ** 2).sum().backward()
    names = ["prompts", "down_proj", "up_proj", "ln_weight", "ln_bias", "log_temperature"]
    for name in names:
        grad = getattr(method, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    if not shared:  # every task's own G gets gradient from its own examples
        assert (method.down_proj.grad.flatten(1).abs().sum(1) > 0).all()
    optim.step()
    assert torch.equal(method.source_prompts, sources)


def test_parameter_counts_match_the_papers():
    d, m, r = 768, 100, 100

    def count(n, **kw):
        config = AttemptConfig(prompt_length=m, attn_dim=r, **kw)
        return Attempt(config, d, [f"t{i}" for i in range(n)], ["a", "b"]).num_trainable_parameters()

    assert count(1) == 231_936
    assert count(8) == 8 * m * d + 2 * d * (r + 1)  # ATTEMPT-m: d(m + 2(r+1)/N) per task
    assert count(3, shared_attention=False) == 3 * (m * d + 2 * r * d + 2 * d)
    assert count(1, learn_temperature=True) == 231_937
    assert count(2, attention="constant") == 2 * m * d
    assert count(2, use_target=False) == 2 * d * (r + 1)


@pytest.mark.parametrize("kw", VARIANTS, ids=str)
def test_round_trip_through_config_and_state_dict(kw):
    method = random_model(**kw)
    rebuilt = build_method(method.to_config())
    rebuilt.load_state_dict(method.state_dict())
    embeds, mask = random_batch()
    ids = torch.tensor([0, 1, 1, 0, 1])
    a, b = method(embeds, mask, ids), rebuilt(embeds, mask, ids)
    assert torch.equal(a.prompts, b.prompts) and torch.equal(a.attention, b.attention)


def test_prompt_length_mismatch_names_the_prompt_and_both_lengths():
    with pytest.raises(ValueError, match=r"source prompt 'sst2' has length 5 .* length 3"):
        Attempt.from_prompts({"mnli": torch.zeros(3, 8), "sst2": torch.zeros(5, 8)}, ["rte"], init_from="mnli")
    method = random_model()
    with pytest.raises(ValueError, match=r"target prompt for 'rte' has length 4 .* length 3"):
        method.set_prompt("rte", torch.zeros(4, 8))
    with pytest.raises(ValueError, match=r"source prompt 'x' has length 2"):
        method.set_source_prompts(["x"], torch.zeros(1, 2, 8))


@pytest.mark.parametrize(
    "bad",
    [
        {"source_names": []},
        {"attn_dim": 0},
        {"attention": "tokens"},
        {"temperature": 0.0},
        {"attention": "constant", "learn_temperature": True},
        {"attention": "constant", "use_target": False},
        {"source_names": ["a", "a"]},
    ],
)
def test_config_validation(bad):
    bad = dict(bad)
    sources = bad.pop("source_names", ["a"])  # the module's own state, checked when it is built
    with pytest.raises(ValueError):
        Attempt(AttemptConfig(**bad), D, ["rte"], sources)


def test_targets_init_from_sources_and_add_task():
    method = random_model(shared_attention=False)
    method_from = Attempt.from_prompts(
        {"s0": method.source_prompts[0], "s1": method.source_prompts[1]},
        ["rte", "squad_like"],
        init_from={"rte": "s0", "squad_like": "s1"},
    )
    assert torch.equal(method_from.task_prompt("squad_like"), method.source_prompts[1])
    with pytest.raises(KeyError, match="did you mean"):
        method.init_target_from("rte", "s00")
    method.add_task("boolq", "s2")
    assert method.task_names == ["rte", "cb", "boolq"] and method.down_proj.shape[0] == 3
    assert torch.equal(method.task_prompt("boolq"), method.source_prompts[2])
    out = method(*random_batch(), torch.tensor([2, 0, 2, 1, 2]))
    assert out.prompts.shape == (5, 3, 8)


def test_attention_prior_is_copied_into_every_task():
    prior = random_model(seed=3).attention_state()
    method = random_model(shared_attention=False, seed=4)
    method.load_attention_prior(prior)
    for name, value in prior.items():
        assert torch.equal(getattr(method, name)[1], value[0])
    with pytest.raises(ValueError, match="down_proj"):
        method.load_attention_prior({**prior, "down_proj": torch.zeros(1, 5, 8)})


def test_through_a_prompted_backbone_mixed_batch_equals_task_by_task(tiny_backbone):
    assert_mixed_batch_equals_task_by_task(
        tiny_backbone, random_model(d=32, m=4, shared_attention=False, attention="token")
    )
