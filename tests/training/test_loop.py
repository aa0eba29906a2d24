"""The loop itself: each parameter group trains at its own learning rate, gradient
accumulation equals one big batch, checkpoints round-trip the optimizer exactly, and a
latest checkpoint survives an interrupted write."""

from __future__ import annotations

import json

import pytest
import torch
from trainhelpers import config, model_dirs, random_library  # noqa: F401  (fixture)


def _attempt_job(model_dirs, tmp_path, **extra):
    """An ATTEMPT TrainingJob on CB built the way the attempt stage builds it."""
    from promptmix.backbone import PromptedModel
    from promptmix.loading import load_backbone
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.data import TrainSet, build_batch_sampler
    from promptmix.training.loop import TrainingJob
    from promptmix.training.losses import task_loss
    from promptmix.training.runs import Context, make_accelerator
    from promptmix.training.stages import _attempt

    random_library(tmp_path / "prompts", model_dirs["t5"])
    cfg = config(
        "attempt",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["cb"],
        library__sources=["sst2", "rte"],
        library__init_from="rte",
        **extra,
    )
    backbone = load_backbone(model_dirs["t5"])
    ctx = Context(cfg, make_accelerator(cfg), backbone)
    torch.manual_seed(0)
    method = _attempt(ctx, ["cb"], "rte")
    data = load_tasks(cfg.data, ["cb"])
    train_set = TrainSet(data, {"cb": 0}, backbone, cfg.data)
    job = TrainingJob(
        "test",
        PromptedModel(backbone, method),
        method.param_groups(),
        train_set,
        build_batch_sampler(cfg.data, train_set, cfg.optim.batch_size, cfg.run.seed),
        task_loss,
    )
    return cfg, ctx, method, job


def _per_task_selection(model_dirs, tmp_path, max_steps):
    """The context and data of a multi-task prompt-tuning run on SST-2 and RTE that keeps each
    target's best checkpoint (eval.select per-task), with a dev evaluation every 2 steps."""
    from promptmix.loading import load_backbone
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.runs import Context, make_accelerator

    cfg = config(
        "prompt-tuning",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["sst2", "rte"],
        data__multi_task=True,
        optim__max_steps=max_steps,
        eval__every=2,
        eval__select="per-task",
    )
    ctx = Context(cfg, make_accelerator(cfg), load_backbone(model_dirs["t5"]))
    return ctx, load_tasks(cfg.data, ["sst2", "rte"])


def test_each_group_trains_at_its_own_rate(model_dirs, tmp_path):
    """After one AdamW step (no warmup, no decay, no clipping) every element with a gradient
    moves by lr · g / (|g| + eps) ≈ lr of ITS group: 0.3 for the prompts, 0.02 for G."""
    from promptmix.training.loop import train

    cfg, ctx, method, job = _attempt_job(
        model_dirs,
        tmp_path,
        optim__max_steps=1,
        optim__warmup_steps=0,
        optim__weight_decay=0.0,
        optim__max_grad_norm=None,
        optim__lr=0.3,
        optim__group_lr={"attention": 0.02},
        eval__every=0,
    )
    before = {name: [p.detach().clone() for p in ps] for name, ps in method.param_groups().items()}
    train(job, cfg, tmp_path / "run", ctx.accelerator)
    for name, rate in (("prompts", 0.3), ("attention", 0.02)):
        moved = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(method.param_groups()[name], before[name])])
        moved = moved[moved > 1e-7]
        assert moved.numel() > 0
        assert torch.allclose(moved.median(), torch.tensor(rate), rtol=1e-3), (name, moved.median())
        assert moved.max() <= rate * (1 + 1e-5)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-000001" / "optimizer.json").read_text())
    assert {g["name"]: g["initial_lr"] for g in state["param_groups"]} == {"prompts": 0.3, "attention": 0.02}


