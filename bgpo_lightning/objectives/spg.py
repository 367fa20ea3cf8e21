"""SPG: sandwiched policy gradient (arXiv 2510.09541), REINFORCE on likelihood bounds.

``log pi(o|q)`` is replaced by a lower bound for responses with ``A > 0`` and by an upper
bound (or a mix) for ``A <= 0``, so that ``A * bound <= A * log pi`` for both signs. With the
draws ``j`` of an update (combination weights ``c_j``, ``1/n`` for plain Monte Carlo), the
scored set ``M_j`` (masked tokens of the completion up to the first EOS, ``C``), per-token
log-probs ``log p_ij`` and the draw's weight ``w_j = 1/t_j``:

    lower = sum_j c_j * w_j * sum_{i in M_j} log p_ij / |C|
    upper = (1/beta) * mean_{i in U} log( sum_j c_j * 1[i in M_j] * w_j * p_ij^beta )
    mix   = omega * upper + (1 - omega) * lower

``U`` is the set of tokens masked in at least one draw; the others carry no information.
The log of a sum over draws couples them: the objective is coupled.

The official code (``facebookresearch/SPG``, ``spg/spg_trainer.py``, ``_get_per_seq_logps``)
takes ``t_j = |M_j| / |C|``, the fraction of the completion masked in draw ``j``, so ``lower``
is the mean over draws of the per-token mean of the masked log-probs, without a ``1/t``
factor (``draw_weight="completion"``, the default, reproduces it from the masks;
``"estimator"`` uses the estimator's ``SampleTerms.weight`` as ``1/t_j``). Further defaults
from that code: ``A = r - mean(r)`` (no std), mixing for negatives with ``beta = 1.5`` and
``omega = 0.5`` (the paper's headline "SPG w/ Mixture"; its scripts use ``beta = 1.0`` for
Sudoku, and ``2.0`` for Countdown with the plain upper bound), no KL term (it refuses
``beta != 0``), and the loss ``-sum_i A_i |C_i| bound_i / sum_i |C_i|`` (each response
weighted by its completion length). It computes ``p^beta`` in float32 and drops tokens where
it underflows to 0; here the upper bound is a log-sum-exp, so such tokens stay in ``U``.
It draws ``num_t = 2`` fresh masks at every one of its ``mu = 4`` inner updates; here every
update reuses the rollout's ``n_t`` draws (the base schedule), because ``samples_in_update``
is not told how many draws one update should take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.objectives.registry import register
from bgpo_lightning.objectives.terms import LossContext, SampleTerms

NEGATIVE_BOUNDS = ("upper", "mix", "lower", "zero")
DRAW_WEIGHTS = ("completion", "estimator")


def draw_weights(
    masks: torch.Tensor,
    weights: torch.Tensor,
    completion_mask: torch.Tensor,
    source: str = "completion",
) -> torch.Tensor:
    """``w_j = 1/t_j`` per draw and response, ``(k, n)``.

    Args:
        masks: ``(k, n, L)`` bool, the scored tokens ``M_j`` (already inside the completion).
        weights: ``(k, n)`` the estimator's weights.
        completion_mask: ``(n, L)`` bool.
        source: ``completion`` (SPG's code: ``|C| / |M_j|``, 0 when nothing is scored) or
            ``estimator`` (``weights``).
    """
    if source == "estimator":
        return weights
    lengths = completion_mask.sum(dim=-1).to(weights.dtype)
    counts = masks.sum(dim=-1).to(weights.dtype)
    return torch.where(counts > 0, lengths / counts.clamp_min(1), torch.zeros_like(counts))


def spg_bounds(
    log_probs: torch.Tensor,
    masks: torch.Tensor,
    weights: torch.Tensor,
    coef: torch.Tensor,
    completion_mask: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SPG's lower and upper bound of the per-token log-likelihood, each ``(n,)``.

    Args:
        log_probs: ``(k, n, L)`` ``log p_ij`` of the ``k`` draws (differentiable).
        masks: ``(k, n, L)`` bool, the scored tokens ``M_j`` (inside the completion).
        weights: ``(k, n)`` ``w_j = 1/t_j``.
        coef: ``(k,)`` combination weights of the draws, summing to 1.
        completion_mask: ``(n, L)`` bool, ``C``.
        beta: the Renyi order of the upper bound.
    """
    dtype = log_probs.dtype
    weights, coef = weights.to(dtype), coef.to(dtype)
    lengths = completion_mask.sum(dim=-1).clamp_min(1).to(dtype)
    masked_sums = (log_probs * masks).sum(dim=-1)  # (k, n)
    lower = (coef[:, None] * weights * masked_sums).sum(dim=0) / lengths

    # log of the sum over draws in log space: p^beta of a rare token does not underflow.
    log_terms = coef.log()[:, None, None] + weights.log()[..., None] + beta * log_probs
    log_terms = torch.where(masks, log_terms, torch.full_like(log_terms, -math.inf))
    covered = masks.any(dim=0)  # U
    # An all -inf column has a NaN gradient; uncovered tokens get a dummy 0 and are dropped.
    log_terms = torch.where(covered, log_terms, torch.zeros_like(log_terms))
    per_token = torch.where(covered, torch.logsumexp(log_terms, dim=0), 0)
    count = covered.sum(dim=-1).clamp_min(1).to(dtype)
    upper = per_token.sum(dim=-1) / count / beta
    return lower, upper


@dataclass(frozen=True)
class SPGSettings:
    """Settings of ``spg``.

    Attributes:
        negative_bound: what replaces ``log pi`` for ``A <= 0``: ``mix`` (SPG w/ Mixture,
            the paper's best), ``upper`` (SPG w/ EUBO), or the ablations ``lower``
            (SPG w/ ELBO) and ``zero`` (negatives ignored).
        beta: Renyi order of the upper bound (a bound for ``beta >= 1``; SPG: 1.5).
        omega: weight of the upper bound in ``mix`` (SPG: 0.5).
        draw_weight: ``completion`` (SPG's ``t_j``: fraction of the completion masked) or
            ``estimator`` (the mask estimator's weight as ``1/t_j``).
        token_weighted: weight each response by its completion length and divide by the
            batch's completion tokens (SPG's code), else a plain mean over responses.
        normalize_std: divide advantages by the group's std (SPG: no).
    """

    negative_bound: str = "mix"
    beta: float = 1.5
    omega: float = 0.5
    draw_weight: str = "completion"
    token_weighted: bool = True
    normalize_std: bool = False

    def __post_init__(self) -> None:
        if self.negative_bound not in NEGATIVE_BOUNDS:
            raise ConfigError(
                f"spg negative_bound must be one of {', '.join(NEGATIVE_BOUNDS)}, "
                f"got {self.negative_bound!r}"
            )
        if not (isinstance(self.beta, int | float) and 0 < self.beta < math.inf):
            raise ConfigError(f"spg beta must be a positive number, got {self.beta!r}")
        if not (isinstance(self.omega, int | float) and 0 <= self.omega <= 1):
            raise ConfigError(f"spg omega must be in [0, 1], got {self.omega!r}")
        if self.draw_weight not in DRAW_WEIGHTS:
            raise ConfigError(
                f"spg draw_weight must be one of {', '.join(DRAW_WEIGHTS)}, "
                f"got {self.draw_weight!r}"
            )


@register("spg")
class SPG(Objective):
    """Sandwiched policy gradient: ELBO-like bound for A > 0, upper bound or mix for A <= 0."""

    coupled = True
    fresh_draws_per_update = True  # SPG draws n_t new masks for every inner update
    uses_old = False
    default_estimator = "blockwise"
    Settings = SPGSettings

    def bounds(
        self, samples: Sequence[int], new: Sequence[SampleTerms], ctx: LossContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The bound used for ``A > 0`` and the one for ``A <= 0``, per response."""
        s = self.settings
        completion = ctx.completion_mask.bool()
        log_probs = torch.stack([terms.log_probs for terms in new])
        masks = torch.stack([terms.mask.bool() & completion for terms in new])
        weights = torch.stack([terms.weight for terms in new]).to(log_probs.dtype)
        weights = draw_weights(masks, weights, completion, s.draw_weight)
        coef = ctx.coef[list(samples)].to(log_probs.dtype)
        coef = coef / coef.sum()  # the update's draws are averaged among themselves
        lower, upper = spg_bounds(log_probs, masks, weights, coef, completion, s.beta)
        negative = {
            "upper": upper,
            "mix": s.omega * upper + (1 - s.omega) * lower,
            "lower": lower,
            "zero": torch.zeros_like(lower),
        }[s.negative_bound]
        return lower, negative

    def coupled_loss(
        self,
        samples: Sequence[int],
        new: Sequence[SampleTerms],
        old: Sequence[SampleTerms],
        ctx: LossContext,
    ) -> torch.Tensor:
        # REINFORCE on the bounds: no ratio, so ``old`` is unused.
        positive, negative = self.bounds(samples, new, ctx)
        advantages = ctx.advantages.to(positive.dtype)
        bound = torch.where(advantages > 0, positive, negative)
        if self.settings.token_weighted:
            lengths = ctx.completion_mask.sum(dim=-1).to(bound.dtype)
            return -(advantages * lengths * bound).sum() / ctx.num_completion_tokens
        return -(advantages * bound).sum() / ctx.num_responses
