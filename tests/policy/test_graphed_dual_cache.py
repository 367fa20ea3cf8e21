"""The static (CUDA-graph) dual cache gives the dual ``BlockKVCache``'s logits and tokens."""

import pytest
import torch

from bgpo_lightning.diffusion.sampler import SamplerConfig, generate
from bgpo_lightning.policy import BlockKVCache, DiffusionLM
from bgpo_lightning.policy.block_models import build_block_model
from bgpo_lightning.policy.graphed_dual_cache import GraphedDualCache
from tests.helpers import random_sequences, tiny_policy

PROMPT, RESPONSE, BLOCK = 6, 12, 4
PADDING = [2, 0, 4]


@pytest.fixture(scope="module")
def policy() -> DiffusionLM:
    policy = tiny_policy(seed=3).eval()
    with torch.no_grad():
        policy.model.lm_head.weight.mul_(30)  # confident enough for the tokens to depend on it
    return policy


def _prompts() -> tuple[torch.Tensor, torch.Tensor]:
    ids = random_sequences(len(PADDING), PROMPT, 0, seed=5)
    mask = torch.ones_like(ids)
    for row, pad in enumerate(PADDING):
        ids[row, :pad] = 0
        mask[row, :pad] = 0
    return ids, mask


def _full_mask(mask: torch.Tensor) -> torch.Tensor:
    return torch.cat([mask, mask.new_ones(mask.shape[0], RESPONSE)], dim=1)


def test_steps_equal_the_dual_cache_in_every_block_after_edits(policy: DiffusionLM) -> None:
    ids, mask = _prompts()
    full_mask = _full_mask(mask)
    x = torch.cat([ids, ids.new_full((ids.shape[0], RESPONSE), policy.mask_token_id)], dim=1)
    dual, static = BlockKVCache(policy, full_mask, "dual"), GraphedDualCache(policy, full_mask)
    with torch.no_grad():
        for block in range(RESPONSE // BLOCK):
            start = PROMPT + block * BLOCK
            end = start + BLOCK
            torch.testing.assert_close(
                static.refresh(x, start, end), dual.refresh(x, start, end), rtol=0, atol=0
            )
            for token in range(2):
                # The block changes between steps; the cached context must not.
                x[:, start + token] = 10 + token
                x[:, end - 1 if end < x.shape[1] else start] = 20 + token
                torch.testing.assert_close(
                    static.step(x, start, end), dual.step(x, start, end), rtol=0, atol=0
                )


def _generate(policy: DiffusionLM, config: SamplerConfig, cuda_graph: bool, device: str):
    ids, mask = (t.to(device) for t in _prompts())
    block_model = build_block_model(policy, _full_mask(mask), config.cache, cuda_graph)
    generator = torch.Generator(device).manual_seed(11)
    return generate(None, ids, policy.mask_token_id, config, generator, block_model=block_model)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize("threshold", [None, 0.5])
@pytest.mark.parametrize("refresh", [None, 2])
def test_rollouts_equal_the_dual_cache(
    policy: DiffusionLM, temperature: float, threshold: float | None, refresh: int | None
) -> None:
    config = SamplerConfig(
        gen_length=RESPONSE,
        block_length=BLOCK,
        steps=RESPONSE,
        temperature=temperature,
        threshold=threshold,
        cache="dual",
        cache_refresh_steps=refresh,
    )
    dual = _generate(policy, config, cuda_graph=False, device="cpu")
    static = _generate(policy, config, cuda_graph=True, device="cpu")
    assert not (dual == policy.mask_token_id).any()
    assert torch.equal(static, dual)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_the_replayed_graph_gives_the_eager_static_steps_tokens() -> None:
    policy = tiny_policy(seed=3).float().cuda().eval()
    config = SamplerConfig(
        gen_length=RESPONSE, block_length=BLOCK, steps=RESPONSE, temperature=0.8, cache="dual"
    )
    ids, mask = (t.cuda() for t in _prompts())
    outs = []
    for graph in (False, True):
        block_model = GraphedDualCache(policy, _full_mask(mask), graph=graph)
        generator = torch.Generator("cuda").manual_seed(11)
        outs.append(
            generate(None, ids, policy.mask_token_id, config, generator, block_model=block_model)
        )
    assert torch.equal(outs[0], outs[1])


def test_misuse_is_reported(policy: DiffusionLM) -> None:
    ids, mask = _prompts()
    full_mask = _full_mask(mask)
    x = torch.cat([ids, ids.new_full((ids.shape[0], RESPONSE), policy.mask_token_id)], dim=1)
    cache = GraphedDualCache(policy, full_mask)
    with torch.no_grad(), pytest.raises(RuntimeError, match="refresh"):
        cache.step(x, PROMPT, PROMPT + BLOCK)
    unpadded = GraphedDualCache(policy, None)
    with torch.no_grad():
        unpadded.refresh(x, PROMPT, PROMPT + BLOCK)
        with pytest.raises(ValueError, match="shape"):
            unpadded.refresh(x[:, 1:], PROMPT, PROMPT + BLOCK)
        with pytest.raises(ValueError, match="block length changed from 4 to 2"):
            unpadded.refresh(x, PROMPT, PROMPT + 2)
    with pytest.raises(ValueError, match="dual"):
        build_block_model(policy, full_mask, "prefix", cuda_graph=True)
    with pytest.raises(ValueError, match="dual"):
        SamplerConfig(cache="prefix", cuda_graph=True)
