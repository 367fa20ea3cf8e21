"""The multi-GPU experiment on CPU processes (gloo): the same global batch on one process and on
two DDP processes gives the same parameters, and the comparison table says so."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--shape", "tiny", "--prompt-length", "8", "--response-length", "16", "--n-t", "2",
    "--group-size", "4", "--micro-batch-size", "3", "--steps", "2", "--backend", "gloo",
    "--precision", "32-true", "--lr", "1e-3",
]  # fmt: skip


def _module(*args: str) -> None:
    command = [sys.executable, "-m", "experiments.multi_gpu", *args]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)


def test_ddp_matches_one_process_on_the_same_global_batch(tmp_path):
    shape = TINY[:6]
    _module("initial", *shape, "--to", str(tmp_path / "initial.pt"))
    _module("run", "--strategy", "single", *TINY, "--params-dir", str(tmp_path),
            "--out", str(tmp_path / "single"))  # fmt: skip
    _module("run", "--strategy", "ddp", "--devices", "2", *TINY, "--params-dir", str(tmp_path),
            "--out", str(tmp_path / "ddp"))  # fmt: skip
    table = tmp_path / "table.md"
    _module("compare", str(tmp_path / "single"), str(tmp_path / "ddp"), "--params-dir",
            str(tmp_path), "--initial", str(tmp_path / "initial.pt"), "--table", str(table),
            "--warmup-steps", "0")  # fmt: skip
    rows = {r["run"]: r for r in json.loads(table.with_suffix(".json").read_text())}
    single, ddp = rows["single"], rows["ddp"]
    assert (single["gpus"], ddp["gpus"]) == (1, 2)
    assert (single["rows_per_gpu"], ddp["rows_per_gpu"]) == (16, 8)  # one global batch
    assert single["max_abs_update"] > 1e-4  # it trained
    # float32 rounding only: a different batch split or stream would differ by the update's size
    assert ddp["max_abs_diff"] < 1e-2 * single["max_abs_update"]
    assert single["relative_diff"] == 0.0 and 0 <= ddp["relative_diff"] < 1e-3
    assert (tmp_path / "ddp" / "rank1.json").is_file()
