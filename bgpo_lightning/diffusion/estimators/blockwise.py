"""SPG's block-wise masks: clean earlier blocks, one partly masked block, masked later blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bgpo_lightning.diffusion.estimators.base import MaskEstimator, check_interval
from bgpo_lightning.diffusion.estimators.registry import register_estimator
from bgpo_lightning.diffusion.estimators.subsets import lowest_k
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.errors import ConfigError


@dataclass(frozen=True)
class BlockwiseSettings:
    """Settings of the ``blockwise`` estimator (SPG's defaults).

    Attributes:
        block_length: tokens per block; the response length must be a multiple of it
            (SPG: 32, the generation block length).
        min_t: the chosen block masks at least ``max(floor(min_t * block_length), 1)`` tokens.
        clean_mask_prob: probability that each otherwise clean token (the prompt and the
            earlier blocks) is masked too; SPG's published runs use 0.15 (its
            ``p_mask_prompt``). Masked earlier-block tokens are scored like the others.
    """

    block_length: int = 32
    min_t: float = 1e-3
    clean_mask_prob: float = 0.15

    def __post_init__(self) -> None:
        owner = "estimator 'blockwise'"
        length = self.block_length
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ConfigError(f"{owner}: block_length must be an integer >= 1, got {length!r}")
        check_interval(owner, "min_t", self.min_t, 0.0, 1.0)
        check_interval(owner, "clean_mask_prob", self.clean_mask_prob, 0.0, 1.0)


@register_estimator("blockwise")
class BlockwiseEstimator(MaskEstimator):
    """One block per draw; earlier blocks clean, later blocks fully masked, ``k`` in between.

    As in SPG (facebookresearch/SPG, ``spg/spg_trainer.py``, ``forward_type="block_random"``):
    a response's draws take distinct blocks (a random permutation of the blocks; with more
    draws than blocks, further independent permutations follow), so each draw's block is
    uniform. The chosen block masks exactly ``k ~ U{max(floor(min_t B), 1), ..., B}`` of its
    ``B`` tokens, chosen uniformly; every later block is fully masked; the prompt and the
    earlier blocks are masked only with probability ``clean_mask_prob`` each. The weight is
    ``L / (masked tokens)`` (``1/t`` with ``t`` the draw's masked fraction), so ``l_j`` is the
    mean log-prob of the masked tokens: SPG's per-draw lower-bound term. ``coef = 1/S``.

    This matches semi-autoregressive generation, not the ELBO's forward process, so it is
    not an unbiased ELBO estimate. SPG always masks (and never scores) tokens after the first
    EOS; here, as elsewhere in this package, EOS padding is part of the response.
    """

    Settings = BlockwiseSettings

    def _draw(self, num_responses, response_length, num_samples, generator, device, prompt_length):
        block, probability = self.settings.block_length, self.settings.clean_mask_prob
        if response_length % block:
            raise ConfigError(
                f"estimator 'blockwise' needs the response length ({response_length}) to be "
                f"a multiple of block_length ({block})"
            )
        if probability > 0 and prompt_length < 1:
            raise ValueError("estimator 'blockwise' masks the prompt: pass prompt_length >= 1")
        num_blocks = response_length // block
        rounds = math.ceil(num_samples / num_blocks)
        keys = torch.rand(num_responses, rounds, num_blocks, generator=generator, device=device)
        chosen = keys.argsort(dim=-1).flatten(1)[:, :num_samples].T  # (S, N) block indices
        low = max(math.floor(self.settings.min_t * block), 1)
        count = torch.randint(
            low, block + 1, (num_samples, num_responses), generator=generator, device=device
        )
        scores = torch.rand(num_samples, num_responses, block, generator=generator, device=device)
        inside = lowest_k(scores, count)  # (S, N, B): the chosen block's masked tokens

        position = torch.arange(response_length, device=device)
        block_of = (position // block).expand(num_samples, num_responses, -1)
        chosen = chosen.unsqueeze(-1)
        offset = (position % block).expand(num_samples, num_responses, -1)
        clean = torch.rand(
            num_samples, num_responses, response_length, generator=generator, device=device
        )
        mask = (
            (block_of > chosen)
            | ((block_of == chosen) & inside.gather(-1, offset))
            | ((block_of < chosen) & (clean < probability))
        )
        prompt = torch.rand(
            num_samples, num_responses, prompt_length, generator=generator, device=device
        )
        weight = response_length / mask.sum(dim=-1).to(torch.float64)
        return MaskSamples(mask, weight, prompt_mask=prompt < probability)
