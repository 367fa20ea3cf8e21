"""Dream checkpoints load natively as a bidirectional Qwen2 whose logits the policy shifts.

Dream predicts token ``i`` at position ``i - 1`` (its generation code takes
``cat([logits[:, :1], logits[:, :-1]], 1)``); the reference is ``reference_decoder``'s forward
with q/k/v biases and grouped-query attention, shifted the same way.
"""

import json
from pathlib import Path

import pytest
import torch
from transformers import Qwen2ForCausalLM

from bgpo_lightning.diffusion.sampler import SamplerConfig, generate
from bgpo_lightning.policy import (
    BlockKVCache,
    DiffusionLM,
    PolicySpec,
    build_char_tokenizer,
    build_policy,
    load_pretrained,
)
from bgpo_lightning.policy.block_models import build_block_model
from bgpo_lightning.policy.graphed_dual_cache import GraphedDualCache
from tests.policy.reference_decoder import Block, decoder_outputs, random_tensors, write_checkpoint

HIDDEN, HEADS, KV_HEADS, LAYERS, MLP = 32, 4, 2, 2, 48  # grouped-query: 2 heads per key/value
EPS, THETA = 1e-6, 1000000.0
VOCAB = 104
EOS, MASK = 100, 101  # Dream-7B: 151643 and 151666


def dream_config(**overrides) -> dict:
    """A Dream-v0-7B config.json, shrunk."""
    config = {
        "architectures": ["DreamModel"],
        "attention_dropout": 0.0,
        "auto_map": {  # remote code that is not there: the native loader never needs it
            "AutoConfig": "configuration_dream.DreamConfig",
            "AutoModel": "modeling_dream.DreamModel",
        },
        "bos_token_id": EOS,
        "eos_token_id": EOS,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": MLP,
        "mask_token_id": MASK,
        "max_position_embeddings": 128,
        "max_window_layers": 28,
        "model_type": "Dream",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "pad_token_id": 0,
        "rms_norm_eps": EPS,
        "rope_scaling": None,
        "rope_theta": THETA,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.46.2",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": VOCAB,
    }
    return config | overrides


def dream_tensors(seed: int = 0, tied: bool = False) -> dict[str, torch.Tensor]:
    kv = HIDDEN // HEADS * KV_HEADS
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        layer = f"model.layers.{i}."
        shapes |= {
            layer + "input_layernorm.weight": (HIDDEN,),
            layer + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
            layer + "self_attn.q_proj.bias": (HIDDEN,),
            layer + "self_attn.k_proj.weight": (kv, HIDDEN),
            layer + "self_attn.k_proj.bias": (kv,),
            layer + "self_attn.v_proj.weight": (kv, HIDDEN),
            layer + "self_attn.v_proj.bias": (kv,),
            layer + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            layer + "post_attention_layernorm.weight": (HIDDEN,),
            layer + "mlp.gate_proj.weight": (MLP, HIDDEN),
            layer + "mlp.up_proj.weight": (MLP, HIDDEN),
            layer + "mlp.down_proj.weight": (HIDDEN, MLP),
        }
    shapes["model.norm.weight"] = (HIDDEN,)
    if not tied:
        shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return random_tensors(shapes, seed)


def write_dream(directory: Path, tensors=None, **overrides) -> Path:
    write_checkpoint(directory, dream_config(**overrides), tensors or dream_tensors())
    tokenizer = build_char_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|endoftext|>", "<|mask|>"]})
    tokenizer.save_pretrained(directory)
    return directory


def reference_outputs(tensors, ids, biases=True, **variant) -> torch.Tensor:
    """Dream's (Qwen2's) own outputs over one unpadded row, unshifted."""

    def w(i: int, name: str, kind: str = "weight") -> torch.Tensor | None:
        key = f"model.layers.{i}.{name}.{kind}"
        return tensors[key] if kind == "weight" or biases else None

    blocks = [
        Block(
            attn_norm=w(i, "input_layernorm"),
            q=w(i, "self_attn.q_proj"),
            k=w(i, "self_attn.k_proj"),
            v=w(i, "self_attn.v_proj"),
            o=w(i, "self_attn.o_proj"),
            mlp_norm=w(i, "post_attention_layernorm"),
            gate=w(i, "mlp.gate_proj"),
            up=w(i, "mlp.up_proj"),
            down=w(i, "mlp.down_proj"),
            q_bias=w(i, "self_attn.q_proj", "bias"),
            k_bias=w(i, "self_attn.k_proj", "bias"),
            v_bias=w(i, "self_attn.v_proj", "bias"),
        )
        for i in range(LAYERS)
    ]
    embed = tensors["model.embed_tokens.weight"]
    head = tensors.get("lm_head.weight", embed)
    settings = {"eps": EPS, "theta": THETA} | variant
    norm = tensors["model.norm.weight"]
    return decoder_outputs(ids, embed, blocks, norm, head, HEADS, KV_HEADS, **settings)