def test_accumulation_equals_one_big_batch(model_dirs, tmp_path):
    """batch 8 in one step == 4 micro-batches of 2 accumulated (the loss is the global token mean)."""
    from promptmix.training.loop import train

    finals = []
    for accumulation in (1, 4):
        cfg, ctx, method, job = _attempt_job(
            model_dirs,
            tmp_path / str(accumulation),
            optim__batch_size=8,
            optim__gradient_accumulation_steps=accumulation,
            optim__max_steps=3,
            eval__every=0,
            run__dir=str(tmp_path / f"run{accumulation}"),
        )
        train(job, cfg, tmp_path / f"run{accumulation}", ctx.accelerator)
        finals.append({k: v.detach().clone() for k, v in method.state_dict().items()})
    for key in finals[0]:
        torch.testing.assert_close(finals[0][key], finals[1][key], rtol=1e-5, atol=1e-6)


def test_optimizer_state_round_trips_exactly():
    from promptmix.training.checkpoint import optimizer_from_files, optimizer_to_files

    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    opt = torch.optim.AdamW(
        [{"params": params[:1], "name": "a", "lr": 0.3}, {"params": params[1:], "name": "b", "lr": 0.1}]
    )
    (params[0].sum() + params[1].square().sum()).backward()
    opt.step()
    tensors, doc = optimizer_to_files(opt.state_dict())
    restored = optimizer_from_files(tensors, json.loads(json.dumps(doc)))
    fresh = torch.optim.AdamW(
        [{"params": params[:1], "name": "a", "lr": 0.3}, {"params": params[1:], "name": "b", "lr": 0.1}]
    )
    fresh.load_state_dict(restored)
    for i, entry in opt.state_dict()["state"].items():
        for key, value in entry.items():
            assert fresh.state_dict()["state"][i][key].equal(value)
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_latest_checkpoint_survives_an_interrupted_write(tmp_path, monkeypatch):
    """A crash while writing checkpoint N+1 leaves latest.json on the complete checkpoint N."""
    from promptmix.training import checkpoint as ckpt

    kwargs = {
        "trainable": {"w": torch.ones(2)},
        "optimizer": {"state": {}, "param_groups": []},
        "scheduler": {},
        "rng": [ckpt.rng_state()],
        "keep": 2,
    }
    ckpt.save_checkpoint(tmp_path, trainer={"step": 1}, **kwargs)

    def crash(*args, **kw):
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the directory

    monkeypatch.setattr(ckpt, "atomic_save_safetensors", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, trainer={"step": 2}, **kwargs)
    monkeypatch.undo()
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.name == "step-000001"
    assert ckpt.load_checkpoint(latest, 0)["trainable"]["w"].equal(torch.ones(2))
    assert not (tmp_path / "step-000002").exists()


def test_patience_stops_when_dev_flattens_and_a_resume_stops_at_the_same_step(model_dirs, tmp_path):
    """eval.patience 2 with dev scored every step and scripted scores 50, 60, 55, 58, 70, ...:
    the best is step 2, steps 3 and 4 bring nothing new, so the run ends at step 4 of 10,
    completed and early_stopped; stopping at step 3 and resuming ends at the same step with the
    same best and the same prompts."""
    import dataclasses

    from promptmix.training.loop import train

    scores = {1: 50.0, 2: 60.0, 3: 55.0, 4: 58.0, 5: 70.0}
    outcomes, finals = [], []
    for stop_after in (None, 3):
        run_dir = tmp_path / f"run-{stop_after}"
        cfg, ctx, method, job = _attempt_job(
            model_dirs,
            tmp_path / f"lib-{stop_after}",
            optim__max_steps=10,
            eval__every=1,
            eval__patience=2,
            run__save_every=1,
            run__stop_after=stop_after,
        )
        steps = iter(range(1, 11))
        job = dataclasses.replace(job, evaluate=lambda model, steps=steps: {"score": scores.get(next(steps), 0.0)})
        outcome = train(job, cfg, run_dir, ctx.accelerator)
        if stop_after is not None:
            assert outcome.step == 3 and not outcome.completed
            cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, stop_after=None))
            steps = iter(range(4, 11))  # dev at steps 4, 5, ... after the resume
            job = dataclasses.replace(job, evaluate=lambda model, steps=steps: {"score": scores.get(next(steps), 0.0)})
            outcome = train(job, cfg, run_dir, ctx.accelerator, resume=True)
        outcomes.append(outcome)
        finals.append({k: v.detach().clone() for k, v in method.state_dict().items()})
    for outcome in outcomes:
        assert (outcome.step, outcome.total_steps, outcome.best_step, outcome.best_score) == (4, 10, 2, 60.0)
        assert outcome.completed and outcome.early_stopped
    for key in finals[0]:
        assert torch.equal(finals[0][key], finals[1][key])


