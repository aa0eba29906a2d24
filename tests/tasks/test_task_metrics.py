"""Metrics against values computed by hand (in percent), through ``Task.compute_metrics``."""

from __future__ import annotations

import math

import pytest

from promptmix.tasks import Example, get_task
from promptmix.tasks.metrics import normalize_answer


def examples(task, labels, groups=None):
    groups = groups or [None] * len(labels)
    return [
        Example(source=f"{task} x", target=str(label), task=task, label=label, group=group, idx=i)
        for i, (label, group) in enumerate(zip(labels, groups))
    ]


def test_accuracy_counts_text_that_is_no_label_word_as_wrong():
    rte = get_task("rte")
    golds = examples("rte", ["entailment", "entailment", "entailment", "not_entailment"])
    result = rte.compute_metrics(["entailment", "not_entailment", " Entailment ", "maybe"], golds)
    assert result == {"accuracy": 50.0, "score": 50.0}  # rows 0 and 2 are right


def test_binary_f1_and_accuracy_mrpc():
    # TP = 1 (row 0), FP = 1 (row 2), FN = 2 (row 1, and row 4 whose invalid text counts as the
    # wrong label): precision 1/2, recall 1/3, F1 = 0.4; accuracy 2/5.
    golds = examples("mrpc", ["equivalent", "equivalent", "not_equivalent", "not_equivalent", "equivalent"])
    preds = ["equivalent", "not_equivalent", "equivalent", "not_equivalent", "???"]
    result = get_task("mrpc").compute_metrics(preds, golds)
    assert result["f1"] == pytest.approx(40.0)
    assert result["accuracy"] == pytest.approx(40.0)
    assert result["score"] == pytest.approx(40.0)


def test_cb_macro_f1():
    # entailment F1 1/2, contradiction F1 1/2 (its FN is the invalid row), neutral F1 2/3.
    golds = examples("cb", ["entailment", "entailment", "contradiction", "neutral", "neutral", "contradiction"])
    preds = ["entailment", "contradiction", "contradiction", "neutral", "entailment", "bad"]
    result = get_task("cb").compute_metrics(preds, golds)
    assert result["macro_f1"] == pytest.approx(100 * (0.5 + 0.5 + 2 / 3) / 3)
    assert result["accuracy"] == pytest.approx(50.0)


def test_cola_matthews_correlation():
    # TP 1, FN 1, TN 2, FP 0: (1*2 - 0*1) / sqrt(1 * 2 * 2 * 3)
    golds = examples("cola", ["acceptable", "acceptable", "unacceptable", "unacceptable"])
    preds = ["acceptable", "unacceptable", "unacceptable", "unacceptable"]
    result = get_task("cola").compute_metrics(preds, golds)
    assert result["matthews_correlation"] == pytest.approx(100 * 2 / math.sqrt(12))


def test_stsb_pearson_and_spearman():
    stsb = get_task("stsb")
    golds = examples("stsb", [1.0, 2.0, 3.0, 5.0])
    # x = 1, 2, 3, 4; y = 1, 2, 3, 5: sum dx*dy = 6.5, sum dx^2 = 5, sum dy^2 = 8.75
    clean = stsb.compute_metrics(["1.0", "2.0", "3.0", "4.0"], golds)
    assert clean["pearson"] == pytest.approx(100 * 6.5 / math.sqrt(5 * 8.75))
    assert clean["spearman"] == pytest.approx(100.0)
    # unparseable text reads as -1: x = 1, 2, 3, -1 -> r = -4.75 / 8.75; ranks d = 1,1,1,-3
    broken = stsb.compute_metrics(["1.0", "2.0", "3.0", "five"], golds)
    assert broken["pearson"] == pytest.approx(100 * -4.75 / 8.75)
    assert broken["spearman"] == pytest.approx(100 * (1 - 6 * 12 / (4 * 15)))
    assert broken["score"] == pytest.approx((broken["pearson"] + broken["spearman"]) / 2)
    assert stsb.compute_metrics(["2.0"] * 4, golds)["pearson"] == 0.0  # constant: undefined -> 0


