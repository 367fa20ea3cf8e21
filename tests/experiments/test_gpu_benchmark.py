"""CPU smoke test of the GPU benchmark (tiny shape): rows, OOM handling, FLOP count, outputs,
rollout modes."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import pytest
import torch

from bgpo_lightning.diffusion.sampler import SamplerConfig
from experiments.gpu_benchmark import __main__ as bench
from experiments.gpu_benchmark import likelihood, modes
from experiments.gpu_benchmark.report import read_csv
from experiments.gpu_benchmark.shapes import SHAPES


def test_shape_parameter_count_matches_the_built_model():
    shape = SHAPES["tiny"]
    policy = bench.build_policy(shape, 64, seed=0, device=torch.device("cpu"))
    norms = sum(p.numel() for n, p in policy.named_parameters() if "norm" in n)
    assert sum(p.numel() for p in policy.parameters()) - norms == shape.params
    assert next(policy.parameters()).dtype == torch.bfloat16


def test_train_flops_are_three_forwards_and_grow_with_scored_positions():
    shape = SHAPES["1b"]
    assert shape.train_flops(2, 768, 512) == 3 * shape.forward_flops(2, 768, 512)
    head = shape.train_flops(1, 768, 513) - shape.train_flops(1, 768, 512)
    assert head == 3 * 2 * shape.vocab * shape.hidden


def test_cpu_run_writes_rows_and_records_oom_without_crashing(tmp_path, monkeypatch):
    real_fit = likelihood.L.Trainer.fit

    def fit(self, module, *args, **kwargs):
        if module.objective.name == "vrpo_ol" and module.num_mc_samples >= 2:
            raise torch.OutOfMemoryError("simulated")
        return real_fit(self, module, *args, **kwargs)

    monkeypatch.setattr(likelihood.L.Trainer, "fit", fit)
    out = tmp_path / "bench"
    bench.main(
        [
            "--device", "cpu", "--shape", "tiny", "--prompt-length", "4",
            "--response-length", "8", "--block-length", "4", "--rollout-steps", "2",
            "--compare-steps", "2", "--n-t", "1", "2", "4", "--old-pass-n-t", "2",
            "--warmup-steps", "0", "--measured-steps", "1", "--out", str(out),
        ]
    )  # fmt: skip
    rows = {(r["case"], r["n_t"]): r for r in read_csv(out / "likelihood.csv")}
    assert len(rows) == 3 + 3 + 1
    assert all(rows["bgpo", n]["status"] == "ok" for n in (1, 2, 4))
    assert rows["bgpo", 4]["likelihood_s"] > 0
    assert rows["vrpo_ol", 1]["status"] == "ok"
    assert rows["vrpo_ol", 2]["status"] == "OOM"
    assert rows["vrpo_ol", 4]["status"] == "OOM (after smaller)"
    assert rows["bgpo+old_pass", 2]["status"] == "ok"
    for name in ("rollout.json", "system.json", "table.md", "benchmark.png"):
        assert (out / name).is_file(), name
    assert "OOM" in (out / "table.md").read_text()
    comparison = json.loads((out / "rollout.json").read_text())["comparison"]
    assert comparison["full_logits_same_tokens_as_reference"]
    assert comparison["windowed_same_tokens_as_reference"]


def test_cpu_rollout_modes_rows_speedup_and_a_cache_refreshed_every_step(tmp_path, monkeypatch):
    def no_compile(fn, **kwargs):
        raise RuntimeError("simulated compile failure")

    monkeypatch.setattr(torch, "compile", no_compile)
    out = tmp_path / "modes"
    bench.main(
        [
            "--device", "cpu", "--shape", "tiny", "--prompt-length", "4",
            "--response-length", "8", "--block-length", "4", "--rollout-steps", "0",
            "--compare-steps", "0", "--rollout-mode-steps", "4", "--n-t", "--old-pass-n-t",
            "--group-size", "4", "--rollout-rows", "4", "8", "--likelihood-s", "2.0",
            "--rollout-modes", "exact", "prefix+refresh1", "dual+threshold0.9", "dual+graph",
            "exact+compile", "--compile-modes", "dual", "--profile-modes", "dual+graph",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert not (out / "likelihood.csv").exists()
    with (out / "rollout_modes.csv").open(newline="") as f:
        rows = {(r["mode"], r["compile"], int(r["rows"])): r for r in csv.DictReader(f)}
    names = ["exact", "prefix+refresh1", "dual+threshold0.9", "dual+graph", "dual"]
    assert set(rows) == {(m, "False", n) for m in names for n in (4, 8)} | {
        (m, "True", n) for m in ("dual", "exact+compile") for n in (4, 8)
    }
    for n in (4, 8):
        assert float(rows["exact", "False", n]["speedup_vs_exact"]) == 1.0
        refreshed = rows["prefix+refresh1", "False", n]
        # A cache rerun at every step is the exact sampler: the same tokens from the same seed.
        assert float(refreshed["tokens_differ_vs_exact"]) == 0.0
        assert refreshed["forwards"] == refreshed["full_forwards"] == "4"
        fast = rows["dual+threshold0.9", "False", n]
        assert fast["status"] == "ok" and float(fast["speedup_vs_exact"]) > 0
        assert int(fast["full_forwards"]) == 2  # one refresh per block
        assert 0 <= float(fast["groups_with_duplicate"]) <= 1
        assert 0 < float(fast["rollout_fraction_of_step"]) < 1
        assert float(fast["likelihood_s"]) == 2.0 * n / 8  # measured for 2 prompts x 4
        assert rows["dual", "True", n]["status"].startswith("error: RuntimeError: simulated")
        # A mode's own compile part is a compiled row too, and never the eager baseline.
        assert rows["exact+compile", "True", n]["status"].startswith("error: RuntimeError")
        # Off CUDA the graphed dual cache runs its static step eagerly: the dual cache's tokens.
        assert rows["dual+graph", "False", n]["status"] == "ok"
        for column in ("forwards", "tokens_differ_vs_exact"):
            assert rows["dual+graph", "False", n][column] == rows["dual", "False", n][column]
    profile = (out / "profile_modes.txt").read_text()
    assert "== dual+graph: 4 rows" in profile and "device busy" in profile
    table = (out / "rollout_modes.md").read_text()
    assert table.count("\n| dual+threshold0.9 | no |") == 2


def test_a_run_stopped_mid_way_keeps_the_rows_finished_so_far(tmp_path, monkeypatch):
    # A device call's time limit kills the run; what it finished must be on disk, compared.
    measure = modes.measure_mode
    calls = []

    def stopped_at_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands in for the shell timeout's signal
        return measure(*args, **kwargs)

    monkeypatch.setattr(modes, "measure_mode", stopped_at_the_third)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        bench.main(
            [
                "--device", "cpu", "--shape", "tiny", "--prompt-length", "4",
                "--response-length", "8", "--block-length", "4", "--rollout-steps", "0",
                "--compare-steps", "0", "--rollout-mode-steps", "4", "--n-t", "--old-pass-n-t",
                "--group-size", "4", "--rollout-rows", "4", "--likelihood-s", "2.0",
                "--rollout-modes", "dual", "exact", "prefix", "--out", str(out),
            ]
        )  # fmt: skip
    with (out / "rollout_modes.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    # dual was measured before exact, and compared once exact was there.
    assert [r["mode"] for r in rows] == ["dual", "exact"]
    assert float(rows[1]["speedup_vs_exact"]) == 1.0
    assert float(rows[0]["speedup_vs_exact"]) > 0
    assert 0 <= float(rows[0]["tokens_differ_vs_exact"]) <= 1
    assert "| dual | no | 4 |" in (out / "rollout_modes.md").read_text()


def test_cpu_variants_gradient_checkpointing_and_lora(tmp_path):
    out = tmp_path / "variants"
    bench.main(
        [
            "--device", "cpu", "--shape", "tiny", "--prompt-length", "4",
            "--response-length", "8", "--block-length", "4", "--rollout-steps", "0",
            "--compare-steps", "0", "--objectives", "bgpo", "--n-t", "2",
            "--old-pass-n-t", "2", "--variants", "lora", "plain", "gc", "lora+gc",
            "--warmup-steps", "0", "--measured-steps", "1", "--out", str(out),
        ]
    )  # fmt: skip
    rows = {r["case"]: r for r in read_csv(out / "likelihood.csv")}
    # The old-pass case (no adapter) runs before the LoRA variants, whatever the order given.
    assert list(rows) == ["bgpo", "bgpo[gc]", "bgpo+old_pass", "bgpo[lora]", "bgpo[lora+gc]"]
    assert all(r["status"] == "ok" for r in rows.values())
    full = int(rows["bgpo"]["trainable_params"])
    assert int(rows["bgpo[gc]"]["trainable_params"]) == full
    # Only the adapter trains (at the tiny shape, rank 128 has more weights than the model).
    adapter = int(rows["bgpo[lora]"]["trainable_params"])
    assert adapter > 0 and adapter != full
    assert int(rows["bgpo[lora+gc]"]["trainable_params"]) == adapter


def test_cpu_lora_rows_take_the_rollout_timed_with_the_adapter_on(tmp_path, monkeypatch):
    merged = []
    real_merged_adapter = bench.merged_adapter

    def recording_merged_adapter(policy, enabled=True):
        merged.append(enabled)
        return real_merged_adapter(policy, enabled)

    monkeypatch.setattr(bench, "merged_adapter", recording_merged_adapter)
    out = tmp_path / "lora_rollout"
    bench.main(
        [
            "--device", "cpu", "--shape", "tiny", "--prompt-length", "4",
            "--response-length", "8", "--block-length", "4", "--rollout-steps", "4",
            "--compare-steps", "0", "--objectives", "bgpo", "--n-t", "2",
            "--old-pass-n-t", "--variants", "plain", "gc", "lora", "lora+merged",
            "--warmup-steps", "0", "--measured-steps", "1", "--out", str(out),
        ]
    )  # fmt: skip
    rollout = json.loads((out / "rollout.json").read_text())
    plain_s = rollout["training"]["vectorised_s"]
    lora_s = rollout["training_lora"]["vectorised_s"]
    merged_s = rollout["training_lora_merged"]["vectorised_s"]
    assert rollout["training_lora"]["rows"] == rollout["training"]["rows"]
    assert rollout["training_lora_merged"]["rows"] == rollout["training"]["rows"]
    assert merged == [False, True]  # lora's rollout unmerged, then lora+merged's merged
    # Peak memory is the CUDA allocator's; on the CPU each rollout records that it has none.
    for key in ("training", "training_lora", "training_lora_merged"):
        assert math.isnan(rollout[key]["vectorised_peak_gib"])
    rows = {r["case"]: r for r in read_csv(out / "likelihood.csv")}
    # Checkpointing leaves the no-grad rollout as it is; the adapter's rollout is its own.
    assert rows["bgpo"]["rollout_s"] == rows["bgpo[gc]"]["rollout_s"] == pytest.approx(plain_s)
    assert rows["bgpo[lora]"]["rollout_s"] == pytest.approx(lora_s)
    assert rows["bgpo[lora+merged]"]["rollout_s"] == pytest.approx(merged_s)
    for case, rollout_s in (("bgpo[lora]", lora_s), ("bgpo[lora+merged]", merged_s)):
        assert rows[case]["step_s"] == pytest.approx(rollout_s + rows[case]["likelihood_s"])
    assert "| rollout s |" in (out / "table.md").read_text()


def test_device_busy_counts_each_kernel_once_not_again_through_its_operator():
    from types import SimpleNamespace

    from experiments.gpu_benchmark.modes import device_busy_us

    cpu, cuda = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA

    def event(device, own_us, annotation=False):
        return SimpleNamespace(
            device_type=device, self_device_time_total=own_us, is_user_annotation=annotation
        )

    events = [
        event(cpu, 70.0),  # aten::mm, carrying its kernel's 70 us
        event(cuda, 70.0),  # the matrix-product kernel itself
        event(cuda, 30.0),  # an element-wise kernel launched by an operator
        event(cpu, 30.0),
        event(cuda, 100.0, annotation=True),  # a user range on the device timeline
    ]
    assert device_busy_us(events) == 100.0


def test_timed_modes_are_eager_first_then_compiled_then_compiled_only():
    args = bench.parse_args(
        [
            "--shape",
            "tiny",
            "--rollout-modes",
            "exact",
            "prefix",
            "--compile-modes",
            "dual",
            "--compiled-only-modes",
            "threshold0.9",
            "dual",
        ]
    )
    timed = [(mode.name, compiled) for mode, compiled in bench._timed_modes(args)]
    assert timed == [
        ("exact", False),
        ("prefix", False),
        ("dual", False),
        ("dual", True),
        ("threshold0.9", True),  # no eager row: it comes from another run
    ]


# prefix: its step's length changes from block to block, so it compiles the most graphs.
@pytest.mark.parametrize("mode_name", ["exact", "dual", "prefix"])
def test_the_warm_up_compiles_every_graph_the_timed_rollout_runs(traced_graphs, mode_name):
    # A cache's first step in a block reads the refresh's logits; a warm-up of one step per
    # block never ran the cached step, which then compiled inside the timed rollout.
    graphs = traced_graphs
    shape = SHAPES["tiny"]
    policy = bench.build_policy(shape, 256, 0, torch.device("cpu"), dtype=torch.float32)
    prompts = modes.group_prompts(4, 2, 10, shape.mask_id, torch.device("cpu"))
    mode = bench.mode_argument(mode_name)
    config = mode.config(SamplerConfig(64, 32, 16, temperature=0.6))
    config = dataclasses.replace(config, compile=True)
    torch.compiler.reset()
    try:
        modes.rollout(policy, prompts, modes._warmup_config(config, 1), seed=0)
        warmed = len(graphs)
        modes.rollout(policy, prompts, config, seed=0)
    finally:
        torch.compiler.reset()
    assert warmed > 0
    assert len(graphs) == warmed
