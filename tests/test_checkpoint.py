"""Method checkpoints: every registered method (and ATTEMPT's variants) round-trips
bit-exactly, buffers included; loading checks the backbone; a crash never loses the old one."""

from __future__ import annotations

import json
import re

import pytest
import safetensors.torch
import torch

from promptmix.prompts import METHODS, build_method
from promptmix.prompts.checkpoint import (
    IncompatiblePromptError,
    load_method,
    read_method_record,
    save_method,
)

D = 32  # conftest's tiny backbones are this wide
TASKS = ["rte", "cb", "boolq"]

# Extra config fields per method at tiny sizes; the test below fails for a newly registered
# method until it gets an entry here (or builds with defaults).
VARIANTS = {
    "prompt-tuning": [{}],
    "attempt": [
        {"source_names": ["mnli", "sst2"], "attn_dim": 3},
        {"source_names": ["mnli", "sst2"], "attn_dim": 3, "shared_attention": False, "learn_temperature": True},
        {"source_names": ["squad"], "attn_dim": 2, "attention": "token", "use_target": False},
    ],
    "mpt": [{"rank": 1}, {"rank": 3}],
}
CASES = [
    pytest.param(name, extra, id=f"{name}-{i}")
    for name in sorted(METHODS)
    for i, extra in enumerate(VARIANTS.get(name, [{}]))
]


def random_method(name: str, extra: dict, seed: int = 0):
    """Build ``name`` via its config and fill every parameter and buffer with random values."""
    method = build_method({"method": name, "prompt_length": 4, "tasks": list(TASKS), "hidden_size": D, **extra})
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in method.state_dict(keep_vars=True).values():
            tensor.copy_(torch.randn(tensor.shape, generator=gen).to(tensor.dtype))
    return method


def identity(name: str = "other", fingerprint: str = "0123456789abcdef", hidden_size: int = D) -> dict:
    return {"backbone": name, "hidden_size": hidden_size, "fingerprint": fingerprint}


@pytest.mark.parametrize("name, extra", CASES)
def test_round_trip_is_bit_exact(tmp_path, tiny_backbone, name, extra):
    method = random_method(name, extra)
    save_method(method, tmp_path / "run", tiny_backbone, extra={"step": 7, "metrics": {"rte": 0.5}})
    loaded = load_method(tmp_path / "run", tiny_backbone)

    assert type(loaded) is type(method) and loaded.to_config() == method.to_config()
    before, after = method.state_dict(), loaded.state_dict()
    assert list(after) == list(before)
    for key in before:
        assert after[key].dtype == before[key].dtype and torch.equal(after[key], before[key]), key
    assert {g: [p.shape for p in ps] for g, ps in loaded.param_groups().items()} == {
        g: [p.shape for p in ps] for g, ps in method.param_groups().items()
    }
    embeds, mask = torch.randn(3, 5, D), torch.tensor([[1] * 5, [1] * 3 + [0] * 2, [1] * 5])
    ids = torch.tensor([2, 0, 1])
    out_a, out_b = method(embeds, mask, ids), loaded(embeds, mask, ids)
    assert torch.equal(out_a.prompts, out_b.prompts)
    record = read_method_record(tmp_path / "run")
    assert record.extra == {"step": 7, "metrics": {"rte": 0.5}} and record.backbone == tiny_backbone.identity()


def test_every_registered_method_is_covered():
    assert set(METHODS) <= set(VARIANTS), "add the new method's tiny configs to VARIANTS"


def test_buffers_are_saved(tmp_path):
    if "attempt" not in METHODS:
        pytest.skip("ATTEMPT is not registered")
    method = random_method("attempt", VARIANTS["attempt"][0])
    save_method(method, tmp_path, identity())
    saved = safetensors.torch.load_file(tmp_path / "method.safetensors")
    assert torch.equal(saved["source_prompts"], method.source_prompts)  # frozen, yet part of the state


def test_refuses_another_backbone(tmp_path, tiny_backbone):
    method = random_method("prompt-tuning", {})
    save_method(method, tmp_path, identity("t5-base-elsewhere"))
    with pytest.raises(IncompatiblePromptError) as err:
        load_method(tmp_path, tiny_backbone)
    message = str(err.value)
    for needed in (
        "'t5-base-elsewhere'",
        repr(tiny_backbone.name),
        "0123456789abcdef",
        tiny_backbone.fingerprint(),
        str(tmp_path),
        "does not transfer",
    ):
        assert needed in message
    assert load_method(tmp_path).to_config() == method.to_config()  # without a backbone: no check

    save_method(method, tmp_path, identity("narrow", tiny_backbone.fingerprint()))
    with pytest.raises(IncompatiblePromptError, match="32 wide but the backbone's embeddings are 64 wide"):
        load_method(tmp_path, identity("wide", tiny_backbone.fingerprint(), hidden_size=64))


def test_save_checks_width_and_extra(tmp_path):
    method = random_method("prompt-tuning", {})
    with pytest.raises(ValueError, match="method is 32 wide but backbone 'wide' has hidden size 64"):
        save_method(method, tmp_path, identity("wide", hidden_size=64))
    with pytest.raises(ValueError, match="extra for .*method.json must be JSON-serialisable"):
        save_method(method, tmp_path, identity(), extra={"when": object()})
    assert not (tmp_path / "method.json").exists()


def test_tampered_or_inconsistent_files_are_refused(tmp_path):
    method = random_method("prompt-tuning", {})
    save_method(method, tmp_path, identity())
    weights = tmp_path / "method.safetensors"
    record = json.loads((tmp_path / "method.json").read_text())

    record["config"]["prompt_length"] = 6  # config no longer matches the tensors
    (tmp_path / "method.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"{weights} does not match the method its config describes"):
        load_method(tmp_path)

    record["config"]["prompt_length"] = 4
    record["sha256"] = "0" * 64
    (tmp_path / "method.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="does not match the sha256 its record holds"):
        load_method(tmp_path)

    del record["backbone"]
    (tmp_path / "method.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="method.json: missing field 'backbone'"):
        load_method(tmp_path)
    with pytest.raises(FileNotFoundError, match="method.json is missing"):
        load_method(tmp_path / "nowhere")


def test_a_crash_while_saving_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "train.log").write_text("step 1\n")  # other files in a run directory are left alone
    old, new = random_method("prompt-tuning", {}, seed=1), random_method("prompt-tuning", {}, seed=2)
    save_method(old, tmp_path, identity())

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\x00" * 10)  # a few bytes, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_method(new, tmp_path, identity())
    monkeypatch.undo()
    assert torch.equal(load_method(tmp_path).prompts, old.prompts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["method.json", "method.safetensors", "train.log"]


def test_a_saved_method_holding_nan_is_refused_at_load_naming_the_file(tmp_path):
    """A run that diverged saved a NaN prompt; loading it (predict, eval, serve) must refuse,
    naming the file, instead of answering every input with garbage."""
    method = random_method("prompt-tuning", {})
    with torch.no_grad():
        next(iter(method.parameters()))[0, 0] = float("nan")
    save_method(method, tmp_path, identity())
    with pytest.raises(
        ValueError,
        match=rf"{re.escape(str(tmp_path / 'method.safetensors'))}: tensor '.*' holds [0-9]+ NaN "
        "or infinite value",
    ):
        load_method(tmp_path)
