"""promptmix predict / eval / attention on run directories as training leaves them."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from predictor_factory import ITEMS, same_predictions, write_tiny_runs
from tiny_models import REPO

from promptmix.cli import main
from promptmix.inference.loader import load_predictor
from promptmix.rundirs.data import load_tasks
from promptmix.rundirs.read import find_methods

FIXTURES = REPO / "tests" / "tasks" / "fixtures"
GOOD_RTE = '{"sentence1": "a", "sentence2": "b"}'


def _predict_with(run_dirs, source, output, *extra):
    """``promptmix predict`` with one ``--run`` per directory, from ``source`` to ``output``
    ("-": stdin, stdout); its exit code."""
    run_args = [arg for run in run_dirs for arg in ("--run", str(run))]
    return main(["predict", *run_args, "--input", str(source), "--output", str(output), *extra])


def _predict(runs, source, output, *extra):
    """The common case: the prompt-tuning run alone, every line an RTE input."""
    return _predict_with([runs["pt"]], source, output, "--task", "rte", *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, t5_tokenizer):
    return write_tiny_runs(tmp_path_factory.mktemp("runs"), t5_tokenizer, FIXTURES)


def test_predict_file_of_mixed_tasks_equals_the_library_call(runs, tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    code = _predict_with([runs["pt"], runs["attempt"]], tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    assert code == 0
    from promptmix.inference.predictor import Prediction

    got = [Prediction(**json.loads(line)) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    expected = load_predictor([runs["pt"], runs["attempt"]], backbone=runs["backbone"]).predict(ITEMS)  # run paths
    same_predictions(got, expected)
    assert got[1].attention is not None and set(got[1].attention) == {"src0", "src1", "target"}
    assert sum(got[1].attention.values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_reads_each_saved_method_record_once(runs, tmp_path, monkeypatch):
    """The runs are walked once and what was found is passed on: one read of each method.json."""
    from promptmix.prompts import checkpoint

    reads, real = [], checkpoint.read_method_record
    monkeypatch.setattr(
        checkpoint, "read_method_record", lambda directory: reads.append(Path(directory)) or real(directory)
    )
    (tmp_path / "in.jsonl").write_text(json.dumps(ITEMS[0]) + "\n")
    assert _predict_with([runs["pt"], runs["attempt"]], tmp_path / "in.jsonl", tmp_path / "out.jsonl") == 0
    assert sorted(reads) == sorted([runs["pt"] / "method", runs["attempt"] / "method"])


def test_predict_one_task_from_stdin_to_stdout(runs, monkeypatch, capsys):
    lines = [
        json.dumps({"sentence1": "A cat sat.", "sentence2": "A cat sits."}),
        "",
        json.dumps("rte sentence1: It rains. sentence2: It is dry."),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["predict", "--run", str(runs["pt"]), "--task", "RTE", "--input", "-", "--output", "-"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["task"] for o in out] == ["rte", "rte"] and all(
        o["prediction"] in ("entailment", "not_entailment") for o in out
    )


@pytest.mark.parametrize(
    "lines, words",
    [
        (
            ['{"sentence1": "a", "sentence2": "b"}', '{"sentence1": "only one"}'],
            ["in.jsonl, line 2", "field 'sentence2'"],
        ),
        (['{"sentence1": "a", "sentence2": "b"}', "{not json"], ["in.jsonl, line 2", "not valid JSON"]),
    ],
)
def test_predict_names_file_line_and_field_of_a_bad_input(runs, tmp_path, capsys, lines, words):
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    code = _predict(runs, tmp_path / "in.jsonl", "-")
    err = capsys.readouterr().err
    assert code == 2 and all(w in err for w in words), err


def test_runs_holding_the_same_task_or_another_backbone_are_refused(runs, tmp_path, capsys, t5_tokenizer):
    assert _predict_with([runs["pt"], runs["pt"]], "-", "-", "--task", "rte") == 2
    assert "'rte' is held by both" in capsys.readouterr().err
    from tiny_models import tiny_t5

    other = tmp_path / "other-t5"
    tiny_t5(seed=1).save_pretrained(other)
    t5_tokenizer.save_pretrained(other)
    assert _predict(runs, "-", "-", "--backbone", str(other)) == 2
    assert "fingerprint" in capsys.readouterr().err


def test_eval_prints_the_runs_test_metrics_equal_to_predicting_its_test_split(runs, capsys):
    assert main(["eval", "--run", str(runs["pt"]), "--split", "test", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"rte", "sst2", "score"}
    predictor = load_predictor(find_methods(runs["pt"]), backbone=runs["backbone"])
    from promptmix.training.config import DataConfig

    for name, data in load_tasks(DataConfig(data_dir=str(FIXTURES), tasks=["rte", "sst2"]), ["rte", "sst2"]).items():
        answers = predictor.predict([{"task": name, "text": ex.source} for ex in data.test])
        accuracy = 100 * sum(a.prediction == ex.label for a, ex in zip(answers, data.test)) / len(data.test)
        assert metrics[name]["accuracy"] == pytest.approx(accuracy)
    assert main(["eval", "--run", str(runs["pt"]), "--split", "dev"]) == 0
    assert "rte (dev, 2 examples): accuracy" in capsys.readouterr().out


def test_attention_heatmap_and_csv_from_an_attempt_run(runs, tmp_path, capsys):
    out = tmp_path / "fig" / "attention.png"
    assert main(["attention", "--run", str(runs["attempt"]), "--split", "dev", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((tmp_path / "fig" / "attention.csv").open()))
    assert [r["task"] for r in rows] == ["cb", "stsb"]
    for r in rows:
        assert sum(float(r[c]) for c in ("src0", "src1", "target")) == pytest.approx(1.0, abs=1e-5)
        assert 0 < float(r["target"]) < 1
    assert "wrote" in capsys.readouterr().out


def test_attention_refuses_a_run_without_attention(runs, tmp_path, capsys):
    assert main(["attention", "--run", str(runs["pt"]), "--out", str(tmp_path / "x.png")]) == 2
    assert "no attention over prompts" in capsys.readouterr().err


@pytest.mark.parametrize(
    "raw, words",
    [
        (
            b'{"sentence1": "a \\ud800 b", "sentence2": "b"}',
            ["in.jsonl, line 2", "lone surrogate", "'\\ud800' at character"],
        ),
        (
            b'{"sentence1": "caf\xe9", "sentence2": "b"}',
            ["in.jsonl, line 2", "not valid UTF-8 (byte 0xe9 at byte 19 of the line)"],
        ),
    ],
)
def test_predict_names_the_line_of_text_it_cannot_read_without_a_traceback(runs, tmp_path, capsys, raw, words):
    """A lone surrogate (valid JSON, no Unicode) and a Latin-1 byte (not UTF-8) on line 2."""
    (tmp_path / "in.jsonl").write_bytes(b'{"sentence1": "a", "sentence2": "b"}\n' + raw + b"\n")
    code = _predict(runs, tmp_path / "in.jsonl", "-")
    err = capsys.readouterr().err
    assert code == 2 and all(w in err for w in words) and "Traceback" not in err, err


@pytest.mark.parametrize("how", ["same path", "another spelling", "symlink"])
def test_predict_refuses_an_output_that_is_its_input_and_leaves_it_whole(runs, tmp_path, capsys, how):
    source = tmp_path / "same.jsonl"
    source.write_text(GOOD_RTE + "\n" + GOOD_RTE + "\n")
    output = {
        "same path": source,
        "another spelling": tmp_path / "." / "same.jsonl",
        "symlink": tmp_path / "link.jsonl",
    }[how]
    if how == "symlink":
        output.symlink_to(source)
    code = _predict(runs, source, output)
    err = capsys.readouterr().err
    assert code == 2 and "is the input file" in err and "Traceback" not in err, err
    assert source.read_text() == GOOD_RTE + "\n" + GOOD_RTE + "\n"


def test_predict_error_late_in_a_big_file_leaves_no_partial_output_and_keeps_the_old_file(
    runs, tmp_path, capsys, monkeypatch
):
    """Issue 36.12: with 2-line chunks, an error on line 5 comes after two chunks were answered;
    none of their lines may reach --output, whose previous content stays."""
    import promptmix.cli.predict as predict_cli

    monkeypatch.setattr(predict_cli, "CHUNK", 2)
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join([GOOD_RTE] * 4 + ['{"sentence1": "only one"}', GOOD_RTE]) + "\n")
    output.write_text("previous\n")
    code = _predict(runs, source, output)
    err = capsys.readouterr().err
    assert code == 2 and "in.jsonl, line 5" in err and "Traceback" not in err, err
    assert output.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temporary file left


def test_predict_streams_its_input_a_chunk_at_a_time(runs, tmp_path, capsys, monkeypatch):
    """Line 5 is no JSON: with 2-line chunks, the first two chunks are answered before it is
    read (reading the whole file first would fail before answering anything)."""
    import promptmix.cli.predict as predict_cli
    from promptmix.inference.predictor import Predictor

    monkeypatch.setattr(predict_cli, "CHUNK", 2)
    calls = []
    original = Predictor.predict
    monkeypatch.setattr(
        Predictor, "predict", lambda self, items, **kw: calls.append(len(items)) or original(self, items, **kw)
    )
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([GOOD_RTE] * 4 + ["{not json"]) + "\n")
    assert _predict(runs, source, tmp_path / "out.jsonl") == 2
    assert "in.jsonl, line 5: not valid JSON" in capsys.readouterr().err
    assert calls == [2, 2] and not (tmp_path / "out.jsonl").exists()


def test_predict_output_file_is_complete_and_gets_the_usual_mode(runs, tmp_path):
    import os

    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join([GOOD_RTE] * 3) + "\n")
    umask = os.umask(0o022)
    try:
        assert _predict(runs, source, output) == 0
    finally:
        os.umask(umask)
    assert len(output.read_text().splitlines()) == 3 and output.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--max-new-tokens", "1e20"], "expected an integer"),
        (["--max-new-tokens", "100000000000000000000"], "must be in 1..1024"),
        (["--max-choices", "0"], "must be >= 1"),
    ],
)
def test_predict_refuses_unbounded_limits_while_parsing(runs, tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        _predict(runs, tmp_path / "in.jsonl", "-", *argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and words in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "case, words",
    [
        ("input is a directory", "is a directory; give a JSONL file"),
        ("output is a directory", "is a directory; give a file name"),
        ("output directory missing", "does not exist"),
        ("input missing", "No such file"),
    ],
)
def test_predict_answers_bad_paths_without_a_traceback(runs, tmp_path, capsys, case, words):
    source = tmp_path / "in.jsonl"
    source.write_text(GOOD_RTE + "\n")
    paths = {
        "input is a directory": (tmp_path, tmp_path / "out.jsonl"),
        "output is a directory": (source, tmp_path),
        "output directory missing": (source, tmp_path / "nowhere" / "out.jsonl"),
        "input missing": (tmp_path / "absent.jsonl", tmp_path / "out.jsonl"),
    }[case]
    code = _predict(runs, *paths)
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("Traceback") == 0, err
