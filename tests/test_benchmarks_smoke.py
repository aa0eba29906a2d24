"""Every benchmark script runs end to end in its seconds-long smoke mode, so none can rot.

Scripts are imported and their ``main`` called in this process (no re-import of torch per
script); the train-speed memory measurement runs one variant in-process the way its
subprocess would.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_params_table_matches_papers(capsys):
    assert load_script("params").main([]) == 0
    out = capsys.readouterr().out
    for figure in ("76,800", "231,936", "96,192", "77,668", "10,468"):  # T5-base, the papers' 76.8K ... 10.5K
        assert figure in out
    assert "NO (" not in out  # every formula equals the module actually built


def test_train_speed_smoke_prints_every_ratio(capsys):
    assert load_script("train_speed").main(["--smoke", "--no-memory", "--warmup", "0", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("variant") :]
    for variant in ("limit", "pm-pt", "peft-pt", "pm-attempt", "pm-attempt-m", "pm-mpt-m", "peft-mpt-m"):
        assert f"\n{variant} " in table
    assert "load average" in out


def test_train_speed_memory_child(capsys):
    assert load_script("train_speed").main(["--smoke", "--memory-child", "pm-attempt"]) == 0
    assert '"mib"' in capsys.readouterr().out


@pytest.mark.skipif(
    not (BENCHMARKS.parent.parent / "shared" / "data" / "glue" / "RTE").is_dir(), reason="needs ../shared/data"
)
def test_data_speed_smoke(capsys):
    assert load_script("data_speed").main(["--smoke", "--batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "grouped" in out and "pad-256" in out and "1.00x" in out


def test_quality_smoke_runs_every_method_and_resumes(capsys, tmp_path):
    """The transfer study on a tiny T5: MPT distillation from both P* inits, every method on
    one target, a results JSON per run, figures; a rerun finds every run finished and trains
    nothing."""
    quality = load_script("quality")
    args = ["--smoke", "--out", str(tmp_path)]
    assert quality.main(args) == 0
    out = capsys.readouterr().out
    table = out[out.index("| method") :]
    for label in quality.METHODS:
        assert f"| {label} |" in table
    results = sorted((tmp_path / "results").glob("*.json"))
    assert len(results) == 2 + len(quality.METHODS)  # two distillations, one run per method
    attempt = json.loads((tmp_path / "results" / "k4__cb__attempt__seed42.json").read_text())
    assert attempt["steps"] == 2 and attempt["curves"]["cb"] and attempt["test"]["cb"]["score"] >= 0
    assert attempt["library"] == str(tmp_path / "prompts")  # the smoke run's own tiny-T5 sources
    assert attempt["attention"]["columns"] == ["sst2", "rte", "target"]
    assert abs(sum(attempt["attention"]["rows"]["cb"]) - 1) < 1e-5  # a softmax over sources and target
    distill = json.loads((tmp_path / "results" / "mpt-source__vocab.json").read_text())
    assert [row[0] for row in distill["losses"]] == [1, 2] and all(v is not None for v in distill["losses"][0])
    for figure in ("curves-k4.png", "attention-k4.png", "mpt-distillation.png"):
        assert (tmp_path / "figures" / figure).stat().st_size > 0
    first = {p.name: p.read_text() for p in results}
    # A rerun with the same arguments finds every run finished: nothing trains, same results.
    assert quality.main(args) == 0
    assert "done in" not in capsys.readouterr().out
    assert {p.name: p.read_text() for p in sorted((tmp_path / "results").glob("*.json"))} == first


def test_quality_references_train_the_backbone_only_when_named(capsys, tmp_path):
    """LoRA and full fine-tuning run through the study like any method, train exactly the
    backbone parameters they should, and are never part of the default plan."""
    quality = load_script("quality")
    assert quality.main(["--smoke", "--out", str(tmp_path), "--methods", "LoRA", "fine-tuning"]) == 0
    table = capsys.readouterr().out
    assert "| LoRA |" in table and "| fine-tuning |" in table
    model = quality.load_backbone("tiny").model
    # rank 8 on every q and v projection of T5 (PEFT's default targets): r * (d_in + d_out) each
    lora = sum(
        8 * (m.in_features + m.out_features) for name, m in model.named_modules() if name.split(".")[-1] in ("q", "v")
    )
    full = sum(p.numel() for p in model.parameters())
    for label, expected in (("lora", lora), ("fine-tuning", full)):
        result = json.loads((tmp_path / "results" / f"k4__cb__{label}__seed42.json").read_text())
        assert result["trainable_parameters"] == expected and result["steps"] == 2 and result["test"]["cb"]
    assert not any(
        i.info.get("method") in quality.REFERENCES for i in quality.plan(quality.parse(["--out", str(tmp_path)]))
    )


def test_quality_library_option_points_every_run_at_that_library(tmp_path):
    """--library swaps the source library of every run (ATTEMPT's sources, SPoT's candidates,
    the MPT distillation), and a library without the sources is refused up front, by name."""
    quality = load_script("quality")
    other = tmp_path / "other-library"
    args = quality.parse(["--library", str(other), "--out", str(tmp_path), "--regimes", "k16", "--seeds", "42"])
    items = quality.plan(args)
    assert {item.preset for item in items} >= {"mpt-source.yaml", "attempt.yaml", "prompt-tuning.yaml"}
    assert {str(quality.item_config(item, args).library.root) for item in items} == {str(other)}
    with pytest.raises(SystemExit, match=r"\['sst2', 'qqp', 'rte', 'multirc'\] are not in .*other-library"):
        quality.check_sources(args)
    default = quality.parse(["--out", str(tmp_path)])
    assert str(quality.item_config(quality.plan(default)[0], default).library.root) == str(quality.LIBRARY)
    quality.check_sources(default)  # the study's own library holds its four sources


def test_quality_mpt_source_option_replaces_the_vocab_distillation(tmp_path):
    """--mpt-source: MPT and MPT-m adapt from the given distillation and wait for none; the
    teacher-mean one is still distilled; a distillation of other sources is refused by file."""
    quality = load_script("quality")
    shipped = "promptmix:smollm2-135m/mpt-source"  # mnli, sst2 from the vocabulary start
    argv = [
        "--out",
        str(tmp_path),
        "--regimes",
        "k16",
        "--seeds",
        "42",
        "--targets",
        "cb",
        "--sources",
        "sst2",
        "mnli",
    ]
    args = quality.parse([*argv, "--mpt-source", shipped])
    items = quality.plan(args)
    assert [i.id for i in items if i.info["kind"] == "mpt-source"] == ["mpt-source/teacher-mean"]
    mpt = {i.info["method"]: i for i in items if i.info.get("method", "").startswith("MPT")}
    assert mpt["MPT"].overrides["library.mpt_source"] == mpt["MPT-m"].overrides["library.mpt_source"] == shipped
    assert mpt["MPT"].needs == [] and mpt["MPT (teacher-mean)"].needs == ["mpt-source/teacher-mean"]
    quality.check_mpt_source(args)  # the same two sources, in another order
    default = quality.plan(quality.parse(argv))
    assert {i.id for i in default if i.info["kind"] == "mpt-source"} == {"mpt-source/vocab", "mpt-source/teacher-mean"}
    assert next(i for i in default if i.info.get("method") == "MPT").needs == ["mpt-source/vocab"]
    with pytest.raises(
        SystemExit,
        match=r"mpt-source/method/method.json has \{'tasks': \['mnli', 'sst2'\]\}.*"
        r"needs \{'tasks': \['sst2'\]\}",
    ):
        quality.check_mpt_source(quality.parse([*argv[:-1], "--mpt-source", shipped]))
    with pytest.raises(SystemExit, match="no .*method.json"):
        quality.check_mpt_source(quality.parse([*argv, "--mpt-source", str(tmp_path)]))


def test_quality_set_overrides_every_run_last(tmp_path, capsys):
    """--set reaches every run's config over the study's own values; a malformed one is an error."""
    quality = load_script("quality")
    args = quality.parse(
        [
            "--out",
            str(tmp_path),
            "--regimes",
            "full",
            "--seeds",
            "42",
            "--targets",
            "mrpc",
            "--set",
            "optim.lr=0.03",
            "--set",
            "optim.max_steps=7",
        ]
    )
    configs = [quality.item_config(item, args) for item in quality.plan(args)]
    assert {(c.optim.lr, c.optim.max_steps) for c in configs} == {(0.03, 7)}
    plain = quality.parse(["--out", str(tmp_path), "--regimes", "full", "--seeds", "42", "--targets", "mrpc"])
    # the study's own recipe, pinned: the presets have moved to the calibrated one since
    pinned = {item.preset: quality.item_config(item, plain).optim for item in quality.plan(plain)}
    assert {(o.lr, o.warmup_steps, o.warmup_ratio) for o in pinned.values()} == {(0.3, 20, None)}
    assert pinned["attempt.yaml"].group_lr == {"attention": 0.3}
    assert pinned["mpt-target.yaml"].group_lr == {"task_vectors": 0.4}
    with pytest.raises(SystemExit):
        quality.parse(["--set", "optim.lr"])
    assert "must look like section.key=value" in capsys.readouterr().err


def test_quality_report_takes_only_prompt_tuning_from_the_baseline(tmp_path):
    """--baseline fills in prompt tuning's runs (no source library) and nothing else: a method
    that reads sources must come from the study's own --results."""
    quality = load_script("quality")
    from quality_report import load_results

    results, baseline = tmp_path / "results", tmp_path / "baseline"
    results.mkdir()
    baseline.mkdir()
    args = quality.parse(
        [
            "--report",
            "--results",
            str(results),
            "--baseline",
            str(baseline),
            "--regimes",
            "k16",
            "--seeds",
            "42",
            "--targets",
            "cb",
            "--methods",
            "prompt tuning",
            "ATTEMPT",
        ]
    )
    items = {item.info.get("method"): item for item in quality.plan(args) if item.info.get("kind") == "target"}
    (baseline / f"{items['prompt tuning'].slug}.json").write_text(json.dumps({"from": "baseline"}))
    (baseline / f"{items['ATTEMPT'].slug}.json").write_text(json.dumps({"from": "baseline"}))
    assert load_results(args, list(items.values())) == {items["prompt tuning"].id: {"from": "baseline"}}
    (results / f"{items['prompt tuning'].slug}.json").write_text(json.dumps({"from": "results"}))
    (results / f"{items['ATTEMPT'].slug}.json").write_text(json.dumps({"from": "results"}))
    assert load_results(args, list(items.values())) == {item.id: {"from": "results"} for item in items.values()}


