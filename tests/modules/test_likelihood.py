"""The shared likelihood loop: memory flat in n_t for linear objectives whatever the mask
estimator, growing for coupled ones; rollout-time values taken once."""

import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.modules.likelihood import LikelihoodLoop, OldTerms, micro_batches
from bgpo_lightning.modules.rollout import Rollout, completion_mask
from bgpo_lightning.objectives import build_objective
from tests.helpers import random_sequences, tiny_policy
from tests.objectives.test_bgpo import SavedActivationMeter

N, PROMPT, LENGTH = 6, 5, 12
SDMC = {"rule": "gauss_legendre", "nodes": 3}


def rollout() -> Rollout:
    sequences = random_sequences(N, PROMPT, LENGTH, seed=2)
    responses = sequences[:, PROMPT:]
    advantages = torch.tensor([1.2, -0.4, 0.3, -1.5, 0.9, -0.2], dtype=torch.float64)
    return Rollout(
        prompt_ids=sequences[:, :PROMPT],
        prompt_mask=torch.ones(N, PROMPT, dtype=torch.long),
        responses=responses,
        completion_mask=torch.ones_like(responses, dtype=torch.bool),
        rewards=torch.zeros(N),
        accuracy=torch.zeros(N),
        advantages=advantages,
        texts=[""] * N,
        examples=[],
    )


def loop_for(policy, objective, micro_batch_size=N) -> LikelihoodLoop:
    def logits(ids, attention, length):
        return policy(ids, attention, logits_to_keep=length)

    return LikelihoodLoop(logits, None, objective, policy.mask_token_id, micro_batch_size)


def peak_activations(objective_name, estimator, settings, num_samples) -> int:
    policy = tiny_policy()
    roll = rollout()
    masks = build_estimator(estimator, settings).draw(
        N, LENGTH, num_samples, torch.Generator().manual_seed(0), prompt_length=PROMPT
    )
    loop = loop_for(policy, build_objective(objective_name))
    with SavedActivationMeter(policy.parameters()) as meter:
        loop.update(roll, masks, OldTerms(), range(num_samples), lambda loss: loss.backward())
    assert meter.live == 0  # every graph was freed
    return meter.peak


@pytest.mark.parametrize(
    ("estimator", "settings"),
    [("stratified", None), ("sdmc", SDMC), ("complementary", None)],
)
def test_bgpo_memory_is_flat_in_the_number_of_samples(estimator, settings):
    assert peak_activations("bgpo", estimator, settings, 12) == peak_activations(
        "bgpo", estimator, settings, 6
    )


@pytest.mark.parametrize("objective", ["vrpo_ol", "gdpo"])
def test_coupled_objectives_keep_every_graph(objective):
    small = peak_activations(objective, "sdmc", SDMC, 3)
    large = peak_activations(objective, "sdmc", SDMC, 12)
    assert 0.9 * 4 <= large / small <= 1.1 * 4


def test_micro_batches_cover_the_batch_once():
    assert micro_batches(8, 3) == [slice(0, 3), slice(3, 6), slice(6, 8)]


def test_old_values_come_from_the_first_visit_and_are_reused():
    """Off-policy inner updates compare against the rollout-time values, not the current."""
    policy = tiny_policy()
    roll = rollout()
    masks = build_estimator("stratified").draw(N, LENGTH, 2, torch.Generator().manual_seed(1))
    loop = loop_for(policy, build_objective("bgpo"), micro_batch_size=4)
    old = OldTerms()
    loop.update(roll, masks, old, range(2), lambda loss: loss.backward())
    first = old.get(1, slice(4, 6)).elbo.clone()
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05)
    loop.update(roll, masks, old, range(2), lambda loss: None, may_fill_old=False)
    torch.testing.assert_close(old.get(1, slice(4, 6)).elbo, first, rtol=0, atol=0)
    fresh = loop.forward(roll, masks, 1, slice(4, 6)).elbo.detach()
    assert (fresh - first).abs().max() > 1e-6
    with pytest.raises(RuntimeError, match="no rollout-time values for sample 0"):
        loop.update(roll, masks, OldTerms(), [0], lambda loss: None, may_fill_old=False)


def test_completion_mask_keeps_tokens_up_to_the_first_eos():
    responses = torch.tensor([[5, 6, 2, 2, 7], [5, 6, 7, 8, 9], [2, 5, 2, 6, 7]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(completion_mask(responses, eos_id=2), expected)
    assert completion_mask(responses, eos_id=None).all()
