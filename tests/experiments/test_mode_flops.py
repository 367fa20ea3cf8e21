"""Achieved model TFLOPS of the no-cache rollout modes, from benchmark logs."""

from __future__ import annotations

import json
import math

from experiments.gpu_benchmark.mode_flops import achieved_tflops, main
from experiments.gpu_benchmark.shapes import SHAPES


def _row(mode, seconds, forwards=256, full_forwards=256, compiled=False, status="ok"):
    return {
        "mode": mode,
        "compile": compiled,
        "rows": 16,
        "gen_length": 512,
        "block_length": 32,
        "status": status,
        "seconds": seconds,
        "forwards": forwards,
        "full_forwards": full_forwards,
    }


def _reference_tflops(seconds: float) -> float:
    """From the equations, for the 1b shape: 16 rows of 256 + 512 positions, 256 forwards."""
    hidden, layers, intermediate, vocab = 2048, 12, 5632, 126464
    length, rows, scored, forwards = 768, 16, 32, 256
    blocks = layers * (4 * hidden * hidden + 3 * hidden * intermediate) * length * 2
    attention = 4 * layers * hidden * length * length  # QK^T and AV
    head = 2 * vocab * hidden * scored
    return forwards * rows * (blocks + attention + head) / seconds / 1e12


def test_a_no_cache_row_gets_its_model_flops_over_its_seconds():
    tflops = achieved_tflops(SHAPES["1b"], _row("exact", 7.5), prompt_length=256)
    assert math.isclose(tflops, _reference_tflops(7.5), rel_tol=1e-12)


def test_cached_and_failed_rows_get_none():
    shape = SHAPES["1b"]
    assert math.isnan(achieved_tflops(shape, _row("dual", 3.0, full_forwards=16), 256))
    assert math.isnan(achieved_tflops(shape, _row("exact", 3.0, status="error: OOM"), 256))


def test_main_writes_a_line_per_no_cache_row_against_the_runs_matmul_speed(tmp_path, capsys):
    run = tmp_path / "no_cache_1b"
    run.mkdir()
    system = {"shape": "1b", "matmul_tflops": 800.0, "args": {"prompt_length": "256"}}
    rows = [
        _row("exact", 10.0),
        _row("dual", 3.0, full_forwards=16),
        _row("f32", 8.0, compiled=True),
    ]
    lines = [json.dumps(system, indent=1)] + [json.dumps(row) for row in rows]
    (run / "log.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "flops.md"
    main([str(run / "log.txt"), "--out", str(out)])
    table = out.read_text().splitlines()
    assert capsys.readouterr().out.splitlines() == table
    assert len(table) == 4  # header, separator, exact and f32 (dual has a cache)
    exact, compiled = table[2].split(" | "), table[3].split(" | ")
    assert exact[:5] == ["| no_cache_1b", "1b", "exact", "no", "16"]
    assert compiled[2:4] == ["f32", "yes"]
    assert float(exact[8]) == round(_reference_tflops(10.0))
    assert float(exact[9].rstrip(" |")) == round(_reference_tflops(10.0) / 800.0, 2)
