"""Tests of the block-cached sampler on the tiny float64 Llama policy, with left padding."""

import pytest
import torch

from bgpo_lightning.diffusion.cached_decoding import cached_generate, refreshes_at
from bgpo_lightning.diffusion.sampler import SamplerConfig, generate
from bgpo_lightning.policy import BlockKVCache, DiffusionLM
from tests.helpers import random_sequences, tiny_policy

PROMPT_LEN = 6
PADDING = [0, 3, 1, 0]  # left padding per row


@pytest.fixture(scope="module")
def policy() -> DiffusionLM:
    """The tiny policy with a sharpened output head: random weights give near-uniform
    probabilities, which no threshold tells apart."""
    policy = tiny_policy(seed=1).eval()
    with torch.no_grad():
        policy.model.lm_head.weight.mul_(100)
    return policy


def _prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts ``(4, PROMPT_LEN)`` and their mask."""
    ids = random_sequences(len(PADDING), PROMPT_LEN, 0, seed=2)
    mask = torch.ones_like(ids)
    for row, pad in enumerate(PADDING):
        ids[row, :pad] = 0
        mask[row, :pad] = 0
    return ids, mask


def _full_mask(mask: torch.Tensor, config: SamplerConfig) -> torch.Tensor:
    return torch.cat([mask, mask.new_ones(mask.shape[0], config.gen_length)], dim=1)


def _exact(policy: DiffusionLM, config: SamplerConfig, seed: int) -> torch.Tensor:
    ids, mask = _prompts()
    full_mask = _full_mask(mask, config)

    def block_logits(x: torch.Tensor, block: slice) -> torch.Tensor:
        return policy(x, full_mask, logits_to_keep=block)

    exact = SamplerConfig(**{**config.__dict__, "cache": "none", "cache_refresh_steps": None})
    generator = torch.Generator().manual_seed(seed)
    return generate(block_logits, ids, policy.mask_token_id, exact, generator, windowed=True)


class Counting:
    """A ``BlockModel`` wrapper that records each call's kind and input."""

    def __init__(self, inner: BlockKVCache):
        self.inner = inner
        self.calls: list[tuple[str, torch.Tensor]] = []

    def refresh(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        self.calls.append(("refresh", x.clone()))
        return self.inner.refresh(x, start, end)

    def step(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        self.calls.append(("step", x.clone()))
        return self.inner.step(x, start, end)


def _cached(
    policy: DiffusionLM, config: SamplerConfig, seed: int | None = 0
) -> tuple[torch.Tensor, Counting]:
    ids, mask = _prompts()
    model = Counting(BlockKVCache(policy, _full_mask(mask, config), config.cache))
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    # Through the dispatch in `generate`: the exact logits function is unused here.
    out = generate(None, ids, policy.mask_token_id, config, generator, block_model=model)
    return out, model


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_cache_refreshed_every_step_equals_the_exact_sampler(
    policy: DiffusionLM, mode: str, temperature: float, precision: str
) -> None:
    config = SamplerConfig(
        gen_length=12,
        block_length=4,
        steps=6,
        temperature=temperature,
        cache=mode,
        cache_refresh_steps=1,
        precision=precision,
    )
    out, model = _cached(policy, config, seed=3)
    assert torch.equal(out, _exact(policy, config, seed=3))
    assert [kind for kind, _ in model.calls] == ["refresh"] * config.steps


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("refresh_steps", [None, 2])
@pytest.mark.parametrize("threshold", [None, 0.3])
def test_cached_modes_keep_the_sampler_invariants(
    policy: DiffusionLM, mode: str, refresh_steps: int | None, threshold: float | None
) -> None:
    config = SamplerConfig(
        gen_length=12,
        block_length=4,
        steps=12,
        cache=mode,
        cache_refresh_steps=refresh_steps,
        threshold=threshold,
    )
    out, model = _cached(policy, config, seed=None)
    ids, _ = _prompts()
    mask_id = policy.mask_token_id
    assert not (out == mask_id).any()
    assert torch.equal(out[:, :PROMPT_LEN], ids)
    again, _ = _cached(policy, config, seed=7)
    assert torch.equal(out, again), "greedy decoding depends on the generator"
    # Blocks left to right; each block starts with a refresh, on a fully masked block.
    current = []
    for kind, x in model.calls:
        masks = (x[:, PROMPT_LEN:] == mask_id).view(x.shape[0], config.num_blocks, -1)
        block = int(masks.any(-1).any(0).long().argmax())
        assert not masks[:, :block].any() and masks[:, block + 1 :].all()
        if not current or current[-1] != block:
            assert kind == "refresh" and masks[:, block].all()
        current.append(block)
    assert current == sorted(current)
    if threshold is None:
        kinds = [kind for kind, _ in model.calls]
        expected = [
            "refresh" if refreshes_at(s, refresh_steps) else "step"
            for s in range(config.steps_per_block)
        ]
        assert kinds == expected * config.num_blocks
    else:
        assert len(model.calls) < config.steps


def test_cached_sampling_is_seeded(policy: DiffusionLM) -> None:
    config = SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=1.0, cache="dual")
    first, _ = _cached(policy, config, seed=4)
    assert torch.equal(first, _cached(policy, config, seed=4)[0])
    assert not torch.equal(first, _cached(policy, config, seed=5)[0])


def test_cached_mode_needs_a_block_model(policy: DiffusionLM) -> None:
    ids, _ = _prompts()
    with pytest.raises(ValueError, match="block_model"):
        generate(None, ids, policy.mask_token_id, SamplerConfig(cache="prefix"))
    # cached_generate itself honours the config, whatever its cache field says.
    config = SamplerConfig(gen_length=8, block_length=4, steps=2, cache="prefix")
    model = BlockKVCache(policy, _full_mask(_prompts()[1], config), "dual")
    assert not (cached_generate(model, ids, policy.mask_token_id, config) == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cache": "full"}, "cache"),
        ({"cache_refresh_steps": 2}, "cache_refresh_steps"),
        ({"cache": "dual", "cache_refresh_steps": 0}, "cache_refresh_steps"),
    ],
)
def test_cache_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**kwargs)
