"""Repeated draws of each (estimator, budget) cell and their statistics, one row per cell."""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bgpo_lightning.callbacks.running_moments import RunningMoments, relative_error
from bgpo_lightning.diffusion.estimators import MaskEstimator
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.rollout import Rollout
from experiments.estimator_study.exact import lookup_estimate
from experiments.estimator_study.grid import EstimatorSpec
from experiments.estimator_study.recorder import ForwardRecorder

#: The golden gradient's estimator: stratified, the lowest-variance unbiased one we ship.
GOLDEN = EstimatorSpec("stratified", "stratified")
# Seed-key tags: the golden, the gradient draws and the exact-batch draws never share a stream.
_GOLDEN, _GRADIENT, _EXACT = 0, 1, 2


@dataclass(frozen=True)
class StudySettings:
    """What the study spends.

    Attributes:
        budgets: forwards per response to measure each estimator at.
        repeats: R, fresh mask draws per cell.
        golden_budget: forwards per response of the golden gradient.
        seed: seeds every mask stream (with the cell and the repeat).
    """

    budgets: tuple[int, ...]
    repeats: int
    golden_budget: int
    seed: int = 0


@dataclass(frozen=True)
class ExactBatch:
    """The short-response batch whose ELBO is known exactly.

    Attributes:
        rollout: its responses (``L`` small enough to enumerate ``2^L`` masks).
        table: ``(N, 2^L)`` masked log-prob sums of every mask (:mod:`.exact`).
        elbo: ``(N,)`` the exact per-token ELBO.
    """

    rollout: Rollout
    table: torch.Tensor
    elbo: torch.Tensor


def generator(key: Sequence[int], device: torch.device) -> torch.Generator:
    """A fresh generator whose seed is a hash of ``key`` (independent streams per key)."""
    state = np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & ((1 << 63) - 1))


def golden_gradient(
    module: DiffusionRLModule, rollout: Rollout, settings: StudySettings
) -> torch.Tensor:
    """The reference gradient: on-policy BGPO with ``golden_budget`` stratified masks."""
    return module.policy_gradient(
        rollout,
        settings.golden_budget,
        generator((settings.seed, _GOLDEN), module.device),
        objective="bgpo",
        estimator=GOLDEN.name,
        estimator_settings=GOLDEN.settings,
    )


@torch.no_grad()
def forward_estimate(module: DiffusionRLModule, rollout: Rollout, masks: MaskSamples):
    """``(N,)`` float64 estimate from the likelihood loop's own forwards (no table lookup)."""
    loop = module.likelihood_loop()
    rows = slice(0, rollout.num_responses)
    terms = [loop.forward(rollout, masks, j, rows).elbo for j in range(masks.num_samples)]
    return masks.coef @ torch.stack(terms).double()


def exact_batch_estimate(
    module: DiffusionRLModule, exact: ExactBatch, masks: MaskSamples
) -> torch.Tensor:
    """A draw's estimate on the exact batch: a table lookup, or forwards if it masks prompts."""
    if masks.prompt_mask is None:
        return lookup_estimate(exact.table, masks)
    return forward_estimate(module, exact.rollout, masks)


def draw(
    estimator: MaskEstimator, rollout: Rollout, budget: int, key: Sequence[int], device
) -> MaskSamples:
    """The masks ``policy_gradient`` draws for ``rollout`` from ``generator(key)``: they are
    its first use of the generator, so the same key redraws them exactly."""
    return estimator.draw(
        rollout.num_responses,
        rollout.response_length,
        budget,
        generator(key, device),
        device,
        prompt_length=rollout.prompt_ids.shape[1],
    )


def measure_cell(
    module: DiffusionRLModule,
    rollout: Rollout,
    exact: ExactBatch,
    spec: EstimatorSpec,
    budget: int,
    settings: StudySettings,
    golden: torch.Tensor,
) -> dict:
    """R draws of one cell: ELBO spread and bias, gradient cosine and bias to the golden."""
    start = time.perf_counter()
    estimator, device = spec.build(), module.device
    tag = zlib.crc32(spec.label.encode())  # str hashes change per process; crc32 does not
    moments = RunningMoments(golden.numel(), device)
    sample = torch.empty_like(golden)
    elbos, exact_elbos = [], []
    for repeat in range(settings.repeats):
        key = (settings.seed, _GRADIENT, tag, budget, repeat)
        with ForwardRecorder(module.policy, rollout, module.policy.mask_token_id) as recorder:
            module.policy_gradient(
                rollout,
                budget,
                generator(key, device),
                objective="bgpo",
                out=sample,
                estimator=spec.name,
                estimator_settings=spec.settings,
            )
        elbos.append(recorder.estimate(draw(estimator, rollout, budget, key, device)).cpu())
        moments.update(sample, reference=golden)
        key = (settings.seed, _EXACT, tag, budget, repeat)
        masks = draw(estimator, exact.rollout, budget, key, device)
        exact_elbos.append(exact_batch_estimate(module, exact, masks).cpu())
    elbos, exact_elbos = torch.stack(elbos), torch.stack(exact_elbos)
    spread = exact_elbos.var(dim=0)  # per response, over the R draws
    return {
        "estimator": spec.label,
        "budget": budget,
        "status": "ok",
        "elbo_var": elbos.var(dim=0).mean().item(),
        "exact_elbo_var": spread.mean().item(),
        "elbo_bias": (exact_elbos.mean(dim=0) - exact.elbo).mean().item(),
        "elbo_bias_se": math.sqrt(spread.mean().item() / spread.numel() / settings.repeats),
        "grad_cosine": moments.mean_cosine,
        "grad_bias": relative_error(moments.mean, golden),
        "grad_mean_std": moments.mean_std(),
        "repeats": settings.repeats,
        "seconds": time.perf_counter() - start,
        "note": "",
    }


def unavailable_row(spec: EstimatorSpec, budget: int, reason: str) -> dict:
    """The row of a cell the estimator cannot fill at exactly this budget."""
    return {"estimator": spec.label, "budget": budget, "status": "n/a", "note": reason}


def measure_all(
    module: DiffusionRLModule,
    rollout: Rollout,
    exact: ExactBatch,
    specs: Sequence[EstimatorSpec],
    settings: StudySettings,
    progress: Callable[[str], None] = print,
) -> list[dict]:
    """Every (estimator, budget) cell, estimators outermost, against one golden gradient."""
    start = time.perf_counter()
    golden = golden_gradient(module, rollout, settings)
    progress(
        f"golden gradient ({settings.golden_budget} stratified forwards per response): "
        f"{time.perf_counter() - start:.0f} s"
    )
    rows = []
    for spec in specs:
        for budget in settings.budgets:
            reason = spec.unavailable(budget)
            if reason is not None:
                rows.append(unavailable_row(spec, budget, reason))
                continue
            row = measure_cell(module, rollout, exact, spec, budget, settings, golden)
            rows.append(row)
            progress(
                f"{spec.label:>13} x {budget:>3}: ELBO var {row['elbo_var']:.3e}, "
                f"cosine {row['grad_cosine']:.3f}, grad bias {row['grad_bias']:.3f} "
                f"({row['seconds']:.0f} s)"
            )
    return rows
