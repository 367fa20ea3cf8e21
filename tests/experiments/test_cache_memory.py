"""The block caches' memory probe: a row per mode and compile setting, on the CPU."""

import pytest
import torch

from experiments.gpu_benchmark import cache_memory

TINY_ARGS = [
    "--rows", "2", "--prompt-length", "4", "--gen-length", "8", "--block-length", "4",
    "--blocks", "2", "--steps-per-block", "2", "--hidden-size", "16", "--num-layers", "1",
    "--num-heads", "2", "--intermediate-size", "32", "--vocab-size", "50",
]  # fmt: skip


def test_each_mode_is_measured_eager_and_compiled(tmp_path, monkeypatch, capsys):
    # The eager backend keeps dynamo's tracing (the cache's compiled path) without inductor.
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **_: real_compile(fn, backend="eager"))
    cache_memory.main([*TINY_ARGS, "--out", str(tmp_path)])
    table = (tmp_path / "cache_memory.md").read_text()
    assert table == capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("prefix", "no"), ("prefix", "yes"), ("dual", "no"), ("dual", "yes"),
    ]  # fmt: skip
    # Keys and values of the 8 positions outside a block: 2 x 1 layer x 2 rows x 8 x 16 x 4 B.
    assert {r[3].strip() for r in rows} == {f"{2 * 2 * 8 * 16 * 4 / 2**20:.3f}"}
    peaks = [float(r[2]) for r in rows]
    assert all(peak > 0 for peak in peaks)
    assert [r[4].strip() for r in rows[::2]] == ["1.00", "1.00"]  # eager is the reference


def test_more_blocks_than_the_response_holds_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="--blocks 3 x --block-length exceeds --gen-length"):
        cache_memory.main([*TINY_ARGS, "--blocks", "3", "--out", str(tmp_path)])
