"""Dev curves of the shipped SmolLM2 source prompts (promptmix:smollm2-135m), and the table of
their cards.

    python benchmarks/source_curves.py --collect sst2=RUN_DIR rte=RUN_DIR ...   # keep the curves
    python benchmarks/source_curves.py                                            # table + figure

``--collect`` reads each source run's ``metrics.jsonl`` (``promptmix train source --config
configs/smollm2/sources.yaml``) and writes ``benchmarks/results/sources/<task>.json`` (committed:
run directories are not). Without it, the committed curves and the library's cards become a
markdown table (stdout) and ``docs/figures/sources-smollm2.png``. A curve without a library
entry is a source that was trained and left out (it did not beat its best constant answer); the
transfer study's copy of the library (``benchmarks/results/transfer/library``) still has the
card of one that was shipped once (MultiRC).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import REPO  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "sources"
FIGURE = REPO / "docs" / "figures" / "sources-smollm2.png"
LIBRARY = "promptmix:smollm2-135m"
STUDY_LIBRARY = REPO / "benchmarks" / "results" / "transfer" / "library"


def collect(pairs: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        task, _, run_dir = pair.partition("=")
        records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
        curve = [[r["step"], r["dev"][task]] for r in records if "dev" in r and task in r["dev"]]
        losses = [[r["step"], r["loss"]] for r in records if "loss" in r]
        (out / f"{task}.json").write_text(json.dumps({"task": task, "dev": curve, "loss": losses}, indent=1) + "\n")
        print(f"{task}: {len(curve)} dev points, last step {curve[-1][0] if curve else '-'}")


def cards(library_root: Path) -> dict[str, dict]:
    """Each source's card: the shipped library's, else the transfer study's copy (which keeps
    the sources trained and later left out, such as MultiRC)."""
    from promptmix.prompts.library import PromptLibrary

    found = {}
    for root in (STUDY_LIBRARY, library_root):  # the shipped library wins
        library = PromptLibrary(root)
        found.update({name: library.get(name).card for name in library.names()})
    return found


def table(library_root: Path, curves: dict[str, dict]) -> str:
    from promptmix.prompts.library import PromptLibrary

    shipped, known = PromptLibrary(library_root), cards(library_root)
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
                else ("no: below its best constant answer" if c["dev_score"] <= c["best_constant_dev_score"] else "no")
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


def figure(library_root: Path, curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from promptmix.prompts.library import PromptLibrary

    shipped, known = PromptLibrary(library_root), cards(library_root)
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
    p.add_argument("--library", default=LIBRARY)
    args = p.parse_args(argv)
    if args.collect:
        collect(args.collect, Path(args.results))
        return
    from promptmix.prompts.library import resolve_library_root

    curves = {path.stem: json.loads(path.read_text()) for path in sorted(Path(args.results).glob("*.json"))}
    root = resolve_library_root(args.library)
    print(table(root, curves))
    figure(root, curves, Path(args.figure))


if __name__ == "__main__":
    main()
