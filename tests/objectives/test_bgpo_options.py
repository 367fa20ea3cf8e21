"""BGPO's off-policy options and the Table 3 ablation, against float64 references written
from the equations, through the registry as the loop calls them."""

import math

import pytest
import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives import LossContext, SampleTerms, bgpo_term, build_objective

ADV = [1.5, -0.8, 0.6, -2.0, 0.0]


def reference_term(d: float, a: float, bound: str, eps=None, dual=None) -> float:
    """One sample's term before its weight, from the equations, one response at a time."""
    use_jensen = {"both": a < 0, "tangent": False, "jensen": True}[bound]
    rho = math.exp(d) if use_jensen else 1 + d
    value = rho * a
    if eps is not None:
        value = min(value, min(max(rho, 1 - eps), 1 + eps) * a)
    if dual is not None and a < 0:
        value = max(value, dual * a)
    return value


def loss_and_grad(settings, d_values, coef, j=1):
    elbo = torch.tensor(d_values, dtype=torch.float64, requires_grad=True)
    n = elbo.shape[0]
    zeros = torch.zeros(n, dtype=torch.float64)
    mask = torch.ones(n, 4, dtype=torch.bool)
    new = SampleTerms(elbo, zeros[:, None].expand(n, 4), mask, torch.ones(n))
    old = SampleTerms(zeros, zeros[:, None].expand(n, 4), mask, torch.ones(n))
    ctx = LossContext(
        advantages=torch.tensor(ADV, dtype=torch.float64),
        coef=torch.tensor(coef, dtype=torch.float64),
        completion_mask=mask,
        num_responses=8,  # the whole batch is larger than this micro-batch
        num_completion_tokens=32,
    )
    loss = build_objective("bgpo", settings).sample_loss(j, new, old, ctx)
    loss.backward()
    return loss.item(), elbo.grad


@pytest.mark.parametrize("bound", ["both", "tangent", "jensen"])
@pytest.mark.parametrize(("eps", "dual"), [(None, None), (0.2, None), (0.2, 3.0), (None, 1.5)])
def test_value_and_gradient_match_the_equations(bound, eps, dual):
    # d spans: inside the clip range, above it, below it, and a large negative one.
    d_values = [0.1, 0.5, -0.4, -1.7, 0.3]
    coef = [0.25, 0.5, 0.25]
    loss, grad = loss_and_grad({"bound": bound, "clip_eps": eps, "dual_clip": dual}, d_values, coef)
    terms = [reference_term(d, a, bound, eps, dual) for d, a in zip(d_values, ADV, strict=True)]
    assert loss == pytest.approx(-0.5 * sum(terms) / 8, rel=1e-12, abs=1e-15)
    h = 1e-6
    for i, d in enumerate(d_values):  # central differences of the reference, per response
        up = reference_term(d + h, ADV[i], bound, eps, dual)
        down = reference_term(d - h, ADV[i], bound, eps, dual)
        assert grad[i].item() == pytest.approx(-0.5 * (up - down) / (2 * h) / 8, abs=1e-7)


def test_clipping_is_inactive_on_policy():
    plain = loss_and_grad({}, [0.0] * 5, [0.5, 0.5])
    clipped = loss_and_grad({"clip_eps": 0.2, "dual_clip": 3.0}, [0.0] * 5, [0.5, 0.5])
    assert plain[0] == clipped[0]
    torch.testing.assert_close(plain[1], clipped[1], rtol=0, atol=0)
    assert plain[1].abs().sum() > 0


def test_clipped_side_has_no_gradient():
    # A > 0 with 1 + d above 1 + eps, and A < 0 with exp(d) below 1 - eps: both clipped.
    _, grad = loss_and_grad({"clip_eps": 0.2}, [0.5, -0.6, 0.1, -0.1, 0.0], [0.5, 0.5])
    assert grad[0] == 0 and grad[1] == 0
    assert grad[2] != 0 and grad[3] != 0


def test_dual_clip_bounds_a_negative_advantage_term_from_below():
    # A < 0, exp(d) = e^2 > c = 3: the term is c * A and has no gradient.
    loss, grad = loss_and_grad({"dual_clip": 3.0}, [0.0, 0.0, 0.0, 2.0, 0.0], [1.0, 0.0], j=0)
    assert grad[3] == 0
    expected = -(1.5 - 0.8 + 0.6 + 3.0 * -2.0) / 8
    assert loss == pytest.approx(expected, rel=1e-12)


def test_the_paper_bound_is_below_exp_of_the_mean_for_both_signs():
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    coef = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    adv = torch.tensor(ADV, dtype=torch.float64)
    bound = sum(coef[j] * bgpo_term(d[:, j], adv) for j in range(4))
    exact = torch.exp((d * coef).sum(-1)) * adv
    assert (bound <= exact + 1e-12).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bound": "secant"}, "bgpo bound must be one of both, tangent, jensen"),
        ({"clip_eps": 1.5}, "bgpo clip_eps must be in"),
        ({"dual_clip": 0.5}, "bgpo dual_clip must be > 1"),
        ({"kl_coef": -1.0}, "bgpo kl_coef must be >= 0"),
        ({"eps": 0.2}, "objective 'bgpo' has no setting 'eps'; its settings: bound,"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_objective("bgpo", settings)
    assert "\n" not in str(error.value)