def test_eval_at_start_scores_the_initial_prompt_as_step_0(model_dirs, tmp_path):
    """eval.at_start: the first dev evaluation sees the untouched initial parameters, is logged
    at step 0 and can be the best (a transferred start that training only makes worse); a
    resume from a later checkpoint does not score step 0 again."""
    import dataclasses

    from promptmix.training.loop import train

    cfg, ctx, method, job = _attempt_job(
        model_dirs,
        tmp_path / "lib",
        optim__max_steps=4,
        eval__every=2,
        eval__at_start=True,
        run__save_every=1,
        run__stop_after=3,
    )
    initial = {k: v.detach().clone() for k, v in method.state_dict().items()}
    seen: list[bool] = []  # per evaluation: were the parameters still the initial ones?
    scores = iter([80.0, 60.0, 70.0])

    def evaluate(model):
        seen.append(all(torch.equal(v, initial[k]) for k, v in method.state_dict().items()))
        return {"score": next(scores)}

    run_dir = tmp_path / "run"
    outcome = train(dataclasses.replace(job, evaluate=evaluate), cfg, run_dir, ctx.accelerator)
    assert seen == [True, False] and outcome.step == 3  # step 0 and step 2
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, stop_after=None))
    outcome = train(dataclasses.replace(job, evaluate=evaluate), cfg, run_dir, ctx.accelerator, resume=True)
    assert seen == [True, False, False]  # only step 4 after the resume
    assert (outcome.best_step, outcome.best_score) == (0, 80.0)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    dev = [r for r in records if "dev" in r]
    assert [(r["step"], r["dev"]["score"]) for r in dev] == [(0, 80.0), (2, 60.0), (4, 70.0)]


@pytest.mark.parametrize(
    "schedule, expected_warmup", [({"optim__warmup_steps": 10}, 10), ({"optim__warmup_ratio": 0.25}, 2)]
)
def test_learning_rate_follows_transformers_schedule(model_dirs, tmp_path, schedule, expected_warmup):
    """The rate at every step equals transformers' linear schedule with the warm-up as given:
    a 6-step run under a 10-step warm-up ends at 6/10 of the peak (not clamped to the peak at
    its last step), and a ratio gives ceil(ratio × steps)."""
    from transformers import get_linear_schedule_with_warmup

    from promptmix.training.loop import train

    cfg, ctx, method, job = _attempt_job(
        model_dirs, tmp_path, optim__max_steps=6, optim__lr=0.3, eval__every=0, run__log_every=1, **schedule
    )
    train(job, cfg, tmp_path / "run", ctx.accelerator)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["lr/prompts"] for r in logged if "lr/prompts" in r]
    reference = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    scheduler = get_linear_schedule_with_warmup(reference, expected_warmup, 6)
    expected = []
    for _ in range(6):
        reference.step()
        scheduler.step()
        expected.append(reference.param_groups[0]["lr"])
    assert rates == pytest.approx(expected, abs=1e-12)
    if expected_warmup == 10:
        assert max(rates) == pytest.approx(0.3 * 6 / 10)


def _cb_sized(tmp_path, rows: int = 250):
    """A data directory whose CB training split has CB's 250 examples (fixture rows repeated)."""
    import shutil

    from trainhelpers import FIXTURES

    root = tmp_path / "data"
    shutil.copytree(FIXTURES / "superglue" / "CB", root / "superglue" / "CB")
    lines = (root / "superglue" / "CB" / "train.jsonl").read_text().splitlines()
    (root / "superglue" / "CB" / "train.jsonl").write_text("".join(lines[i % len(lines)] + "\n" for i in range(rows)))
    return root


