"""How noisy and how far off the policy gradient is at each number of MC samples n_t.

Every ``every_n_steps`` optimizer steps this callback takes the step's rollout batch (prompts,
responses, advantages) and, for each n_t of a grid and each objective, computes the gradient
``R`` times with fresh masks, plus one "golden" gradient at a large n_t. Per n_t it reports

* ``mean_std``: the per-parameter standard deviation across the ``R`` gradients (Bessel's
  correction), averaged over the parameters;
* ``bias``: ``||mean_R g - g_golden|| / ||g_golden||``. On-policy the estimator is unbiased
  for every n_t, so this is the Monte Carlo error left in the ``R``-average (about
  ``1/sqrt(R n_t)``) until it meets the golden gradient's own error;
* ``cosine``: the cosine similarity of one n_t-sample gradient (what a training step uses) to
  the golden one, averaged over the ``R`` draws (``cosine_of_mean``, of their average, is in
  the CSV too).

Outputs: TensorBoard (or any logger's) scalars ``grad_stats/{objective}/{std|bias|cosine}/
n_t=NNN`` at ``global_step``; a figure (``grad_stats/figure`` on TensorBoard, and
``gradient_statistics.png``) and rows appended to ``gradient_statistics.csv`` in the log
directory (``default_root_dir`` without a logger).

Training is not perturbed: masks come from the callback's own generators (seeded by ``seed``,
the step, the rank, n_t and the repeat), never the module's; the global CPU/CUDA RNG states
are saved, seeded for the measurement (reproducible dropout, should the policy have any) and
restored; gradients go through ``torch.autograd.grad`` into flat float64 buffers, so ``.grad``,
parameters and optimizer state are never touched; the policy stays in the mode training uses.

The gradient is taken at the parameters after the step's optimizer update, on the rollout
sampled before it, with ``l_old`` set to the current ELBO (the on-policy form): one update
away from exactly on-policy, which the MC noise over masks being measured hardly depends on.
Batches whose advantages are all zero (and no KL term) have a zero gradient and are skipped.

Memory: the gradients are summed one MC sample and micro-batch at a time (activations flat in
n_t), and the statistics are streamed (:class:`RunningMoments`): four flat float64 buffers of
the measured parameters' size, whatever ``R`` and n_t, plus one parameter-sized gradient at a
time and the ``(n_t, N, L)`` boolean masks. ``param_names`` restricts the measurement to a
subset of parameters for large models. Sharded parameters (FSDP2 DTensors) are not supported:
``fit`` stops with a ``ConfigError`` at its start (``autograd.grad`` would give zeros).

DDP: every rank measures its own rollout's local gradient, with no communication (nothing to
deadlock or desync; DDP's reducer is not involved, see ``DiffusionRLModule.policy_gradient``).
All ranks spend the same time on it, so none waits at the next all-reduce long enough to hit a
collective timeout. Rank 0 reports its own numbers: per-rank statistics of a local gradient,
whose n_t dependence is what is measured (the all-reduced gradient's variance is about
``1/world_size`` of it).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn

from bgpo_lightning.callbacks.gradient_report import append_csv, statistics_figure
from bgpo_lightning.callbacks.running_moments import (
    RunningMoments,
    cosine_similarity,
    relative_error,
)
from bgpo_lightning.diffusion.estimators import check_estimator
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules.policy_gradient import check_unsharded
from bgpo_lightning.modules.rollout import Rollout
from bgpo_lightning.objectives import check_objective

_GOLDEN, _REPEAT = 0, 1  # seed-key tags: golden and repeats never share a mask stream


class GradientStatistics(L.Callback):
    """Measures the spread, bias and direction of the policy gradient against n_t.

    Needs a module with ``policy_gradient`` whose ``training_step`` returns its rollout under
    ``"rollout"`` (:class:`~bgpo_lightning.modules.DiffusionRLModule`).

    Args:
        every_n_steps: K; measures after each rollout batch whose optimizer steps reach a
            multiple of K (the gradient at the parameters after the step, on its rollout).
        objectives: names from ``bgpo_lightning.objectives.OBJECTIVES``; None measures the
            module's own objective. Several give one line each in the figure; on-policy BGPO
            and VRPO-OL are the same estimator, so their lines coincide.
        num_mc_samples: the grid of n_t values.
        repeats: R, gradients per n_t (at least 2, for a standard deviation).
        golden_num_mc_samples: n_t of the reference gradient.
        param_names: glob patterns (``fnmatch``, ``*`` crosses dots) over the policy's
            parameter names, e.g. ``["model.lm_head.*", "model.model.layers.0.*"]``; only
            matching trainable parameters are measured. None measures all of them.
        estimator: overrides the module's mask estimator (a registry name, default settings).
        seed: seeds the callback's own random streams.
        csv_name: file in the log directory that rows are appended to.
        log_figure: draw the figure (TensorBoard image and a PNG next to the CSV).
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        objectives: list[str] | None = None,
        num_mc_samples: list[int] | None = None,
        repeats: int = 8,
        golden_num_mc_samples: int = 256,
        param_names: list[str] | None = None,
        estimator: str | None = None,
        seed: int = 0,
        csv_name: str = "gradient_statistics.csv",
        log_figure: bool = True,
    ) -> None:
        grid = [1, 2, 4, 8, 16, 32] if num_mc_samples is None else list(num_mc_samples)
        if every_n_steps < 1:
            raise ConfigError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if repeats < 2:
            raise ConfigError(f"repeats must be >= 2 for a standard deviation, got {repeats}")
        if not grid or any(int(n) != n or n < 1 for n in grid) or len(set(grid)) != len(grid):
            raise ConfigError(f"num_mc_samples must be distinct integers >= 1, got {grid}")
        if golden_num_mc_samples < 1:
            raise ConfigError(f"golden_num_mc_samples must be >= 1, got {golden_num_mc_samples}")
        for name in objectives or []:
            check_objective(name)
        if estimator is not None:
            check_estimator(estimator)
        if param_names is not None and (
            isinstance(param_names, str) or not param_names
        ):  # a bare string would be matched character by character
            raise ConfigError(f"param_names must be a non-empty list of patterns: {param_names!r}")
        self.every_n_steps = every_n_steps
        self.objectives = list(objectives) if objectives else None
        self.num_mc_samples = [int(n) for n in grid]
        self.repeats = repeats
        self.golden_num_mc_samples = golden_num_mc_samples
        self.param_names = list(param_names) if param_names is not None else None
        self.estimator = estimator
        self.seed = seed
        self.csv_name = csv_name
        self.log_figure = log_figure
        self.last_rows: list[dict] = []  # the latest measurement (rank-local)
        self._params: list[torch.nn.Parameter] = []
        self._step_before: int | None = None
        self._log_dir: Path | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not hasattr(pl_module, "policy_gradient"):
            raise ConfigError(
                f"GradientStatistics needs an RL module (DiffusionRLModule), "
                f"got {type(pl_module).__name__}"
            )
        self._params = [p for _, p in select_parameters(pl_module.policy, self.param_names)]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not in setup: ModelParallelStrategy shards in configure_model, after setup.
        check_unsharded(pl_module.policy)
        # trainer.log_dir broadcasts: ask on every rank, here, not from rank 0 alone later.
        self._log_dir = Path(trainer.log_dir or trainer.default_root_dir)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step_before = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rollout = outputs.get("rollout") if isinstance(outputs, dict) else None
        step = trainer.global_step
        before = self._step_before if self._step_before is not None else step - 1
        if rollout is None or step // self.every_n_steps == before // self.every_n_steps:
            return
        if not rollout.advantages.any() and not getattr(pl_module, "kl_coef", 0):
            rank_zero_warn(f"gradient statistics skipped at step {step}: all advantages are 0")
            return
        self.last_rows = measure_gradient_statistics(
            pl_module,
            rollout,
            self.objectives or [pl_module.objective.name],
            self.num_mc_samples,
            self.repeats,
            self.golden_num_mc_samples,
            self._params,
            seed=self.seed,
            step=step,
            estimator=self.estimator,
        )
        peak = release_peak_memory(pl_module.device)
        if trainer.is_global_zero:
            self._report(trainer, self.last_rows, step, peak)

    # ---- reporting -----------------------------------------------------------------------------
    def _report(
        self, trainer: L.Trainer, rows: list[dict], step: int, peak_gib: float | None = None
    ) -> None:
        scalars = {} if peak_gib is None else {"grad_stats/peak_gib": peak_gib}
        for row in rows:
            prefix = f"grad_stats/{row['objective']}"
            suffix = f"n_t={row['n_t']:03d}"
            scalars[f"{prefix}/std/{suffix}"] = row["mean_std"]
            scalars[f"{prefix}/bias/{suffix}"] = row["bias"]
            scalars[f"{prefix}/cosine/{suffix}"] = row["cosine"]
        log_dir = self._log_dir or Path(trainer.default_root_dir)
        append_csv(log_dir / self.csv_name, rows)
        figure = statistics_figure(rows) if self.log_figure else None
        if figure is not None:
            figure.savefig(log_dir / (Path(self.csv_name).stem + ".png"), dpi=100)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
            experiment = getattr(logger, "experiment", None)
            if figure is not None and hasattr(experiment, "add_figure"):
                experiment.add_figure("grad_stats/figure", figure, global_step=step, close=False)


