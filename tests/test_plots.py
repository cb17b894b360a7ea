"""The report's figures (srft/plots.py): one series per attempt, the steps a rollback undid
drawn faint, rollbacks marked, the gates' targets drawn, reward and gold judge on one chart."""

import matplotlib.pyplot as plt

from srft.gates import Gate
from srft.plots import Targets, figures, rl_figure, rollback_steps, series


def _row(stage, attempt, step, name, value):
    return {"stage": stage, "attempt": attempt, "step": step, "name": name, "value": value}


def _rows(stage=5, offset=0):
    """Attempt 0: steps 1-4, rolled back to 2 at step 4, then 3-6; attempt 1: steps 1-3."""
    rows = []
    for attempt, steps in ((0, [1, 2, 3, 4, 3, 4, 5, 6]), (1, [1, 2, 3])):
        for step in steps:
            for name, value in (
                ("kl_per_token_nats", 0.01 * step),
                ("entropy_nats", 1.0),
                ("reward", 0.1 * step),
                ("judge_score", 0.5),
            ):
                rows.append(_row(stage, attempt, offset + step, name, value))
    return rows


ROLLBACK = {
    "stage": 5,
    "attempt": 0,
    "decision": "rollback",
    "numbers": {"run": "stage 5", "step": 4, "metrics_step": 4},
}
TARGETS = Targets.of(
    [
        Gate("kl_divergence", 0.05, 0.1, "<=", 5),
        Gate("entropy", 1.0, (0.5, 2.0), "in", 5),
        Gate("reward_accuracy_val", 0.8, 0.7, ">=", 3),
    ]
)


def test_series_are_kept_per_attempt():
    found = series(_rows(), 5, "reward")
    assert sorted(found) == [0, 1]
    assert [step for step, _ in found[1]] == [1, 2, 3]
    assert rollback_steps([ROLLBACK], 5) == {0: [4]}
    assert rollback_steps([ROLLBACK], 6) == {}


def test_targets_come_from_the_gates():
    assert Targets(kl_bound=0.1, entropy_band=(0.5, 2.0), accuracy=0.7) == TARGETS
    assert Targets.of([]) == Targets()


def test_the_rl_figure_draws_attempts_rollbacks_and_targets():
    fig = rl_figure(_rows(), 5, TARGETS, {0: [4]})
    kl, entropy, reward, judge = fig.axes
    lines = {line.get_label(): line for line in kl.get_lines()}
    # one solid series per attempt: attempt 0 as trained (1, 2, then 3-6 after the rollback)
    assert list(lines["attempt 0"].get_xdata()) == [1, 2]
    assert list(lines["attempt 1"].get_xdata()) == [1, 2, 3]
    faint = [line for line in kl.get_lines() if line.get_alpha() == 0.3]
    assert [list(line.get_xdata()) for line in faint] == [[2, 3, 4]]  # undone by the rollback
    solid_x = sorted(
        x
        for line in kl.get_lines()
        if line.get_alpha() is None and line.get_color() == "C0"
        for x in line.get_xdata()
    )
    assert solid_x == [1, 2, 3, 4, 5, 6]
    for axis in (kl, entropy, reward):  # the rollback, marked on each panel
        assert any(list(line.get_xdata()) == [4, 4] for line in axis.get_lines())
    assert any(list(line.get_ydata()) == [0.1, 0.1] for line in kl.get_lines())
    band = [patch for patch in entropy.patches]
    assert len(band) == 1 and band[0].get_y() == 0.5 and band[0].get_height() == 1.5
    # the proxy reward and the gold judge share one chart, the judge on its own axis
    assert judge.get_shared_x_axes().joined(judge, reward)
    assert {y for line in judge.get_lines() for y in line.get_ydata()} == {0.5}
    plt.close(fig)


def test_stage_6_rounds_are_laid_end_to_end():
    rows = _rows(6, 100_000) + [_row(6, 0, 200_000 + s, "reward", 1.0) for s in (1, 2)]
    fig = rl_figure(rows, 6, Targets(), {})
    reward = fig.axes[2]
    xs = sorted(
        x for line in reward.get_lines() if line.get_color() == "C0" for x in line.get_xdata()
    )
    assert xs[-2:] == [7, 8]  # round 2 starts where round 1 (6 steps) ended
    plt.close(fig)


def test_figures_of_a_run():
    rows = _rows() + [_row(3, 0, s, "eval_accuracy", 0.6 + 0.05 * s) for s in (1, 2)]
    found = figures(rows, [{"iteration": 0, "score": 0.4}], [], [ROLLBACK])
    assert set(found) == {
        "Reward model training (stage 3)",
        "RL fine-tuning (stage 5)",
        "Score per iteration (stage 6)",
    }
    assert all(uri.startswith("data:image/png;base64,") for uri in found.values())
    assert figures([], None) == {}