def test_eval_every_epoch_scores_each_epoch_of_a_cb_sized_run_and_keeps_the_best(model_dirs, tmp_path):
    """eval.every: epoch, the official code's cadence. CB's 250 examples at batch 32 are 8
    batches an epoch and, below 10,000 examples, 20 epochs: 160 steps, scored at steps 8, 16,
    ..., 160 (every 1,000 steps would score only step 160), and the best of the 20 is kept."""
    import dataclasses

    from promptmix.training.loop import train

    cfg, ctx, method, job = _attempt_job(
        model_dirs,
        tmp_path / "lib",
        data__data_dir=str(_cb_sized(tmp_path)),
        optim__max_steps=None,
        optim__batch_size=32,
        eval__every="epoch",
        run__save_every=0,
        run__log_every=50,
    )
    assert len(job.train_set) == 250 and job.batch_sampler.__len__() == 8
    scores = [50.0 + e for e in range(7)] + [40.0] * 13  # rises for 7 epochs, then falls
    scored, saved = [], []

    def evaluate(model):
        scored.append(len(scored))
        return {"score": scores[len(scored) - 1]}

    def quick_loss(model, batch):  # the cadence is the point here, not the backbone's loss
        loss = sum(p.square().sum() for p in method.parameters() if p.requires_grad) * 1e-3
        return loss, {"loss": loss.detach()}

    job = dataclasses.replace(
        job,
        evaluate=evaluate,
        loss_fn=quick_loss,
        on_best=lambda model, step, metrics: saved.append((step, metrics["score"])),
    )
    outcome = train(job, cfg, tmp_path / "run", ctx.accelerator)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert outcome.total_steps == 160 and outcome.completed
    assert [r["step"] for r in records if "dev" in r] == list(range(8, 161, 8))
    assert saved == [(8 * (e + 1), 50.0 + e) for e in range(7)]  # each new best saved, nothing after
    assert (outcome.best_step, outcome.best_score) == (56, 56.0)


def test_eval_every_accepts_epoch_or_a_step_count_only():
    from promptmix.training.config import load_config

    assert load_config(None, {"data.tasks": ["cb"], "eval.every": "epoch"}).eval.every == "epoch"
    assert load_config(None, {"data.tasks": ["cb"], "eval.every": 50}).eval.every == 50
    for bad in ("epochs", -1):
        with pytest.raises(ValueError, match="eval.every"):
            load_config(None, {"data.tasks": ["cb"], "eval.every": bad})


def test_eval_select_per_task_keeps_each_targets_best_checkpoint(model_dirs, tmp_path, monkeypatch):
    """eval.select: per-task on a multi-task run (SST-2 and RTE, one prompt each): dev scores
    peak for SST-2 at step 2 and for RTE at step 4 (their mean at step 4). Each target's method
    is saved at its own best step in <run>/best-per-task/<task>, results.json's dev holds each
    target's best, and each target is scored on test with its own saved method; <run>/method
    keeps the mean's best."""
    from promptmix.prompts.checkpoint import load_method
    from promptmix.training import runs
    from promptmix.training.runs import run_method
    from promptmix.training.stages import _soft_prompt

    ctx, data = _per_task_selection(model_dirs, tmp_path, max_steps=6)
    method = _soft_prompt(ctx, ["sst2", "rte"])
    dev_scores = iter([{"sst2": 90.0, "rte": 50.0}, {"sst2": 60.0, "rte": 95.0}, {"sst2": 70.0, "rte": 40.0}])
    prompts_at: dict[int, torch.Tensor] = {}  # dev evaluation number -> the prompts then
    tested: dict[str, torch.Tensor] = {}

    def fake_evaluate(model, tasks, split, task_ids, *args, **kwargs):
        if split == "dev":
            prompts_at[len(prompts_at)] = model.method.prompts.detach().clone()
            scores = next(dev_scores)
        else:
            (name,) = tasks  # per-task test: one target at a time, with its own method loaded
            tested[name] = model.method.prompts.detach().clone()
            scores = {name: 1.0 if name == "sst2" else 2.0}
        out = {name: {tasks[name].task.main_metric: scores[name]} for name in tasks}
        return {**out, "score": sum(scores[name] for name in tasks) / len(tasks)}

    monkeypatch.setattr(runs, "evaluate", fake_evaluate)
    result = run_method(ctx, method, data, {"sst2": 0, "rte": 1}, tmp_path / "run")
    run = tmp_path / "run"
    for task, evaluation in (("sst2", 0), ("rte", 1)):
        saved = load_method(run / "best-per-task" / task, ctx.backbone).prompts.detach()
        assert torch.equal(saved, prompts_at[evaluation]) and torch.equal(tested[task], prompts_at[evaluation])
    assert torch.equal(load_method(run / "method", ctx.backbone).prompts.detach(), prompts_at[1])  # mean 77.5 at step 4
    stored = json.loads((run / "results.json").read_text())
    assert stored["dev"] == {"sst2": {"score": 90.0}, "rte": {"score": 95.0}, "score": 92.5}
    assert stored["test"] == {"sst2": {"score": 1.0}, "rte": {"score": 2.0}, "score": 1.5}
    assert stored["extra"]["best_step_per_task"] == {"sst2": 2, "rte": 4} and result.dev["score"] == 92.5