def release_peak_memory(device: torch.device) -> float | None:
    """The CUDA peak memory since the training step logged its own (GiB; None off CUDA),
    then a reset of the peak: the module logs each step's peak (``memory/peak_gib``) and
    resets it, so without this the measurement's buffers would count as the next step's."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return peak


def select_parameters(
    policy: torch.nn.Module, patterns: Sequence[str] | None
) -> list[tuple[str, torch.nn.Parameter]]:
    """The policy's trainable parameters whose names match any of ``patterns`` (None: all)."""
    named = [(name, p) for name, p in policy.named_parameters() if p.requires_grad]
    if patterns is None:
        return named
    chosen = [(n, p) for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    if not chosen:
        example = named[0][0] if named else "(none)"
        raise ConfigError(
            f"param_names {list(patterns)} match no trainable policy parameter "
            f"(names look like {example!r})"
        )
    return chosen


def measure_gradient_statistics(
    module: L.LightningModule,
    rollout: Rollout,
    objectives: Sequence[str],
    num_mc_samples: Sequence[int],
    repeats: int,
    golden_num_mc_samples: int,
    params: Sequence[torch.nn.Parameter],
    seed: int = 0,
    step: int = 0,
    estimator: str | None = None,
) -> list[dict]:
    """One row of statistics per (objective, n_t) for one rollout batch.

    Every objective sees the same mask streams (common random numbers), so differences
    between objectives are the estimators', not the draws'.

    Args:
        module: has ``policy_gradient`` (a ``DiffusionRLModule``).
        rollout: the batch, with its advantages.
        objectives: registry names.
        num_mc_samples: the n_t grid.
        repeats: R >= 2.
        golden_num_mc_samples: n_t of the golden gradient.
        params: the parameters to measure (see :func:`select_parameters`).
        seed: seeds the measurement's own random streams, with ``step`` and the rank.
        step: the training step (part of the seed and of each row).
        estimator: overrides the module's mask estimator.

    Returns:
        Dictionaries with the columns of :data:`~bgpo_lightning.callbacks.gradient_report.
        COLUMNS`.
    """
    device = module.device
    numel = sum(p.numel() for p in params)
    sample = torch.empty(numel, dtype=torch.float64, device=device)
    golden = torch.empty(numel, dtype=torch.float64, device=device)
    rank = module.global_rank if module._trainer else 0

    def gradient(objective: str, n_t: int, key: tuple[int, ...], out: torch.Tensor) -> None:
        generator = _seed_streams(device, (seed, step, rank, *key))
        module.policy_gradient(
            rollout, n_t, generator, objective, params=params, out=out, estimator=estimator
        )

    moments = RunningMoments(numel, device)
    rows = []
    with isolated_rng(device):
        for objective in objectives:
            gradient(objective, golden_num_mc_samples, (_GOLDEN, golden_num_mc_samples, 0), golden)
            for n_t in num_mc_samples:
                start = time.perf_counter()
                moments.reset()
                for repeat in range(repeats):
                    gradient(objective, n_t, (_REPEAT, n_t, repeat), sample)
                    moments.update(sample, reference=golden)
                rows.append(
                    {
                        "step": step,
                        "objective": objective,
                        "n_t": n_t,
                        "repeats": repeats,
                        "mean_std": moments.mean_std(),
                        "bias": relative_error(moments.mean, golden),
                        "cosine": moments.mean_cosine,
                        "golden_n_t": golden_num_mc_samples,
                        "num_params": numel,
                        "seconds": time.perf_counter() - start,
                        "cosine_of_mean": cosine_similarity(moments.mean, golden),
                    }
                )
    return rows


def _seed_streams(device: torch.device, key: tuple[int, ...]) -> torch.Generator:
    """A mask generator for ``key``; the global streams (dropout) are seeded with it too."""
    value = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0])
    value &= (1 << 63) - 1
    torch.default_generator.manual_seed(value)
    if device.type == "cuda":
        torch.cuda.default_generators[_cuda_index(device)].manual_seed(value)
    return torch.Generator(device=device).manual_seed(value)


@contextmanager
def isolated_rng(device: torch.device) -> Iterator[None]:
    """Restores the global CPU RNG (and ``device``'s CUDA RNG) to their state on entry."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(_cuda_index(device)) if device.type == "cuda" else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, _cuda_index(device))


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()
