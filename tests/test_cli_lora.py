"""LoRA, gradient checkpointing and the reference dtype from the command line: a tiny fit, its
adapter-only checkpoint, the merged export, and validation from that checkpoint."""

import json

import torch
from safetensors.torch import load_file

from experiments import run
from tests.test_cli import BGPO, QUIET, SMALL_DATA, in_tmp, small_fit


def test_lora_fit_exports_merged_and_validates_from_the_adapter_checkpoint(tmp_path, capsys):
    code = run.main(
        small_fit(
            tmp_path,
            "--model.init_args.policy.lora.r", "4",
            "--model.init_args.policy.lora.alpha", "8",
            "--model.init_args.policy.lora.target_modules", '["q_proj", "v_proj"]',
            "--model.init_args.policy.gradient_checkpointing", "true",
            "--model.init_args.objective_settings", '{"kl_coef": 0.04}',
            "--model.init_args.group_size", "2",
            "--model.init_args.num_mc_samples", "1",
            "--trainer.max_steps", "2",
            "--trainer.val_check_interval", "2",
            "--trainer.limit_val_batches", "1",
        )
    )  # fmt: skip
    assert code == 0
    version = tmp_path / "sudoku_bgpo" / "version_0"
    hf = version / "hf_checkpoint"
    assert not any("lora" in key for key in load_file(hf / "model.safetensors"))
    adapter = json.loads((hf / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    last = version / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert state["state_dict"] and all(".lora_" in key for key in state["state_dict"])
    assert state["hyper_parameters"]["policy"]["lora"]["r"] == 4
    capsys.readouterr()

    # The policy (LoRA included) comes from the checkpoint's hyperparameters; the base is
    # rebuilt from the config's seed and the adapter loaded onto it.
    code = run.main(
        ["validate", "--config", BGPO, *SMALL_DATA, *QUIET, *in_tmp(tmp_path),
         "--ckpt_path", str(last)]
    )  # fmt: skip
    assert code == 0
    assert "val/accuracy" in capsys.readouterr().out