def test_inference_speed_smoke_prints_every_part(capsys):
    fixtures = Path(__file__).resolve().parent / "tasks" / "fixtures"
    assert load_script("inference_speed").main(["--smoke", "--data-dir", str(fixtures)]) == 0
    out = capsys.readouterr().out
    for task in ("mrpc", "cb", "rte"):
        assert f"\n{task} " in out[out.index("rank classification") :]
    for variant in ("promptmix", "hf-plain", "hf-embeds", "dev, old", "dev, now", "evaluation"):
        assert variant in out
    assert "load average" in out


@contextmanager
def claim_held_by_another_process(out: Path, slug: str):
    """A live process holding the study's claim lock on run ``slug`` (as another worker would),
    killed on exit."""
    lock = out / "claims" / f"{slug}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_quality_claims_exclude_a_live_worker_and_free_a_dead_ones_run(tmp_path):
    """Two workers restarted together once took the same stale claim (each read the dead pid,
    then wrote its own); a claim is now a lock that one live process holds at a time."""
    quality = load_script("quality")
    args = SimpleNamespace(out=str(tmp_path))
    item = SimpleNamespace(slug="k4__cb__attempt__seed42")
    with claim_held_by_another_process(tmp_path, item.slug):
        assert quality.held_elsewhere(args, item)
        assert not quality.claim(args, item)  # a live worker has it
    assert not quality.held_elsewhere(args, item)
    assert quality.claim(args, item)  # its worker died: free at once
    assert not quality.held_elsewhere(args, item)  # this process's own claim is not "elsewhere"
    quality.release(args, item)
    assert quality.claim(args, item)  # released claims can be taken again
    quality.release(args, item)


