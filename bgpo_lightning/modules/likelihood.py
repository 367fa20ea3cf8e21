"""The likelihood phase, shared by training and the gradient-statistics callback.

Given a rollout batch and its mask samples, it runs the forwards an objective needs and hands
each loss to a ``backward`` callable: ``manual_backward`` in training, ``torch.autograd.grad``
into a flat buffer in the callback. A linear objective gets one forward and one backward per
(MC sample, micro-batch), each graph freed before the next: activation memory is flat in n_t.
A coupled objective gets all its samples of a micro-batch in one backward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch

from bgpo_lightning.diffusion.elbo import elbo_from_log_probs, token_log_probs
from bgpo_lightning.diffusion.masking import MaskSamples, apply_mask
from bgpo_lightning.modules.rollout import Rollout
from bgpo_lightning.objectives import LossContext, Objective, SampleTerms

#: (logits of the response positions) = model(noisy ids, attention mask, response length)
ResponseLogits = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def micro_batches(n: int, size: int) -> list[slice]:
    """Consecutive row slices of at most ``size`` rows covering ``range(n)``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class OldTerms:
    """The rollout-time policy's values of each (sample, micro-batch), detached, in float64.

    On-policy they are the detached values of the first forward over the sample, so no
    separate no-grad pass over the old policy is spent (``d_j = l - l.detach()`` is 0 with
    the right gradient). Samples first used after an optimizer step are filled beforehand
    by :meth:`LikelihoodLoop.fill_old`.
    """

    def __init__(self) -> None:
        self._terms: dict[tuple[int, int], SampleTerms] = {}

    def get(self, j: int, rows: slice) -> SampleTerms | None:
        return self._terms.get((j, rows.start))

    def put(self, j: int, rows: slice, terms: SampleTerms) -> SampleTerms:
        self._terms[(j, rows.start)] = terms.detached()
        return self._terms[(j, rows.start)]


class LikelihoodLoop:
    """Forwards over mask samples, losses from an objective, one backward per graph group.

    Args:
        policy_logits: the policy's response logits (differentiable).
        reference_logits: the frozen reference's, or None when the objective has no KL.
        objective: how per-sample terms become a loss.
        mask_token_id: the ``[MASK]`` id.
        micro_batch_size: responses per forward.
    """

    def __init__(
        self,
        policy_logits: ResponseLogits,
        reference_logits: ResponseLogits | None,
        objective: Objective,
        mask_token_id: int,
        micro_batch_size: int,
    ) -> None:
        self.policy_logits = policy_logits
        self.reference_logits = reference_logits
        self.objective = objective
        self.mask_token_id = mask_token_id
        self.micro_batch_size = micro_batch_size

    # ---- one forward ------------------------------------------------------------------------
    def forward(self, rollout: Rollout, masks: MaskSamples, j: int, rows: slice) -> SampleTerms:
        """Sample ``j``'s terms for ``rows``: one policy forward (and one reference forward)."""
        responses = rollout.responses[rows]
        length = responses.shape[1]
        sequences = torch.cat([rollout.prompt_ids[rows], responses], dim=1)
        attention = torch.cat([rollout.prompt_mask[rows], torch.ones_like(responses)], dim=1)
        prompt_mask = None if masks.prompt_mask is None else masks.prompt_mask[j, rows]
        mask, weight = masks.mask[j, rows], masks.weight[j, rows]
        noisy = apply_mask(sequences, mask, self.mask_token_id, prompt_mask)
        # Only the response's logits: the prompt's would cost lm_head FLOPs and activations.
        log_probs = token_log_probs(self.policy_logits(noisy, attention, length), responses)
        reference = None
        if self.reference_logits is not None and self.objective.kl_coef > 0:
            with torch.no_grad():
                reference = token_log_probs(
                    self.reference_logits(noisy, attention, length), responses
                )
        elbo = elbo_from_log_probs(log_probs, mask, weight)
        return SampleTerms(elbo, log_probs, mask, weight, reference)

    # ---- the rollout-time values --------------------------------------------------------------
    @torch.no_grad()
    def fill_old(
        self, rollout: Rollout, masks: MaskSamples, old: OldTerms, samples: Sequence[int]
    ) -> None:
        """A no-grad pass over ``samples`` at the current (rollout-time) parameters."""
        for j in samples:
            for rows in micro_batches(rollout.num_responses, self.micro_batch_size):
                old.put(j, rows, self.forward(rollout, masks, j, rows))

    @staticmethod
    def context(
        rollout: Rollout, masks: MaskSamples, rows: slice, num_completion_tokens: int
    ) -> LossContext:
        return LossContext(
            advantages=rollout.advantages[rows],
            coef=masks.coef,
            completion_mask=rollout.completion_mask[rows],
            num_responses=rollout.num_responses,
            num_completion_tokens=num_completion_tokens,
        )

    # ---- one inner update ---------------------------------------------------------------------
    def update(
        self,
        rollout: Rollout,
        masks: MaskSamples,
        old: OldTerms,
        samples: Sequence[int],
        backward: Callable[[torch.Tensor], None],
        sync: Callable[[bool], AbstractContextManager] = lambda is_last: nullcontext(),
        may_fill_old: bool = True,
    ) -> torch.Tensor:
        """Back-propagates the objective's loss over ``samples``; returns the loss's value.

        Args:
            rollout: the batch.
            masks: its mask samples.
            old: rollout-time values; missing ones are filled from these forwards when
                ``may_fill_old`` (before the first optimizer step of the batch).
            samples: the sample indices of this inner update.
            backward: called once per graph (per sample and micro-batch, or per micro-batch
                for a coupled objective).
            sync: context around each forward and backward; ``sync(True)`` on the last one
                (DDP all-reduces only there).
            may_fill_old: False once parameters have moved: a missing old value is then a bug.
        """
        batches = micro_batches(rollout.num_responses, self.micro_batch_size)
        if self.objective.coupled:
            groups = [(list(samples), rows) for rows in batches]
        else:
            groups = [([j], rows) for j in samples for rows in batches]
        total = torch.zeros((), dtype=torch.float64, device=rollout.responses.device)
        # One host sync per update, not one per graph: the GPU keeps its queue full.
        tokens = max(int(rollout.completion_mask.sum()), 1)
        for index, (group, rows) in enumerate(groups):
            with sync(index == len(groups) - 1):
                new = [self.forward(rollout, masks, j, rows) for j in group]
                if self.objective.uses_old:
                    olds = [
                        self._old(old, j, rows, t, may_fill_old)
                        for j, t in zip(group, new, strict=True)
                    ]
                else:  # ratio-free: nothing is stored
                    olds = new
                ctx = self.context(rollout, masks, rows, tokens)
                if self.objective.coupled:
                    loss = self.objective.coupled_loss(group, new, olds, ctx)
                else:
                    loss = self.objective.sample_loss(group[0], new[0], olds[0], ctx)
                backward(loss)
            total += loss.detach().to(total.dtype)
        return total

    @staticmethod
    def _old(old: OldTerms, j: int, rows: slice, new: SampleTerms, may_fill: bool) -> SampleTerms:
        terms = old.get(j, rows)
        if terms is not None:
            return terms
        if not may_fill:
            raise RuntimeError(f"no rollout-time values for sample {j}, rows {rows}")
        return old.put(j, rows, new)