def test_a_nan_dev_value_never_replaces_a_tasks_best_under_per_task_selection():
    """``value <= best`` is False for NaN, so a NaN replaced a finite per-task best."""
    from types import SimpleNamespace

    from promptmix.training.loop import _Run

    saved = []
    run = object.__new__(_Run)  # only what task_improved reads
    run.job = SimpleNamespace(
        main_metrics={"rte": "accuracy", "cb": "accuracy"},
        on_task_best=lambda model, task, step, metrics: saved.append((task, step)),
    )
    run.acc = SimpleNamespace(is_main_process=True, unwrap_model=lambda m: m)
    run.model, run.task_best, run.step = None, {}, 1
    assert run.task_improved({"rte": {"accuracy": 0.5}, "cb": {"accuracy": float("nan")}})
    run.step = 2
    assert not run.task_improved({"rte": {"accuracy": float("nan")}, "cb": {"accuracy": float("inf")}})
    assert run.task_best == {"rte": {"score": 0.5, "step": 1, "metrics": {"accuracy": 0.5}}}
    assert saved == [("rte", 1)]


def test_eval_select_per_task_scores_a_target_without_dev_values_with_the_runs_method(
    model_dirs, tmp_path, monkeypatch
):
    """Only targets with a per-task best were scored on test: one that never had a dev value got
    no test score and the mean silently covered fewer tasks."""
    from promptmix.training import runs
    from promptmix.training.runs import run_method
    from promptmix.training.stages import _soft_prompt

    ctx, data = _per_task_selection(model_dirs, tmp_path, max_steps=2)
    tested = []

    def fake_evaluate(model, tasks, split, task_ids, *args, **kwargs):
        if split == "dev":  # rte's main metric never comes back (e.g. no dev value for it)
            return {"sst2": {data["sst2"].task.main_metric: 80.0}, "score": 80.0}
        tested.append(sorted(tasks))
        out = {name: {tasks[name].task.main_metric: 1.0 if name == "sst2" else 3.0} for name in tasks}
        return {**out, "score": 0.0}

    monkeypatch.setattr(runs, "evaluate", fake_evaluate)
    result = run_method(ctx, _soft_prompt(ctx, ["sst2", "rte"]), data, {"sst2": 0, "rte": 1}, tmp_path / "run")
    assert tested == [["sst2"], ["rte"]]
    assert result.test == {"sst2": {"score": 1.0}, "rte": {"score": 3.0}, "score": 2.0}
    assert result.extra["test_with_method"] == ["rte"]


def test_a_nan_mean_dev_score_never_becomes_the_best(model_dirs, tmp_path):
    """A NaN first dev score would beat nothing and block every later checkpoint: it is skipped."""
    from promptmix.training.loop import train

    cfg, ctx, method, job = _attempt_job(model_dirs, tmp_path, optim__max_steps=3, eval__every=1)
    scores = iter([float("nan"), 40.0, 30.0])
    job.evaluate = lambda model: {"score": next(scores)}
    kept = []
    job.on_best = lambda model, step, metrics: kept.append(step)
    result = train(job, cfg, tmp_path / "run", ctx.accelerator)
    assert (result.best_score, result.best_step, kept) == (40.0, 2, [2])
