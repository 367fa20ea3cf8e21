"""What the small-scale study runs: the methods, the learning-rate sweep and the seeds.

Every method trains from the same warm start on the same prompts (the data seed is fixed)
for the same number of rollout batches of the same size; what differs is the objective with
its published settings (``experiments/configs/objectives/``: its estimator, n_t, inner
updates and KL term) and the learning rate, picked per method on the validation split.

The sweep runs every learning rate with the first seed; the other seeds then run at the
learning rate whose first-seed run ended with the highest validation accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TASKS = ("countdown", "sudoku")
# In the first Sudoku runs (docs/results.md) every run at 3e-4 lost the answer format (BGPO
# n_t = 16, BGPO x SDMC; wd1 already at 1e-4) and the best run of each method with two lrs
# done was at 3e-5, the grid's lowest: the grid moved down one step, for every method alike.
# Runs at 3e-4 stay in the report, outside the choice.
LEARNING_RATES = (1e-5, 3e-5, 1e-4)
SWEEP_SEED = 0
SEEDS = (0, 1, 2)

#: VRPO-OL's n_t: the largest of these whose peak memory stays within BGPO's at n_t = 16,
#: found by a short probe before the runs (``experiments.paper_claims.probe``).
VRPO_OL_CANDIDATE_N_T = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Method:
    """One row of the results table: an objective config plus settings on top of it."""

    key: str
    label: str
    objective_config: str  # a file in experiments/configs/objectives/
    settings: dict = field(default_factory=dict)  # model.init_args.* overrides
    tasks: tuple[str, ...] = TASKS

    def cli_args(self) -> list[str]:
        args = ["--config", f"experiments/configs/objectives/{self.objective_config}"]
        for key, value in self.settings.items():
            args += [f"--model.init_args.{key}", _cli_value(value)]
        return args


def _cli_value(value) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {_cli_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    return str(value)


def _bgpo(n_t: int, tasks: tuple[str, ...] = TASKS) -> Method:
    return Method(
        f"bgpo_nt{n_t}", f"BGPO, n_t = {n_t}", "bgpo.yaml", {"num_mc_samples": n_t}, tasks
    )


METHODS: tuple[Method, ...] = (
    Method("diffu_grpo", "diffu-GRPO", "diffu_grpo.yaml"),
    Method("vrpo_ol", "VRPO-OL", "vrpo_ol.yaml"),  # n_t from the probe
    _bgpo(1),
    _bgpo(4),
    _bgpo(16),
    _bgpo(32, tasks=("sudoku",)),
    Method("gdpo", "GDPO", "gdpo.yaml"),
    Method("wd1", "wd1", "wd1.yaml"),
    Method("spg", "SPG", "spg.yaml"),
    Method(
        "bgpo_sdmc",
        "BGPO x SDMC, n_t = 16",
        "bgpo.yaml",
        {
            "num_mc_samples": 16,
            "estimator": "sdmc",
            "estimator_settings": {"rule": "gauss_legendre", "nodes": 4},
        },
    ),
)


def methods_for(task: str) -> list[Method]:
    return [m for m in METHODS if task in m.tasks]


def method(key: str) -> Method:
    for m in METHODS:
        if m.key == key:
            return m
    raise KeyError(f"unknown method {key!r}; known: {[m.key for m in METHODS]}")


@dataclass(frozen=True)
class RunKey:
    """One training run; its folder name is :attr:`name`."""

    task: str
    method: str
    lr: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}__lr{self.lr:g}__seed{self.seed}"


def sweep_runs(task: str) -> list[RunKey]:
    return [RunKey(task, m.key, lr, SWEEP_SEED) for m in methods_for(task) for lr in LEARNING_RATES]


def seed_runs(task: str, chosen_lr: dict[str, float]) -> list[RunKey]:
    """The other seeds at each method's chosen learning rate (methods without one: none)."""
    return [
        RunKey(task, m.key, chosen_lr[m.key], seed)
        for m in methods_for(task)
        if m.key in chosen_lr
        for seed in SEEDS
        if seed != SWEEP_SEED
    ]
