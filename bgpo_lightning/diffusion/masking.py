"""Monte Carlo samples of the forward (masking) process for ELBO estimation.

A masked diffusion LM's ELBO for a response ``y`` of length ``L`` is

    B(y|x) = E_{t~U(0,1)} E_{y_t~q(.|t,y)} (1/t) * sum_i 1[y_t^i = MASK] log p(y^i | y_t, x).

Conditioning on the number ``k`` of masked tokens (Binomial(L, t), then a uniform ``k``-subset)
and integrating out ``t`` gives the equivalent discrete form
``B = E_{k~U{1..L}} E_{|S|=k} (L/k) * sum_{i in S} log p(y^i | y_S masked, x)``.

How masks are drawn is a registry of estimators (:mod:`bgpo_lightning.diffusion.estimators`);
:func:`draw_masks` is a thin wrapper over its two timestep samplers:

* ``"iid"``: the paper's form; ``n_t`` i.i.d. timesteps, each token masked independently with
  probability ``t``, weight ``1/t``.
* ``"stratified"``: the official code's form; per response one uniform offset and ``n_t``
  evenly spaced mask counts ``k``, exactly ``k`` tokens masked, weight ``L/k``. Every stratum
  covers a ``1/n_t`` slice of the mask ratio, so the estimate is unbiased with lower variance
  than ``iid``. It is the default.

Both weights are divided by ``L`` (a per-token mean, as the official code does) so the scale
of the objective, and of a good learning rate, does not depend on the response length.
Masks are drawn once per rollout batch from an explicit ``torch.Generator`` and then reused
for the old and the current policy. This module holds the output type, :class:`MaskSamples`,
and :func:`apply_mask`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.errors import ConfigError

TIMESTEP_SAMPLERS = ("stratified", "iid")


def check_timestep_sampler(name: str) -> str:
    """Returns ``name`` if it is a known sampler, else raises a one-line ConfigError."""
    if name not in TIMESTEP_SAMPLERS:
        raise ConfigError(
            f"unknown timestep_sampler {name!r}; choose one of: {', '.join(TIMESTEP_SAMPLERS)}"
        )
    # Imported here: the estimators import MaskSamples from this module.
    from bgpo_lightning.diffusion.estimators import check_estimator

    return check_estimator(name)


@dataclass(frozen=True)
class MaskSamples:
    """``n_t`` masking samples for a batch of responses.

    Attributes:
        mask: ``(n_t, N, L)`` bool, True where the response token is replaced by ``[MASK]``.
        weight: ``(n_t, N)`` float64, the ELBO weight of each sample (``1/t`` or ``L/k``):
            sample ``j``'s term is ``l_j = weight_j * sum_i mask_ji log p_i / L``.
        coef: ``(n_t,)`` float64, how the terms combine into the estimate
            ``B_hat = sum_j coef_j l_j`` (``1/n_t`` for plain Monte Carlo; quadrature weights
            over masks per node for SDMC).
        prompt_mask: ``(n_t, N, P)`` bool, prompt tokens replaced by ``[MASK]`` (d1's one-step
            estimator), or None when the prompt stays clean.
    """

    mask: torch.Tensor
    weight: torch.Tensor
    coef: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.coef is None:  # plain Monte Carlo: the mean over samples
            count = self.mask.shape[0]
            coef = torch.full((count,), 1.0 / count, dtype=torch.float64, device=self.mask.device)
            object.__setattr__(self, "coef", coef)

    @property
    def num_samples(self) -> int:
        return self.mask.shape[0]

    def select(self, rows: slice | torch.Tensor) -> MaskSamples:
        """The same samples restricted to a subset of responses (a micro-batch)."""
        prompt = None if self.prompt_mask is None else self.prompt_mask[:, rows]
        return MaskSamples(self.mask[:, rows], self.weight[:, rows], self.coef, prompt)

    def repeat_rows(self, times: int) -> MaskSamples:
        """Each response's samples repeated ``times`` times along the batch (shared masks)."""
        prompt = self.prompt_mask
        return MaskSamples(
            self.mask.repeat_interleave(times, dim=1),
            self.weight.repeat_interleave(times, dim=1),
            self.coef,
            None if prompt is None else prompt.repeat_interleave(times, dim=1),
        )


def draw_masks(
    num_responses: int,
    response_length: int,
    num_samples: int,
    sampler: str = "stratified",
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    min_t: float = 1e-3,
) -> MaskSamples:
    """Draws ``num_samples`` masks per response.

    Args:
        num_responses: N, responses in the batch.
        response_length: L, tokens per response (EOS padding included: it is part of the
            fixed-length response the model generated).
        num_samples: n_t, Monte Carlo samples per response.
        sampler: ``"stratified"`` or ``"iid"``.
        generator: source of randomness; must live on ``device``.
        device: where the masks are created.
        min_t: lower bound on ``t`` for ``"iid"`` so the weight ``1/t`` stays finite.

    Returns:
        The masks and their ELBO weights.
    """
    if num_samples < 1 or response_length < 1 or num_responses < 0:
        raise ValueError(
            f"need num_samples >= 1 and response_length >= 1, got {num_samples}, {response_length}"
        )
    if sampler not in TIMESTEP_SAMPLERS:
        raise ValueError(
            f"unknown timestep sampler {sampler!r}; choose one of: {TIMESTEP_SAMPLERS}"
        )
    # Imported here: the estimators import MaskSamples from this module.
    from bgpo_lightning.diffusion.estimators import build_estimator

    estimator = build_estimator(sampler, {"min_t": min_t} if sampler == "iid" else None)
    return estimator.draw(num_responses, response_length, num_samples, generator, device)


def apply_mask(
    sequences: torch.Tensor,
    response_mask: torch.Tensor,
    mask_id: int,
    prompt_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Replaces masked tokens by ``mask_id``; the prompt only where ``prompt_mask`` says so.

    Args:
        sequences: ``(N, P + L)`` prompt followed by the response.
        response_mask: ``(N, L)`` bool for the last ``L`` positions.
        mask_id: the ``[MASK]`` token id.
        prompt_mask: ``(N, P)`` bool for the first ``P`` positions, or None (prompt clean).
    """
    length = response_mask.shape[-1]
    noisy = sequences.clone()
    noisy[:, -length:] = sequences[:, -length:].masked_fill(response_mask, mask_id)
    if prompt_mask is not None:
        prompt = prompt_mask.shape[-1]
        noisy[:, :prompt] = sequences[:, :prompt].masked_fill(prompt_mask, mask_id)
    return noisy
