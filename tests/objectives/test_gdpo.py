"""GDPO against a float64 reference written from the paper's equations, response by response,
and against BGPO with the same quadrature weights on-policy (BGPO x SDMC)."""

import math

import pytest
import torch

import bgpo_lightning.objectives.gdpo  # noqa: F401  (registers the objective)
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.bgpo import BGPO
from bgpo_lightning.objectives.registry import build_objective
from bgpo_lightning.objectives.terms import LossContext, SampleTerms

GAUSS_LEGENDRE_3 = [5 / 18, 8 / 18, 5 / 18]
ADV = [1.2, -0.7, 0.4, -0.9, 0.8, -0.5]
NUM_RESPONSES = 9  # the whole rollout batch is larger than these six responses
ELBOS = [
    [-0.8, -1.1, -1.9],
    [-0.4, -0.6, -1.2],
    [-1.5, -1.3, -2.4],
    [-0.2, -0.7, -0.9],
    [-1.0, -1.6, -2.1],
    [-0.6, -0.5, -1.4],
]
# B_theta - B_old per response. With eps = 0.5 the ratio leaves the trust region above
# log 1.5 = 0.405 and below log 0.5 = -0.693. Rows: A > 0 clipped, A < 0 clipped, A > 0
# unclipped below, A < 0 unclipped above, then two inside the region.
SEQUENCE_LOG_RATIO = [0.6, -0.9, -0.9, 0.6, 0.1, -0.2]
# Per-sample differences around it; their GL-weighted sum is 0 (5/18 * 0.6 = 8/18 * 0.375),
# so single samples may leave the region while only the weighted sum decides.
SPREAD = [0.3, -0.375, 0.3]


def reference(log_ratio, eps, coef=GAUSS_LEGENDRE_3):
    """Loss and d loss / d l_ij, one response at a time."""
    total = 0.0
    grad = []
    for a, d in zip(ADV, log_ratio, strict=True):
        r = math.exp(d)
        clipped = min(max(r, 1 - eps), 1 + eps)
        total -= min(r * a, clipped * a)
        active = r * a <= clipped * a  # unclipped branch; d r / d l_ij = r c_j
        grad.append([-a * r * c / NUM_RESPONSES if active else 0.0 for c in coef])
    return total / NUM_RESPONSES, torch.tensor(grad, dtype=torch.float64)


def samples(elbos, olds=None):
    """SampleTerms per sample j from ``(n, S)`` ELBO terms (old: detached copies)."""
    n, count = elbos.shape
    mask = torch.ones(n, 4, dtype=torch.bool)
    weight = torch.ones(n, dtype=torch.float64)
    news = [SampleTerms(elbos[:, j], torch.zeros(n, 4), mask, weight) for j in range(count)]
    if olds is None:
        return news, [terms.detached() for terms in news]
    return news, [SampleTerms(olds[:, j], torch.zeros(n, 4), mask, weight) for j in range(count)]


def context(rows=slice(None), adv=ADV, coef=GAUSS_LEGENDRE_3):
    return LossContext(
        advantages=torch.tensor(adv, dtype=torch.float64)[rows],
        coef=torch.tensor(coef, dtype=torch.float64),
        completion_mask=torch.ones(len(adv), 4, dtype=torch.bool)[rows],
        num_responses=NUM_RESPONSES,
        num_completion_tokens=4 * NUM_RESPONSES,
    )


def loss_and_grad(settings, log_ratio, rows=slice(None)):
    elbos = torch.tensor(ELBOS, dtype=torch.float64)[rows].requires_grad_()
    diff = torch.tensor(log_ratio, dtype=torch.float64)[:, None] + torch.tensor(
        SPREAD, dtype=torch.float64
    )
    olds = elbos.detach() - diff[rows]
    news, old = samples(elbos, olds)
    objective = build_objective("gdpo", settings)
    loss = objective.coupled_loss(range(3), news, old, context(rows))
    loss.backward()
    return loss, elbos.grad


ON_POLICY = [0.0] * len(ADV)


@pytest.mark.parametrize("log_ratio", [ON_POLICY, SEQUENCE_LOG_RATIO], ids=["on", "off"])
@pytest.mark.parametrize("eps", [0.5, 0.2])
def test_value_and_gradient_match_the_equations(log_ratio, eps):
    loss, grad = loss_and_grad({"clip_eps": eps}, log_ratio)
    expected, expected_grad = reference(log_ratio, eps)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-15)


