"""SPG against a float64 reference written from its equations, token by token."""

import itertools
import math

import pytest
import torch

import bgpo_lightning.objectives.spg  # noqa: F401  (registers "spg")
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.registry import build_objective
from bgpo_lightning.objectives.terms import LossContext, SampleTerms

L = 6
ADV = [1.2, -0.7, 0.0, -1.5, 0.4, -0.2]  # both signs and a zero (which takes the upper side)
LENGTHS = [6, 4, 2, 5, 3, 6]  # completion up to and including the first EOS
SAMPLES = [2, 3, 4]  # the draws of this inner update, out of 5
COEF = [0.2, 0.2, 0.1, 0.3, 0.4]  # renormalised over SAMPLES inside the objective
ESTIMATOR_WEIGHTS = [1.5, 2.0, 4.0]


def completion_mask(lengths=LENGTHS) -> torch.Tensor:
    return torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]


def draw_masks() -> torch.Tensor:
    """Random block-like masks; some tokens are never masked, some masks only past EOS."""
    generator = torch.Generator().manual_seed(11)
    masks = torch.rand(len(SAMPLES), len(ADV), L, generator=generator) < 0.5
    masks[:, 0, 1] = False  # response 0, token 1: masked in no draw
    masks[0, 2] = torch.tensor([False, False, True, True, True, True])  # only after EOS
    return masks


def reference_bounds(log_probs, masks, weights, coef, lengths, beta, draw_weight):
    """Lower and upper bound per response, from the equations, with explicit loops."""
    k, n = len(masks), len(masks[0])
    coef = [c / sum(coef) for c in coef]
    lower, upper = [], []
    for i in range(n):
        completion = range(lengths[i])
        scored = [[t for t in completion if masks[j][i][t]] for j in range(k)]
        if draw_weight == "completion":  # 1/t_j with t_j the masked fraction of C
            w = [lengths[i] / len(s) if s else 0.0 for s in scored]
        else:
            w = [weights[j][i] for j in range(k)]
        low = 0.0
        for j in range(k):
            for t in scored[j]:
                low = low + coef[j] * w[j] * log_probs[j][i][t] / lengths[i]
        total, covered = 0.0, 0
        for t in completion:
            inside = 0.0
            hit = False
            for j in range(k):
                if t in scored[j]:
                    inside = inside + coef[j] * w[j] * torch.exp(beta * log_probs[j][i][t])
                    hit = True
            if hit:
                total = total + torch.log(inside)
                covered += 1
        lower.append(low)
        upper.append(total / max(covered, 1) / beta)
    return lower, upper


def reference_loss(log_probs, masks, weights, settings, lengths=LENGTHS, adv=ADV):
    s = {"negative_bound": "mix", "beta": 1.5, "omega": 0.5, "draw_weight": "completion"}
    s.update(settings)
    lower, upper = reference_bounds(
        log_probs, masks, weights, COEF[2:5], lengths, s["beta"], s["draw_weight"]
    )
    total = 0.0
    for i, a in enumerate(adv):
        if a > 0:
            bound = lower[i]
        else:
            bound = {
                "upper": upper[i],
                "mix": s["omega"] * upper[i] + (1 - s["omega"]) * lower[i],
                "lower": lower[i],
                "zero": 0.0,
            }[s["negative_bound"]]
        if settings.get("token_weighted", True):
            total = total - a * lengths[i] * bound
        else:
            total = total - a * bound
    return total / (sum(lengths) if settings.get("token_weighted", True) else len(adv))


def run_objective(settings, log_probs, masks, batches, lengths=LENGTHS, adv=ADV, coef=COEF):
    """The loss as the likelihood loop computes it: one coupled call per micro-batch."""
    objective = build_objective("spg", settings)
    complete = completion_mask(lengths)
    weights = torch.tensor(ESTIMATOR_WEIGHTS, dtype=torch.float64)[:, None].expand(-1, len(adv))
    total = 0
    for rows in batches:
        news = [
            SampleTerms(
                elbo=torch.zeros(rows.stop - rows.start, dtype=torch.float64),
                log_probs=log_probs[j][rows],
                mask=masks[j][rows],
                weight=weights[j][rows],
            )
            for j in range(len(SAMPLES))
        ]
        ctx = LossContext(
            advantages=torch.tensor(adv, dtype=torch.float64)[rows],
            coef=torch.tensor(coef, dtype=torch.float64),
            completion_mask=complete[rows],
            num_responses=len(adv),
            num_completion_tokens=int(complete.sum()),
        )
        olds = [terms.detached() for terms in news]
        total = total + objective.coupled_loss(SAMPLES[: len(news)], news, olds, ctx)
    return total


