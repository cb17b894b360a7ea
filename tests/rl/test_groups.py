import math

import pytest
import torch

from srft.rl.groups import grpo_advantages, rloo_advantages


def test_grpo_advantages_standardise_each_group():
    # groups (1, 2) and (3, 4): means 1.5 and 3.5, standard deviations 0.5
    found = grpo_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0]), k=2)
    assert found.tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0], abs=1e-5)
    # (0, 0, 3): mean 1, std sqrt((1 + 1 + 4) / 3) = sqrt(2)
    found = grpo_advantages(torch.tensor([0.0, 0.0, 3.0]), k=3)
    assert found.tolist() == pytest.approx([-1 / math.sqrt(2), -1 / math.sqrt(2), math.sqrt(2)])


def test_dr_grpo_advantages_only_centre():
    found = grpo_advantages(torch.tensor([1.0, 2.0, 3.0, 7.0]), k=2, scale=False)
    assert found.tolist() == pytest.approx([-0.5, 0.5, -2.0, 2.0])


def test_a_group_that_scores_alike_has_no_advantage():
    assert grpo_advantages(torch.tensor([2.0, 2.0]), k=2).tolist() == [0.0, 0.0]
    assert rloo_advantages(torch.tensor([2.0, 2.0]), k=2).tolist() == [0.0, 0.0]


def test_rloo_advantages_leave_one_out():
    # (0, 0, 3): baselines (0 + 3) / 2, (0 + 3) / 2 and (0 + 0) / 2
    found = rloo_advantages(torch.tensor([0.0, 0.0, 3.0]), k=3)
    assert found.tolist() == pytest.approx([-1.5, -1.5, 3.0])
    # k / (k - 1) times the centred score: 3 / 2 * (0 - 1), 3 / 2 * (3 - 1)
    assert found.tolist() == pytest.approx([1.5 * -1, 1.5 * -1, 1.5 * 2])


@pytest.mark.parametrize("count, k", [(5, 2), (4, 1)])
def test_scores_that_do_not_make_groups_are_refused(count, k):
    with pytest.raises(ValueError, match="groups"):
        grpo_advantages(torch.zeros(count), k=k)
    with pytest.raises(ValueError, match="groups"):
        rloo_advantages(torch.zeros(count), k=k)