def test_the_clipped_branch_has_no_gradient_for_both_signs():
    _, grad = loss_and_grad({}, SEQUENCE_LOG_RATIO)
    assert (grad[0] == 0).all() and (grad[1] == 0).all()  # A > 0 above, A < 0 below: clipped
    assert (grad[2] < 0).all() and (grad[3] > 0).all()  # out of range, unclipped branch
    assert (grad[4] < 0).all() and (grad[5] > 0).all()  # inside the trust region


def test_on_policy_the_ratio_is_one_and_the_clip_is_inactive():
    loss, grad = loss_and_grad({"clip_eps": 0.5}, ON_POLICY)
    tight, tight_grad = loss_and_grad({"clip_eps": 0.01}, ON_POLICY)
    assert loss.item() == pytest.approx(-sum(ADV) / NUM_RESPONSES, rel=1e-14)
    assert loss.item() == tight.item()
    torch.testing.assert_close(grad, tight_grad, rtol=0, atol=0)


def test_micro_batches_add_up_to_the_batch():
    whole, grad = loss_and_grad({}, SEQUENCE_LOG_RATIO)
    first, grad_first = loss_and_grad({}, SEQUENCE_LOG_RATIO, rows=slice(0, 4))
    second, grad_second = loss_and_grad({}, SEQUENCE_LOG_RATIO, rows=slice(4, 6))
    assert (first + second).item() == pytest.approx(whole.item(), rel=1e-13)
    torch.testing.assert_close(torch.cat([grad_first, grad_second]), grad, rtol=0, atol=0)


@pytest.mark.parametrize("sign", [1.0, -1.0, 0.0], ids=["positive", "negative", "mixed"])
def test_on_policy_gradient_equals_bgpo_with_the_same_quadrature_weights(sign):
    """BGPO x SDMC: GDPO's coupled gradient is the sum of BGPO's per-sample gradients."""
    gen = torch.Generator().manual_seed(3)
    adv = torch.randn(6, generator=gen, dtype=torch.float64)
    adv = adv.abs() * sign if sign else adv
    elbos = (-3 * torch.rand(6, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    ctx = context(adv=adv.tolist())
    news, olds = samples(elbos)

    gdpo = build_objective("gdpo")
    gdpo_loss = gdpo.coupled_loss(range(3), news, olds, ctx)
    (gdpo_grad,) = torch.autograd.grad(gdpo_loss, elbos)

    for bgpo in (build_objective("bgpo"), gdpo.on_policy_linear()):
        assert isinstance(bgpo, BGPO)
        bgpo_grad = torch.zeros_like(elbos)
        bgpo_loss = 0.0
        for j in range(3):  # one backward per sample, as the linear loop runs it
            news, olds = samples(elbos)
            loss = bgpo.sample_loss(j, news[j], olds[j], ctx)
            bgpo_grad += torch.autograd.grad(loss, elbos)[0]
            bgpo_loss += loss.item()
        assert bgpo_loss == pytest.approx(gdpo_loss.item(), rel=1e-12)
        error = (gdpo_grad - bgpo_grad).norm() / bgpo_grad.norm()
        assert error < 1e-8
        assert bgpo_grad.abs().min() > 0


def test_coupled_over_all_samples_with_the_sdmc_estimator():
    objective = build_objective("gdpo")
    assert objective.coupled
    assert objective.default_estimator == "sdmc"
    assert objective.estimators is None
    assert objective.kl_coef == 0
    assert objective.num_samples(3, 4) == 3
    assert list(objective.samples_in_update(2, 3, 4)) == [0, 1, 2]


def test_advantages_are_centred_without_std_by_default():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.5], dtype=torch.float64)
    adv = build_objective("gdpo").advantages(rewards, 2)
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, -0.25, 0.25], dtype=torch.float64))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"clip_eps": 0.0}, "gdpo clip_eps must be in \\(0, 1\\), got 0.0"),
        ({"clip_eps": 1.0}, "gdpo clip_eps must be in \\(0, 1\\), got 1.0"),
        (
            {"kl_coef": 0.04},
            "objective 'gdpo' has no setting 'kl_coef'; its settings: clip_eps, normalize_std",
        ),
    ],
)
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_objective("gdpo", settings)
    assert "\n" not in str(error.value)
