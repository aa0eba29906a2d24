"""The papers' split protocol (ATTEMPT section 4.1, MPT appendix), deterministic under a seed.

Given the released splits:

1. A release with both a validation set and a labelled test set keeps its splits
   (SciTail, PAWS, E2E, WebNLG).
2. Otherwise its one labelled evaluation set (the validation set; Yelp's test set) becomes
   the test set, and the dev set comes from
   - that evaluation set split in half (dev = first ``n // 2`` of a seeded permutation,
     test = the rest, so RTE's 277 rows give 138 dev / 139 test) when the training set
     has fewer than 10,000 examples;
   - 1,000 held-out training examples otherwise (SST-2: 66,349 train / 1,000 dev / 872 test).
   With ``dev_from_train = n`` (a task option, or an alternate layout's default) the dev set
   is n training examples held out instead, and the evaluation set stays whole as test:
   RTE's 277 and CB's 56 validation examples all score, where halving leaves 139 and 28.
3. A training cap (``max_train_examples``, Yelp 100k) keeps a seeded sample of the rest.

Grouped tasks move whole groups: sizes are counted in groups (MultiRC has 5,131 training
questions, so its validation set is halved by question), a half is ``n_groups // 2``
groups, and a hold-out takes whole groups until it has at least 1,000 examples.
Permutations are ``torch.randperm`` under ``manual_seed(seed)``, the official ATTEMPT code's
choice, so ungrouped tasks get the same dev/test partition as that code for the same seed.
Kept examples stay in file order.
"""

from __future__ import annotations

from collections.abc import Sequence

from promptmix.tasks.example import Example

SMALL_TRAIN = 10_000
DEV_HOLDOUT = 1_000


def permutation(n: int, seed: int) -> list[int]:
    """A seeded permutation of ``range(n)`` (``torch.randperm``, as the ATTEMPT code)."""
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=generator).tolist()


def groups_of(examples: Sequence[Example]) -> list[list[int]]:
    """Indices of ``examples`` grouped by ``Example.group``, groups in order of first
    appearance; an example without a group is a group of its own."""
    by_key: dict[object, list[int]] = {}
    for i, ex in enumerate(examples):
        by_key.setdefault(("group", ex.group) if ex.group is not None else ("row", i), []).append(i)
    return list(by_key.values())


def first_of_each_group(examples: Sequence[Example]) -> list[int]:
    """Index of the first example of each group (all indices for ungrouped examples)."""
    return [members[0] for members in groups_of(examples)]


def _pick(examples: Sequence[Example], indices: list[int]) -> list[Example]:
    return [examples[i] for i in sorted(indices)]


def halve(examples: Sequence[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """Split into (first half, second half) of a seeded group permutation; never splits a group."""
    groups = groups_of(examples)
    order = permutation(len(groups), seed)
    cut = len(groups) // 2
    first = [i for g in order[:cut] for i in groups[g]]
    second = [i for g in order[cut:] for i in groups[g]]
    return _pick(examples, first), _pick(examples, second)


def hold_out(examples: Sequence[Example], count: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Split into (rest, held out): whole groups, in seeded order, until ``count`` examples."""
    groups = groups_of(examples)
    if count >= len(examples):
        raise ValueError(f"cannot hold out {count} of {len(examples)} examples")
    held: list[int] = []
    order = permutation(len(groups), seed)
    taken = 0
    while len(held) < count:
        held.extend(groups[order[taken]])
        taken += 1
    rest = [i for g in order[taken:] for i in groups[g]]
    return _pick(examples, rest), _pick(examples, held)


def cap(examples: Sequence[Example], count: int | None, seed: int) -> list[Example]:
    """A seeded sample of ``count`` examples (whole groups, so a grouped task may get a few
    more); all of them when ``count`` is None or not smaller than the split."""
    if count is None or len(examples) <= count:
        return list(examples)
    return hold_out(examples, count, seed)[1]


def protocol_splits(
    raw: dict[str, list[Example]],
    seed: int,
    *,
    max_train: int | None = None,
    dedupe_eval_groups: bool = False,
    small_train: int = SMALL_TRAIN,
    dev_holdout: int = DEV_HOLDOUT,
    dev_from_train: int | None = None,
) -> dict[str, list[Example]]:
    """``{"train", "dev", "test"}`` from released ``{"train", "validation"[, "test"]}``.

    Args:
        raw: released splits; ``"test"`` only where the release labels it.
        seed: seed of the partition and of the cap.
        max_train: cap on the final training split.
        dedupe_eval_groups: keep one example per group in dev and test (generation tasks,
            whose examples of one input carry all references in their label).
        dev_from_train: hold this many training examples out as dev; test is then the
            release's labelled test set, else its whole validation set.
    """
    train = raw["train"]
    if "validation" not in raw and "test" not in raw and dev_from_train is None:
        raise ValueError(
            "the data has a training split only: give a validation or test split to evaluate on, "
            "or the task option dev_from_train to hold dev out of training (test is then empty)"
        )
    if dev_from_train is not None and "validation" not in raw and "test" not in raw:
        train, dev = hold_out(train, dev_from_train, seed)
        return {"train": cap(train, max_train, seed), "dev": list(dev), "test": []}
    if dev_from_train is not None:
        if dev_from_train >= len(train):
            raise ValueError(
                f"dev_from_train={dev_from_train}: cannot hold out {dev_from_train} of the "
                f"{len(train)} training examples as dev"
            )
        train, dev = hold_out(raw["train"], dev_from_train, seed)
        if not train:  # hold_out takes whole groups: the last one may take the rest with it
            raise ValueError(
                f"dev_from_train={dev_from_train}: holding out whole groups took all "
                f"{len(groups_of(raw['train']))} groups of the {len(raw['train'])} training examples, "
                "leaving none to train on; lower dev_from_train"
            )
        test = raw["test"] if "test" in raw else raw["validation"]
    elif "test" in raw and "validation" in raw:
        dev, test = raw["validation"], raw["test"]
    elif len(groups_of(train)) < small_train:
        dev, test = halve(raw["validation"] if "validation" in raw else raw["test"], seed)
    else:
        train, dev = hold_out(train, dev_holdout, seed)
        test = raw["validation"] if "validation" in raw else raw["test"]
    splits = {"train": cap(train, max_train, seed), "dev": list(dev), "test": list(test)}
    if dedupe_eval_groups:
        for name in ("dev", "test"):
            splits[name] = [splits[name][i] for i in first_of_each_group(splits[name])]
    return splits