def test_quality_idle_worker_waits_only_for_runs_that_unblock_its_own(tmp_path):
    """A worker with nothing to take waits while another worker runs a distillation that
    target runs need (directly or through another run), and stops when what is running
    elsewhere unblocks nothing, instead of holding its core for the other's whole run."""
    quality = load_script("quality")
    args = SimpleNamespace(out=str(tmp_path), results=str(tmp_path / "results"))

    def item(name: str, *needs: str):
        return quality.Item(name, 0, "p.yaml", {}, {}, list(needs))

    with claim_held_by_another_process(tmp_path, "mpt-source__vocab"):
        distill, mpt = item("mpt-source/vocab"), item("k4/cb/mpt/seed42", "mpt-source/vocab")
        assert quality.waits_on_elsewhere(args, [distill, mpt])
        assert quality.waits_on_elsewhere(args, [distill, mpt, item("k4/cb/later/seed42", "k4/cb/mpt/seed42")])
        assert not quality.waits_on_elsewhere(args, [distill, item("k4/cb/attempt/seed42")])
        (tmp_path / "results").mkdir()
        (tmp_path / "results" / "k4__cb__mpt__seed42.json").write_text("{}")  # its dependant already finished
        assert not quality.waits_on_elsewhere(args, [distill, mpt])
    (tmp_path / "results" / "k4__cb__mpt__seed42.json").unlink()
    assert not quality.waits_on_elsewhere(args, [distill, mpt])  # the holder died: nothing runs elsewhere


