"""The accuracy check's rows, CSV and generated report, from rows made here."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
import torch

from experiments.sampler_accuracy_report import (
    CSV_FIELDS,
    TOLERANCE,
    Row,
    describe_modes,
    render_doc,
    verdicts,
    write_csv,
)
from experiments.sampler_accuracy_setups import EMBEDDED_DEFAULT, STUDY_SUDOKU

GROUP = 2


def _row(mode: str, **changes) -> Row:
    """A measured-looking row of 8 puzzles on split ``toy``; exact's unless changed."""
    fields = dict(
        split="toy",
        mode=mode,
        n=8,
        accuracy=0.5,
        accuracy_se=0.1,
        accuracy_diff=0.0,
        accuracy_diff_se=0.0,
        reward=0.4,
        reward_se=0.1,
        reward_diff=0.0,
        reward_diff_se=0.0,
        duplicate_fraction=0.125,
        forwards=32,
        forward_ratio=1.0,
        token_ratio=1.0,
        time_ratio=1.0,
        seconds=2.0,
    )
    return Row(**{**fields, **changes})


ROWS = [_row("exact"), _row("prefix-refresh1", forwards=32, token_ratio=0.5, time_ratio=0.6)]


def test_a_mode_holds_while_both_paired_differences_stay_above_minus_one_point():
    assert _row("dual", accuracy_diff=-TOLERANCE, reward_diff=-TOLERANCE).holds
    assert not _row("dual", accuracy_diff=-TOLERANCE - 1e-9).holds
    assert not _row("dual", reward_diff=-0.02).holds
    assert _row("dual", accuracy_diff=0.3, reward_diff=0.0).holds


def test_csv_has_every_field_and_one_line_per_row(tmp_path):
    path = tmp_path / "deep" / "results.csv"
    write_csv(ROWS, path)
    with path.open() as handle:
        lines = list(csv.DictReader(handle))
    assert tuple(lines[0]) == CSV_FIELDS
    assert [line["mode"] for line in lines] == ["exact", "prefix-refresh1"]
    assert float(lines[1]["token_ratio"]) == 0.5 and int(lines[1]["forwards"]) == 32


def test_verdicts_say_within_or_not_with_the_difference_in_points():
    lost = _row("dual", accuracy_diff=-0.035, accuracy_diff_se=0.022, forward_ratio=0.25)
    sentences = verdicts([_row("exact"), lost])
    assert len(sentences) == 1  # exact is the reference, not a verdict
    assert (
        "**dual** on toy: greedy accuracy NOT within 1 point of exact (-3.5 ± 2.2" in (sentences[0])
    )
    assert "mean rollout reward within 1 point of exact (0.0 ± 0.0 points)" in sentences[0]
    assert "0.25x the forwards" in sentences[0]


def test_the_doc_has_the_table_verdicts_and_notes():
    doc = render_doc(ROWS, "python -m experiments.sampler_accuracy", ["a note"], GROUP, 0, 1.0)
    assert "- Command: `python -m experiments.sampler_accuracy`" in doc
    assert "CPU times are not the GPU figures" in doc
    assert "| toy | prefix-refresh1 | 8 | 50.0 ± 10.0 |" in doc
    assert "**prefix-refresh1** on toy: greedy accuracy within 1 point of exact" in doc
    assert "## Notes\n\n- a note" in doc


def test_the_report_describes_the_modes_it_measured():
    names = ("exact", "dual+threshold0.9", "prefix+refresh2", "dual+f32")
    assert describe_modes([_row(m) for m in names]) == (
        "exact (`cache='none'`), dual+threshold0.9 (`cache='dual', threshold=0.9`), "
        "prefix+refresh2 (`cache='prefix', cache_refresh_steps=2`), "
        "dual+f32 (`cache='dual', precision='float32'`)"
    )
    assert describe_modes(ROWS) == "exact (`cache='none'`), prefix-refresh1"  # a free name


def test_render_doc_takes_policy_shape_temperature_and_csv_from_the_setup():
    default = render_doc(ROWS, "cmd", [], GROUP, 0, 1.0)
    assert "gen_length 16, block_length 8, steps 8; greedy for accuracy, temperature 1.0" in default
    assert EMBEDDED_DEFAULT.policy in default
    assert "`docs/sampler_accuracy/results.csv`" in default
    study = render_doc(ROWS, "cmd", [], GROUP, 0, 1.0, STUDY_SUDOKU)
    assert "gen_length 32, block_length 16, steps 16; greedy for accuracy, temperature 0.9" in study
    assert f"- Policy: {STUDY_SUDOKU.policy}" in study and "embedded default" not in study
    assert STUDY_SUDOKU.sampler_source in study
    assert "`docs/sampler_accuracy_study/results.csv`" in study


def test_doc_says_the_threshold_barely_saves_forwards_only_when_it_does():
    exact = _row("exact")
    barely = replace(exact, mode="threshold0.9", forward_ratio=0.95)
    saved = replace(exact, mode="dual+threshold0.9", forward_ratio=0.54)
    remark = "the forwards barely drop on CPU here"
    assert remark in render_doc([exact, barely], "cmd", [], GROUP, 0, 1.0)
    doc = render_doc([exact, barely, saved], "cmd", [], GROUP, 0, 1.0)
    assert remark not in doc and "no row of the batch has a mask left." in doc
    assert remark not in render_doc(ROWS, "cmd", [], GROUP, 0, 1.0)  # no threshold row


def test_a_gpu_run_names_its_device_and_says_what_its_times_mean(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    doc = render_doc(ROWS, "cmd", [], GROUP, 0, 1.0, device="cuda")
    assert "NVIDIA H200" in doc and "CPU only" not in doc
    assert "CPU times are not the GPU figures" not in doc
    assert "a small model leaves the GPU mostly idle" in doc


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_a_cpu_run_says_so(device):
    assert "CPU only" in render_doc(ROWS, "cmd", [], GROUP, 0, 1.0, device=device)
