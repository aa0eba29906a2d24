"""Dev curves of the shipped SmolLM2 source prompts (promptmix:smollm2-135m), and the table of
their cards.

    python benchmarks/source_curves.py --collect mnli=RUN_DIR sst2=RUN_DIR ...   # keep the curves
    python benchmarks/source_curves.py                                             # table + figure

``--collect`` reads each source run's ``metrics.jsonl`` (``promptmix train source --config
configs/smollm2/sources.yaml``, or the calibration cell a source was promoted from) and writes
``benchmarks/results/sources-v2/<task>.json`` (committed: run directories are not). Without it,
the committed curves and the cards become a markdown table (stdout) and
``docs/figures/sources-smollm2-v2.png``. Every source trained for the library keeps its card in
``benchmarks/results/library-v2`` (the run's whole library, shipped or not); the shipped
library holds those that beat their best constant answer by 10 dev points.

The first library (SST-2, QQP, RTE at lr 0.3; the first transfer study's) has its curves in
``benchmarks/results/sources`` and its figure in ``docs/figures/sources-smollm2.png``:
``--results benchmarks/results/sources --cards benchmarks/results/transfer/library --library
benchmarks/results/transfer/library --figure /tmp/v1.png`` redraws them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import REPO  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "sources-v2"
FIGURE = REPO / "docs" / "figures" / "sources-smollm2-v2.png"
LIBRARY = "promptmix:smollm2-135m"
ALL_CARDS = REPO / "benchmarks" / "results" / "library-v2"  # every source trained, shipped or not
MARGIN = 10.0  # a source ships at its best constant answer + this on dev (issue 32)


def collect(pairs: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        task, _, run_dir = pair.partition("=")
        records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
        by_step = {r["step"]: r["dev"][task] for r in records if "dev" in r and task in r["dev"]}  # a redone step once
        curve = [[step, dev] for step, dev in sorted(by_step.items())]
        losses = [[r["step"], r["loss"]] for r in records if "loss" in r]
        (out / f"{task}.json").write_text(json.dumps({"task": task, "dev": curve, "loss": losses}, indent=1) + "\n")
        print(f"{task}: {len(curve)} dev points, last step {curve[-1][0] if curve else '-'}")


def cards(library_root: Path, all_cards: Path) -> dict[str, dict]:
    """Each source's card: the shipped library's, else the one kept with every source trained
    (``all_cards``: those left out too)."""
    from promptmix.prompts.library import PromptLibrary

    found = {}
    for root in (all_cards, library_root):  # the shipped library wins
        library = PromptLibrary(root)
        found.update({name: library.get(name).card for name in library.names()})
    return found


def table(library_root: Path, curves: dict[str, dict], all_cards: Path) -> str:
    from promptmix.prompts.library import PromptLibrary

    shipped, known = PromptLibrary(library_root), cards(library_root, all_cards)
    rows = [
        "| task | dev metric | dev score (best) | majority class | best constant answer | best step | steps run "
        "| examples seen | dev examples | wall time | shipped |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for task in sorted(set(curves) | set(known)):
        if task in known:
            c = known[task]
            verdict = (
                "yes"
                if task in shipped
                else (
                    "no: below its best constant answer"
                    if c["dev_score"] <= c["best_constant_dev_score"]
                    else f"no: under its best constant answer + {MARGIN:g}"
                    if c["dev_score"] < c["best_constant_dev_score"] + MARGIN
                    else "no"
                )
            )
            rows.append(
                f"| {task} | {c['metric']} | {c['dev_score']:.1f} | {c['majority_dev_score']:.1f} | "
                f"{c['best_constant_dev_score']:.1f} ({c['best_constant_answer']}) | "
                f"{c['best_step']} | {c['steps']} | {c['examples_seen']:,} | {c['settings']['dev_examples']} | "
                f"{c['seconds'] / 60:.0f} min | {verdict} |"
            )
        else:
            best = max(curves[task]["dev"], key=lambda point: point[1]["score"])
            rows.append(
                f"| {task} | score | {best[1]['score']:.1f} | - | - | {best[0]} | {curves[task]['dev'][-1][0]} | "
                f"- | - | - | no: did not learn |"
            )
    return "\n".join(rows)


def figure(library_root: Path, curves: dict[str, dict], path: Path, all_cards: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from promptmix.prompts.library import PromptLibrary

    shipped, known = PromptLibrary(library_root), cards(library_root, all_cards)
    tasks = sorted(curves)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        steps = [p[0] for p in curves[task]["dev"]]
        ax.plot(steps, [p[1]["score"] for p in curves[task]["dev"]], marker="o", ms=3, label="dev score")
        if task in known:
            card = known[task]
            ax.axhline(card["majority_dev_score"], color="grey", ls="--", lw=1, label="majority class")
            if card["best_constant_dev_score"] != card["majority_dev_score"]:
                ax.axhline(card["best_constant_dev_score"], color="red", ls="--", lw=1, label="best constant answer")
            ship = max(card["majority_dev_score"], card["best_constant_dev_score"]) + MARGIN
            ax.axhline(ship, color="red", ls=":", lw=1, label=f"ships at + {MARGIN:g}")
            ax.axvline(card["best_step"], color="green", ls=":", lw=1, label="kept (best)")
        verdict = "" if task in shipped else ": left out"
        ax.set_title(f"{task} ({known[task]['metric']}){verdict}" if task in known else f"{task}{verdict}", fontsize=9)
        ax.set_xlabel("step (batch 8)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("dev score")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--collect", nargs="+", metavar="TASK=RUN_DIR", help="keep these runs' dev curves")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--figure", default=str(FIGURE))
    p.add_argument("--library", default=LIBRARY, help="the shipped library (its cards win)")
    p.add_argument("--cards", default=str(ALL_CARDS), help="a library holding every source's card, left out or not")
    args = p.parse_args(argv)
    if args.collect:
        collect(args.collect, Path(args.results))
        return
    from promptmix.prompts.library import resolve_library_root

    curves = {path.stem: json.loads(path.read_text()) for path in sorted(Path(args.results).glob("*.json"))}
    root = resolve_library_root(args.library)
    print(table(root, curves, Path(args.cards)))
    figure(root, curves, Path(args.figure), Path(args.cards))


if __name__ == "__main__":
    main()