def test_quality_eval_at_start_reaches_every_target_run(tmp_path):
    quality = load_script("quality")
    for flag, expected in (([], False), (["--eval-at-start"], True)):
        args = quality.parse(["--smoke", "--out", str(tmp_path), *flag])
        targets = [item for item in quality.plan(args) if item.info["kind"] == "target"]
        assert targets and {quality.item_config(item, args).eval.at_start for item in targets} == {expected}


def test_quality_report_head_start_table_averages_step_0_first_and_best_over_seeds():
    report = load_script("quality_report")

    def run(method, seed, points):
        return {"method": method, "seed": seed, "tasks": ["cb"], "curves": {"cb": points}}

    results = [
        run("prompt tuning", 42, [[0, 30.0], [20, 40.0], [40, 50.0]]),
        run("prompt tuning", 43, [[0, 20.0], [20, 60.0], [40, 45.0]]),
        run("ATTEMPT", 42, [[0, 55.0], [20, 50.0], [40, 52.0]]),
    ]
    table = report.head_start_table(
        SimpleNamespace(targets=["mrpc", "cb"]), results, ["prompt tuning", "ATTEMPT", "MPT"]
    )
    assert table.splitlines()[0] == "| method | cb: step 0 → step 20 → best |"
    assert "| prompt tuning | 25.0 → 50.0 → 55.0 |" in table  # best: mean of 50 and 60
    assert "| ATTEMPT | 55.0 → 50.0 → 55.0 |" in table and "| MPT |" not in table
    no_step_0 = [run("prompt tuning", 42, [[20, 40.0], [40, 50.0]])]
    assert report.head_start_table(SimpleNamespace(targets=["cb"]), no_step_0, ["prompt tuning"]) is None


def test_quality_worker_reports_a_failed_run_and_goes_on(tmp_path, monkeypatch, capsys):
    """A run that raises (CB at k = 32 has only 16 "neutral" examples) once stopped the whole
    worker; now it is reported, skipped with the runs that need it, and the rest still run."""
    quality = load_script("quality")
    args = quality.parse(["--smoke", "--out", str(tmp_path)])
    items = quality.plan(args)
    bad = items[0]  # the first distillation: the MPT runs starting from it must be skipped too
    ran = []

    def run_item(args, item, config, backbone, accelerator):
        ran.append(item.id)
        if item.id == bad.id:
            raise ValueError("cb: class 'neutral' has 16 examples, fewer than k * runs = 32 * 1")
        quality.result_path(args, item).parent.mkdir(parents=True, exist_ok=True)
        quality.result_path(args, item).write_text("{}")

    monkeypatch.setattr(quality, "run_item", run_item)
    monkeypatch.setattr(quality, "load_backbone", lambda name: object())
    assert quality.work(args) == [bad.id]
    expected = [i.id for i in items if i.id != bad.id and bad.id not in i.needs]
    assert sorted(ran) == sorted([bad.id, *expected]) and len(expected) >= 3
    assert f"{bad.id}: FAILED: ValueError: cb: class 'neutral'" in capsys.readouterr().out


