"""Monte Carlo samples of the forward (masking) process for ELBO estimation.

A masked diffusion LM's ELBO for a response ``y`` of length ``L`` is

    B(y|x) = E_{t~U(0,1)} E_{y_t~q(.|t,y)} (1/t) * sum_i 1[y_t^i = MASK] log p(y^i | y_t, x).

Conditioning on the number ``k`` of masked tokens (Binomial(L, t), then a uniform ``k``-subset)
and integrating out ``t`` gives the equivalent discrete form
``B = E_{k~U{1..L}} E_{|S|=k} (L/k) * sum_{i in S} log p(y^i | y_S masked, x)``.
Two samplers are offered:

* ``"iid"``: the paper's form; ``n_t`` i.i.d. timesteps, each token masked independently with
  probability ``t``, weight ``1/t``.
* ``"stratified"``: the official code's form; per response one uniform offset and ``n_t``
  evenly spaced mask counts ``k``, exactly ``k`` tokens masked, weight ``L/k``. Every stratum
  covers a ``1/n_t`` slice of the mask ratio, so the estimate is unbiased with lower variance
  than ``iid``. It is the default.

Both weights are divided by ``L`` (a per-token mean, as the official code does) so the scale
of the objective, and of a good learning rate, does not depend on the response length.
Masks are drawn once per rollout batch from an explicit ``torch.Generator`` and then reused
for the old and the current policy.
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
    return name


@dataclass(frozen=True)
class MaskSamples:
    """``n_t`` masking samples for a batch of responses.

    Attributes:
        mask: ``(n_t, N, L)`` bool, True where the response token is replaced by ``[MASK]``.
        weight: ``(n_t, N)`` float64, the ELBO weight of each sample (``1/t`` or ``L/k``).
    """

    mask: torch.Tensor
    weight: torch.Tensor

    @property
    def num_samples(self) -> int:
        return self.mask.shape[0]

    def select(self, rows: slice | torch.Tensor) -> MaskSamples:
        """The same samples restricted to a subset of responses (a micro-batch)."""
        return MaskSamples(self.mask[:, rows], self.weight[:, rows])


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
    shape = (num_samples, num_responses)
    scores = torch.rand(*shape, response_length, generator=generator, device=device)
    if sampler == "iid":
        t = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
        t = t * (1 - min_t) + min_t
        mask = scores < t.unsqueeze(-1)
        return MaskSamples(mask, 1.0 / t)
    if sampler == "stratified":
        offset = torch.rand(1, num_responses, generator=generator, device=device)
        strata = torch.arange(num_samples, device=device).unsqueeze(1)
        ratio = (strata + offset) / num_samples  # in [0, 1), one per stratum
        k = (ratio * response_length).floor().long().clamp_(0, response_length - 1) + 1
        # Exactly k masked tokens: the k positions with the smallest random scores.
        ranks = scores.argsort(dim=-1).argsort(dim=-1)
        mask = ranks < k.unsqueeze(-1)
        return MaskSamples(mask, response_length / k.to(torch.float64))
    raise ValueError(f"unknown timestep sampler {sampler!r}; choose one of: {TIMESTEP_SAMPLERS}")


def apply_mask(sequences: torch.Tensor, response_mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Replaces masked response tokens by ``mask_id``; the prompt is never masked.

    Args:
        sequences: ``(N, P + L)`` prompt followed by the response.
        response_mask: ``(N, L)`` bool for the last ``L`` positions.
        mask_id: the ``[MASK]`` token id.
    """
    length = response_mask.shape[-1]
    noisy = sequences.clone()
    noisy[:, -length:] = sequences[:, -length:].masked_fill(response_mask, mask_id)
    return noisy
