"""What a study run records while it trains: held-out accuracy curves and per-batch costs."""

from __future__ import annotations

import math

import lightning as L
import torch

SPLITS = ("val", "test")


def held_out_accuracy(module, examples, batch_size: int) -> float:
    """Mean greedy accuracy of ``module`` over ``examples`` (the module's eval sampler)."""
    scores = []
    for start in range(0, len(examples), batch_size):
        _, batch_scores = module.evaluate_batch(examples[start : start + batch_size])
        scores.append(batch_scores.float().cpu())
    return float(torch.cat(scores).mean())


class HeldOutCurve(L.Callback):
    """Greedy accuracy on the validation and test splits before training and every
    ``every`` rollout batches (and after the last one): ``curve`` rows
    ``{"batch": b, "val": ..., "test": ...}``, ``b`` rollout batches done."""

    def __init__(self, every: int, total_batches: int, splits=SPLITS) -> None:
        self.every = every
        self.total_batches = total_batches
        self.splits = tuple(splits)
        self.curve: list[dict] = []

    def _evaluate(self, trainer: L.Trainer, module, batches_done: int) -> None:
        datamodule = trainer.datamodule
        row = {"batch": batches_done}
        for split in self.splits:
            row[split] = held_out_accuracy(
                module, datamodule.examples(split), datamodule.val_batch_size
            )
        self.curve.append(row)
        print(f"[curve] {row}", flush=True)

    def on_train_start(self, trainer, pl_module) -> None:
        if not self.curve:  # a resumed run has its points from the checkpoint
            self._evaluate(trainer, pl_module, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = batch_idx + 1
        if done % self.every == 0 or done == self.total_batches:
            self._evaluate(trainer, pl_module, done)

    def state_dict(self) -> dict:
        return {"curve": self.curve}

    def load_state_dict(self, state_dict: dict) -> None:
        self.curve = list(state_dict["curve"])


class StepRecorder(L.Callback):
    """Per rollout batch: the module's logged reward, phase times and peak memory.

    Each row notes whether it was the first batch of its process (``warm_up``): that batch
    also compiles kernels and fills the allocator, in a fresh run and after every resume
    alike, so the timing means leave it out.
    """

    KEYS = {
        "reward": "train/reward",
        "rollout_s": "time/rollout_s",
        "likelihood_s": "time/likelihood_s",
        "peak_gib": "memory/peak_gib",
    }

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._process_started = False  # not saved: a resumed process warms up again

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = trainer.callback_metrics
        row = {k: float(metrics[m]) if m in metrics else math.nan for k, m in self.KEYS.items()}
        row["warm_up"] = not self._process_started
        self._process_started = True
        self.rows.append(row)

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        rows = [dict(r) for r in state_dict["rows"]]
        for index, row in enumerate(rows):  # rows saved before the flag: the first warmed up
            row.setdefault("warm_up", index == 0)
        self.rows = rows

    def summary(self, skip_warm_up: bool = True) -> dict:
        """Mean seconds per batch (each process's first batch, which compiles kernels, left
        out when there are others) and the largest peak memory."""
        timed = [r for r in self.rows if not (skip_warm_up and r.get("warm_up"))] or self.rows

        def mean(key: str) -> float | None:
            values = [r[key] for r in timed if not math.isnan(r[key])]
            return sum(values) / len(values) if values else None

        peaks = [r["peak_gib"] for r in self.rows if not math.isnan(r["peak_gib"])]
        rollout, likelihood = mean("rollout_s"), mean("likelihood_s")
        return {
            "rollout_s": rollout,
            "likelihood_s": likelihood,
            "step_s": None if rollout is None or likelihood is None else rollout + likelihood,
            "peak_memory_gib": max(peaks) if peaks else None,
            "train_reward": [r["reward"] for r in self.rows],
        }
