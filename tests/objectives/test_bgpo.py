"""BGPO against VRPO-OL: equal gradients on-policy, a lower bound off-policy, flat memory."""

import pytest
import torch

from bgpo_lightning.diffusion.elbo import elbo_term
from bgpo_lightning.diffusion.masking import apply_mask, draw_masks
from bgpo_lightning.objectives import bgpo_bound, bgpo_sample_term, vrpo_ol_objective
from tests.helpers import random_sequences, tiny_policy

PROMPT, LENGTH, N = 5, 8, 6
ADVANTAGES = torch.tensor([1.3, -0.7, 0.2, -1.1, 0.0, 0.5], dtype=torch.float64)


def sample_elbo(policy, sequences, masks, j):
    noisy = apply_mask(sequences, masks.mask[j], policy.mask_token_id)
    logits = policy(noisy)[:, -LENGTH:]
    return elbo_term(logits, sequences[:, -LENGTH:], masks.mask[j], masks.weight[j])


def grads(policy):
    return torch.cat([p.grad.flatten() for p in policy.parameters()])


def bgpo_per_sample_backward(policy, sequences, masks, old=None):
    """BGPO as the module runs it: one backward per MC sample; returns the bound per response."""
    n_t = masks.num_samples
    bound = torch.zeros(N, dtype=torch.float64)
    for j in range(n_t):
        elbo = sample_elbo(policy, sequences, masks, j)
        g = bgpo_sample_term(elbo, elbo.detach() if old is None else old[:, j], ADVANTAGES, n_t)
        (-g.sum() / N).backward()
        bound += g.detach()
    return bound


def vrpo_ol_single_backward(policy, sequences, masks, old=None):
    elbos = torch.stack(
        [sample_elbo(policy, sequences, masks, j) for j in range(masks.num_samples)], -1
    )
    objective = vrpo_ol_objective(elbos, elbos.detach() if old is None else old, ADVANTAGES)
    (-objective.sum() / N).backward()
    return objective.detach()


@pytest.mark.parametrize("sampler", ["stratified", "iid"])
def test_on_policy_gradient_and_value_equal_vrpo_ol(sampler):
    sequences = random_sequences(N, PROMPT, LENGTH)
    masks = draw_masks(N, LENGTH, 4, sampler, torch.Generator().manual_seed(3))
    bgpo_policy, vrpo_policy = tiny_policy(), tiny_policy()
    bound = bgpo_per_sample_backward(bgpo_policy, sequences, masks)
    objective = vrpo_ol_single_backward(vrpo_policy, sequences, masks)
    g_bgpo, g_vrpo = grads(bgpo_policy), grads(vrpo_policy)
    assert g_vrpo.norm() > 1e-6  # the comparison is not between zeros
    assert ((g_bgpo - g_vrpo).norm() / g_vrpo.norm()).item() < 1e-8
    torch.testing.assert_close(bound, objective, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bound, ADVANTAGES, rtol=1e-12, atol=1e-12)


def test_off_policy_bound_is_below_vrpo_ol_per_response():
    sequences = random_sequences(N, PROMPT, LENGTH, seed=1)
    masks = draw_masks(N, LENGTH, 8, "stratified", torch.Generator().manual_seed(4))
    old_policy = tiny_policy()
    with torch.no_grad():
        old = torch.stack([sample_elbo(old_policy, sequences, masks, j) for j in range(8)], -1)
    new_policy = tiny_policy()
    with torch.no_grad():  # a parameter change, as after an optimizer step
        for p in new_policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
        new = torch.stack([sample_elbo(new_policy, sequences, masks, j) for j in range(8)], -1)
    assert (new - old).abs().max() > 1e-3  # really off-policy
    bound = bgpo_bound(new, old, ADVANTAGES)
    objective = vrpo_ol_objective(new, old, ADVANTAGES)
    assert (bound <= objective + 1e-12).all(), (bound, objective)
    assert (bound[ADVANTAGES != 0] < objective[ADVANTAGES != 0]).all()  # strict off-policy


def test_bound_handles_extreme_differences_without_nan():
    elbo = torch.tensor([[50.0, -5.0], [-800.0, 3.0]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(2, 2, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    bgpo_bound(elbo, old, adv).sum().backward()
    assert torch.isfinite(elbo.grad).all()
    # A >= 0 uses 1 + d even for d < -1 (where log(1 + d) would be NaN).
    torch.testing.assert_close(
        bgpo_bound(elbo, old, adv)[0], torch.tensor(23.5, dtype=torch.float64)
    )  # ((1+50)+(1-5))/2


class SavedActivationMeter:
    """Peak bytes of activations that autograd holds for backward (parameters excluded)."""

    def __init__(self, params):
        self.param_ptrs = {p.data_ptr() for p in params}
        self.live = 0
        self.peak = 0

    def __enter__(self):
        meter = self

        class Held:
            def __init__(self, tensor):
                self.tensor = tensor
                self.size = 0 if tensor.data_ptr() in meter.param_ptrs else tensor.nbytes
                meter.live += self.size
                meter.peak = max(meter.peak, meter.live)

            def __del__(self):
                meter.live -= self.size

        self._hooks = torch.autograd.graph.saved_tensors_hooks(Held, lambda held: held.tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


@pytest.mark.parametrize("objective", ["bgpo", "vrpo_ol"])
def test_retained_activation_memory_against_n_t(objective):
    sequences = random_sequences(N, PROMPT, LENGTH)
    peaks = {}
    for n_t in (1, 2, 4, 8):
        policy = tiny_policy()
        masks = draw_masks(N, LENGTH, n_t, "stratified", torch.Generator().manual_seed(0))
        run = bgpo_per_sample_backward if objective == "bgpo" else vrpo_ol_single_backward
        with SavedActivationMeter(policy.parameters()) as meter:
            run(policy, sequences, masks)
        assert meter.live == 0  # every graph was freed
        peaks[n_t] = meter.peak
    if objective == "bgpo":
        assert peaks[8] == peaks[1], peaks
    else:
        for n_t in (2, 4, 8):
            assert 0.9 * n_t <= peaks[n_t] / peaks[1] <= 1.1 * n_t, peaks
