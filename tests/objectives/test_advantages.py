import pytest
import torch

from bgpo_lightning.objectives import group_advantages


def test_group_normalised_against_float64_reference():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.2, 0.9], dtype=torch.float64)
    adv = group_advantages(rewards, group_size=3, eps=0.0)
    for g in range(2):
        r = rewards[3 * g : 3 * g + 3]
        expected = (r - r.mean()) / r.std(unbiased=True)
        torch.testing.assert_close(adv[3 * g : 3 * g + 3], expected)


def test_equal_rewards_give_zero_advantage_and_centring_only_mode():
    rewards = torch.tensor([0.3, 0.3, 1.0, 0.0])
    adv = group_advantages(rewards, 2)
    assert torch.equal(adv[:2], torch.zeros(2))
    torch.testing.assert_close(
        group_advantages(rewards, 2, normalize_std=False)[2:], torch.tensor([0.5, -0.5])
    )


def test_bad_shape_is_reported():
    with pytest.raises(ValueError, match="multiple of group_size=4"):
        group_advantages(torch.zeros(6), 4)
