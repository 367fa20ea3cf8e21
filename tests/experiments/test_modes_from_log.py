"""Rebuilding the rollout-mode table from what a benchmark run printed before its time limit."""

from __future__ import annotations

import csv
import json
import math

import pytest

from experiments.gpu_benchmark.modes_from_log import main, read_log, rebuild


def _mode(name, compiled, seconds, rows=16):
    return {
        "mode": name,
        "compile": compiled,
        "rows": rows,
        "gen_length": 512,
        "block_length": 32,
        "steps": 256,
        "temperature": 0.6,
        "status": "ok",
        "warmup_s": 1.0,
        "seconds": seconds,
        "tok_s": rows * 512 / seconds,
        "forwards": 256,
        "full_forwards": 16,
        "peak_gib": 4.0,
        "groups_with_duplicate": 0.0,
    }


def _log(tmp_path, modes, likelihood_s=None, given="None", prompts=2, group=8):
    system = {
        "gpu": "NVIDIA H200",
        "args": {"num_prompts": str(prompts), "group_size": str(group), "likelihood_s": given},
    }
    lines = [json.dumps(system, indent=1)]
    if likelihood_s is not None:
        lines.append(
            json.dumps({"case": "bgpo", "n_t": 16, "status": "ok", "likelihood_s": likelihood_s})
        )
        lines.append("| case | n_t | status |")  # the printed table is not a row
    lines.append("UserWarning: a compiler warning between rows")
    lines += [json.dumps(m) for m in modes]
    path = tmp_path / "log.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_speed_ups_are_against_the_eager_exact_row_at_the_same_rows(tmp_path):
    modes = [
        _mode("exact", False, 12.0),
        _mode("dual+graph", False, 3.0),
        _mode("exact", True, 15.0),  # compiled exact is not the baseline
        _mode("exact", False, 48.0, rows=64),
        _mode("dual+graph", True, 6.0, rows=64),
    ]
    rows = rebuild(*read_log(_log(tmp_path, modes, likelihood_s=4.0)))
    speedups = [r["speedup_vs_exact"] for r in rows]
    assert speedups == pytest.approx([1.0, 4.0, 0.8, 1.0, 8.0])
    assert all(math.isnan(r["tokens_differ_vs_exact"]) for r in rows)


def test_step_share_uses_the_printed_likelihood_scaled_to_the_rows(tmp_path):
    modes = [_mode("exact", False, 12.0), _mode("exact", False, 48.0, rows=64)]
    rows = rebuild(*read_log(_log(tmp_path, modes, likelihood_s=4.0, given="9.0")))
    # 16 responses take 4 s of likelihood phase; 64 take 16 s.
    assert rows[0]["rollout_fraction_of_step"] == pytest.approx(12.0 / 16.0)
    assert rows[1]["rollout_fraction_of_step"] == pytest.approx(48.0 / 64.0)


def test_without_a_printed_likelihood_the_given_one_is_used_else_none(tmp_path):
    modes = [_mode("exact", False, 12.0)]
    given = rebuild(*read_log(_log(tmp_path, modes, given="4.0")))
    assert given[0]["rollout_fraction_of_step"] == pytest.approx(0.75)
    neither = rebuild(*read_log(_log(tmp_path, modes)))
    assert math.isnan(neither[0]["rollout_fraction_of_step"])


def test_no_exact_row_leaves_speed_ups_empty(tmp_path):
    rows = rebuild(*read_log(_log(tmp_path, [_mode("dual", False, 3.0)], likelihood_s=4.0)))
    assert math.isnan(rows[0]["speedup_vs_exact"])


def test_a_malformed_row_names_the_file_and_line(tmp_path):
    path = _log(tmp_path, [_mode("exact", False, 12.0)])
    path.write_text(path.read_text() + '{"mode": "dual", "compile": \n')
    with pytest.raises(ValueError, match=r"log\.txt:\d+: unreadable row"):
        read_log(path)


def test_main_writes_the_csv_and_table(tmp_path):
    log = _log(tmp_path, [_mode("exact", False, 12.0), _mode("dual", True, 2.0)], 4.0)
    main([str(log), "--out", str(tmp_path / "out")])
    with (tmp_path / "out" / "rollout_modes.csv").open() as f:
        written = list(csv.DictReader(f))
    assert [r["mode"] for r in written] == ["exact", "dual"]
    assert float(written[1]["speedup_vs_exact"]) == pytest.approx(6.0)
    table = (tmp_path / "out" / "rollout_modes.md").read_text()
    assert "| dual | yes | 16 |" in table and "| 6.00 |" in table