def reference(tensors, ids, **variant) -> torch.Tensor:
    """Dream's diffusion logits: position i reads the output at i - 1, position 0 its own."""
    out = reference_outputs(tensors, ids, **variant)
    return torch.cat([out[:1], out[:-1]])


def rows(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    """A Dream checkpoint directory, its tensors and the policy loaded from it."""
    directory = write_dream(tmp_path_factory.mktemp("dream"))
    policy, tokenizer = build_policy(PolicySpec(path=str(directory)))
    return directory, dream_tensors(), policy.eval(), tokenizer


def test_dream_loads_natively_shifted_and_matches_the_reference(dream):
    _, tensors, policy, _ = dream
    assert isinstance(policy.model, Qwen2ForCausalLM) and policy.shifted_logits
    attention = policy.model.model.layers[0].self_attn
    assert attention.k_proj.out_features * HEADS == attention.q_proj.out_features * KV_HEADS
    ids = rows(3, 11)
    with torch.no_grad():
        logits = policy(ids).double()
    difference = max(
        (logits[i] - reference(tensors, row)).abs().max().item() for i, row in enumerate(ids)
    )
    print(f"Dream max abs difference to the reference: {difference:.2e}")
    assert difference < 1e-5
    # Without the shift every position but the first would be off.
    unshifted = reference_outputs(tensors, ids[0])
    assert (logits[0, 1:] - unshifted[1:]).abs().amax(-1).min() > 1e-3


@pytest.mark.parametrize(
    "variant",
    [{"biases": False}, {"causal": True}, {"theta": 10000.0}],
    ids=["no_biases", "causal", "other_theta"],
)
def test_the_reference_tells_a_wrong_model_apart(dream, variant):
    _, tensors, policy, _ = dream
    ids = rows(1, 11)
    with torch.no_grad():
        logits = policy(ids)[0].double()
    assert (logits - reference(tensors, ids[0], **variant)).abs().max() > 1e-3


def padded_batch(lengths: list[int], pad: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad)
    mask = torch.zeros_like(ids)
    alone = [rows(1, n, seed=i)[0] for i, n in enumerate(lengths)]
    for i, row in enumerate(alone):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return ids, mask, alone


def test_left_padded_rows_match_each_row_alone(dream):
    """Except at each row's first real token: as in Dream's own batched code it reads the
    output of the padding before it. That token is always part of the prompt, never scored."""
    _, tensors, policy, tokenizer = dream
    ids, mask, alone = padded_batch([11, 7, 4], tokenizer.pad_token_id)
    with torch.no_grad():
        logits = policy(ids, mask).double()
    for i, row in enumerate(alone):
        first = ids.shape[1] - len(row)
        assert (logits[i, first + 1 :] - reference(tensors, row)[1:]).abs().max() < 1e-5


class ProjectedPositions:
    """Counts the positions the output head projects (a forward hook on ``lm_head``)."""

    def __init__(self, model) -> None:
        self.counts: list[int] = []
        model.lm_head.register_forward_hook(
            lambda _, args, __: self.counts.append(args[0].shape[1])
        )


@pytest.mark.parametrize("padded", [False, True])
def test_windows_are_slices_of_the_shifted_logits_and_skip_the_rest(dream, padded):
    directory, _, _, _ = dream
    policy = build_policy(PolicySpec(path=str(directory)))[0].eval()  # a copy to hook
    projected = ProjectedPositions(policy.model)
    ids = rows(3, 12)
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :3] = 0
        mask[2, :1] = 0
    with torch.no_grad():
        full = policy(ids, mask)
        for keep in (1, 5, 11, 12, slice(0, 1), slice(0, 4), slice(3, 8), slice(1, 12)):
            window = keep if isinstance(keep, slice) else slice(12 - keep, 12)
            # Equal up to float32 rounding (fewer rows in the head's matmul); a window off by
            # one position would be off by O(1).
            torch.testing.assert_close(
                policy(ids, mask, logits_to_keep=keep), full[:, window], rtol=0, atol=1e-5
            )
            width = window.stop - window.start
            # One position fewer when the window starts at 0 (position 0 reads itself).
            assert projected.counts[-1] == width - (window.start == 0 and width > 1)