# -- the second transfer study and the calibration sweep -----------------------------------------
@pytest.mark.skipif(
    not (BENCHMARKS.parent.parent / "shared" / "data" / "superglue" / "CB").is_dir(), reason="needs ../shared/data"
)
def test_transfer2_smoke_keeps_predictions_and_reports_intervals(capsys, tmp_path):
    """Two draws of k = 4 on CB: each summary keeps every test prediction (checked against the
    run's score when written), draw d of both methods trains on the same sample, and the report
    prints the paired difference with its interval."""
    script = load_script("transfer")
    assert script.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    assert sorted(results) == [
        "k4__cb__attempt__seed1",
        "k4__cb__attempt__seed2",
        "k4__cb__prompt-tuning__seed1",
        "k4__cb__prompt-tuning__seed2",
    ]
    for r in results.values():
        assert len(r["test_predictions"]["cb"]) == len(r["test_gold"]["cb"]) == 56  # all of CB's validation set
        assert r["train_examples"] == {"cb": 12}  # k = 4 per class
    assert results["k4__cb__attempt__seed1"]["test_gold"] == results["k4__cb__prompt-tuning__seed2"]["test_gold"]
    assert "| ATTEMPT | " in out and "Δ mean vs prompt tuning [95 % CI]" in out and "2 draws" in out
    # the head start: dev at step 0, at the first evaluation and at the best, the mean of the draws
    for method, slug in (("prompt tuning", "prompt-tuning"), ("ATTEMPT", "attempt")):
        curves = [results[f"k4__cb__{slug}__seed{d}"]["curves"]["cb"] for d in (1, 2)]
        assert curves[0][0][0] == 0 and curves[0][1][0] == 2
        cells = [sum(values) / 2 for values in zip(*[(c[0][1], c[1][1], max(v for _, v in c)) for c in curves])]
        assert f"| {method} | " + " → ".join(f"{v:.1f}" for v in cells) + " |" in out
    assert (tmp_path / "figures" / "curves-k4.png").is_file() and (tmp_path / "figures" / "attention-k4.png").is_file()


