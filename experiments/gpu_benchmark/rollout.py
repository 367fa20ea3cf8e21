"""Rollout throughput: the vectorised sampler against the per-row LLaDA-loop reference."""

from __future__ import annotations

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
    """Generates ``rows`` responses with both samplers from the same seed.

    The vectorised sampler runs as training runs it (block logits only); the reference as
    LLaDA's loop does (full-sequence logits in float64, a Python loop over rows).

    Returns:
        Seconds, generated tokens per second, and whether both produced the same tokens.
    """
    policy.eval()
    device = next(policy.parameters()).device
    prompts = torch.randint(
        0,
        policy.mask_token_id,
        (rows, prompt_length),
        generator=torch.Generator(device=device).manual_seed(seed),
        device=device,
    )
    mask_id = policy.mask_token_id

    def vectorised(windowed: bool = True):
        g = torch.Generator(device=device).manual_seed(seed)
        if windowed:  # as training samples: the block's logits only
            return generate(
                lambda x, block: policy(x, logits_to_keep=block),
                prompts,
                mask_id,
                config,
                g,
                windowed=True,
            )
        return generate(lambda x: policy(x), prompts, mask_id, config, g)

    def reference():
        g = torch.Generator(device=device).manual_seed(seed)
        return reference_generate(lambda x: policy(x), prompts, mask_id, config, g)

    vectorised()  # warm-up: kernels, allocator
    fast, fast_s = _timed(vectorised, device)
    tokens = rows * config.gen_length
    row = {
        "rows": rows,
        "gen_length": config.gen_length,
        "block_length": config.block_length,
        "steps": config.steps,
        "temperature": config.temperature,
        "vectorised_s": fast_s,
        "vectorised_tok_s": tokens / fast_s,
    }
    if with_reference:
        slow, slow_s = _timed(reference, device)
        # The same forward pass (full logits) must give bit-identical tokens; block-only
        # logits come from a differently shaped output GEMM and may round differently in bf16.
        full, full_s = _timed(lambda: vectorised(windowed=False), device)
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
    prompts = torch.randint(
        0,
        policy.mask_token_id,
        (rows, prompt_length),
        generator=torch.Generator(device=device).manual_seed(seed),
        device=device,
    )
    samplers = {
        "vectorised (block logits)": lambda g: generate(
            lambda x, block: policy(x, logits_to_keep=block),
            prompts,
            policy.mask_token_id,
            config,
            g,
            windowed=True,
        ),
        "reference (LLaDA loop)": lambda g: reference_generate(
            lambda x: policy(x), prompts, policy.mask_token_id, config, g
        ),
    }
    sections = []
    for name, run in samplers.items():
        run(torch.Generator(device=device).manual_seed(seed))  # warm-up
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run(torch.Generator(device=device).manual_seed(seed))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=15)
        sections.append(f"== {name}: {rows} rows, {config} ==\n{table}")
    policy.train()
    return "\n\n".join(sections)