def test_squad_normalisation():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("An apple, a day.") == "apple day"
    assert normalize_answer("Theater") == "theater"  # articles only as whole words


def test_squad_exact_match_and_f1_take_the_best_gold_answer():
    golds = examples("squad", [["Denver Broncos"], ["the Denver Broncos", "Broncos of Denver"], ["24-10"], ["third"]])
    result = get_task("squad").compute_metrics(["the Denver broncos.", "Denver", "24 10", "3rd"], golds)
    # EM: 1, 0, 0 ("2410" != "24 10"), 0.  F1: 1, max(2/3, 1/2), 0, 0.
    assert result["squad_em"] == pytest.approx(25.0)
    assert result["squad_f1"] == pytest.approx(100 * (1 + 2 / 3) / 4)
    assert result["score"] == pytest.approx((25.0 + 100 * (1 + 2 / 3) / 4) / 2)


def test_mrqa_score_is_f1_as_reported():
    golds = examples("newsqa", [["the death sentence"], ["Friday"]])
    result = get_task("newsqa").compute_metrics(["death sentence", "on Friday"], golds)
    assert result["squad_em"] == 50.0
    assert result["squad_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert result["score"] == result["squad_f1"]


def test_multirc_f1_over_answers_and_exact_match_per_question():
    labels = ["True", "False", "True", "True", "False", "False"]
    groups = ["0-0", "0-0", "0-0", "0-1", "0-1", "1-0"]
    preds = ["True", "False", "True", "True", "True", "maybe"]
    result = get_task("multirc").compute_metrics(preds, examples("multirc", labels, groups))
    # question 0-0 all right; 0-1 has a wrong answer; 1-0's invalid text counts as "True" (wrong)
    assert result["group_em"] == pytest.approx(100 / 3)
    # answers: TP 3, FP 2 (rows 4, 5), FN 0 -> F1 = 2 * 0.6 * 1 / 1.6 = 0.75
    assert result["f1"] == pytest.approx(75.0)
    assert result["score"] == pytest.approx((75.0 + 100 / 3) / 2)


def test_bleu_one_score_per_input_against_all_references():
    # A: 1-4-gram precisions 5/6, 3/5, 2/4, 1/3; B is exact (7/7, 6/6, 5/5, 4/4); no brevity
    # penalty. The second prediction for A (same group) is ignored.
    refs_a = ["the cat sat on a mat", "a dog ran in the park"]
    a = Example("e2e meaning_representation: A", refs_a[0], "e2e", refs_a, group="A")
    b = Example(
        "e2e meaning_representation: B",
        "a dog ran in the park today",
        "e2e",
        ["a dog ran in the park today"],
        group="B",
    )
    e2e = get_task("e2e")
    alone = e2e.compute_metrics(["the cat sat on the mat"], [a])
    assert alone["bleu"] == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-4)
    corpus = e2e.compute_metrics(["the cat sat on the mat", "garbage", "a dog ran in the park today"], [a, a, b])
    assert corpus["bleu"] == pytest.approx(100 * (60 / 143) ** 0.25, abs=1e-4)


def test_parse_prediction_maps_text_back():
    assert get_task("rte").parse_prediction("  Not_Entailment\n") == "not_entailment"
    assert get_task("rte").parse_prediction("entail") is None
    assert get_task("stsb").parse_prediction(" 3.8 ") == 3.8
    # No number is an invalid prediction, None as for every task (the API answers null); the
    # correlation metrics still count it as -1.0 (test_stsb_pearson_and_spearman).
    assert get_task("stsb").parse_prediction("nan") is None
    assert get_task("stsb").parse_prediction("five") is None
    assert get_task("squad").parse_prediction(" Denver Broncos ") == "Denver Broncos"


def test_prediction_count_must_match():
    with pytest.raises(ValueError, match="2 predictions for 1 examples"):
        get_task("rte").compute_metrics(["entailment", "entailment"], examples("rte", ["entailment"]))