def test_save_and_reload_keep_the_shift_and_the_ids(dream, tmp_path):
    _, _, policy, tokenizer = dream
    policy.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "qwen2" and saved["bgpo_shifted_logits"] is True
    assert saved["mask_token_id"] == MASK and "auto_map" not in saved
    reloaded, reloaded_tokenizer = build_policy(PolicySpec(path=str(tmp_path)))
    assert reloaded.shifted_logits and reloaded.mask_token_id == MASK
    assert reloaded_tokenizer.eos_token_id == EOS
    ids = rows(2, 10)
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(ids), policy(ids))
        assert torch.equal(reloaded(ids, logits_to_keep=4), policy(ids, logits_to_keep=4))


def test_mask_and_eos_ids_come_from_the_config(dream):
    _, _, policy, tokenizer = dream
    assert policy.mask_token_id == MASK != build_char_tokenizer().mask_token_id
    assert tokenizer.eos_token_id == EOS


def test_a_dream_checkpoint_never_loads_unshifted(dream):
    directory = dream[0]
    model = load_pretrained(directory, trust_remote_code=True)  # remote code is ignored
    assert isinstance(model, Qwen2ForCausalLM)
    assert DiffusionLM(model, MASK).shifted_logits


def test_tied_output_head(tmp_path):
    tensors = dream_tensors(seed=1, tied=True)
    directory = write_dream(tmp_path, tensors, tie_word_embeddings=True)
    policy = build_policy(PolicySpec(path=str(directory)))[0].eval()
    model = policy.model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    ids = rows(1, 9)
    with torch.no_grad():
        difference = (policy(ids)[0].double() - reference(tensors, ids[0])).abs().max()
    assert difference < 1e-5


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("start", [0, 5])
def test_block_cache_serves_the_shifted_logits(dream, mode, start):
    _, _, policy, tokenizer = dream
    ids, mask, _ = padded_batch([14, 12, 13], tokenizer.pad_token_id)
    end = start + 4
    cache = BlockKVCache(policy, mask, mode)
    with torch.no_grad():
        expected = policy(ids, mask, logits_to_keep=slice(start, end))
        torch.testing.assert_close(cache.refresh(ids, start, end), expected, rtol=0, atol=1e-5)
        before = cache.step(ids, start, end)
        torch.testing.assert_close(before, expected, rtol=0, atol=1e-5)
        if start > 0:
            # The position before the block is rerun at every step, not cached.
            changed = ids.clone()
            changed[:, start - 1] = 50
            assert not torch.equal(cache.step(changed, start, end), before)


def test_the_graphed_dual_cache_serves_the_dual_caches_shifted_logits(dream):
    _, _, policy, tokenizer = dream
    ids, mask, _ = padded_batch([14, 12, 13], tokenizer.pad_token_id)
    dual = BlockKVCache(policy, mask, "dual")
    graphed = GraphedDualCache(policy, mask, graph=False)  # the captured step, run eagerly
    x = ids.clone()
    with torch.no_grad():
        for start in (5, 9):
            end = start + 4
            torch.testing.assert_close(
                graphed.refresh(x, start, end), dual.refresh(x, start, end), rtol=0, atol=0
            )
            for token in range(2):
                # The block and the position before it, which is rerun, change between steps.
                x[:, start + token] = 40 + token
                x[:, start - 1] = 50 + token
                torch.testing.assert_close(
                    graphed.step(x, start, end), dual.step(x, start, end), rtol=0, atol=0
                )
        with pytest.raises(ValueError, match="token before the block"):
            graphed.refresh(x, 0, 4)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_a_shifted_policys_rollout_is_the_same_through_the_graphed_cache(dream, threshold):
    _, _, policy, tokenizer = dream
    ids, mask, _ = padded_batch([7, 5, 6], tokenizer.pad_token_id)
    config = SamplerConfig(
        gen_length=8, block_length=4, steps=8, temperature=0.8, threshold=threshold, cache="dual"
    )
    full_mask = torch.cat([mask, mask.new_ones(mask.shape[0], config.gen_length)], dim=1)
    rollouts = []
    for cuda_graph in (False, True):
        block_model = build_block_model(policy, full_mask, "dual", cuda_graph)
        generator = torch.Generator().manual_seed(3)
        rollouts.append(
            generate(None, ids, policy.mask_token_id, config, generator, block_model=block_model)
        )
    assert not (rollouts[0] == policy.mask_token_id).any()
    assert torch.equal(rollouts[1], rollouts[0])


def test_a_block_cache_that_would_not_shift_refuses(dream):
    class OwnStep(BlockKVCache):
        def step(self, x, start, end):
            return super().step(x, start, end)

    with pytest.raises(ValueError, match="shifted logits"):
        OwnStep(dream[2], None, "dual")