def leaf_log_probs(shape=None, seed=0):
    shape = shape or (len(SAMPLES), len(ADV), L)
    generator = torch.Generator().manual_seed(seed)
    values = -2.5 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 0.01
    return values.requires_grad_(True)


SETTINGS = [
    {},
    {"negative_bound": "upper", "beta": 2.0},
    {"negative_bound": "lower"},
    {"negative_bound": "zero"},
    {"omega": 0.25, "beta": 1.0, "token_weighted": False},
    {"draw_weight": "estimator"},
    {"negative_bound": "upper", "draw_weight": "estimator", "beta": 0.5},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: str(s) or "defaults")
def test_value_and_gradient_match_the_equations(settings):
    masks = draw_masks()
    log_probs = leaf_log_probs()
    loss = run_objective(settings, log_probs, masks, [slice(0, len(ADV))])
    (grad,) = torch.autograd.grad(loss, log_probs)

    leaf = log_probs.detach().clone().requires_grad_(True)
    weights = [[w] * len(ADV) for w in ESTIMATOR_WEIGHTS]
    reference = reference_loss(leaf, masks.tolist(), weights, settings)
    (reference_grad,) = torch.autograd.grad(reference, leaf)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12, abs=1e-14)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-10, atol=1e-14)
    assert torch.isfinite(grad).all()
    # Unscored tokens (never masked, or past EOS) get no gradient.
    scored = masks & completion_mask()[None]
    assert (grad[~scored] == 0).all()


