"""The Monte Carlo ELBO converges to the exact ELBO computed by enumerating every mask."""

import itertools

import pytest
import torch

from bgpo_lightning.diffusion.elbo import elbo_term, token_log_probs
from bgpo_lightning.diffusion.masking import apply_mask, draw_masks
from tests.helpers import random_sequences, tiny_policy

PROMPT, LENGTH = 3, 4


def exact_elbo(policy, sequence: torch.Tensor) -> float:
    """``sum_k (1/k) mean_{|S|=k} sum_{i in S} log p(y_i | y with S masked) / L``."""
    response = sequence[PROMPT:]
    total = 0.0
    for k in range(1, LENGTH + 1):
        subsets = list(itertools.combinations(range(LENGTH), k))
        masks = torch.zeros(len(subsets), LENGTH, dtype=torch.bool)
        for row, subset in enumerate(subsets):
            masks[row, list(subset)] = True
        noisy = apply_mask(sequence.expand(len(subsets), -1), masks, policy.mask_token_id)
        with torch.no_grad():
            log_p = token_log_probs(policy(noisy)[:, -LENGTH:], response.expand(len(subsets), -1))
        total += (log_p * masks).sum(-1).mean().item() / k
    return total / LENGTH


@pytest.mark.parametrize("sampler", ["stratified", "iid"])
def test_mc_elbo_converges_to_exact(sampler):
    policy = tiny_policy()
    sequence = random_sequences(1, PROMPT, LENGTH)[0]
    exact = exact_elbo(policy, sequence)
    n = 4000
    masks = draw_masks(1, LENGTH, n, sampler, torch.Generator().manual_seed(0))
    noisy = apply_mask(sequence.expand(n, -1), masks.mask[:, 0], policy.mask_token_id)
    with torch.no_grad():
        logits = policy(noisy)[:, -LENGTH:]
    terms = elbo_term(logits, sequence[PROMPT:].expand(n, -1), masks.mask[:, 0], masks.weight[:, 0])
    estimate, stderr = terms.mean().item(), terms.std().item() / n**0.5
    assert abs(estimate - exact) < 4 * stderr + 1e-9, (estimate, exact, stderr)
    assert stderr < 0.05 * abs(exact)  # the check above is not vacuous


def test_elbo_term_matches_formula():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    response = torch.tensor([[0, 1, 2], [4, 4, 3]])
    mask = torch.tensor([[True, False, True], [False, False, True]])
    weight = torch.tensor([2.0, 4.0], dtype=torch.float64)
    log_p = torch.log_softmax(logits, -1)
    expected = torch.stack(
        [
            2.0 * (log_p[0, 0, 0] + log_p[0, 2, 2]) / 3,
            4.0 * log_p[1, 2, 3] / 3,
        ]
    )
    torch.testing.assert_close(elbo_term(logits, response, mask, weight), expected)
