"""diffu-GRPO against a float64 reference written from d1's equations, token by token, through
the registry as the likelihood loop calls it."""

import math

import pytest
import torch

import bgpo_lightning.objectives.diffu_grpo  # noqa: F401  (registers the objective)
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.registry import build_objective
from bgpo_lightning.objectives.terms import LossContext, SampleTerms

ADV = [1.2, -0.7, 0.4, -0.9]
COMPLETION = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]]
BATCH_TOKENS = 20  # the whole rollout batch has more completion tokens than this micro-batch
LOG_PROBS = [
    [-0.3, -1.2, -2.0, -0.1, -0.7],
    [-0.5, -0.9, -1.6, -0.2, -3.0],
    [-1.1, -0.4, -0.8, -2.2, -0.6],
    [-0.9, -0.3, -1.4, -0.5, -0.2],
]
# log pi_theta - log pi_old. With eps = 0.5 the ratio leaves the trust region above
# log 1.5 = 0.405 and below log 0.5 = -0.693: each sign of A meets a clipped and an unclipped
# out-of-range ratio. Outside the completion the values are huge (exp overflows): ignored.
LOG_RATIO = [
    [0.6, -0.9, 0.1, 0.0, 0.3],
    [-0.9, 0.6, -0.1, 1000.0, -1000.0],
    [0.7, -0.8, 0.2, 0.05, 1000.0],
    [0.5, 1000.0, -1000.0, 1000.0, 1000.0],
]
REF_MINUS_NEW = [
    [0.2, -0.3, 0.0, 0.5, -0.1],
    [0.1, 0.4, -0.6, 0.0, 0.0],
    [-0.2, 0.3, 0.1, -0.4, 0.0],
    [0.7, 0.0, 0.0, 0.0, 0.0],
]


def reference(log_ratio, ref_minus_new, eps, beta):
    """Loss and d loss / d log p per token, from the equations, one token at a time."""
    total = 0.0
    grad = [[0.0] * 5 for _ in ADV]
    for i, a in enumerate(ADV):
        for k in range(5):
            if not COMPLETION[i][k]:
                continue
            r = math.exp(log_ratio[i][k])
            clipped = min(max(r, 1 - eps), 1 + eps)
            total -= min(r * a, clipped * a)
            # d(r a)/d log p = r a; the clipped branch is constant (ties only inside the range,
            # where both branches have derivative r a).
            g = -r * a if r * a <= clipped * a else 0.0
            if beta:
                u = ref_minus_new[i][k]
                total += beta * (math.exp(u) - u - 1)
                g += beta * (1 - math.exp(u))
            grad[i][k] = g / BATCH_TOKENS
    return total / BATCH_TOKENS, torch.tensor(grad, dtype=torch.float64)


def terms(log_probs, ref=None):
    n = log_probs.shape[0]
    mask = torch.ones(n, 5, dtype=torch.bool)  # one-step: the whole completion is masked
    elbo = log_probs.sum(-1) / 5
    return SampleTerms(elbo, log_probs, mask, torch.ones(n, dtype=torch.float64), ref)


def context(rows):
    return LossContext(
        advantages=torch.tensor(ADV, dtype=torch.float64)[rows],
        coef=torch.full((12,), 1 / 12, dtype=torch.float64),
        completion_mask=torch.tensor(COMPLETION, dtype=torch.bool)[rows],
        num_responses=8,
        num_completion_tokens=BATCH_TOKENS,
    )


def loss_and_grad(settings, log_ratio, rows=slice(None), j=3):
    """The objective's loss for micro-batch ``rows`` and its gradient w.r.t. the log-probs."""
    log_probs = torch.tensor(LOG_PROBS, dtype=torch.float64)[rows].requires_grad_()
    base = torch.tensor(LOG_PROBS, dtype=torch.float64)[rows]
    old_log_probs = base - torch.tensor(log_ratio, dtype=torch.float64)[rows]
    ref = base + torch.tensor(REF_MINUS_NEW, dtype=torch.float64)[rows]
    objective = build_objective("diffu_grpo", settings)
    new = terms(log_probs, ref if objective.kl_coef > 0 else None)
    old = terms(old_log_probs)
    loss = objective.sample_loss(j, new, old, context(rows))
    loss.backward()
    return loss, log_probs.grad


OFF_POLICY = LOG_RATIO
ON_POLICY = [[0.0] * 5 for _ in ADV]


@pytest.mark.parametrize("log_ratio", [ON_POLICY, OFF_POLICY], ids=["on", "off"])
@pytest.mark.parametrize("beta", [0.0, 0.04, 0.3])
@pytest.mark.parametrize("eps", [0.5, 0.2])
def test_value_and_gradient_match_the_equations(log_ratio, beta, eps):
    loss, grad = loss_and_grad({"clip_eps": eps, "kl_coef": beta}, log_ratio)
    expected, expected_grad = reference(log_ratio, REF_MINUS_NEW, eps, beta)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-15)
    assert torch.isfinite(grad).all()