@pytest.mark.parametrize("settings", [{}, {"token_weighted": False}])
def test_micro_batches_add_up_to_the_batch_loss(settings):
    masks = draw_masks()
    log_probs = leaf_log_probs()
    whole = run_objective(settings, log_probs, masks, [slice(0, 6)])
    parts = run_objective(settings, log_probs, masks, [slice(0, 1), slice(1, 4), slice(4, 6)])
    assert parts.item() == pytest.approx(whole.item(), rel=1e-12)
    (g_whole,) = torch.autograd.grad(whole, log_probs)
    (g_parts,) = torch.autograd.grad(parts, log_probs)
    torch.testing.assert_close(g_parts, g_whole, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("omega", [0.0, 0.3, 0.5, 1.0])
def test_the_mix_is_the_weighted_combination_of_the_bounds(omega):
    masks = draw_masks()
    log_probs = leaf_log_probs().detach()
    batch = [slice(0, 6)]
    mix = run_objective({"omega": omega}, log_probs, masks, batch)
    upper = run_objective({"negative_bound": "upper"}, log_probs, masks, batch)
    lower = run_objective({"negative_bound": "lower"}, log_probs, masks, batch)
    # Positive advantages use the lower bound in all three, so the loss mixes linearly.
    assert mix.item() == pytest.approx(omega * upper.item() + (1 - omega) * lower.item(), 1e-12)


def enumerated_masks(length):
    """Every mask of a ``length``-token completion, with the exact probabilities of the
    discrete forward process (``k ~ U{1..L}``, then a uniform ``k``-subset), weight ``L/k``."""
    masks, coef, weights = [], [], []
    for k in range(1, length + 1):
        for subset in itertools.combinations(range(length), k):
            masks.append([t in subset for t in range(length)])
            coef.append(1.0 / length / math.comb(length, k))
            weights.append(length / k)
    return torch.tensor(masks), torch.tensor(coef, dtype=torch.float64), weights


def bounds_over_all_masks(log_probs, settings):
    """``(lower, upper)`` of one response whose completion is every one of its L tokens."""
    masks, coef, weights = enumerated_masks(log_probs.shape[-1])
    objective = build_objective("spg", settings)
    news = [
        SampleTerms(
            elbo=torch.zeros(1, dtype=torch.float64),
            log_probs=log_probs[j : j + 1],
            mask=masks[j : j + 1],
            weight=torch.tensor([weights[j]], dtype=torch.float64),
        )
        for j in range(len(masks))
    ]
    ctx = LossContext(
        advantages=torch.tensor([-1.0], dtype=torch.float64),
        coef=coef,
        completion_mask=torch.ones(1, log_probs.shape[-1], dtype=torch.bool),
        num_responses=1,
        num_completion_tokens=log_probs.shape[-1],
    )
    lower, upper = objective.bounds(range(len(masks)), news, ctx)
    settings = dict(settings, negative_bound="upper")
    upper = build_objective("spg", settings).bounds(range(len(masks)), news, ctx)[1]
    return lower.item(), upper.item()


@pytest.mark.parametrize("draw_weight", ["completion", "estimator"])
@pytest.mark.parametrize("beta", [1.0, 1.5, 2.0])
def test_sandwich_with_the_exact_expectation_over_masks(draw_weight, beta):
    # Context-dependent log-probs: a different value for every (mask, token).
    count = len(enumerated_masks(3)[0])
    for seed in range(5):
        log_probs = leaf_log_probs((count, 3), seed=seed).detach()
        lower, upper = bounds_over_all_masks(log_probs, {"beta": beta, "draw_weight": draw_weight})
        assert lower <= upper + 1e-12
    # A model whose predictions ignore the context: log pi(y) = sum_t log p_t exactly, and
    # both bounds equal it per token (the weights L/k make every token's measure sum to 1).
    token_log_probs = torch.tensor([-0.3, -2.0, -1.1], dtype=torch.float64)
    lower, upper = bounds_over_all_masks(token_log_probs.expand(count, 3), {"beta": beta})
    exact = token_log_probs.mean().item()
    assert lower == pytest.approx(exact, rel=1e-12)
    assert upper == pytest.approx(exact, rel=1e-12)


def test_single_token_bounds_are_its_log_probability():
    log_p = torch.tensor([[-0.7]], dtype=torch.float64)
    lower, upper = bounds_over_all_masks(log_p, {"beta": 1.5})
    assert lower == pytest.approx(-0.7, rel=1e-14) and upper == pytest.approx(-0.7, rel=1e-14)


def test_upper_bound_grows_with_beta_and_meets_the_lower_bound_as_beta_vanishes():
    count = len(enumerated_masks(3)[0])
    log_probs = leaf_log_probs((count, 3), seed=3).detach()
    uppers = [bounds_over_all_masks(log_probs, {"beta": b})[1] for b in (0.5, 1.0, 2.0, 4.0)]
    assert uppers == sorted(uppers)  # a power mean grows with its order
    lower, upper = bounds_over_all_masks(log_probs, {"beta": 1e-7})
    assert upper == pytest.approx(lower, abs=1e-6)


def test_defaults_follow_spg():
    objective = build_objective("spg")
    assert objective.coupled and objective.default_estimator == "blockwise"
    assert objective.kl_coef == 0
    s = objective.settings
    assert (s.negative_bound, s.beta, s.omega) == ("mix", 1.5, 0.5)
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.1, 0.0, 0.0], dtype=torch.float64)
    expected = torch.tensor([0.5, -0.5, 0.0, 0.1, 0.0, 0.0], dtype=torch.float64)
    expected[3:] -= 0.1 / 3
    torch.testing.assert_close(objective.advantages(rewards, 3), expected)  # r - mean, no std


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"negative_bound": "elbo"}, "negative_bound"),
        ({"beta": 0.0}, "beta"),
        ({"beta": float("inf")}, "beta"),
        ({"omega": 1.5}, "omega"),
        ({"omega": -0.1}, "omega"),
        ({"draw_weight": "one_over_t"}, "draw_weight"),
        ({"eubo_beta": 2.0}, "no setting 'eubo_beta'"),
    ],
)
def test_bad_settings_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_objective("spg", settings)
    assert "\n" not in str(error.value)