@pytest.mark.skipif(
    not (BENCHMARKS.parent.parent / "shared" / "data" / "superglue" / "BoolQ").is_dir(), reason="needs ../shared/data"
)
def test_transfer2_smoke_multi_task_scores_each_target_from_its_own_best(capsys, tmp_path):
    """ATTEMPT-m at k = 16 on BoolQ and RTE (RTE is a smoke source too: the tiny-T5 library has
    only SST-2 and RTE, and nothing here measures transfer; CB cannot be drawn at k = 16, its
    training split keeps 10 'neutral' examples): one run over both targets with twice the steps,
    each target scored on test from its own best checkpoint with every prediction kept, and the
    report's ATTEMPT-m cells, paired differences and attention rows per target from that run."""
    from promptmix.tasks import get_task

    script = load_script("transfer")
    argv = ["--smoke", "--out", str(tmp_path), "--regimes", "k16", "--few-targets", "boolq", "rte", "--draws", "1"]
    argv += ["--methods", "prompt tuning", "ATTEMPT-m"]
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    assert sorted(results) == [
        "k16__all__attempt-m__seed1",
        "k16__boolq__prompt-tuning__seed1",
        "k16__rte__prompt-tuning__seed1",
    ]
    multi = results["k16__all__attempt-m__seed1"]
    run = tmp_path / "runs" / "k16__all__attempt-m__seed1"
    assert multi["tasks"] == ["boolq", "rte"] and multi["steps"] == 4 and multi["steps_per_task"] == 2
    assert multi["train_examples"] == {"boolq": 32, "rte": 32}  # k = 16 per class
    assert "mixing_cap: 32" in (run / "config.yaml").read_text()
    assert multi["extra"]["select"] == "per-task" and sorted(multi["extra"]["best_step_per_task"]) == ["boolq", "rte"]
    assert all((run / "best-per-task" / t).is_dir() for t in ("boolq", "rte"))
    tasks = {t: get_task(t) for t in ("boolq", "rte")}
    for t, size in (("boolq", 1635), ("rte", 277)):
        predictions, gold = multi["test_predictions"][t], multi["test_gold"][t]
        assert (
            len(predictions) == len(gold) == size and gold == results[f"k16__{t}__prompt-tuning__seed1"]["test_gold"][t]
        )
        score = multi["test"][t][multi["main_metric"][t]]
        assert script.main_metric(tasks[t], predictions, gold) == pytest.approx(score, abs=1e-6)
        assert abs(sum(multi["attention"]["rows"][t]) - 1) < 1e-5 and f"| k16 | ATTEMPT-m | {t} |" in out

    # The tiny random T5 answers one constant, so every method scores the majority class here. For
    # values that tell cells apart, the -m run's RTE answers get its first 100 examples wrong; the
    # report must show that run's new score in RTE's column and pair it with prompt tuning on RTE.
    gold = multi["test_gold"]["rte"]
    multi["test_predictions"]["rte"] = [1 - g for g in gold[:100]] + gold[100:]
    wrong_100 = script.main_metric(tasks["rte"], multi["test_predictions"]["rte"], gold)
    assert wrong_100 == pytest.approx(100 * 177 / 277) and set(multi["test"]["rte"]) == {"accuracy", "score"}
    multi["test"]["rte"] = {"accuracy": wrong_100, "score": wrong_100}  # RTE's score is its accuracy
    (tmp_path / "results" / "k16__all__attempt-m__seed1.json").write_text(json.dumps(multi))
    assert script.main([*argv, "--report"]) == 0
    # its row in the table, in the per-target differences and in the head-start table
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ATTEMPT-m |")]
    main_row, delta_row, _ = rows
    for i, t in enumerate(("boolq", "rte"), start=1):
        score = multi["test"][t][multi["main_metric"][t]]
        single = results[f"k16__{t}__prompt-tuning__seed1"]
        baseline = single["test"][t][single["main_metric"][t]]
        assert main_row.split(" | ")[i] == f"{score:.1f}"  # the -m run's own score of t, in t's column
        assert delta_row.split(" | ")[i].startswith(f"{score - baseline:+.1f} [")  # paired with prompt tuning on t
    assert main_row.split(" | ")[2] == "63.9" != main_row.split(" | ")[1]  # 177 of 277 right


def test_transfer2_plan_multi_task_variants(tmp_path):
    """ATTEMPT-m and MPT-m: one run per draw over the four few-shot targets at k = 16 only, 4 x the
    steps and dev / save interval of a single-task run, each target's dev-from-train option,
    per-task selection, a mixture capped at the two-class targets' 32 examples (CB has 48), and
    taken after every k = 4 run; their configs build."""
    script = load_script("transfer")
    args = script.parse(["--out", str(tmp_path)])
    items = script.plan(args)
    multi = [i for i in items if i.info["method"] in ("ATTEMPT-m", "MPT-m")]
    assert sorted(i.id for i in multi) == sorted(
        f"k16/all/{slug}/seed{d}" for slug in ("attempt-m", "mpt-m") for d in script.DRAWS
    )
    for item in multi:
        values = item.overrides
        assert item.info["tasks"] == values["data.tasks"] == ["boolq", "cb", "scitail", "rte"]
        assert values["optim.max_steps"] == 4 * 100 and values["eval.every"] == values["run.save_every"] == 4 * 25
        assert values["data.multi_task"] and values["eval.select"] == "per-task" and values["data.mixing_cap"] == 32
        assert values["data.task_options.cb"] == {"dev_from_train": 50} and "data.task_options.rte" in values
        assert (
            values["data.few_shot_k"] == 16 and values["data.few_shot_seed"] == values["run.seed"] == item.info["seed"]
        )
        config = script.quality.item_config(item, args)
        assert config.data.mixing_cap == 32 and config.eval.select == "per-task" and config.data.multi_task
    assert min(i.priority for i in multi) > max(i.priority for i in items if i.info["regime"] == "k4")
    assert items.index(multi[0]) > max(items.index(i) for i in items if i.info["regime"] == "k4")
    assert script.mixing_cap(["cb"], 16) == 48 and script.mixing_cap(["cb", "rte"], 4) == 8


