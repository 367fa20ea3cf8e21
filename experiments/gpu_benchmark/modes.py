"""Rollout time of each sampler mode (exact, block caches, confidence threshold, compiled).

Modes are named as :mod:`experiments.sampler_modes` defines (e.g. ``dual+threshold0.9``). Every
mode runs on the same random model and prompts: ``rows / G`` prompts, each repeated G times as
in the RL loop, so the timed rollout also shows how often two of a prompt's G responses are
identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator

import torch

from bgpo_lightning.diffusion.sampler import SamplerConfig, generate
from bgpo_lightning.policy.block_models import build_block_model
from bgpo_lightning.policy.compiled_forward import compiled_forward as sampling_forward
from bgpo_lightning.policy.compiled_forward import drop_compiled_forward
from experiments.gpu_benchmark.mode_rows import add_step_fraction, is_exact_baseline, speedup_over
from experiments.sampler_modes import RolloutMode


class _Counting:
    """Counts the model forwards of a rollout (Python ints: no host-device synchronisation)."""

    def __init__(self, block_model=None) -> None:
        self.block_model = block_model
        self.full = 0  # forwards of the whole sequence (exact steps and cache refreshes)
        self.cached = 0  # forwards of the block (and suffix) against the cache

    def refresh(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        self.full += 1
        return self.block_model.refresh(x, start, end)

    def step(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        self.cached += 1
        return self.block_model.step(x, start, end)


def group_prompts(
    rows: int, group_size: int, prompt_length: int, mask_id: int, device: torch.device
) -> torch.Tensor:
    """``rows / group_size`` random prompts, each repeated ``group_size`` times in a row."""
    if rows % group_size:
        raise ValueError(f"rows ({rows}) must be a multiple of the group size ({group_size})")
    generator = torch.Generator(device=device).manual_seed(0)
    prompts = torch.randint(
        0, mask_id, (rows // group_size, prompt_length), generator=generator, device=device
    )
    return prompts.repeat_interleave(group_size, dim=0)


def rollout(policy, prompts: torch.Tensor, config: SamplerConfig, seed: int):
    """Responses ``(rows, gen_length)`` of one rollout, and its forward counter."""
    device = prompts.device
    generator = torch.Generator(device=device).manual_seed(seed)

    def block_logits(x: torch.Tensor, block: slice) -> torch.Tensor:
        counter.full += 1
        return policy(x, logits_to_keep=block)

    counter = _Counting(build_block_model(policy, None, config.cache, config.cuda_graph))
    with sampling_forward(policy.model, config.compile):
        out = generate(
            block_logits,
            prompts,
            policy.mask_token_id,
            config,
            generator,
            windowed=True,
            block_model=counter if config.cache != "none" else None,
        )
    return out[:, prompts.shape[1] :], counter


def duplicate_group_fraction(responses: torch.Tensor, group_size: int) -> float:
    """Fraction of prompt groups in which two of the ``group_size`` responses are identical."""
    groups = responses.view(-1, group_size, responses.shape[-1])
    duplicated = [torch.unique(g, dim=0).shape[0] < group_size for g in groups]
    return sum(duplicated) / len(duplicated)


@contextlib.contextmanager
def compiled_forward(policy) -> Iterator[None]:
    """The sampler's compiled forward (``SamplerConfig.compile``), made afresh for this mode
    and forgotten on exit, so that each row pays for its own compile."""
    try:
        with sampling_forward(policy.model):
            yield
    finally:
        drop_compiled_forward(policy.model)
        torch._dynamo.reset()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _warmup_config(config: SamplerConfig, steps_per_block: int) -> SamplerConfig:
    """The timed config with fewer steps per block: every shape of the timed rollout (a full
    forward and a cached step per block) at a fraction of its cost; 0 keeps the timed config.

    A cache's first step in a block reads the refresh's logits, so a cached mode warms up with
    at least two steps per block: with one, its step would first compile inside the timed run.
    """
    if config.cache != "none" and steps_per_block > 0:
        steps_per_block = max(steps_per_block, 2)
    if steps_per_block <= 0 or steps_per_block >= config.steps_per_block:
        return config
    return dataclasses.replace(config, steps=steps_per_block * config.num_blocks)


@torch.no_grad()
def measure_mode(
    policy,
    mode: RolloutMode,
    *,
    compile: bool,
    prompts: torch.Tensor,
    base: SamplerConfig,
    group_size: int,
    seed: int,
    warmup_steps_per_block: int,
) -> tuple[dict, torch.Tensor | None]:
    """One row: a warm-up rollout, then one timed rollout; errors go into ``status``."""
    device = prompts.device
    cuda = device.type == "cuda"
    config = mode.config(base)
    compile = compile or config.compile  # --compile-modes, or the mode's own ``compile`` part
    rows = prompts.shape[0]
    row = {
        "mode": mode.name,
        "compile": compile,
        "rows": rows,
        "gen_length": config.gen_length,
        "block_length": config.block_length,
        "steps": config.steps,
        "temperature": config.temperature,
        "status": "ok",
    }
    responses = None
    policy.eval()
    try:
        with compiled_forward(policy) if compile else contextlib.nullcontext():
            start = time.perf_counter()
            rollout(policy, prompts, _warmup_config(config, warmup_steps_per_block), seed)
            _synchronize(device)
            row["warmup_s"] = time.perf_counter() - start
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            responses, counter = rollout(policy, prompts, config, seed)
            _synchronize(device)
            seconds = time.perf_counter() - start
    except torch.OutOfMemoryError:
        row["status"] = "OOM"
    except Exception as error:  # a failed compile (or mode) is a row, not a crash
        row["status"] = f"error: {type(error).__name__}: {error}".replace("\n", " ")[:300]
    finally:
        policy.train()
    if responses is None:
        if cuda:
            torch.cuda.empty_cache()
        return row, None
    row.update(
        seconds=seconds,
        tok_s=rows * config.gen_length / seconds,
        forwards=counter.full + counter.cached,
        full_forwards=counter.full,
        peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if cuda else math.nan,
        groups_with_duplicate=duplicate_group_fraction(responses, group_size),
    )
    return row, responses


def measure_modes(
    policy,
    modes: list[tuple[RolloutMode, bool]],
    *,
    rows_list: list[int],
    prompt_length: int,
    base: SamplerConfig,
    group_size: int,
    seed: int,
    warmup_steps_per_block: int,
    likelihood_s: float,
    likelihood_rows: int,
    on_row: Callable[[dict], None] = lambda row: None,
    on_finished: Callable[[list[dict]], None] = lambda rows: None,
) -> list[dict]:
    """Rows of every ``(mode, compiled)`` at every batch size, with the comparisons to exact.

    Args:
        modes: Modes to time, each eager (False) or through ``torch.compile`` (True).
        likelihood_s: Seconds of BGPO's likelihood phase (n_t = 16) for ``likelihood_rows``
            responses, scaled linearly to each row count; NaN leaves the step fraction empty.
        on_row: Called with each row as soon as it is measured.
        on_finished: Called with every finished row so far (compared with exact, in order)
            whenever more are finished, so that a run stopped by a time limit keeps its table.
    """
    device = next(policy.parameters()).device
    rows_out = []
    for rows in rows_list:
        prompts = group_prompts(rows, group_size, prompt_length, policy.mask_token_id, device)
        exact = None
        pending = []  # measured, waiting for the exact row to be compared with
        for mode, compile in modes:
            row, responses = measure_mode(
                policy,
                mode,
                compile=compile,
                prompts=prompts,
                base=base,
                group_size=group_size,
                seed=seed,
                warmup_steps_per_block=warmup_steps_per_block,
            )
            pending.append((row, responses))
            if exact is None and is_exact_baseline(row):
                exact = (row, responses)
            on_row(row)
            if exact is not None:
                rows_out += _finished(pending, exact, likelihood_s, likelihood_rows)
                on_finished(list(rows_out))
        if pending:  # no exact row at this count: their comparisons stay empty
            rows_out += _finished(pending, None, likelihood_s, likelihood_rows)
            on_finished(list(rows_out))
    return rows_out


def _finished(pending: list, exact, likelihood_s: float, likelihood_rows: int) -> list[dict]:
    """The pending ``(row, responses)`` compared with ``exact`` and given their step share;
    empties ``pending``."""
    rows = []
    for row, responses in pending:
        _compare(row, responses, exact)
        add_step_fraction(row, likelihood_s, likelihood_rows)
        rows.append(row)
    pending.clear()
    return rows


def _compare(row: dict, responses: torch.Tensor | None, exact) -> None:
    """Speed-up over the eager exact sampler at the same rows, and the tokens that differ."""
    row["speedup_vs_exact"] = speedup_over(row, None if exact is None else exact[0])
    row["tokens_differ_vs_exact"] = math.nan
    if exact is not None and responses is not None and exact[1] is not None:
        row["tokens_differ_vs_exact"] = float((responses != exact[1]).float().mean())


def device_busy_us(events) -> float:
    """Microseconds the device spent in kernels: the device events' own time only. An operator
    (``aten::mm``) also carries its kernels' time as its own device time, so summing every
    event counts each eager kernel twice (what the profiler's own "Self CUDA time total" avoids
    the same way)."""
    return sum(
        e.self_device_time_total
        for e in events
        if e.device_type != torch.autograd.DeviceType.CPU and not e.is_user_annotation
    )


def profile_modes(
    policy, modes: list[RolloutMode], *, prompts: torch.Tensor, base: SamplerConfig, seed: int
) -> str:
    """Top operators by device time of a two-block rollout of each mode, as text.

    Each section starts with the rollout's wall time and the device's busy time (the sum of
    every kernel's own time): where the wall time is far above it, the GPU waits for Python to
    launch kernels, which is what a CUDA graph removes.
    """
    from torch.profiler import ProfilerActivity, profile

    device = prompts.device
    steps = 2 * base.steps_per_block
    config_base = dataclasses.replace(base, gen_length=2 * base.block_length, steps=steps)
    sections = []
    policy.eval()
    try:
        for mode in modes:
            config = mode.config(config_base)
            rollout(policy, prompts, config, seed)  # warm-up
            _synchronize(device)
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                start = time.perf_counter()
                rollout(policy, prompts, config, seed)
                _synchronize(device)
                wall = time.perf_counter() - start
            events = prof.key_averages()
            busy_us = device_busy_us(events)
            table = events.table(sort_by="self_cuda_time_total", row_limit=15)
            sections.append(
                f"== {mode.name}: {prompts.shape[0]} rows, {config} ==\n"
                f"wall {wall * 1e3:.1f} ms, device busy {busy_us / 1e3:.1f} ms "
                f"({busy_us / 1e6 / wall:.0%}), {steps} steps\n{table}"
            )
    finally:
        policy.train()
    return "\n\n".join(sections)
