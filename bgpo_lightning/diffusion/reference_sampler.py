"""Straightforward per-row reference for the vectorised sampler in ``sampler.py``.

It follows LLaDA's published sampling loop and its costs: full-sequence logits converted to float64,
proposals and softmax confidences for every position, ``-inf`` beyond the current block, and a
Python loop over rows that picks each row's positions with ``torch.topk``. It exists to
cross-check (and benchmark) ``generate``; it is not meant to be fast.

For the same generator state it returns exactly what ``generate`` returns: it draws the same random
tensors in the same order and breaks confidence ties towards the lower position.
"""

import torch

from bgpo_lightning.diffusion.sampler import LogitsFn, SamplerConfig, check_sampler_inputs


def _reference_schedule(block_mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """LLaDA's ``get_num_transfer_tokens``: even split, remainder to the first steps, per row."""
    mask_num = block_mask_index.sum(dim=1)
    schedule = torch.zeros(mask_num.shape[0], steps, dtype=torch.long, device=mask_num.device)
    for row in range(mask_num.shape[0]):
        schedule[row] = int(mask_num[row]) // steps
        schedule[row, : int(mask_num[row]) % steps] += 1
    return schedule


def _topk_lowest_index_ties(row_confidence: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest entries, ties at the cut going to the lowest indices.

    ``torch.topk`` leaves tie order unspecified, so it only supplies the cut-off value here.
    Entries of ``-inf`` are never returned.
    """
    threshold = torch.topk(row_confidence, k).values[-1]
    above = (row_confidence > threshold).nonzero().flatten()
    tied = (row_confidence == threshold).nonzero().flatten()[: k - above.numel()]
    chosen = torch.cat([above, tied])
    return chosen[row_confidence[chosen] > float("-inf")]


@torch.no_grad()
def reference_generate(
    logits_fn: LogitsFn,
    prompt_ids: torch.Tensor,
    mask_id: int,
    config: SamplerConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-row reference of ``bgpo_lightning.diffusion.sampler.generate`` (same arguments/result).

    Args:
        logits_fn: Bidirectional model, ``(B, L)`` ids -> ``(B, L, V)`` logits.
        prompt_ids: ``(B, P)`` integer prompt ids; must not contain ``mask_id``.
        mask_id: Id of the mask token; it is never generated.
        config: Sampler settings.
        generator: Source of randomness; must be on ``prompt_ids.device``.

    Returns:
        ``(B, P + gen_length)`` tensor: the prompt followed by the generated response.
    """
    check_sampler_inputs(prompt_ids, mask_id, generator)
    batch, prompt_len = prompt_ids.shape
    device = prompt_ids.device
    x = torch.full(
        (batch, prompt_len + config.gen_length), mask_id, dtype=prompt_ids.dtype, device=device
    )
    x[:, :prompt_len] = prompt_ids.clone()

    for num_block in range(config.num_blocks):
        start = prompt_len + num_block * config.block_length
        end = start + config.block_length
        block_mask_index = x[:, start:end] == mask_id
        num_transfer_tokens = _reference_schedule(block_mask_index, config.steps_per_block)
        for i in range(config.steps_per_block):
            mask_index = x == mask_id
            mask_index[:, :prompt_len] = False
            logits = logits_fn(x)

            # As LLaDA's loop: the whole sequence in float64, proposals and confidences for
            # every position (only the block's survive the -inf below). The Gumbel noise is
            # drawn for the block only, so the random stream, and the output, match `generate`.
            full_logits = logits.to(torch.float64, copy=True)
            full_logits[..., mask_id] = float("-inf")
            if config.temperature > 0:
                noise = torch.rand(
                    (batch, config.block_length, full_logits.shape[-1]),
                    generator=generator,
                    device=device,
                    dtype=torch.float64,
                )
                noisy = full_logits / config.temperature
                noisy[:, start:end] = noisy[:, start:end] + -torch.log(-torch.log(noise))
                full_x0 = noisy.argmax(dim=-1)
            else:
                full_x0 = full_logits.argmax(dim=-1)
            block_x0 = full_x0[:, start:end]
            if config.remasking == "low_confidence":
                # softmax(l)[x0] written as generate writes it, so near-ties round identically.
                chosen = torch.gather(full_logits, dim=-1, index=full_x0[..., None]).squeeze(-1)
                block_x0_p = (chosen - torch.logsumexp(full_logits, dim=-1)).exp()[:, start:end]
            else:
                block_x0_p = torch.rand(
                    block_x0.shape, generator=generator, device=device, dtype=torch.float64
                )

            x0 = x.clone()
            x0[:, start:end] = block_x0.to(x.dtype)
            x0_p = torch.full(x.shape, float("-inf"), dtype=torch.float64, device=device)
            x0_p[:, start:end] = block_x0_p

            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, float("-inf"))
            transfer_index = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(batch):
                k = int(num_transfer_tokens[j, i])
                if k > 0:
                    transfer_index[j, _topk_lowest_index_ties(confidence[j], k)] = True
            x[transfer_index] = x0[transfer_index]
    return x
