"""The prompt library: round trips bit-exactly, refuses prompts from another backbone (saying
which and why), never leaves a half-written entry, and its CLI drives all of it."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import stat

import pytest
import safetensors.torch
import torch

from promptmix import cli
from promptmix._io import StorageFullError
from promptmix.backbone import Backbone
from promptmix.prompts import METHODS, build_method
from promptmix.prompts.checkpoint import save_method
from promptmix.prompts.library import (
    IncompatiblePromptError,
    PromptExistsError,
    PromptLibrary,
    UnknownPromptError,
    fixed_task_prompt,
)


def tiny_backbone_of(name: str, seed: int, d_model: int = 16) -> Backbone:
    """A frozen tiny T5 (small vocab: only its embedding matrix matters here)."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=64, d_model=d_model, d_ff=16, d_kv=4, num_heads=2, num_layers=1, decoder_start_token_id=0
    )
    return Backbone(T5ForConditionalGeneration(config), None, name)


@pytest.fixture(scope="module")
def base():
    return tiny_backbone_of("tiny-base", seed=0)


@pytest.fixture
def library(tmp_path):
    return PromptLibrary(tmp_path / "lib")


def _prompt(m: int = 5, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(m, d, generator=torch.Generator().manual_seed(seed))


def test_add_list_get_load_remove(library, base):
    rte, cb = _prompt(seed=1), _prompt(m=3, seed=2)
    library.add("rte-pt", rte, task="rte", method="prompt-tuning", backbone=base, metrics={"accuracy": 0.75})
    library.add("cb.mpt_1", cb, task="cb", method="mpt", backbone=base.identity())
    assert [r.name for r in library.list()] == ["cb.mpt_1", "rte-pt"]
    record = library.get("rte-pt")
    assert (record.task, record.method, record.prompt_length, record.hidden_size) == ("rte", "prompt-tuning", 5, 16)
    assert (record.backbone, record.fingerprint) == ("tiny-base", base.fingerprint())
    assert record.metrics == {"accuracy": 0.75} and record.created.endswith("+00:00")
    assert torch.equal(library.load("rte-pt", base), rte)  # bit-exact
    assert torch.equal(library.load("cb.mpt_1", base.identity()), cb)
    # On disk: JSON + safetensors only, named after the entry (the tensor file as its record
    # names it), and the write lock; no temporary files remain.
    files = sorted(p.name for p in library.root.iterdir())
    assert files[0] == ".promptmix.lock" and len(files) == 5, files
    assert re.fullmatch(
        r"cb\.mpt_1\.json cb\.mpt_1@[0-9a-f]{16}\.safetensors rte-pt\.json rte-pt@[0-9a-f]{16}\.safetensors",
        " ".join(files[1:]),
    ), files
    saved = json.loads((library.root / "rte-pt.json").read_text())
    assert saved["fingerprint"] == base.fingerprint() and library.tensor_path("rte-pt").name == saved["tensor_file"]
    assert list(safetensors.torch.load_file(library.tensor_path("rte-pt"))) == ["prompt"]

    assert library.remove("rte-pt").task == "rte"
    assert [r.name for r in library.list()] == ["cb.mpt_1"]
    assert not list(library.root.glob("rte-pt*"))
    with pytest.raises(UnknownPromptError, match="no prompt named 'rte-pt'"):
        library.remove("rte-pt")


def test_unknown_name_suggests_close_ones(library, base):
    library.add("mnli-t5base", _prompt(), task="mnli", method="prompt-tuning", backbone=base)
    with pytest.raises(UnknownPromptError) as err:
        library.get("mnli-t5-base")
    assert str(err.value) == f"no prompt named 'mnli-t5-base' in {library.root}; did you mean 'mnli-t5base'?"
    assert PromptLibrary(library.root / "empty").list() == []


@pytest.mark.parametrize("name", ["", "../escape", ".hidden", "a/b", "sp ace", "x" * 129, "é"])
def test_invalid_names_are_refused(library, base, name):
    with pytest.raises(ValueError, match="invalid prompt name"):
        library.add(name, _prompt(), task="rte", method="prompt-tuning", backbone=base)


def test_overwrite_is_explicit(library, base):
    library.add("rte", _prompt(seed=1), task="rte", method="prompt-tuning", backbone=base)
    with pytest.raises(PromptExistsError, match="prompt 'rte' already exists.*overwrite=True"):
        library.add("rte", _prompt(seed=2), task="rte", method="prompt-tuning", backbone=base)
    library.add("rte", _prompt(seed=2), task="rte", method="prompt-tuning", backbone=base, overwrite=True)
    assert torch.equal(library.load("rte", base), _prompt(seed=2))


def test_bad_prompts_are_refused(library, base):
    add = lambda prompt: library.add("p", prompt, task="rte", method="prompt-tuning", backbone=base)  # noqa: E731
    with pytest.raises(ValueError, match="is 8 wide but its backbone has hidden size 16"):
        add(_prompt(d=8))
    with pytest.raises(ValueError, match=r"must be a \[prompt_length, hidden_size\] tensor, got \(1, 5, 16\)"):
        add(_prompt().unsqueeze(0))
    with pytest.raises(ValueError, match="NaN"):
        add(torch.full((5, 16), float("nan")))
    with pytest.raises(ValueError, match="prompt 'p': metrics.acc: expected float, got 'high'"):
        library.add("p", _prompt(), task="rte", method="pt", backbone=base, metrics={"acc": "high"})
    with pytest.raises(ValueError, match="prompt 'p': task must be non-empty, got ''"):
        library.add("p", _prompt(), task="", method="pt", backbone=base)
    assert library.list() == []


def test_refuses_a_prompt_from_another_backbone(library, base):
    library.add("rte", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    other = tiny_backbone_of("tiny-other", seed=1)  # same architecture and width, other weights
    with pytest.raises(IncompatiblePromptError) as err:
        library.load("rte", other)
    message = str(err.value)
    for needed in (
        "'tiny-base'",
        "'tiny-other'",
        base.fingerprint(),
        other.fingerprint(),
        "fingerprints differ",
        "does not transfer",
    ):
        assert needed in message
    assert "wide" not in message  # the widths agree; only the fingerprint is blamed
    # The same weights under another name are the same embedding space: accepted.
    renamed = Backbone(base.model, None, "tiny-base-copy")
    assert torch.equal(library.load("rte", renamed), _prompt())


def test_refuses_a_prompt_of_another_width(library, base):
    library.add("rte", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    wide = tiny_backbone_of("tiny-wide", seed=0, d_model=24)
    with pytest.raises(IncompatiblePromptError) as err:
        library.load("rte", wide)
    message = str(err.value)
    assert "'tiny-base' (hidden size 16" in message and "'tiny-wide' (hidden size 24" in message
    assert "its vectors are 16 wide but the backbone's embeddings are 24 wide" in message


def _leftovers(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_a_crash_while_writing_keeps_the_old_entry(library, base, monkeypatch):
    library.add("rte", _prompt(seed=1), task="rte", method="prompt-tuning", backbone=base)
    real_save = safetensors.torch.save_file

    def crash_midway(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as handle:  # the disk filled up halfway through
            handle.truncate(100)
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", crash_midway)
    # One line naming the file and the space left (not the library's exception and traceback).
    with pytest.raises(
        StorageFullError,
        match=rf"cannot write {re.escape(str(library.root))}/rte@[0-9a-f]{{16}}\.safetensors: "
        r"no space left on its device \([0-9.]+ MiB free in ",
    ):
        library.add("rte", _prompt(seed=2), task="rte", method="prompt-tuning", backbone=base, overwrite=True)
    monkeypatch.undo()
    assert torch.equal(library.load("rte", base), _prompt(seed=1))
    assert library.get("rte").prompt_length == 5
    assert _leftovers(library.root) == [".promptmix.lock"]


def test_a_crash_between_tensor_and_record_keeps_the_old_entry_whole(library, base, monkeypatch):
    """An overwrite that dies after its tensor is on disk but before its record switches leaves
    the old entry loadable, exactly as it was (the record is the one switch); the orphaned new
    tensor is removed. The old code put the tensor in place first, so the entry was lost."""
    library.add("rte", _prompt(seed=1), task="rte", method="prompt-tuning", backbone=base, metrics={"accuracy": 0.5})

    def crash(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr("promptmix.prompts.library.atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        library.add("rte", _prompt(seed=2), task="rte", method="prompt-tuning", backbone=base, overwrite=True)
    monkeypatch.undo()
    assert library.get("rte").metrics == {"accuracy": 0.5}  # the old record, intact
    assert torch.equal(library.load("rte", base), _prompt(seed=1))  # and its tensor
    assert len(list(library.root.glob("rte*.safetensors"))) == 1
    assert _leftovers(library.root) == [".promptmix.lock"]


def test_entries_written_before_records_named_their_file_still_load_and_overwrite(library, base):
    """Old layout (and the shipped libraries): <name>.safetensors with no tensor_file field."""
    library.add("rte", _prompt(seed=1), task="rte", method="prompt-tuning", backbone=base)
    record = json.loads(library.record_path("rte").read_text())
    os.replace(library.root / record.pop("tensor_file"), library.root / "rte.safetensors")
    library.record_path("rte").write_text(json.dumps(record))
    assert torch.equal(library.load("rte", base), _prompt(seed=1))
    library.add("rte", _prompt(seed=2), task="rte", method="prompt-tuning", backbone=base, overwrite=True)
    assert torch.equal(library.load("rte", base), _prompt(seed=2))
    assert not (library.root / "rte.safetensors").exists()  # the old file went with the switch


@pytest.mark.parametrize("file", ["../outside@0123456789abcdef.safetensors", "other@0123456789abcdef.safetensors"])
def test_a_record_naming_a_tensor_outside_its_entry_is_refused(library, base, file):
    library.add("rte", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    record = json.loads(library.record_path("rte").read_text())
    library.record_path("rte").write_text(json.dumps({**record, "tensor_file": file}))
    with pytest.raises(ValueError, match=r"rte\.json: field 'tensor_file' is"):
        library.load("rte", base)
    with pytest.raises(ValueError, match=r"rte\.json: field 'tensor_file' is"):  # it returned root / file as written
        library.tensor_path("rte")


IDENTITY = {"backbone": "tiny-base", "hidden_size": 16, "fingerprint": "f" * 16}


def _race_worker(root: str, worker: int, rounds: int, queue, start) -> None:
    """Adds entries r0..r2 over and over, half the time overwriting; reports each outcome."""
    torch.set_num_threads(1)
    library = PromptLibrary(root)
    start.wait()  # both writers begin together (importing torch takes seconds; an add, milliseconds)
    for i in range(rounds):
        name, seed = f"r{i % 3}", 1000 * worker + i
        try:
            library.add(
                name,
                _prompt(seed=seed),
                task="rte",
                method="prompt-tuning",
                backbone=IDENTITY,
                metrics={"seed": seed},
                overwrite=bool(i % 2),
            )
            queue.put((name, seed, "ok"))
        except PromptExistsError:
            queue.put((name, seed, "exists"))
        except Exception as err:  # noqa: BLE001 - the test reports whatever went wrong
            queue.put((name, seed, f"{type(err).__name__}: {err}"))


def test_two_processes_adding_the_same_names_leave_every_entry_whole(tmp_path):
    """Two writers racing on the same names, with and without overwrite: every add either
    succeeds or is refused as existing, and afterwards every entry loads, its tensor is the one
    its record describes, and it is the prompt of an add that reported "ok"."""
    root, rounds = str(tmp_path / "lib"), 60
    ctx = multiprocessing.get_context("spawn")
    queue, start = ctx.Queue(), ctx.Barrier(2)
    workers = [ctx.Process(target=_race_worker, args=(root, w, rounds, queue, start)) for w in (1, 2)]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=300) for _ in range(2 * rounds)]
    for worker in workers:
        worker.join(timeout=60)
    assert [o for o in outcomes if o[2] not in ("ok", "exists")] == []
    succeeded = {(name, seed) for name, seed, status in outcomes if status == "ok"}
    # Without overwrite (even rounds) an add succeeds only into an empty name: once per name, with
    # no removes. The old code let both writers' check pass and one silently replaced the other.
    fresh = [name for name, seed, status in outcomes if status == "ok" and (seed % 1000) % 2 == 0]
    assert len(fresh) == len(set(fresh)), sorted(fresh)
    library = PromptLibrary(root)
    assert library.names() == ["r0", "r1", "r2"]
    for name in library.names():
        seed = int(library.get(name).metrics["seed"])
        assert (name, seed) in succeeded
        assert torch.equal(library.load(name, IDENTITY), _prompt(seed=seed))
    assert len(list(library.root.glob("*.safetensors"))) == 3  # no orphaned tensors
    assert _leftovers(library.root) == [".promptmix.lock"]


def test_tensor_files_keep_the_group_readable_mode(library, base):
    """safetensors creates its file 0600; the library is shared, so the umask's mode applies."""
    old = os.umask(0o022)
    try:
        library.add("rte", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    finally:
        os.umask(old)
    assert stat.S_IMODE(library.tensor_path("rte").stat().st_mode) == 0o644
    assert stat.S_IMODE(library.record_path("rte").stat().st_mode) == 0o644


def test_a_prompt_holding_nan_is_refused_at_load_naming_the_file(library, base):
    library.add("rte", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    path = library.tensor_path("rte")
    bad = _prompt()
    bad[2, 3] = float("nan")
    safetensors.torch.save_file({"prompt": bad}, str(path))
    record = json.loads(library.record_path("rte").read_text())
    from promptmix._io import sha256_file

    library.record_path("rte").write_text(json.dumps({**record, "sha256": sha256_file(path)}))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: tensor 'prompt' holds 1 NaN or infinite value"):
        library.load("rte", base)


def test_shipped_libraries_are_read_only(tmp_path, base, monkeypatch):
    import shutil

    from promptmix.prompts import library as library_module

    # A copy stands in for the package's folder, so a regression deletes nothing real.
    shutil.copytree(library_module.PRETRAINED_DIR, tmp_path / "pretrained")
    monkeypatch.setattr(library_module, "PRETRAINED_DIR", tmp_path / "pretrained")
    name = next(iter(library_module.shipped_libraries()))
    shipped = PromptLibrary(f"promptmix:{name}")
    before = sorted(p.name for p in shipped.root.iterdir())
    entry = shipped.names()[0]
    with pytest.raises(ValueError, match=rf"promptmix:{name} is a prompt library shipped with promptmix .* read-only"):
        shipped.remove(entry)
    with pytest.raises(ValueError, match="read-only"):
        shipped.add("new", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    assert sorted(p.name for p in shipped.root.iterdir()) == before
    # The training stage that makes the shipped prompts (configs/smollm2's sources) may still write.
    PromptLibrary(f"promptmix:{name}", update_shipped=True).add(
        "new", _prompt(), task="rte", method="prompt-tuning", backbone=base
    )
    assert "new" in shipped.names()


def test_a_stray_json_does_not_hide_the_other_entries(library, base):
    library.add("rte", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    (library.root / "notes.json").write_text("{not json")
    (library.root / "bad name.json").write_text("{}")
    records, problems = library.scan()
    assert [r.name for r in records] == ["rte"]
    assert len(problems) == 2 and any("notes.json is not valid JSON" in p for p in problems)
    assert any("bad name.json: not a prompt record" in p for p in problems)


def test_a_library_path_that_is_a_file_is_one_clear_error(tmp_path, base):
    (tmp_path / "file").write_text("x")
    library = PromptLibrary(tmp_path / "file")
    for call in (library.list, lambda: library.add("p", _prompt(), task="rte", method="pt", backbone=base)):
        with pytest.raises(ValueError, match=r"prompt library .*file is a file, not a directory"):
            call()


def test_a_card_with_a_string_score_still_renders():
    from promptmix.prompts.library import PromptRecord, card_markdown

    record = PromptRecord(
        name="p",
        task="rte",
        method="pt",
        backbone="b",
        hidden_size=16,
        prompt_length=5,
        fingerprint="f",
        sha256="0" * 64,
        created="now",
        card={"metric": "accuracy", "dev_score": "72.5", "majority_dev_score": 50.0},
    )
    assert "- dev accuracy: **'72.5'** (majority class: 50.0)" in card_markdown(record)


def test_fixed_task_prompt_of_each_method():
    d = 16
    for name in sorted(METHODS):
        extra = {"source_names": ["mnli"], "attn_dim": 2} if name == "attempt" else {}
        method = build_method({"method": name, "prompt_length": 3, "tasks": ["rte", "cb"], "hidden_size": d, **extra})
        with torch.no_grad():
            for p in method.parameters():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
            for b in method.buffers():
                b.copy_(torch.randn(b.shape))
        ids = method.task_ids_for(["cb"])
        if name == "attempt":  # its prompt depends on the input: not one stored tensor
            with pytest.raises(ValueError, match="depends on the input.*save_method"):
                fixed_task_prompt(method, "cb")
            continue
        expected = method(torch.randn(1, 4, d), torch.ones(1, 4), ids).prompts[0]
        assert torch.equal(fixed_task_prompt(method, "cb"), expected.detach())


# -- promptmix prompts ----------------------------------------------------------------------------
@pytest.fixture
def run_cli(monkeypatch, capsys):
    monkeypatch.setattr(cli, "SUBCOMMANDS", ["params", "prompts"])  # independent of other subcommands

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_cli_add_list_show_remove(run_cli, tmp_path, base):
    method = build_method({"method": "prompt-tuning", "prompt_length": 5, "tasks": ["rte", "cb"], "hidden_size": 16})
    with torch.no_grad():
        method.prompts.copy_(torch.randn(2, 5, 16))
    run_dir = save_method(method, tmp_path / "run", base)
    lib = ["--library", tmp_path / "lib"]

    code, out, _ = run_cli(
        "prompts", "add", "rte-pt", "--from", run_dir, "--task", "rte", "--metric", "accuracy=0.8125", *lib
    )
    assert code == 0 and out.startswith("added rte-pt: task rte, prompt-tuning, [5, 16] for backbone tiny-base")
    assert torch.equal(PromptLibrary(tmp_path / "lib").load("rte-pt", base), method.task_prompt("rte"))

    code, out, _ = run_cli("prompts", "list", *lib)
    header, row = out.splitlines()
    assert header.split() == ["name", "task", "method", "backbone", "d", "m", "metrics", "created"]
    assert row.split()[:7] == ["rte-pt", "rte", "prompt-tuning", "tiny-base", "16", "5", "accuracy=0.8125"]

    code, out, _ = run_cli("prompts", "show", "rte-pt", "--json", *lib)
    shown = json.loads(out)
    assert shown["fingerprint"] == base.fingerprint() and re.search(
        r"/rte-pt@[0-9a-f]{16}\.safetensors$", shown["file"]
    )
    code, out, _ = run_cli("prompts", "show", "rte-pt", *lib)  # the card
    assert code == 0 and out.startswith("# rte-pt\n") and "task `rte` (prompt-tuning), 5 × 16" in out
    assert "dev metrics: accuracy 0.8125" in out

    code, _, err = run_cli("prompts", "add", "rte-pt", "--from", run_dir, "--task", "rte", *lib)
    assert code == 2 and "already exists" in err
    code, _, err = run_cli("prompts", "add", "x", "--from", run_dir, "--task", "rte", "--metric", "acc", *lib)
    assert code == 2 and "--metric 'acc': expected NAME=NUMBER" in err
    code, _, err = run_cli("prompts", "show", "rte_pt", *lib)
    assert code == 2 and "did you mean 'rte-pt'?" in err

    code, out, _ = run_cli("prompts", "remove", "rte-pt", *lib)
    assert code == 0 and out.startswith("removed rte-pt")
    assert run_cli("prompts", "list", *lib)[1].startswith("no prompts in")


@pytest.mark.skipif("attempt" not in METHODS, reason="ATTEMPT is not registered")
def test_cli_refuses_input_dependent_prompts(run_cli, tmp_path, base):
    method = build_method(
        {
            "method": "attempt",
            "prompt_length": 5,
            "tasks": ["rte"],
            "hidden_size": 16,
            "source_names": ["mnli"],
            "attn_dim": 2,
        }
    )
    with torch.no_grad():
        method.source_prompts.copy_(torch.randn(1, 5, 16))
    run_dir = save_method(method, tmp_path / "run", base)
    code, _, err = run_cli(
        "prompts", "add", "rte-attempt", "--from", run_dir, "--task", "rte", "--library", tmp_path / "lib"
    )
    assert code == 2 and "depends on the input" in err


def test_cards_round_trip_and_shipped_libraries_resolve(tmp_path, base):
    from promptmix.prompts.library import card_markdown, resolve_library_root, shipped_libraries

    lib = PromptLibrary(tmp_path / "lib")
    card = {
        "metric": "accuracy",
        "dev_score": 81.25,
        "majority_dev_score": 50.9,
        "best_step": 300,
        "seed": 42,
        "command": "promptmix train source --config x.yaml",
        "git_revision": "abc123",
    }
    lib.add("sst2", torch.randn(5, 16), task="sst2", method="prompt-tuning", backbone=base, card=card)
    record = lib.get("sst2")
    assert record.card == card
    text = card_markdown(record)
    assert "dev accuracy: **81.2** (majority class: 50.9)" in text and "- git revision: `abc123`" in text
    lib.add(
        "multirc",
        torch.randn(5, 16),
        task="multirc",
        method="prompt-tuning",
        backbone=base,
        card={
            "metric": "mean of f1 and group_em",
            "dev_score": 44.19,
            "majority_dev_score": 27.65,
            "best_constant_dev_score": 46.36,
            "best_constant_answer": "True",
        },
    )
    assert (
        "dev mean of f1 and group_em: **44.2** (majority class: 27.6; best constant answer 'True': 46.4)"
        in card_markdown(lib.get("multirc"))
    )
    with pytest.raises(TypeError):  # not JSON: refused before anything is written
        lib.add("bad", torch.randn(5, 16), task="sst2", method="prompt-tuning", backbone=base, card={"x": object()})
    assert "bad" not in lib and not lib.tensor_path("bad").exists()
    for name, path in shipped_libraries().items():
        assert resolve_library_root(f"promptmix:{name}") == path
        assert resolve_library_root(f"promptmix:{name}/mpt-source") == path / "mpt-source"
    with pytest.raises(ValueError, match="no shipped prompt library 'promptmix:nope'"):
        resolve_library_root("promptmix:nope")


def test_cli_add_takes_a_training_run_directory_as_predict_eval_and_serve_do(run_cli, tmp_path, base):
    """``--from RUN``: the run's method/ (a single run), or the task's run under it (one run per task)."""
    lib = ["--library", tmp_path / "lib"]
    methods = {}
    for i, task in enumerate(["rte", "cb"]):  # a run trained one run per task: <run>/<task>/method
        methods[task] = build_method(
            {"method": "prompt-tuning", "prompt_length": 5, "tasks": [task], "hidden_size": 16}
        )
        with torch.no_grad():
            methods[task].prompts.copy_(torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(i)))
        save_method(methods[task], tmp_path / "per-task" / task / "method", base)
    code, out, err = run_cli("prompts", "add", "cb-pt", "--from", tmp_path / "per-task", "--task", "cb", *lib)
    assert code == 0, err
    assert torch.equal(PromptLibrary(tmp_path / "lib").load("cb-pt", base), methods["cb"].task_prompt("cb"))
    code, out, err = run_cli("prompts", "add", "rte-pt", "--from", tmp_path / "per-task" / "rte", "--task", "rte", *lib)
    assert code == 0, err  # <run>/method of a single run
    assert torch.equal(PromptLibrary(tmp_path / "lib").load("rte-pt", base), methods["rte"].task_prompt("rte"))
    code, _, err = run_cli("prompts", "add", "x", "--from", tmp_path / "per-task", "--task", "wic", *lib)
    assert code == 2 and "holds no prompt for it; its tasks: cb, rte" in err


def test_cli_list_names_a_bad_file_and_lists_the_rest(run_cli, tmp_path, base):
    library = PromptLibrary(tmp_path / "lib")
    library.add("rte", _prompt(), task="rte", method="prompt-tuning", backbone=base)
    library.add(
        "cb",
        _prompt(),
        task="cb",
        method="prompt-tuning",
        backbone=base,
        card={"metric": "accuracy", "dev_score": "high"},
    )  # a hand-edited card: a string score
    (library.root / "stray.json").write_text("[1, 2]")
    code, out, err = run_cli("prompts", "list", "--library", library.root)
    assert code == 1
    assert [line.split()[0] for line in out.splitlines()] == ["name", "cb", "rte"]
    assert err == f"promptmix prompts: skipped {library.root / 'stray.json'} must hold a JSON object, found list\n"
    code, out, err = run_cli("prompts", "show", "cb", "--library", library.root)
    assert code == 0 and "- dev accuracy: **'high'**" in out


def test_cli_list_of_a_missing_or_file_library_is_an_error(run_cli, tmp_path):
    code, out, err = run_cli("prompts", "list", "--library", tmp_path / "missing")
    assert (
        code == 2
        and out == ""
        and err.startswith(f"promptmix prompts: error: --library {tmp_path / 'missing'}: no such directory")
    )
    (tmp_path / "file").write_text("x")
    code, out, err = run_cli("prompts", "remove", "x", "--library", tmp_path / "file")
    assert code == 2 and err.count("\n") == 1 and "is a file, not a directory" in err


def test_cli_remove_from_a_shipped_library_is_refused(run_cli, tmp_path, monkeypatch):
    import shutil

    from promptmix.prompts import library as library_module

    shutil.copytree(library_module.PRETRAINED_DIR, tmp_path / "pretrained")
    monkeypatch.setattr(library_module, "PRETRAINED_DIR", tmp_path / "pretrained")
    name = next(iter(library_module.shipped_libraries()))
    entry = PromptLibrary(f"promptmix:{name}").names()[0]
    code, out, err = run_cli("prompts", "remove", entry, "--library", f"promptmix:{name}")
    assert code == 2 and err.count("\n") == 1 and "read-only" in err
    assert entry in PromptLibrary(f"promptmix:{name}").names()


def test_cli_reports_a_full_disk_in_one_line(run_cli, tmp_path, base, monkeypatch):
    method = build_method({"method": "prompt-tuning", "prompt_length": 5, "tasks": ["rte"], "hidden_size": 16})
    run_dir = save_method(method, tmp_path / "run", base)

    def full(tensors, filename, metadata=None):  # safetensors wraps the OS error in its own type
        raise safetensors.SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    code, out, err = run_cli("prompts", "add", "rte", "--from", run_dir, "--task", "rte", "--library", tmp_path / "lib")
    assert code == 2 and err.count("\n") == 1, err
    assert re.match(
        rf"promptmix prompts: error: cannot write {re.escape(str(tmp_path / 'lib'))}/rte@[0-9a-f]+\.safetensors: "
        r"no space left on its device \([0-9.]+ MiB free",
        err,
    )


def test_cli_reports_a_bare_full_disk_error_in_one_line(run_cli, tmp_path, monkeypatch):
    """A write outside promptmix's atomic writers (an append, a library's own writer) raises a bare
    OSError; the CLI still says it in one line naming the file and the space left."""
    import errno

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "metrics.jsonl"))

    monkeypatch.setattr(PromptLibrary, "scan", full)
    code, out, err = run_cli("prompts", "list", "--library", tmp_path)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(
        f"promptmix prompts: error: cannot write {tmp_path / 'metrics.jsonl'}: no space left on its device ("
    )


def test_removing_from_a_missing_library_creates_nothing(tmp_path):
    library = PromptLibrary(tmp_path / "missing")
    with pytest.raises(UnknownPromptError, match="no prompt named 'rte'"):
        library.remove("rte")
    assert not (tmp_path / "missing").exists()
