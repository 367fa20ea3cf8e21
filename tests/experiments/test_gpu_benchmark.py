"""CPU smoke test of the GPU benchmark (tiny shape): rows, OOM handling, FLOP count, outputs."""

from __future__ import annotations

import json

import torch

from experiments.gpu_benchmark import __main__ as bench
from experiments.gpu_benchmark import likelihood
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
