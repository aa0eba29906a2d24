"""The run card's training_curves.png: the best dev step marked, the best constant answer's
score on the dev panel, the learning rates, and whole-number step ticks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from promptmix.tasks import Example, get_task

LOSS = [(1, 2.0), (2, 1.5), (3, 1.2), (4, 1.1)]
DEV = [(2, 55.0), (4, 52.0)]
RATES = {"prompt": [(1, 0.1), (2, 0.3), (3, 0.2), (4, 0.1)], "attention": [(1, 0.01), (2, 0.03), (3, 0.02), (4, 0.01)]}


def test_the_figure_marks_the_best_step_draws_the_floor_and_the_learning_rates_on_integer_steps():
    import matplotlib.pyplot as plt

    from promptmix.training.card import draw_curves

    figure = draw_curves(LOSS, DEV, "t", best_step=2, floor=50.0, rates=RATES)
    try:
        loss_axes, dev_axes, lr_axes = figure.axes
        assert lr_axes.get_title() == "learning rate"
        assert sorted(line.get_label() for line in lr_axes.get_lines() if not line.get_label().startswith("best")) == [
            "attention",
            "prompt",
        ]
        floor = [line for line in dev_axes.get_lines() if line.get_label().startswith("best constant answer")]
        assert len(floor) == 1 and list(floor[0].get_ydata()) == [50.0, 50.0]
        for axes in figure.axes:
            marks = [line for line in axes.get_lines() if line.get_label() == "best dev step 2"]
            assert len(marks) == 1 and list(marks[0].get_xdata()) == [2, 2]
        star = [line for line in dev_axes.get_lines() if line.get_marker() == "*"]
        assert [(list(s.get_xdata()), list(s.get_ydata())) for s in star] == [([2], [55.0])]
        figure.canvas.draw()
        for axes in figure.axes:
            ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
    finally:
        plt.close(figure)


def test_the_floor_is_the_mean_over_tasks_of_each_best_constant_answer():
    from promptmix.training.card import constant_floor

    rte = get_task("rte")

    def data(targets):
        examples = [Example(source=f"x{i}", target=t, task="rte", label=t) for i, t in enumerate(targets)]
        return SimpleNamespace(task=rte, train=examples, dev=examples)

    one = data(["entailment"] * 3 + ["not_entailment"])  # best constant: 75
    two = data(["entailment", "not_entailment"])  # 50
    assert constant_floor({"a": one, "b": two}) == pytest.approx(62.5)
    assert constant_floor({}) is None
