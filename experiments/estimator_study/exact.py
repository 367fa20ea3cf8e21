"""The exact ELBO of short responses, by running the model on every possible mask.

With the per-token normalisation of :mod:`bgpo_lightning.diffusion.elbo`, the ELBO of a
response of ``L`` tokens is, in its discrete form,

    B = (1/L) sum_{k=1..L} (1/k) E_{|S|=k} m(S),    m(S) = sum_{i in S} log p(y^i | y_S masked, x),

a finite sum over the ``2^L - 1`` non-empty masks ``S``. One no-grad forward per mask gives
the table of every ``m(S)``; then the exact ELBO is a dot product, and any estimator's estimate
for masks that leave the prompt clean is a lookup in the same table (no further forwards).
"""

from __future__ import annotations

from math import comb

import torch

from bgpo_lightning.diffusion.elbo import token_log_probs
from bgpo_lightning.diffusion.masking import MaskSamples, apply_mask
from bgpo_lightning.modules.rollout import Rollout


def all_masks(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(2^L, L)`` bool: row ``c`` masks token ``i`` where bit ``i`` of ``c`` is set."""
    codes = torch.arange(2**length, device=device).unsqueeze(1)
    return ((codes >> torch.arange(length, device=device)) & 1) == 1


def mask_codes(mask: torch.Tensor) -> torch.Tensor:
    """The row index in :func:`all_masks` of each ``(..., L)`` bool mask."""
    bits = 2 ** torch.arange(mask.shape[-1], device=mask.device)
    return (mask.long() * bits).sum(dim=-1)


def subset_coefficients(length: int) -> torch.Tensor:
    """``(2^L,)`` float64 coefficient of ``m(S)`` in ``B``: ``1 / (L k C(L, k))``, 0 if empty."""
    sizes = all_masks(length).sum(dim=-1).tolist()
    values = [0.0 if k == 0 else 1.0 / (length * k * comb(length, k)) for k in sizes]
    return torch.tensor(values, dtype=torch.float64)


@torch.no_grad()
def masked_log_prob_table(
    policy: torch.nn.Module, rollout: Rollout, mask_id: int, chunk: int = 512
) -> torch.Tensor:
    """``(N, 2^L)`` float64 table of ``m(S)`` for every response and every mask.

    Identical (prompt, response) rows are run once. Forwards go in chunks of ``chunk``
    sequences, the way the likelihood loop calls the policy (response logits only).

    Args:
        policy: ``policy(ids, attention, logits_to_keep)`` gives the response logits.
        rollout: the batch; ``2^L`` forwards per distinct response.
        mask_id: the ``[MASK]`` id.
        chunk: sequences per forward.
    """
    length = rollout.response_length
    sequences = torch.cat([rollout.prompt_ids, rollout.responses], dim=1)
    attention = torch.cat([rollout.prompt_mask, torch.ones_like(rollout.responses)], dim=1)
    rows = torch.cat([sequences, attention], dim=1)
    unique, inverse = rows.unique(dim=0, return_inverse=True)
    masks = all_masks(length, sequences.device)
    count = masks.shape[0]
    table = torch.empty(unique.shape[0] * count, dtype=torch.float64)
    for start in range(0, table.numel(), chunk):
        index = torch.arange(start, min(start + chunk, table.numel()), device=sequences.device)
        row, mask = unique[index // count], masks[index % count]
        ids, keep = row[:, : sequences.shape[1]], row[:, sequences.shape[1] :]
        noisy = apply_mask(ids, mask, mask_id)
        log_probs = token_log_probs(policy(noisy, keep, length), ids[:, -length:])
        table[start : start + index.numel()] = (log_probs * mask).sum(dim=-1).double().cpu()
    return table.view(unique.shape[0], count)[inverse.cpu()]


def exact_elbo(table: torch.Tensor) -> torch.Tensor:
    """``(N,)`` exact per-token ELBO from :func:`masked_log_prob_table`."""
    length = table.shape[1].bit_length() - 1
    return table @ subset_coefficients(length)


def lookup_estimate(table: torch.Tensor, masks: MaskSamples) -> torch.Tensor:
    """``(N,)`` the estimate ``sum_j coef_j l_j`` of the draw ``masks``, read off ``table``.

    ``l_j = weight_j m(S_j) / L`` exactly as :func:`~bgpo_lightning.diffusion.elbo.elbo_term`
    forms it; only masks that leave the prompt clean can be looked up.
    """
    if masks.prompt_mask is not None:
        raise ValueError("masks that hide prompt tokens are not in the table")
    codes = mask_codes(masks.mask).cpu()  # (S, N)
    sums = table.gather(1, codes.T).T  # (S, N)
    terms = masks.weight.cpu() * sums / masks.mask.shape[-1]
    return masks.coef.cpu() @ terms
