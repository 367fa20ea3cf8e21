"""The sampler accuracy check at toy size: a random tiny model, 8 prompts, 2 modes."""

from __future__ import annotations

import csv

import pytest
import torch

from bgpo_lightning.tasks.datamodule import PromptDataModule
from experiments.estimator_study.batch import build_module
from experiments.sampler_accuracy import (
    CSV_FIELDS,
    TASK_KWARGS,
    Mode,
    count_forwards,
    has_duplicate,
    render_doc,
    run_check,
    write_csv,
)
from tests.helpers import TINY

PROMPTS, GROUP = 8, 2
MODES = (Mode("exact"), Mode("prefix-refresh1", cache="prefix", cache_refresh_steps=1))


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def rows():
    """The check on a random float64 tiny model over 8 generated compact-format puzzles."""
    data = PromptDataModule(
        task="sudoku", task_kwargs=dict(TASK_KWARGS), num_train=8, num_val=0, num_test=PROMPTS
    )
    module = build_module(None, PROMPTS * GROUP, GROUP, tiny=TINY).double()
    splits = {"toy": data.examples("test")}
    return run_check(module, data.task, splits, MODES, GROUP, seed=0, prompts_per_batch=4)


def test_one_row_per_mode_with_exact_as_reference(rows):
    assert [(r.split, r.mode) for r in rows] == [("toy", "exact"), ("toy", "prefix-refresh1")]
    exact, prefix = rows
    assert exact.n == prefix.n == PROMPTS
    assert exact.accuracy_diff == exact.reward_diff == 0.0
    assert exact.forward_ratio == exact.token_ratio == exact.time_ratio == 1.0
    for r in rows:
        assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.reward <= 1.0
        assert 0.0 <= r.duplicate_fraction <= 1.0
        assert r.forwards > 0 and r.seconds > 0


def test_prefix_cache_refreshed_every_step_matches_exact(rows):
    exact, prefix = rows
    assert prefix.accuracy == exact.accuracy
    assert prefix.accuracy_diff == 0.0 and prefix.accuracy_diff_se == 0.0
    assert prefix.holds


def test_csv_and_doc(rows, tmp_path):
    path = tmp_path / "results.csv"
    write_csv(rows, path)
    with path.open() as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == CSV_FIELDS
    assert [r["mode"] for r in table] == ["exact", "prefix-refresh1"]
    doc = render_doc(rows, "python -m experiments.sampler_accuracy", ["a note"], GROUP, 0, 1.0)
    assert "CPU times are not the GPU figures" in doc
    assert "| toy | prefix-refresh1 |" in doc
    assert "**prefix-refresh1** on toy: greedy accuracy within 1 point of exact" in doc


def test_counters():
    layer = torch.nn.Linear(3, 2)
    with count_forwards(layer) as counter:
        layer(torch.zeros(4, 3))
        layer(torch.zeros(5, 3))
    assert counter == [2, 27]
    assert has_duplicate(torch.tensor([[1, 2], [3, 4], [1, 2]]))
    assert not has_duplicate(torch.tensor([[1, 2], [2, 1]]))
