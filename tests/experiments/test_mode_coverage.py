"""Collecting issue 11's rollout-mode matrix from many benchmark logs."""

from __future__ import annotations

import json

import pytest

from experiments.gpu_benchmark.mode_coverage import main

LIKELIHOOD_S = 4.0  # BGPO's likelihood phase at n_t = 16 for 16 responses (2 prompts x 8)


def _row(mode, compiled, seconds, rows=16, status="ok"):
    return {
        "mode": mode,
        "compile": compiled,
        "rows": rows,
        "gen_length": 512,
        "block_length": 32,
        "status": status,
        "seconds": seconds,
        "tok_s": rows * 512 / seconds,  # as the benchmark prints it
        "forwards": 256,
        "full_forwards": 16,
    }


def _log(tmp_path, name, shape, rows):
    folder = tmp_path / "benchmarks" / name
    folder.mkdir(parents=True)
    args = {
        "num_prompts": "2",
        "group_size": "8",
        "likelihood_s": str(LIKELIHOOD_S),
        "modes_warmup_steps_per_block": "2",
    }
    system = {"shape": shape, "args": args}
    lines = [json.dumps(system, indent=1)] + [json.dumps(row) for row in rows]
    (folder / "log.txt").write_text("\n".join(lines) + "\n")
    return folder / "log.txt"


def _table(tmp_path, argv):
    out = tmp_path / "coverage.md"
    main([str(arg) for arg in argv] + ["--out", str(out)])
    return out.read_text()


def _line(table, mode, compiled):
    start = f"| {mode} | {'yes' if compiled else 'no'} |"
    (line,) = [line for line in table.splitlines() if line.startswith(start)]
    return [cell.strip() for cell in line.split("|")[3:-1]]


def test_a_cell_holds_the_speedup_over_its_own_runs_exact_and_its_step_share(tmp_path):
    log = _log(
        tmp_path, "run_8b", "8b", [_row("exact", False, 90.0, 64), _row("dual", True, 12.0, 64)]
    )
    table = _table(tmp_path, [log])
    # 8b at 64 rows is the fourth column; the likelihood phase scales to 64 rows: 4 x 64 / 16.
    share = 12.0 / (12.0 + LIKELIHOOD_S * 64 / 16)
    assert _line(table, "dual", True)[3] == f"{90.0 / 12.0:.2f}x · {share:.2f} [1]"
    assert _line(table, "dual", True)[:3] == ["–", "–", "–"]
    assert "1. `run_8b`" in table


def test_the_log_given_last_wins_a_cell(tmp_path):
    old = _log(tmp_path, "old", "1b", [_row("exact", False, 10.0), _row("dual", False, 5.0)])
    new = _log(tmp_path, "new", "1b", [_row("exact", False, 12.0), _row("dual", False, 3.0)])
    assert _line(_table(tmp_path, [old, new]), "dual", False)[0].startswith("4.00x")
    assert _line(_table(tmp_path, [new, old]), "dual", False)[0].startswith("2.00x")


def test_an_older_run_keeps_only_the_rows_no_later_fix_changed(tmp_path):
    rows = [
        _row("exact", False, 10.0),
        _row("exact", True, 8.0),  # compiled without a cache: bidirectional_sdpa changed it
        _row("prefix", True, 4.0),  # a compiled cache: the memory fix changed it
        _row("prefix", False, 5.0),
    ]
    oldest = _log(tmp_path, "oldest", "1b", rows)
    older = _log(tmp_path, "older", "8b", rows)
    new = _log(tmp_path, "new", "1b", [_row("exact", False, 10.0, 64), _row("dual", True, 2.0, 64)])
    argv = [new, "--before-compile-fixes", oldest, "--before-cache-memory-fix", older]
    table = _table(tmp_path, argv)
    # A cell: exact s / mode s · mode s / (mode s + the likelihood phase's 4 s) [run].
    assert _line(table, "exact", False)[::2] == ["1.00x · 0.71 [1]", "1.00x · 0.71 [2]"]
    assert _line(table, "prefix", False)[::2] == ["2.00x · 0.56 [1]", "2.00x · 0.56 [2]"]
    assert _line(table, "exact", True) == ["–", "–", "1.25x · 0.67 [2]", "–"]
    assert _line(table, "prefix", True) == ["–"] * 4
    assert _line(table, "dual", True)[1].startswith("5.00x")  # the current run counts all rows
    legend = ["1. `oldest` (before the compile fixes)", "2. `older` (before the cache memory fix)"]
    assert all(line in table for line in legend + ["3. `new`"])


def test_the_untimed_matrix_cells_are_listed_and_other_modes_follow_the_matrix(tmp_path):
    rows = [
        _row("exact", False, 10.0),
        _row("dual+graph", True, 2.0),
        _row("threshold0.9", True, 6.0),
        _row("prefix", False, 1.0, status="error: out of memory"),
    ]
    table = _table(tmp_path, [_log(tmp_path, "run", "1b", rows)])
    assert "Matrix cells not timed: 38 of 40." in table
    assert "- prefix eager at 1b, 16 rows" in table
    assert "- threshold0.9 compiled at 1b, 16 rows" not in table
    modes = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert modes[1:11:2] == ["exact", "prefix", "dual", "threshold0.9", "threshold0.95"]
    assert modes[-1] == "dual+graph"


def test_a_run_without_an_exact_row_says_so_instead_of_a_speedup(tmp_path):
    log = _log(tmp_path, "compiled_only", "1b", [_row("dual", True, 2.0)])
    share = 2.0 / (2.0 + LIKELIHOOD_S)
    tokens_per_s = 16 * 512 / 2.0
    expected = f"no exact row, {tokens_per_s:.0f} tok/s · {share:.2f} [1]"
    assert _line(_table(tmp_path, [log]), "dual", True)[0] == expected


def test_without_its_own_exact_row_a_cell_is_compared_with_another_runs_naming_it(tmp_path):
    exact_run = _log(tmp_path, "exact_64", "1b", [_row("exact", False, 40.0, 64)])
    other_shape = _log(tmp_path, "exact_8b", "8b", [_row("exact", False, 90.0, 64)])
    compiled = _log(tmp_path, "dual_64", "1b", [_row("dual", True, 8.0, 64)])
    table = _table(tmp_path, [exact_run, other_shape, compiled])
    share = 8.0 / (8.0 + LIKELIHOOD_S * 64 / 16)
    # Same rows and shape: tokens/s 4096 against the exact run's 819.2, a 5x ratio.
    expected = f"{64 * 512 / 8.0:.0f} tok/s, {40.0 / 8.0:.2f}x run 1's exact · {share:.2f} [3]"
    assert _line(table, "dual", True)[1] == expected
    assert "ratio to the eager exact row of the run named" in table


def test_a_missing_or_shapeless_log_is_a_one_line_error_naming_it(tmp_path):
    with pytest.raises(SystemExit, match="nowhere/log.txt: no such log"):
        main([str(tmp_path / "nowhere" / "log.txt")])
    shapeless = _log(tmp_path, "shapeless", "1b", [_row("exact", False, 1.0)])
    shapeless.write_text(shapeless.read_text().replace('"shape": "1b",', ""))
    with pytest.raises(SystemExit, match="shapeless/log.txt: the system block names no shape"):
        main([str(shapeless)])
