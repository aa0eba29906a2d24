"""Multi-task datasets and samplers: proportions, stochastic task sampling, length grouping."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from taskdata import REAL_DATA, T5_TOKENIZER, needs_real_data

from promptmix.tasks import Example
from promptmix.tasks.mixtures import (
    ConcatShuffleSampler,
    LengthGroupedBatchSampler,
    MultiTaskDataset,
    ProportionalSampler,
    StochasticTaskBatchSampler,
    mixing_rates,
    token_lengths,
)


def fake(task, n):
    return [Example(f"{task} sentence: {i}", "x", task, "x", idx=i) for i in range(n)]


def task_of(index, sizes):
    return int(np.searchsorted(np.cumsum(sizes), index, side="right"))


def test_multitask_dataset_keeps_each_examples_task_id():
    mixed = fake("rte", 2) + fake("cola", 3) + fake("rte", 1)
    data = MultiTaskDataset(mixed, task_names=["cola", "mnli", "rte"])
    assert (data.sizes, data.offsets, len(data)) == ([3, 0, 3], [0, 3, 3], 6)
    assert data.task_ids == [0, 0, 0, 2, 2, 2]
    item = data[4]
    assert (item["task"], item["task_id"], item["source"], item["target"]) == ("rte", 2, "rte sentence: 1", "x")
    with pytest.raises(ValueError, match=r"task\(s\) \['cola'\] are not in task_names"):
        MultiTaskDataset(mixed, task_names=["rte"])


def test_concatenate_and_shuffle_yields_every_example_once_per_epoch():
    sampler = ConcatShuffleSampler([5, 7, 3], seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(15)) and first != list(range(15))
    assert list(sampler) == first  # a function of (seed, epoch)
    sampler.set_epoch(1)
    assert sorted(list(sampler)) == list(range(15)) and list(sampler) != first


@pytest.mark.parametrize(
    "cap, temperature, targets",
    [
        (None, 1.0, [1000 / 1110, 100 / 1110, 10 / 1110]),  # examples-proportional
        (200, 1.0, [200 / 310, 100 / 310, 10 / 310]),  # with a cap (T5's K)
        (None, 2.0, list(np.sqrt([1000, 100, 10]) / np.sqrt([1000, 100, 10]).sum())),  # temperature
    ],
)
def test_mixing_proportions_match_their_targets(cap, temperature, targets):
    sizes = [1000, 100, 10]
    assert mixing_rates(sizes, cap, temperature) == pytest.approx(targets)
    sampler = ProportionalSampler(sizes, cap=cap, temperature=temperature, num_samples=3000, seed=0)
    counts = Counter(task_of(i, sizes) for i in sampler)
    shares = [counts[t] / 3000 for t in range(3)]
    print(f"cap={cap} T={temperature}: target {np.round(targets, 4)} got {np.round(shares, 4)}")
    assert shares == pytest.approx(targets, abs=1 / 3000)
    # within a task, an example repeats only after every example of the task was drawn
    draws = Counter(i for i in sampler if task_of(i, sizes) == 2)
    assert len(draws) == 10 and max(draws.values()) - min(draws.values()) <= 1


def test_stochastic_task_sampling_draws_between_two_and_kappa_tasks():
    sizes = [500, 300, 200, 100, 50]
    sampler = StochasticTaskBatchSampler(sizes, batch_size=32, kappa=4, seed=0, num_batches=600)
    batches = list(sampler)
    ks = Counter(len({task_of(i, sizes) for i in batch}) for batch in batches)
    print(f"tasks per batch over {len(batches)} batches: {dict(sorted(ks.items()))}")
    assert set(ks) == {2, 3, 4} and all(len(b) == 32 for b in batches)
    assert all(abs(ks[k] / 600 - 1 / 3) < 0.06 for k in (2, 3, 4))  # K ~ uniform on [2, kappa]
    presence = Counter(t for batch in batches for t in {task_of(i, sizes) for i in batch})
    assert presence[0] > presence[1] > presence[2] > presence[3] > presence[4] > 0
    assert batches == list(sampler)  # deterministic for (seed, epoch)
    sampler.set_epoch(5)
    assert list(sampler) != batches
    with pytest.raises(ValueError, match="kappa >= 2"):
        StochasticTaskBatchSampler(sizes, batch_size=32, kappa=1)


def test_stochastic_task_sampling_splits_each_batch_in_proportion_to_the_tasks_sizes():
    """Within the K sampled tasks the batch follows examples-proportional mixing (a task rounded
    to zero still gets one example): with 900, 90 and 10 examples and K = 2, the big task has
    29 of 32 beside the middle one and 31 beside the small one, not 16 (an equal split), and its
    share over the epoch stays near its 90% of the data."""
    sizes = [900, 90, 10]
    batches = list(StochasticTaskBatchSampler(sizes, batch_size=32, kappa=2, seed=0, num_batches=400))
    expected = {(0, 1): {0: 29, 1: 3}, (0, 2): {0: 31, 2: 1}, (1, 2): {1: 29, 2: 3}}
    for batch in batches:
        counts = Counter(task_of(i, sizes) for i in batch)
        assert dict(counts) == expected[tuple(sorted(counts))]
    shares = Counter(task_of(i, sizes) for batch in batches for i in batch)
    share = {t: shares[t] / (32 * len(batches)) for t in range(3)}
    print(f"epoch shares {share} for data shares 0.9, 0.09, 0.01")
    assert share[0] > 0.85 and share[2] < 0.05


@pytest.mark.parametrize("mixing", ["proportional", "stochastic"])
def test_mixing_cap_and_temperature_set_the_training_batches_shares(mixing):
    """data.mixing_cap and data.mixing_temperature reach the training batches: over an epoch of
    build_batch_sampler's batches the tasks' shares follow min(n, cap) ** (1 / T) (cap 200,
    T = 2 on 1000, 100 and 10 examples); stochastic sampling keeps the big task first."""
    from types import SimpleNamespace

    from promptmix.training.config import DataConfig
    from promptmix.training.data import build_batch_sampler

    sizes = [1000, 100, 10]
    config = DataConfig(mixing=mixing, mixing_cap=200, mixing_temperature=2.0)
    sampler = build_batch_sampler(config, SimpleNamespace(sizes=sizes), batch_size=10, seed=0)
    counts = Counter(task_of(i, sizes) for batch in sampler for i in batch)
    shares = np.array([counts[t] for t in range(3)]) / sum(counts.values())
    targets = np.sqrt([200, 100, 10]) / np.sqrt([200, 100, 10]).sum()
    print(f"{mixing}: target {np.round(targets, 3)} got {np.round(shares, 3)}")
    if mixing == "proportional":
        assert shares == pytest.approx(targets, abs=0.01)
    else:
        assert shares[0] > shares[1] > shares[2] > 0 and shares == pytest.approx(targets, abs=0.08)


def test_length_grouped_batches_cover_every_index_once_longest_first():
    lengths = [5, 50, 7, 3, 40, 41, 6, 2, 45, 4]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=3, seed=0, mega_batch_mult=2)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(10)) and len(batches) == len(sampler) == 4
    assert 1 in batches[0]  # the longest input's batch comes first
    mixture = ProportionalSampler([6, 4], seed=1)
    over_mixture = LengthGroupedBatchSampler(lengths, batch_size=3, sampler=mixture)
    over_mixture.set_epoch(2)
    assert mixture.epoch == 2 and sorted(i for b in over_mixture for i in b) == list(range(10))


@needs_real_data
def test_length_grouping_cuts_padding_on_sst2():
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq

    from promptmix.tasks import get_task

    train = get_task("sst2").load_splits(REAL_DATA, seed=42, hub=False)["train"]
    tokenizer = AutoTokenizer.from_pretrained(T5_TOKENIZER)
    lengths = np.array(token_lengths([ex.source for ex in train], tokenizer, max_length=256))

    def padded(batches):  # tokens after padding each batch to its longest input
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    order = np.random.default_rng(0).permutation(len(lengths))
    shuffled = [order[i : i + 32] for i in range(0, len(order), 32)]
    grouped = list(LengthGroupedBatchSampler(lengths, batch_size=32, seed=0))
    real, fixed = int(lengths.sum()), 256 * len(lengths)
    print(
        f"\nSST-2 train ({len(lengths)} inputs, {real} real tokens), batch 32: padded tokens "
        f"pad-to-256 {fixed}, shuffled + dynamic {padded(shuffled)}, length-grouped + dynamic "
        f"{padded(grouped)}; grouping cuts padded tokens {padded(shuffled) / padded(grouped):.2f}x vs "
        f"shuffled batches and {fixed / padded(grouped):.1f}x vs padding to 256"
    )
    assert padded(grouped) < 0.75 * padded(shuffled) and padded(grouped) < 1.1 * real
    # DataCollatorForSeq2Seq does the padding: each batch comes out as wide as its longest input
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest")
    for batch in grouped[:3]:
        features = [{"input_ids": tokenizer(train[i].source)["input_ids"]} for i in batch]
        assert collator(features)["input_ids"].shape == (len(batch), int(lengths[batch].max()))