def test_the_main_job_is_the_second_studys_k16_cb_cell_for_draw_1():
    """configs/cpu/pipeline.yaml trains what benchmarks/transfer.py trains for k = 16, CB, draw 1,
    for each of its three methods: the same resolved config but for where runs and prompts live."""
    import dataclasses

    from promptmix.training.pipeline import PipelineConfig

    transfer = load_script("transfer")
    args = transfer.parse(["--regimes", "k16", "--draws", "1", "--few-targets", "cb"])
    items = {i.info["method"]: i for i in transfer.plan(args)}
    pipeline = PipelineConfig.load(BENCHMARKS.parent / "configs" / "cpu" / "pipeline.yaml")
    for stage in pipeline.stages:
        mine = dataclasses.asdict(pipeline.stage_config(stage))
        study = dataclasses.asdict(transfer.quality.item_config(items[stage.label], args))
        for config in (mine, study):  # where things live, not what is trained
            config["run"]["dir"] = config["library"]["root"] = config["library"]["mpt_source"] = None
            config["data"]["data_dir"] = config["run"]["progress"] = None  # and how it is shown
        differ = {
            f"{section}.{key}": (mine[section][key], study[section].get(key))
            for section in mine
            if isinstance(mine[section], dict)
            for key in mine[section]
            if mine[section][key] != study[section].get(key)
        }
        assert mine == study, (stage.label, differ)


def test_transfer2_bootstrap_metrics_equal_the_tasks_metrics():
    """The numpy metrics the bootstrap resamples equal the tasks' own (scikit-learn) metrics."""
    import random

    from promptmix.tasks import Example, get_task

    script = load_script("transfer")
    rng = random.Random(0)
    for name in ("cb", "mrpc", "boolq", "cola"):
        task = get_task(name)
        words = task.label_words
        gold = [rng.randrange(len(words)) for _ in range(60)]
        pred = [rng.randrange(-1, len(words)) for _ in range(60)]  # -1: no label word
        examples = [Example(source="x", target=words[g], task=name, label=words[g]) for g in gold]
        texts = [words[p] if p >= 0 else "???" for p in pred]
        expected = task.compute_metrics(texts, examples)[task.main_metric]
        assert script.main_metric(task, pred, gold) == pytest.approx(expected, abs=1e-9), name


def test_transfer2_paired_bootstrap_on_known_differences():
    """Always right against always wrong: +100 with a zero-width interval; a method equal to the
    baseline: 0; one answer in ten flipped to right on 3 draws: +10 inside its interval."""
    from promptmix.tasks import get_task

    script = load_script("transfer")
    tasks = {"rte": get_task("rte")}
    gold = [0, 1] * 10
    wrong = [1 - g for g in gold]
    result = script.paired_bootstrap({"rte": {d: (gold, wrong, gold) for d in (1, 2, 3)}}, tasks, 200)
    assert result["rte"] == (100.0, 100.0, 100.0) and result["mean"] == (100.0, 100.0, 100.0)
    assert script.paired_bootstrap({"rte": {1: (wrong, wrong, gold)}}, tasks, 50)["mean"] == (0.0, 0.0, 0.0)
    better = list(wrong)
    better[0], better[1] = gold[0], gold[1]  # 2 of 20 right
    delta, low, high = script.paired_bootstrap({"rte": {d: (better, wrong, gold) for d in (1, 2, 3)}}, tasks, 500)[
        "rte"
    ]
    assert delta == pytest.approx(10.0) and 0.0 <= low < 10.0 < high <= 25.0


