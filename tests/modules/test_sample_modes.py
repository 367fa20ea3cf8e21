"""The module's sampler picks its decoding mode from the config (rollout and eval_sampler)."""

import dataclasses

import pytest
import torch

from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.modules import DiffusionRLModule
from tests.modules.conftest import SAMPLER, rl_kwargs


@pytest.fixture(scope="module")
def module() -> DiffusionRLModule:
    module = DiffusionRLModule(**rl_kwargs())
    module.policy.double().eval()  # float64: cached and exact logits agree to rounding
    return module


def _sample(module: DiffusionRLModule, config: SamplerConfig) -> torch.Tensor:
    ids, mask = module.prompt_tensors(["12+3=", "7*8-1=", "4="])
    assert not mask.all(), "the prompts should be left-padded"
    return module.sample(ids, mask, config, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_sample_with_a_cache_refreshed_every_step_equals_the_exact_one(
    module: DiffusionRLModule, mode: str
) -> None:
    cached = dataclasses.replace(SAMPLER, cache=mode, cache_refresh_steps=1)
    assert torch.equal(_sample(module, cached), _sample(module, SAMPLER))


@pytest.mark.parametrize(
    "changes", [{"cache": "prefix"}, {"cache": "dual", "threshold": 0.9}, {"threshold": 0.9}]
)
def test_fast_modes_complete_every_response(module: DiffusionRLModule, changes: dict) -> None:
    responses = _sample(module, dataclasses.replace(SAMPLER, **changes))
    assert responses.shape == (3, SAMPLER.gen_length)
    assert not (responses == module.policy.mask_token_id).any()


def test_modes_are_hyperparameters() -> None:
    rollout = dataclasses.replace(SAMPLER, cache="dual", cache_refresh_steps=2, threshold=0.9)
    module = DiffusionRLModule(**rl_kwargs(rollout=rollout))
    assert module.rollout == rollout
    logged = module.hparams["rollout"]
    logged = logged if isinstance(logged, dict) else dataclasses.asdict(logged)
    assert (logged["cache"], logged["cache_refresh_steps"], logged["threshold"]) == ("dual", 2, 0.9)


def test_compile_runs_the_sampler_through_the_compiled_forward(
    module, monkeypatch, compiles
) -> None:
    # `compiles` tests the wiring, not the compiler: the same numbers as eager.
    # Undone after the test: the shared module keeps no stand-in compiled forward.
    monkeypatch.setitem(vars(module.policy.model), "_sampling_forward", None)
    for mode in ({}, {"cache": "dual", "threshold": 0.9}):
        config = dataclasses.replace(SAMPLER, **mode)
        compiled = _sample(module, dataclasses.replace(config, compile=True))
        assert torch.equal(compiled, _sample(module, config))
    assert any(w.calls for w in compiles)  # the compiled runs called the model through it
    assert "forward" not in vars(module.policy.model)
