"""Gradient checkpointing: the same gradients through BGPO's likelihood loop, layers recomputed
during backward with fewer activations kept, and the no-grad sampler unchanged."""

import warnings

import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.diffusion.sampler import SamplerConfig, generate
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules.likelihood import OldTerms
from bgpo_lightning.objectives import build_objective
from bgpo_lightning.policy import (
    LoraSpec,
    PolicySpec,
    build_policy,
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
)
from bgpo_lightning.policy.block_models import build_block_model
from bgpo_lightning.policy.lora import add_lora
from tests.helpers import TINY, tiny_policy
from tests.modules.test_likelihood import LENGTH, PROMPT, loop_for, rollout
from tests.objectives.test_bgpo import SavedActivationMeter

LORA = LoraSpec(r=4, alpha=8.0)


def policy(checkpointing: bool, lora: bool = False):
    """The same float64 tiny policy (adapter with random ``B``, so every factor has a
    gradient), in training mode as in ``training_step``."""
    model = tiny_policy(seed=3)
    if lora:
        torch.manual_seed(4)
        add_lora(model, LORA)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.1)
    if checkpointing:
        enable_gradient_checkpointing(model.model)
    return model.train()


def bgpo_gradients(model) -> dict[str, torch.Tensor]:
    """Gradients of one BGPO update (one backward per mask sample), by parameter name."""
    roll = rollout()
    masks = build_estimator("stratified").draw(
        roll.num_responses, LENGTH, 3, torch.Generator().manual_seed(0), prompt_length=PROMPT
    )
    loop = loop_for(model, build_objective("bgpo"), micro_batch_size=4)
    loop.update(roll, masks, OldTerms(), range(3), lambda loss: loss.backward())
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lora", [False, True])
def test_bgpo_gradients_are_the_same_with_checkpointing(lora):
    plain = bgpo_gradients(policy(checkpointing=False, lora=lora))
    checkpointed = bgpo_gradients(policy(checkpointing=True, lora=lora))
    assert plain.keys() == checkpointed.keys()
    assert all(("lora_" in n) == lora for n in plain)  # with LoRA only the adapter trains
    for name, grad in plain.items():
        assert grad.dtype == torch.float64
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-10, atol=1e-13, msg=name)
    assert sum(g.norm() for g in plain.values()) > 1e-3


def forward_backward(model) -> tuple[int, int]:
    """(calls of the first layer's MLP, peak bytes held for backward) over one forward and
    backward of a response's logits."""
    calls = []
    # A pre-hook: the recompute stops as soon as it has what backward needs, mid-MLP.
    mlp = model.model.model.layers[0].mlp
    hook = mlp.register_forward_pre_hook(lambda *_: calls.append(1))
    ids = rollout().prompt_ids.repeat(1, 4)
    try:
        with SavedActivationMeter(model.parameters()) as meter:
            model(ids, logits_to_keep=8).square().sum().backward()
    finally:
        hook.remove()
    return len(calls), meter.peak


def test_checkpointing_recomputes_layers_in_backward_and_keeps_fewer_activations():
    plain_calls, plain_peak = forward_backward(policy(checkpointing=False))
    calls, peak = forward_backward(policy(checkpointing=True))
    assert plain_calls == 1 and calls == 2  # the layer ran again during backward
    assert peak < 0.6 * plain_peak, (peak, plain_peak)


def test_policy_spec_turns_it_on_for_training_mode_only():
    torch.manual_seed(0)
    model, _ = build_policy(PolicySpec(tiny=TINY, gradient_checkpointing=True))
    assert all(layer.gradient_checkpointing for layer in model.model.model.layers)
    assert forward_backward(model.train())[0] == 2
    assert forward_backward(model.eval())[0] == 1


def test_disabling_runs_each_layer_once_again_without_a_deprecation_warning():
    model = policy(checkpointing=True)
    assert forward_backward(model)[0] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # transformers' old method names warn
        disable_gradient_checkpointing(model.model)
        disable_gradient_checkpointing(model.model)  # already off: nothing to undo
    assert not any(layer.gradient_checkpointing for layer in model.model.model.layers)
    assert forward_backward(model.train())[0] == 1


def test_a_model_without_support_is_a_config_error():
    with pytest.raises(ConfigError, match="policy.gradient_checkpointing: Linear does not"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_sampler_in_training_mode_is_unchanged(cache):
    """The rollout samples from the policy in training mode without gradients: layers run
    as they are, the block KV cache included."""
    ids = rollout().prompt_ids[:3]
    prompt_mask = torch.ones_like(ids)
    prompt_mask[0, :2] = 0  # left padding
    config = SamplerConfig(gen_length=8, block_length=4, steps=4, temperature=1.0, cache=cache)
    full_mask = torch.cat([prompt_mask, torch.ones(3, 8, dtype=torch.long)], dim=1)

    def sample(model):
        with torch.no_grad():
            return generate(
                lambda x, block: model(x, full_mask, logits_to_keep=block),
                ids,
                model.mask_token_id,
                config,
                torch.Generator().manual_seed(5),
                windowed=True,
                block_model=build_block_model(model, full_mask, cache),
            )

    assert torch.equal(sample(policy(True, lora=True)), sample(policy(False, lora=True)))