def test_calibration_smoke_sweeps_and_picks(capsys, tmp_path):
    """Two rates × two inits on a tiny T5: a summary per run with its dev curve from step 0 and
    the prompt's scale, and a pick printed from the table."""
    assert load_script("calibrate").main(["--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    results = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert sorted((r["init"], r["lr"]) for r in results) == [
        ("class-label", 0.03),
        ("class-label", 0.3),
        ("vocab", 0.03),
        ("vocab", 0.3),
    ]
    for r in results:
        assert [s for s, _ in r["curve"]] == [0, 2, 4] and r["prompt_row_norm"] > 0
        assert r["config"]["optim.warmup_ratio"] == 0.1
    # A tiny random T5 learns nothing in 4 steps, so the report says why there is no pick.
    assert "**No pick yet**" in out and (tmp_path / "figures" / "calibration-curves.png").is_file()

    # --promote stores a run's best prompt as a source, with the card a source run writes
    from promptmix.prompts.checkpoint import load_method
    from promptmix.prompts.library import PromptLibrary

    script = load_script("calibrate")
    summary = next(r for r in results if (r["init"], r["lr"]) == ("vocab", 0.3))
    run = summary["id"]
    assert script.main(["--smoke", "--out", str(tmp_path), "--promote", run, "--library", str(tmp_path / "lib")]) == 0
    (record,) = PromptLibrary(tmp_path / "lib").list()
    card = record.card
    assert (record.name, card["dev_score"], card["best_step"], card["steps"]) == (
        "rte",
        summary["best_dev"],
        summary["best_step"],
        summary["steps"],
    )
    assert card["best_constant_dev_score"] == summary["best_constant_dev"] and card["settings"]["warmup_ratio"] == 0.1
    assert card["trained_by"].startswith(f"benchmarks/calibrate.py, run {run}")
    backbone = script.load_backbone("tiny")
    best = load_method(tmp_path / "runs" / run.replace("/", "__") / "method", backbone).task_prompt("rte")
    assert PromptLibrary(tmp_path / "lib").load("rte", backbone).equal(best)


def _calibration_result(task, lr, best, curve, constant, init="vocab"):
    return {
        "task": task,
        "init": init,
        "lr": lr,
        "seed": 42,
        "best_dev": best,
        "best_constant_dev": constant,
        "curve": [[25 * i, v] for i, v in enumerate(curve)],
    }


def test_calibration_pick_ignores_a_task_left_at_chance_and_prefers_the_fastest_learner():
    """SST-2 learned (best 86 vs constant 54.5), MNLI at chance everywhere (best 42 < 34.5 + 10):
    MNLI's 42.0 at lr 0.3 must not sway the pick. lr 0.1 and 0.003 tie on SST-2 within a point
    (86.0, 85.5); lr 0.1's curve rises first (mean 75 vs 65), so it is the pick; lr 0.3 is 2
    points off the best and out."""
    script = load_script("calibrate")
    results = [
        _calibration_result("sst2", 0.1, 86.0, [45, 80, 86, 84, 85], 54.5),
        _calibration_result("sst2", 0.003, 85.5, [45, 55, 60, 80, 85.5], 54.5),
        _calibration_result("sst2", 0.3, 84.0, [45, 84, 84, 84, 84], 54.5),
        _calibration_result("mnli", 0.3, 42.0, [36, 42, 35, 35, 35], 34.5),
        _calibration_result("mnli", 0.1, 35.0, [36, 35, 35, 35, 35], 34.5),
    ]
    chosen = script.pick(results, ["sst2", "mnli"])
    assert (chosen["init"], chosen["lr"], chosen["uninformative"]) == ("vocab", 0.1, ["mnli"])
    assert chosen["means"] == {"sst2": 86.0} and chosen["curve"] == pytest.approx(76.0)
    assert script.pick(results[3:], ["sst2", "mnli"]) is None  # nothing learned: no pick


def test_contention_smoke_measures_both_wait_policies(capsys):
    assert load_script("contention").main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert (
        "promptmix default (passive wait)" in out
        and "OpenMP default (torch imported first)" in out
        and "busy/idle" in out
    )


def test_importing_promptmix_first_sets_a_passive_openmp_wait_and_keeps_the_users():
    """The CLI imports promptmix before torch, so the OpenMP runtime starts with a passive wait;
    a policy the user set stays."""
    code = "import os, promptmix; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
        == "PASSIVE"
    )
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "ACTIVE"
    )
