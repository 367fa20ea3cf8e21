"""wd1 against a float64 reference written from its equations, one group at a time."""

import math

import pytest
import torch

import bgpo_lightning.objectives.wd1  # noqa: F401  (registers "wd1")
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.registry import build_objective
from bgpo_lightning.objectives.terms import LossContext, SampleTerms
from bgpo_lightning.objectives.wd1 import wd1_weights

G, L = 4, 5
# Two prompts: rewards of both signs around each group's mean, ties inside the second.
REWARDS = [1.0, 0.1, 0.0, 0.7, 0.2, 0.2, 0.9, 0.2]
# Response length up to and including the first EOS; tokens after it do not count.
LENGTHS = [5, 3, 1, 4, 5, 2, 5, 3]


def completion_mask() -> torch.Tensor:
    return torch.arange(L)[None, :] < torch.tensor(LENGTHS)[:, None]


def reference_loss(log_probs, mask, weight, normalize_std=False, use_negative=True):
    """wd1's loss from the equations: loops over prompts, responses and tokens."""
    n = len(REWARDS)
    total = 0.0
    for b in range(n // G):
        rows = range(b * G, (b + 1) * G)
        mean = sum(REWARDS[i] for i in rows) / G
        adv = [REWARDS[i] - mean for i in rows]
        if normalize_std:
            std = math.sqrt(sum(a * a for a in adv) / (G - 1))
            adv = [a / (std + 1e-4) for a in adv]
        z_pos = sum(math.exp(a) for a in adv)
        z_neg = sum(math.exp(-a) for a in adv)
        for k, i in enumerate(rows):
            log_pi = 0.0
            for t in range(LENGTHS[i]):
                if mask[i][t]:
                    log_pi = log_pi + log_probs[i, t]
            log_pi = weight[i] * log_pi
            total = total - math.exp(adv[k]) / z_pos * log_pi
            if use_negative:
                total = total + math.exp(-adv[k]) / z_neg * log_pi
    return total / (n // G)


def run_objective(settings, log_probs, mask, weight, batches, inner=0, old=None, rewards=REWARDS):
    """The loss as the likelihood loop computes it: one sample, summed over micro-batches."""
    objective = build_objective("wd1", settings)
    n = len(rewards)
    adv = objective.advantages(torch.tensor(rewards, dtype=torch.float64), G)
    num_samples = objective.num_samples(num_mc_samples=3, num_inner_updates=12)
    (j,) = objective.samples_in_update(inner, num_samples, num_samples)
    complete = completion_mask()
    total = 0
    for rows in batches:
        new = SampleTerms(
            elbo=torch.zeros(rows.stop - rows.start, dtype=torch.float64),
            log_probs=log_probs[rows],
            mask=mask[rows],
            weight=weight[rows],
        )
        ctx = LossContext(
            advantages=adv[rows],
            coef=torch.full((num_samples,), 1.0 / num_samples, dtype=torch.float64),
            completion_mask=complete[rows],
            num_responses=n,
            num_completion_tokens=int(complete.sum()),
        )
        total = total + objective.sample_loss(j, new, new.detached() if old is None else old, ctx)
    return total


def leaf_log_probs(seed=0):
    generator = torch.Generator().manual_seed(seed)
    values = -3 * torch.rand(len(REWARDS), L, generator=generator, dtype=torch.float64)
    return values.requires_grad_(True)


SPLITS = {
    "whole": [slice(0, 8)],
    "groups": [slice(0, 4), slice(4, 8)],
    "across groups": [slice(0, 3), slice(3, 6), slice(6, 8)],
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    "settings", [{}, {"normalize_std": True}, {"use_negative": False}], ids=["wd1", "std", "pos"]
)
@pytest.mark.parametrize("estimator", ["one_step", "partial"])
def test_value_and_gradient_match_the_equations(split, settings, estimator):
    n = len(REWARDS)
    if estimator == "one_step":  # the whole response masked, weight 1
        mask = torch.ones(n, L, dtype=torch.bool)
        weight = torch.ones(n, dtype=torch.float64)
    else:  # any other estimator: its masked tokens, its weight
        mask = torch.rand(n, L, generator=torch.Generator().manual_seed(5)) < 0.6
        weight = torch.linspace(1.0, 3.0, n, dtype=torch.float64)
    log_probs = leaf_log_probs()
    loss = run_objective(settings, log_probs, mask, weight, SPLITS[split])
    (grad,) = torch.autograd.grad(loss, log_probs)

    reference_leaf = log_probs.detach().clone().requires_grad_(True)
    reference = reference_loss(reference_leaf, mask.tolist(), weight.tolist(), **settings)
    (reference_grad,) = torch.autograd.grad(reference, reference_leaf)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12, abs=1e-14)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=1e-14)
    after_eos = ~completion_mask()
    assert (grad[after_eos] == 0).all()


