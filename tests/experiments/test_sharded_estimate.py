"""The FSDP2 per-GPU estimate splits a measured peak into sharded state and the rest."""

import csv

import pytest

from experiments.gpu_benchmark import sharded_estimate as est
from experiments.gpu_benchmark.report import COLUMNS

GIB = 2**30


def test_state_bytes_per_precision():
    assert est.state_bytes(10, 10, "bf16-true") == 10 * (2 + 2 + 4)
    assert est.state_bytes(10, 4, "bf16-mixed") == 10 * 4 + 4 * (4 + 8)


def test_estimate_from_a_measured_row_full_and_lora():
    params, layer = 8 * GIB, GIB // 4
    rows = [
        {"case": "bgpo", "n_t": 4, "status": "ok", "trainable_params": params, "peak_gib": 70.0},
        {"case": "bgpo[lora]", "n_t": 4, "status": "ok", "trainable_params": GIB // 8,
         "peak_gib": 20.0},
        {"case": "vrpo_ol", "n_t": 8, "status": "OOM", "trainable_params": params,
         "peak_gib": float("nan")},
    ]  # fmt: skip
    full, lora = est.estimate_rows(
        rows, params, layer, "bf16-true", "bf16-mixed", gpus=8, deferred_sync=False
    )
    assert full["measured_state_gib"] == pytest.approx(8 * 8)  # 8 GiB params x 8 bytes
    assert full["rest_gib"] == pytest.approx(70 - 64)
    assert full["target_state_per_gpu_gib"] == pytest.approx(8 * 16 / 8)
    assert full["gathered_layers_gib"] == pytest.approx(2 * 0.25 * 2)
    assert full["per_gpu_gib"] == pytest.approx(16 + 6 + 1)
    # LoRA: a bf16 frozen base plus the adapter's float32 state, all sharded.
    frozen, adapter = 8 - 1 / 8, 1 / 8
    assert lora["measured_state_gib"] == pytest.approx(8 * 2 + adapter * 6)
    assert lora["target_state_per_gpu_gib"] == pytest.approx((frozen * 2 + adapter * 16) / 8)


def test_command_writes_the_table(tmp_path):
    with (tmp_path / "likelihood.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerow(
            {"case": "bgpo", "objective": "bgpo", "n_t": 4, "variant": "plain",
             "trainable_params": 8015314944, "status": "ok", "peak_gib": 74.7}
        )  # fmt: skip
    est.main([str(tmp_path), "--shape", "8b", "--gpus", "8"])
    table = (tmp_path / "fsdp2_estimate_8gpus_bf16-mixed.md").read_text()
    assert table.count("\n| bgpo | 4 |") == 1


def test_deferred_gradient_sync_keeps_the_whole_gradient_on_each_gpu():
    params = 8 * GIB
    row = {"case": "bgpo", "n_t": 4, "status": "ok", "trainable_params": params, "peak_gib": 70.0}
    synced, deferred = (
        est.estimate_rows([row], params, 0, "bf16-true", "bf16-mixed", 8, deferred_sync=d)[0]
        for d in (False, True)
    )
    # float32 gradient of 8 GiB parameters: 32 GiB whole instead of 4 GiB per GPU
    assert deferred["per_gpu_gib"] - synced["per_gpu_gib"] == pytest.approx(32 - 4)