def test_on_policy_the_ratio_is_one_and_the_clip_is_inactive():
    # d1 on-policy: old = current, detached. Every ratio is 1; the gradient is -A / T per token.
    log_probs = torch.tensor(LOG_PROBS, dtype=torch.float64, requires_grad=True)
    new = terms(log_probs)
    grads = []
    for eps in (0.5, 0.1):
        objective = build_objective("diffu_grpo", {"clip_eps": eps, "kl_coef": 0.0})
        loss = objective.sample_loss(0, new, new.detached(), context(slice(None)))
        (grad,) = torch.autograd.grad(loss, log_probs)
        grads.append(grad)
        expected = -sum(a * sum(c) for a, c in zip(ADV, COMPLETION, strict=True)) / BATCH_TOKENS
        assert loss.item() == pytest.approx(expected, rel=1e-14)
    adv = torch.tensor(ADV, dtype=torch.float64)[:, None]
    completion = torch.tensor(COMPLETION, dtype=torch.float64)
    torch.testing.assert_close(grads[0], -adv * completion / BATCH_TOKENS, rtol=1e-14, atol=0)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_the_clipped_branch_has_no_gradient_for_both_signs():
    _, grad = loss_and_grad({"kl_coef": 0.0}, OFF_POLICY)
    # A > 0, ratio above 1 + eps / A < 0, ratio below 1 - eps: clipped, no gradient.
    assert grad[0, 0] == 0 and grad[2, 0] == 0
    assert grad[1, 0] == 0
    # A > 0, ratio below 1 - eps / A < 0, ratio above 1 + eps: the unclipped branch is smaller.
    assert grad[0, 1] < 0 and grad[2, 1] < 0
    assert grad[1, 1] > 0 and grad[3, 0] > 0
    # Outside the completion: nothing, even where the log-ratio overflows exp().
    assert (grad[~torch.tensor(COMPLETION, dtype=torch.bool)] == 0).all()


def test_the_kl_term_is_the_k3_token_mean_and_needs_the_reference():
    loss, _ = loss_and_grad({"kl_coef": 0.04}, ON_POLICY)
    plain, _ = loss_and_grad({"kl_coef": 0.0}, ON_POLICY)
    k3 = sum(
        math.exp(u) - u - 1
        for row, done in zip(REF_MINUS_NEW, COMPLETION, strict=True)
        for u, keep in zip(row, done, strict=True)
        if keep
    )
    assert (loss - plain).item() == pytest.approx(0.04 * k3 / BATCH_TOKENS, rel=1e-12)
    objective = build_objective("diffu_grpo")
    assert objective.kl_coef == 0.04
    new = terms(torch.tensor(LOG_PROBS, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs the reference"):
        objective.sample_loss(0, new, new.detached(), context(slice(None)))


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_micro_batches_add_up_to_the_batch(beta):
    settings = {"kl_coef": beta}
    whole, grad = loss_and_grad(settings, OFF_POLICY)
    first, grad_first = loss_and_grad(settings, OFF_POLICY, rows=slice(0, 2))
    second, grad_second = loss_and_grad(settings, OFF_POLICY, rows=slice(2, 4))
    assert (first + second).item() == pytest.approx(whole.item(), rel=1e-13)
    torch.testing.assert_close(torch.cat([grad_first, grad_second]), grad, rtol=0, atol=0)


def test_one_fresh_one_step_sample_per_inner_update():
    objective = build_objective("diffu_grpo")
    assert not objective.coupled
    assert objective.default_estimator == "one_step"
    assert objective.estimators == ("one_step",)
    count = objective.num_samples(16, 12)  # n_t is ignored: one draw per inner update
    assert count == 12
    assert [list(objective.samples_in_update(m, count, count)) for m in range(count)] == [
        [m] for m in range(12)
    ]
    with pytest.raises(ValueError, match="inner update 12 has no mask sample"):
        objective.samples_in_update(12, count, count)


def test_advantages_are_centred_without_std_by_default():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.5, 0.1, 0.1], dtype=torch.float64)
    adv = build_objective("diffu_grpo").advantages(rewards, 3)
    expected = [2 / 3, -1 / 3, -1 / 3, 0.5 - 0.7 / 3, 0.1 - 0.7 / 3, 0.1 - 0.7 / 3]
    torch.testing.assert_close(adv, torch.tensor(expected, dtype=torch.float64))
    scaled = build_objective("diffu_grpo", {"normalize_std": True}).advantages(rewards, 3)
    assert scaled[0] == pytest.approx((2 / 3) / (rewards[:3].std().item() + 1e-4))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"clip_eps": 0.0}, "diffu_grpo clip_eps must be in \\(0, 1\\), got 0.0"),
        ({"clip_eps": 1.5}, "diffu_grpo clip_eps must be in \\(0, 1\\), got 1.5"),
        ({"kl_coef": -0.1}, "diffu_grpo kl_coef must be >= 0, got -0.1"),
        ({"beta": 0.04}, "objective 'diffu_grpo' has no setting 'beta'; its settings: clip_eps,"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_objective("diffu_grpo", settings)
    assert "\n" not in str(error.value)