def test_weights_are_group_softmaxes_and_coefficients_sum_to_zero():
    rewards = torch.tensor(REWARDS, dtype=torch.float64)
    positive, negative = wd1_weights(rewards, G)
    torch.testing.assert_close(positive.view(-1, G).sum(1), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(negative.view(-1, G).sum(1), torch.ones(2, dtype=torch.float64))
    # Centring does not matter to a softmax: these are softmax(r) and softmax(-r) per group.
    torch.testing.assert_close(positive, torch.softmax(rewards.view(-1, G), 1).reshape(-1))
    torch.testing.assert_close(negative, torch.softmax(-rewards.view(-1, G), 1).reshape(-1))
    coefficients = build_objective("wd1").advantages(rewards, G)
    torch.testing.assert_close(coefficients, G * (positive - negative))
    sums = coefficients.view(-1, G).sum(1)
    torch.testing.assert_close(sums, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-14)


def test_a_common_shift_of_a_groups_log_likelihoods_does_not_change_the_loss():
    mask = torch.ones(len(REWARDS), L, dtype=torch.bool)
    weight = torch.ones(len(REWARDS), dtype=torch.float64)
    log_probs = leaf_log_probs().detach()
    base = run_objective({}, log_probs, mask, weight, SPLITS["whole"])
    shifted = log_probs.clone()
    # Add 0.37 to every response's log pi_hat in group 0: the first completion token of each.
    shifted[:G, 0] += 0.37
    moved = run_objective({}, shifted, mask, weight, SPLITS["whole"])
    assert moved.item() == pytest.approx(base.item(), rel=1e-12, abs=1e-14)


def test_equal_rewards_give_exactly_zero_loss_and_gradient():
    objective = build_objective("wd1")
    coefficients = objective.advantages(torch.full((8,), 0.3, dtype=torch.float64), G)
    assert (coefficients == 0).all()  # w+ = w- = 1/G for every response
    mask = torch.ones(len(REWARDS), L, dtype=torch.bool)
    weight = torch.ones(len(REWARDS), dtype=torch.float64)
    log_probs = leaf_log_probs()
    loss = run_objective({}, log_probs, mask, weight, SPLITS["groups"], rewards=[0.3] * 8)
    (grad,) = torch.autograd.grad(loss, log_probs)
    assert loss.item() == 0 and (grad == 0).all()


def test_both_signs_best_response_up_worst_down_but_not_every_advantage_sign():
    # Group 0 has both signs: the best response is pushed up, the worst down.
    objective = build_objective("wd1")
    coefficients = objective.advantages(torch.tensor(REWARDS, dtype=torch.float64), G)
    assert coefficients[0] > 0 and coefficients[2] < 0
    # A small positive advantage next to a large one can still be pushed down: the net
    # weight softmax(A) - softmax(-A) is not sign(A) (here A = r, the mean is 0).
    rewards = torch.tensor([0.1, 5.0, -2.55, -2.55], dtype=torch.float64)
    coefficients = objective.advantages(rewards, 4)
    assert coefficients[0] < 0 and coefficients[1] > 0 and (coefficients[2:] < 0).all()


def test_one_fresh_draw_per_inner_update_and_no_old_policy():
    objective = build_objective("wd1")
    assert objective.default_estimator == "one_step" and not objective.coupled
    assert objective.kl_coef == 0
    assert objective.num_samples(num_mc_samples=4, num_inner_updates=12) == 12
    assert [list(objective.samples_in_update(m, 12, 12)) for m in range(12)] == [
        [m] for m in range(12)
    ]
    mask = torch.ones(len(REWARDS), L, dtype=torch.bool)
    weight = torch.ones(len(REWARDS), dtype=torch.float64)
    log_probs = leaf_log_probs().detach()
    garbage = SampleTerms(torch.full((8,), 9.0, dtype=torch.float64), log_probs + 5, mask, weight)
    with_old = run_objective({}, log_probs, mask, weight, SPLITS["whole"], inner=7, old=garbage)
    without = run_objective({}, log_probs, mask, weight, SPLITS["whole"], inner=0)
    assert with_old.item() == without.item()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"normalize_std": "no"}, "normalize_std"),
        ({"use_negative": 1}, "use_negative"),
        ({"temperature": 2.0}, "no setting 'temperature'"),
    ],
)
def test_bad_settings_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_objective("wd1", settings)
    assert "\n" not in str(error.value)
