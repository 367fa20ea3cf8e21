"""Rollout throughput: the vectorised sampler against the per-row LLaDA-loop reference."""

from __future__ import annotations

import math
import time

import torch

from bgpo_lightning.diffusion.reference_sampler import reference_generate
from bgpo_lightning.diffusion.sampler import SamplerConfig, generate


def _timed(fn, device: torch.device) -> tuple[torch.Tensor, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def _samplers(policy, *, rows: int, prompt_length: int, config: SamplerConfig) -> dict:
    """The three ways to generate, each a function of a seed, over the same random prompts.

    ``vectorised`` runs as training runs it (block logits only), ``vectorised_full`` takes the
    full-sequence logits, ``reference`` is LLaDA's loop (full-sequence logits in float64, a
    Python loop over rows).
    """
    device = next(policy.parameters()).device
    mask_id = policy.mask_token_id
    prompts = torch.randint(
        0,
        mask_id,
        (rows, prompt_length),
        generator=torch.Generator(device=device).manual_seed(0),
        device=device,
    )

    def seeded(seed: int) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(seed)

    def block_logits(x, block):
        return policy(x, logits_to_keep=block)

    return {
        "vectorised": lambda seed: generate(
            block_logits, prompts, mask_id, config, seeded(seed), windowed=True
        ),
        "vectorised_full": lambda seed: generate(policy, prompts, mask_id, config, seeded(seed)),
        "reference": lambda seed: reference_generate(
            policy, prompts, mask_id, config, seeded(seed)
        ),
    }


@torch.no_grad()
def measure_rollout(
    policy,
    *,
    rows: int,
    prompt_length: int,
    config: SamplerConfig,
    seed: int,
    with_reference: bool,
) -> dict:
    """Generates ``rows`` responses with the samplers of :func:`_samplers` from one seed.

    Returns:
        Seconds, generated tokens per second, the timed rollout's peak memory (CUDA only: it
        counts what was already resident, such as a merged adapter's stand-in weights), and
        whether the samplers produced the same tokens.
    """
    policy.eval()
    device = next(policy.parameters()).device
    cuda = device.type == "cuda"
    run = _samplers(policy, rows=rows, prompt_length=prompt_length, config=config)
    run["vectorised"](seed)  # warm-up: kernels, allocator
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    fast, fast_s = _timed(lambda: run["vectorised"](seed), device)
    peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else math.nan
    tokens = rows * config.gen_length
    row = {
        "rows": rows,
        "gen_length": config.gen_length,
        "block_length": config.block_length,
        "steps": config.steps,
        "temperature": config.temperature,
        "vectorised_s": fast_s,
        "vectorised_tok_s": tokens / fast_s,
        "vectorised_peak_gib": peak_gib,
    }
    if with_reference:
        slow, slow_s = _timed(lambda: run["reference"](seed), device)
        # The same forward pass (full logits) must give bit-identical tokens; block-only
        # logits come from a differently shaped output GEMM and may round differently in bf16.
        full, full_s = _timed(lambda: run["vectorised_full"](seed), device)
        row.update(
            reference_s=slow_s,
            reference_tok_s=tokens / slow_s,
            speedup=slow_s / fast_s,
            full_logits_s=full_s,
            full_logits_same_tokens_as_reference=bool(torch.equal(full, slow)),
            windowed_same_tokens_as_reference=bool(torch.equal(fast, slow)),
            windowed_differing_tokens=int((fast != slow).sum()),
        )
    policy.train()
    return row


@torch.no_grad()
def profile_rollout(policy, *, rows: int, prompt_length: int, config: SamplerConfig, seed: int):
    """Top operators by device time of a short rollout with each sampler, as text."""
    from torch.profiler import ProfilerActivity, profile

    policy.eval()
    device = next(policy.parameters()).device
    run = _samplers(policy, rows=rows, prompt_length=prompt_length, config=config)
    sections = []
    for name in ("vectorised", "reference"):
        run[name](seed)  # warm-up
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run[name](seed)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=15)
        sections.append(f"== {name}: {rows} rows, {config} ==\n{table}")
    policy.train()
    return "\n\n".join(sections)
