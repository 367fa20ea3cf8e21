"""The per-batch recorder of the study's runs: timing means without each process's
warm-up batch, across a resume."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from experiments.paper_claims.curves import StepRecorder


def record(recorder: StepRecorder, rollout_s: float, likelihood_s: float, peak: float) -> None:
    metrics = {
        "train/reward": torch.tensor(0.5),
        "time/rollout_s": torch.tensor(rollout_s),
        "time/likelihood_s": torch.tensor(likelihood_s),
        "memory/peak_gib": torch.tensor(peak),
    }
    trainer = SimpleNamespace(callback_metrics=metrics)
    recorder.on_train_batch_end(trainer, None, None, None, 0)


def test_each_processs_first_batch_is_left_out_of_the_timing_means():
    first = StepRecorder()
    record(first, 10.0, 20.0, 3.0)  # warm-up: compiles kernels
    record(first, 1.0, 2.0, 2.0)
    resumed = StepRecorder()  # a new process, from the first one's checkpoint
    resumed.load_state_dict(first.state_dict())
    record(resumed, 9.0, 18.0, 2.5)  # this process's warm-up
    record(resumed, 3.0, 4.0, 2.0)
    summary = resumed.summary()
    assert [r["warm_up"] for r in resumed.rows] == [True, False, True, False]
    assert math.isclose(summary["rollout_s"], 2.0) and math.isclose(summary["likelihood_s"], 3.0)
    assert math.isclose(summary["step_s"], 5.0)
    assert summary["peak_memory_gib"] == 3.0  # memory: every batch counts
    assert len(summary["train_reward"]) == 4
    assert math.isclose(resumed.summary(skip_warm_up=False)["rollout_s"], 23.0 / 4)


def test_a_single_warm_up_batch_is_still_timed_and_old_checkpoints_flag_their_first_row():
    alone = StepRecorder()
    record(alone, 10.0, 20.0, 3.0)
    assert alone.summary()["step_s"] == 30.0  # nothing else to time
    old = StepRecorder()
    old.load_state_dict({"rows": [{"rollout_s": 5.0}, {"rollout_s": 1.0}]})  # no flags saved
    assert [r["warm_up"] for r in old.rows] == [True, False]
