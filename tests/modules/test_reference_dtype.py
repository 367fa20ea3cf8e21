"""The frozen KL reference copy in bfloat16 weights: half the memory, close logits, trains."""

import pytest
import torch

from bgpo_lightning.errors import ConfigError
from tests.helpers import random_sequences
from tests.modules.test_rl_module import module, trainer

KL = {"kl_coef": 0.1}


def test_default_reference_has_the_policy_dtype():
    model = module(objective_settings=KL)
    assert {p.dtype for p in model.reference.parameters()} == {torch.float32}


def test_bfloat16_reference_copy(tmp_path, sudoku_data):
    model = module(objective_settings=KL, reference_dtype="bfloat16")
    reference = model.reference
    assert {p.dtype for p in reference.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.policy.parameters()} == {torch.float32}
    # Buffers (RoPE's inverse frequencies) keep their precision.
    assert {b.dtype for b in reference.buffers()} == {b.dtype for b in model.policy.buffers()}
    assert not any(p.requires_grad for p in reference.parameters()) and not reference.training
    ids = random_sequences(3, 6, 16, seed=7)
    with torch.no_grad():
        policy_logits = model.policy(ids)
        reference_logits = reference(ids)
    assert reference_logits.dtype == torch.bfloat16
    scale = policy_logits.abs().max()
    assert 0 < (reference_logits.float() - policy_logits).abs().max() < 0.05 * scale

    fit = trainer(tmp_path, 1, logger=False, enable_checkpointing=False)
    fit.fit(model, sudoku_data)
    assert fit.global_step == 1 and torch.isfinite(fit.callback_metrics["train/loss"])
    assert {p.dtype for p in reference.parameters()} == {torch.bfloat16}


def test_unknown_reference_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown reference_dtype 'bf16'; choose one of"):
        module(reference_dtype="bf16")  # named even without a KL term
