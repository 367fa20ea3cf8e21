"""What a likelihood forward hands to an objective: typed, per micro-batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SampleTerms:
    """One forward of the policy over one Monte Carlo sample, for ``n`` responses.

    Attributes:
        elbo: ``(n,)`` the sample's ELBO term ``l_j = weight_j * sum_i mask_i log p_i / L``.
        log_probs: ``(n, L)`` ``log p(y^i | y_t, x)`` at every response position.
        mask: ``(n, L)`` bool, the response positions that were masked (the scored ones).
        weight: ``(n,)`` float64, the sample's ELBO weight (``1/t`` or ``L/k``).
        ref_log_probs: ``(n, L)`` the frozen reference's ``log_probs`` on the same input, when
            the objective asks for them (no gradient), else None.
    """

    elbo: torch.Tensor
    log_probs: torch.Tensor
    mask: torch.Tensor
    weight: torch.Tensor
    ref_log_probs: torch.Tensor | None = None

    def detached(self) -> SampleTerms:
        """float64 copies without gradient: the old policy's values of the same sample.

        float64 keeps an exact copy of any compute dtype, so ``l_theta - l_old`` is exactly 0
        on-policy.
        """
        ref = self.ref_log_probs
        return SampleTerms(
            self.elbo.detach().to(torch.float64),
            self.log_probs.detach().to(torch.float64),
            self.mask,
            self.weight,
            None if ref is None else ref.detach(),
        )


def stacked_elbos(
    new: Sequence[SampleTerms], old: Sequence[SampleTerms]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, S)`` ELBO terms of the current and the old policy, in the current's dtype, for
    objectives that couple a response's samples (VRPO-OL, GDPO)."""
    elbos = torch.stack([terms.elbo for terms in new], dim=-1)
    return elbos, torch.stack([terms.elbo for terms in old], dim=-1).to(elbos.dtype)


@dataclass(frozen=True)
class LossContext:
    """What an objective needs besides the forwards, for one micro-batch.

    Attributes:
        advantages: ``(n,)`` the objective's per-response coefficients (its ``advantages``).
        coef: ``(n_t,)`` float64, ``B_hat = sum_j coef_j l_j`` (from the estimator).
        completion_mask: ``(n, L)`` bool, response tokens up to and including the first EOS
            (token-level objectives average over these, as d1 does).
        num_responses: N, responses in the whole rollout batch (losses are divided by it).
        num_completion_tokens: ``completion_mask``'s count over the whole rollout batch.
    """

    advantages: torch.Tensor
    coef: torch.Tensor
    completion_mask: torch.Tensor
    num_responses: int
    num_completion_tokens: int
