"""LoRA on the policy: what trains, the base with the adapter disabled, the merged copy, the
block KV cache, and one-line errors for bad settings."""

import pytest
import torch
from peft.tuners.lora import LoraLayer

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy import (
    BlockKVCache,
    DiffusionLM,
    LoraSpec,
    PolicySpec,
    adapter_disabled,
    adapter_of,
    build_policy,
    merged_model,
)
from bgpo_lightning.policy.compiled_forward import compiled_forward, drop_compiled_forward
from bgpo_lightning.policy.lora import DEFAULT_TARGETS, add_lora
from tests import helpers
from tests.helpers import TINY, random_sequences, tiny_policy

SPEC = LoraSpec(r=4, alpha=8.0)


def trained_lora_policy(seed: int = 0) -> DiffusionLM:
    """A float64 LoRA policy whose adapter is not zero (as after some training)."""
    return helpers.trained_lora_policy(SPEC, seed)


def test_only_the_adapter_trains_and_it_starts_at_the_base():
    base = tiny_policy(seed=1)
    ids = random_sequences(2, 4, 8)
    before = base(ids).detach()
    policy = add_lora(base, SPEC)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    adapted = {n.rsplit(".", 1)[-1] for n, m in policy.named_modules() if isinstance(m, LoraLayer)}
    assert adapted == set(DEFAULT_TARGETS)
    assert sum(isinstance(m, LoraLayer) for m in policy.modules()) == 7 * TINY.num_layers
    assert policy.model is adapter_of(policy).get_base_model()  # adapted in place
    torch.testing.assert_close(policy(ids), before, rtol=0, atol=0)  # B starts at 0


def test_disabling_the_adapter_gives_the_base_model():
    ids = random_sequences(2, 4, 8)
    base = tiny_policy(seed=0)(ids).detach()
    policy = trained_lora_policy(seed=0)
    adapted = policy(ids).detach()
    assert (adapted - base).abs().max() > 1e-3
    with adapter_disabled(policy):
        torch.testing.assert_close(policy(ids), base, rtol=0, atol=1e-12)
    torch.testing.assert_close(policy(ids), adapted, rtol=0, atol=0)  # back on afterwards


def test_the_compiled_sampling_forward_runs_the_adapter(monkeypatch):
    # SamplerConfig.compile wraps the peft model's forward; dynamo must trace the adapter in.
    # The eager backend traces as inductor would and compiles nothing, so logits match exactly.
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend="eager"))
    ids = random_sequences(2, 4, 8)
    base = tiny_policy(seed=0)(ids, logits_to_keep=slice(4, 8)).detach()
    policy = trained_lora_policy(seed=0).eval()
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            eager = policy(ids, logits_to_keep=slice(4, 8))
            with compiled_forward(policy.model):
                compiled = policy(ids, logits_to_keep=slice(4, 8))
                with adapter_disabled(policy):
                    compiled_base = policy(ids, logits_to_keep=slice(4, 8))
    finally:
        drop_compiled_forward(policy.model)
        torch._dynamo.reset()
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)
    torch.testing.assert_close(compiled_base, base, rtol=0, atol=1e-12)
    assert (compiled - base).abs().max() > 1e-3


def test_merged_copy_is_a_plain_model_with_the_same_logits():
    ids = random_sequences(2, 4, 8)
    policy = trained_lora_policy()
    adapted = policy(ids).detach()
    merged = merged_model(policy)
    assert not any(isinstance(m, LoraLayer) for m in merged.modules())
    assert set(merged.state_dict()) == set(tiny_policy().model.state_dict())
    torch.testing.assert_close(DiffusionLM(merged, policy.mask_token_id)(ids), adapted)
    # The live policy keeps its adapter and its exact outputs.
    assert sum(isinstance(m, LoraLayer) for m in policy.modules()) == 7 * TINY.num_layers
    torch.testing.assert_close(policy(ids), adapted, rtol=0, atol=0)


@pytest.mark.parametrize("wrapped", [False, True])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_block_cache_runs_the_adapter(mode, wrapped):
    """The cache calls the transformers model directly: the LoRA layers inside it run, also
    when a ``DiffusionLM`` holds the peft wrapper rather than the bare model."""
    policy = trained_lora_policy().eval()
    merged = DiffusionLM(merged_model(policy), policy.mask_token_id).eval()
    if wrapped:
        policy = DiffusionLM(adapter_of(policy), policy.mask_token_id)
    x = random_sequences(2, 6, 8)
    mask = torch.ones_like(x)
    mask[0, :2] = 0
    x[:, 8:] = policy.mask_token_id
    with torch.no_grad():
        expected = merged(x, mask)[:, 6:10]
        cache = BlockKVCache(policy, mask, mode)
        torch.testing.assert_close(cache.refresh(x, 6, 10), expected)
        torch.testing.assert_close(cache.step(x, 6, 10), expected)


def test_policy_spec_builds_it_and_takes_a_dictionary():
    spec = PolicySpec(tiny=TINY, lora={"r": 2, "alpha": 4.0, "target_modules": ["q_proj"]})
    assert spec.lora == LoraSpec(r=2, alpha=4.0, target_modules=["q_proj"])
    policy, _ = build_policy(spec)
    assert adapter_of(policy) is not None
    assert sum(isinstance(m, LoraLayer) for m in policy.modules()) == TINY.num_layers
    assert adapter_of(build_policy(PolicySpec(tiny=TINY))[0]) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (LoraSpec(target_modules=["q_proj", "qkv"]), "target_modules entry 'qkv' matches no"),
        (LoraSpec(target_modules=[]), "policy.lora.target_modules must be a non-empty list"),
        (LoraSpec(r=0), "policy.lora.r must be >= 1, got 0"),
        (LoraSpec(alpha=0), "policy.lora.alpha must be > 0"),
        (LoraSpec(dropout=1.0), r"policy.lora.dropout must be in \[0, 1\)"),
    ],
)
def test_bad_settings_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        add_lora(tiny_policy(), spec)
