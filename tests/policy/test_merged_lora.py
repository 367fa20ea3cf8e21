"""Sampling with the LoRA adapter merged into stand-in weights: the same outputs as the adapter
path, the base and the adapter untouched afterwards, and one-line errors."""

import pytest
import torch
from peft.tuners.lora import Linear as LoraLinear

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy import LoraSpec, adapter_disabled
from bgpo_lightning.policy.lora import add_lora
from bgpo_lightning.policy.merged_lora import merged_adapter, merged_weight
from tests.helpers import random_sequences, tiny_policy, trained_lora_policy

SPEC = LoraSpec(r=4, alpha=8.0)


def lora_layers(policy) -> list[LoraLinear]:
    return [m for m in policy.modules() if isinstance(m, LoraLinear)]


def test_the_merged_weight_is_w_plus_scaled_b_a():
    layer = lora_layers(trained_lora_policy(SPEC))[0]
    w = layer.get_base_layer().weight.detach()
    a, b = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
    # The equation in float64, from the layer's own matrices: W + (alpha / r) B A.
    expected = w.double() + (SPEC.alpha / SPEC.r) * (b.double() @ a.double())
    assert (expected - w).abs().max() > 1e-3  # the adapter changes the weight
    torch.testing.assert_close(merged_weight(layer), expected, rtol=0, atol=1e-12)


def test_a_bfloat16_merge_is_summed_in_float32_and_rounded_once():
    layer = lora_layers(trained_lora_policy(SPEC))[0].to(torch.bfloat16)
    w = layer.get_base_layer().weight.detach()
    merged = merged_weight(layer)
    assert merged.dtype == torch.bfloat16
    a, b = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
    exact = w.double() + (SPEC.alpha / SPEC.r) * (b.double() @ a.double())
    # Within one bfloat16 rounding of the exact sum (plus peft's bf16 product of B and A).
    assert ((merged.double() - exact).abs() <= exact.abs() * 2**-7 + 1e-3).all()


def test_inside_the_policy_gives_the_adapter_paths_outputs():
    policy = trained_lora_policy(SPEC)
    ids = random_sequences(2, 4, 8)
    adapted = policy(ids).detach()
    with adapter_disabled(policy):
        base = policy(ids).detach()
    assert (adapted - base).abs().max() > 1e-3  # the test could tell them apart
    with merged_adapter(policy):
        merged = policy(ids).detach()
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-10)


def test_the_adapter_runs_no_product_inside():
    policy = trained_lora_policy(SPEC)
    calls = []
    hooks = [
        layer.lora_A["default"].register_forward_hook(lambda *_: calls.append(1))
        for layer in lora_layers(policy)
    ]
    with merged_adapter(policy):
        policy(random_sequences(1, 4, 8))
    assert calls == []
    policy(random_sequences(1, 4, 8))
    assert len(calls) == len(hooks)  # and it runs again afterwards
    for hook in hooks:
        hook.remove()


def test_the_base_weights_and_the_adapter_come_back_untouched_even_after_an_error():
    policy = trained_lora_policy(SPEC)
    before = {name: (p, p.detach().clone()) for name, p in policy.named_parameters()}
    ids = random_sequences(2, 4, 8)
    adapted = policy(ids).detach()
    layers = lora_layers(policy)
    originals = [layer.get_base_layer().weight for layer in layers]
    with pytest.raises(RuntimeError, match="inside"), merged_adapter(policy):
        # Every adapted layer runs a stand-in weight in here.
        swapped = [layer.get_base_layer().weight for layer in layers]
        assert all(now is not then for now, then in zip(swapped, originals, strict=True))
        raise RuntimeError("inside")
    after = dict(policy.named_parameters())
    assert after.keys() == before.keys()
    for name, (parameter, values) in before.items():
        assert after[name] is parameter  # the very same objects, for optimizers
        assert torch.equal(parameter, values)  # bit for bit
    assert not any(p.requires_grad for n, p in after.items() if "base_layer" in n)
    torch.testing.assert_close(policy(ids), adapted, rtol=0, atol=0)


def test_off_it_needs_no_adapter_and_on_without_one_it_is_a_config_error():
    policy = tiny_policy(seed=0)
    with merged_adapter(policy, enabled=False):
        pass
    message = r"^merge_lora needs a policy with a LoRA adapter"
    with pytest.raises(ConfigError, match=message), merged_adapter(policy):
        pass


def test_an_adapter_on_a_layer_other_than_linear_is_a_config_error_and_changes_nothing():
    spec = LoraSpec(r=4, alpha=8.0, target_modules=["q_proj", "embed_tokens"])
    policy = add_lora(tiny_policy(seed=0), spec)
    weights = dict(policy.named_parameters())
    message = r"linear layers only; .*embed_tokens is Embedding"
    with pytest.raises(ConfigError, match=message), merged_adapter(policy):
        pass
    assert all(p is weights[name] for name, p in policy.named_parameters())
