import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.diffusion.estimators.quadrature import gauss_legendre, simpson
from bgpo_lightning.errors import ConfigError
from tests.diffusion.estimators.exact import (
    LENGTH,
    assert_agrees,
    assert_rejected,
    dependent_table,
    estimates,
    exact_elbo,
    restricted_elbo,
    terms,
)

F64 = torch.float64
RULES = {"gauss_legendre": gauss_legendre, "simpson": simpson}


def rounded_counts(t: torch.Tensor, length: int) -> list[int]:
    return [min(max(round(x * length), 1), length) for x in t.tolist()]


@pytest.mark.parametrize(("rule", "nodes"), [("gauss_legendre", 3), ("simpson", 3)])
def test_nodes_counts_weights_and_coefs(rule, nodes):
    length, per_node = 10, 2
    estimator = build_estimator("sdmc", {"rule": rule, "nodes": nodes})
    samples = estimator.draw(7, length, nodes * per_node, torch.Generator().manual_seed(0))
    assert samples.mask.shape == (6, 7, 10) and samples.weight.dtype == F64
    t, w = RULES[rule](nodes)
    # Node-major: draws 2n and 2n + 1 belong to node n; Simpson's t = 0 node masks one token.
    counts = torch.tensor(rounded_counts(t, length)).repeat_interleave(per_node)
    assert torch.equal(samples.mask.sum(-1), counts.unsqueeze(1).expand(6, 7))
    torch.testing.assert_close(samples.weight, length / samples.mask.sum(-1).double())
    torch.testing.assert_close(samples.coef, (w / per_node).repeat_interleave(per_node))
    assert abs(samples.coef.sum().item() - 1) < 1e-14


def test_masks_differ_per_response_and_per_draw():
    estimator = build_estimator("sdmc", {"rule": "gauss_legendre", "nodes": 1})
    samples = estimator.draw(2, 32, 2, torch.Generator().manual_seed(1))
    assert not torch.equal(samples.mask[0, 0], samples.mask[0, 1])
    assert not torch.equal(samples.mask[0, 0], samples.mask[1, 0])


@pytest.mark.parametrize(
    "settings", [{"rule": "gauss_legendre", "nodes": 3}, {"rule": "simpson", "nodes": 5}]
)
def test_unbiased_for_mask_independent_log_probs(settings):
    log_probs = torch.randn(16, generator=torch.Generator().manual_seed(0), dtype=F64)
    estimator = build_estimator("sdmc", settings)
    samples = estimator.draw(4000, 16, settings["nodes"], torch.Generator().manual_seed(2))
    assert_agrees(estimates(samples, log_probs), log_probs.mean().item())


@pytest.mark.parametrize(("rule", "nodes"), [("gauss_legendre", 2), ("simpson", 3)])
def test_expectation_is_the_quadrature_of_the_enumerated_integrand(rule, nodes):
    table = dependent_table()
    t, w = RULES[rule](nodes)
    quadrature = sum(
        weight * restricted_elbo(table, k)
        for weight, k in zip(w.tolist(), rounded_counts(t, LENGTH), strict=True)
    )
    estimator = build_estimator("sdmc", {"rule": rule, "nodes": nodes})
    samples = estimator.draw(20000, LENGTH, nodes, torch.Generator().manual_seed(3))
    assert_agrees(estimates(samples, table), quadrature)


@pytest.mark.parametrize(
    ("rule", "nodes"), [("gauss_legendre", 1), ("gauss_legendre", 3), ("simpson", 5)]
)
def test_error_is_within_the_rounding_bound_for_a_linear_integrand(rule, nodes):
    # log p_i = c + d |S| / L makes every draw's term c + d k / L, whichever tokens are
    # masked, so the estimate is the quadrature sum_n w_n (c + d k_n / L) without Monte Carlo
    # error. It approximates h(t) = c + d t, which every rule integrates exactly, up to the
    # rounding of k: |k/L - t| <= 1/L, so it is within |d| / L of c + d / 2.
    length, c, d = 8, 0.7, -3.0
    table = (c + d * torch.arange(length + 1, dtype=F64) / length).expand(length, -1)
    estimator = build_estimator("sdmc", {"rule": rule, "nodes": nodes})
    samples = estimator.draw(3, length, nodes, torch.Generator().manual_seed(5))
    t, w = RULES[rule](nodes)
    quadrature = c + d * sum(
        weight * k / length for weight, k in zip(w.tolist(), rounded_counts(t, length), strict=True)
    )
    torch.testing.assert_close(estimates(samples, table), torch.full((3,), quadrature, dtype=F64))
    assert abs(quadrature - (c + d / 2)) <= abs(d) / length


def test_mc_rule_targets_the_rounded_integral():
    # t ~ U(0, 1) with k = clamp(round(t L), 1, L) gives k = 1 mass 1.5/L and k = L mass
    # 0.5/L: the ELBO plus (g(1) - g(L)) / (2L), a bias that vanishes as 1/L.
    table = dependent_table()
    g = [restricted_elbo(table, k) for k in range(1, LENGTH + 1)]
    rounded = exact_elbo(table) + (g[0] - g[-1]) / (2 * LENGTH)
    samples = build_estimator("sdmc", {"rule": "mc"}).draw(
        1, LENGTH, 40000, torch.Generator().manual_seed(6)
    )
    torch.testing.assert_close(samples.coef, torch.full((40000,), 1 / 40000, dtype=F64))
    draws = terms(samples, table)[:, 0]  # i.i.d. draws with equal coefficients
    assert_agrees(draws, rounded)
    assert_rejected(draws, exact_elbo(table))


def test_mc_rule_is_unbiased_for_mask_independent_log_probs():
    log_probs = torch.randn(16, generator=torch.Generator().manual_seed(0), dtype=F64)
    samples = build_estimator("sdmc", {"rule": "mc"}).draw(
        1, 16, 20000, torch.Generator().manual_seed(7)
    )
    assert_agrees(terms(samples, log_probs)[:, 0], log_probs.mean().item())


def test_deterministic_for_a_fixed_generator():
    estimator = build_estimator("sdmc", {"rule": "mc"})
    a = estimator.draw(4, 10, 3, torch.Generator().manual_seed(5))
    b = estimator.draw(4, 10, 3, torch.Generator().manual_seed(5))
    c = estimator.draw(4, 10, 3, torch.Generator().manual_seed(6))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.coef, b.coef)
    assert not torch.equal(a.mask, c.mask)


def test_num_samples_must_be_a_multiple_of_the_nodes():
    estimator = build_estimator("sdmc")
    with pytest.raises(
        ConfigError,
        match="^estimator 'sdmc' with 3 gauss_legendre nodes needs num_samples to be a "
        "multiple of 3, got 4$",
    ):
        estimator.check_num_samples(4)
    estimator.check_num_samples(6)
    build_estimator("sdmc", {"rule": "mc"}).check_num_samples(4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"rule": "trapezoid"},
            "estimator 'sdmc': unknown rule 'trapezoid'; choose one of: "
            "gauss_legendre, simpson, mc",
        ),
        ({"nodes": 6}, "estimator 'sdmc': gauss_legendre needs 1 to 5 nodes, got 6"),
        (
            {"rule": "simpson", "nodes": 4},
            "estimator 'sdmc': simpson needs an odd number of nodes >= 3, got 4",
        ),
    ],
)
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(ConfigError) as error:
        build_estimator("sdmc", settings)
    assert str(error.value) == message
