"""The threshold estimate: timed fixed-schedule seconds scaled by a trained model's forwards."""

from __future__ import annotations

import csv

import pytest

from experiments.gpu_benchmark.report import MODE_COLUMNS
from experiments.gpu_benchmark.threshold_estimate import estimates, main, table

ACCURACY_COLUMNS = ["split", "mode", "forward_ratio", "accuracy_diff", "reward_diff"]


def _write(path, columns, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _timed(mode, compiled, seconds, forwards=256, rows=16, status="ok"):
    return {
        "mode": mode,
        "compile": str(compiled),
        "rows": rows,
        "steps": 256,
        "status": status,
        "seconds": seconds,
        "forwards": forwards,
        "likelihood_s": 3.0,
    }


@pytest.fixture
def files(tmp_path):
    bench = _write(
        tmp_path / "rollout_modes.csv",
        MODE_COLUMNS,
        [
            _timed("exact", False, 12.0),
            _timed("exact", True, 9.0),
            _timed("threshold0.9", False, 12.5),
            _timed("threshold0.9+f32", True, 8.0),
            _timed("dual", False, 4.0),
            _timed("threshold0.95", False, 1.0, status="OOM"),
        ],
    )
    (tmp_path / "sudoku").mkdir()
    accuracy = _write(
        tmp_path / "sudoku" / "results.csv",
        ACCURACY_COLUMNS,
        [
            {
                "split": "d1 test",
                "mode": "exact",
                "forward_ratio": 1,
                "accuracy_diff": 0,
                "reward_diff": 0,
            },
            {
                "split": "d1 test",
                "mode": "threshold0.9",
                "forward_ratio": 0.5,
                "accuracy_diff": 0.01,
                "reward_diff": -0.02,
            },
            {
                "split": "d1 test",
                "mode": "threshold0.9+f32",
                "forward_ratio": 0.25,
                "accuracy_diff": 0.0,
                "reward_diff": 0.0,
            },
        ],
    )
    return bench, accuracy


def test_each_threshold_row_is_scaled_by_its_own_modes_forward_fraction(files):
    bench, accuracy = files
    rows = estimates(bench, [accuracy])
    assert [(e.mode, e.compiled) for e in rows] == [
        ("threshold0.9", False),
        ("threshold0.9+f32", True),
    ]
    eager, compiled = rows
    assert eager.seconds == pytest.approx(12.5 * 0.5)
    assert eager.speedup == pytest.approx(12.0 / 6.25)  # against the eager exact row
    assert eager.fraction_of_step == pytest.approx(6.25 / (6.25 + 3.0))
    assert compiled.seconds == pytest.approx(2.0)
    assert compiled.speedup == pytest.approx(6.0)
    assert eager.source == "sudoku (d1 test)"
    text = table(rows)
    row = "| threshold0.9 | no | 16 | 12.500 | sudoku (d1 test) | 0.50 | +1.0 | -2.0 | 6.250 |"
    assert row in text


def test_a_threshold_that_fired_on_the_benchmark_is_refused(tmp_path, files):
    _, accuracy = files
    bench = _write(
        tmp_path / "fired.csv",
        MODE_COLUMNS,
        [_timed("exact", False, 12.0), _timed("threshold0.9", False, 6.0, forwards=128)],
    )
    with pytest.raises(ValueError, match="128 forwards for 256 steps"):
        estimates(bench, [accuracy])


def test_cli_writes_the_table_and_names_a_missing_column(tmp_path, files, capsys):
    bench, accuracy = files
    out = tmp_path / "estimate.md"
    assert main([str(bench), "--accuracy", str(accuracy), "--out", str(out)]) == 0
    assert out.read_text() == capsys.readouterr().out
    broken = _write(
        tmp_path / "broken.csv", ["split", "mode"], [{"split": "x", "mode": "threshold0.9"}]
    )
    with pytest.raises(SystemExit) as exit_info:
        main([str(bench), "--accuracy", str(broken)])
    assert exit_info.value.code == 2
    assert "lacks the column 'forward_ratio'" in capsys.readouterr().err
