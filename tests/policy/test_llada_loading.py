"""LLaDA checkpoints in their published layout load natively as a bidirectional Llama.

The reference is ``reference_decoder``'s plain-torch forward reading the LLaDA-named tensors
directly; the loaded model must match it to float32 rounding.
"""

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy import (
    BlockKVCache,
    PolicySpec,
    build_char_tokenizer,
    build_policy,
    load_pretrained,
)
from tests.policy.reference_decoder import Block, decoder_outputs, random_tensors, write_checkpoint

HIDDEN, HEADS, KV_HEADS, LAYERS, MLP = 32, 4, 4, 2, 48
EPS, THETA = 1e-5, 500000.0
VOCAB = 104  # the character tokenizer's 100 tokens, the two below, and two unused rows
EOS, MASK = 100, 101  # LLaDA's config names them (126081 and 126336 for LLaDA-8B)
P = "model.transformer."


def llada_config(**overrides) -> dict:
    """A LLaDA-8B config.json, shrunk."""
    config = {
        "activation_type": "silu",
        "alibi": False,
        "alibi_bias_max": 8.0,
        "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "auto_map": {  # remote code that is not there: the native loader never needs it
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": HIDDEN,
        "embedding_dropout": 0.0,
        "embedding_size": VOCAB,
        "eos_token_id": EOS,
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": MASK,
        "max_sequence_length": 64,
        "mlp_hidden_size": MLP,
        "mlp_ratio": 4,
        "model_type": "llada",
        "multi_query_attention": None,
        "n_heads": HEADS,
        "n_kv_heads": KV_HEADS,
        "n_layers": LAYERS,
        "pad_token_id": EOS,
        "precision": "amp_bf16",
        "residual_dropout": 0.0,
        "rms_norm_eps": EPS,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": THETA,
        "scale_logits": False,
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": VOCAB,
        "weight_tying": False,
    }
    return config | overrides


def llada_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    shapes = {f"{P}wte.weight": (VOCAB, HIDDEN)}
    kv = HIDDEN // HEADS * KV_HEADS
    for i in range(LAYERS):
        block = f"{P}blocks.{i}."
        shapes |= {
            block + "attn_norm.weight": (HIDDEN,),
            block + "q_proj.weight": (HIDDEN, HIDDEN),
            block + "k_proj.weight": (kv, HIDDEN),
            block + "v_proj.weight": (kv, HIDDEN),
            block + "attn_out.weight": (HIDDEN, HIDDEN),
            block + "ff_norm.weight": (HIDDEN,),
            block + "ff_proj.weight": (MLP, HIDDEN),
            block + "up_proj.weight": (MLP, HIDDEN),
            block + "ff_out.weight": (HIDDEN, MLP),
        }
    shapes |= {f"{P}ln_f.weight": (HIDDEN,), f"{P}ff_out.weight": (VOCAB, HIDDEN)}
    return random_tensors(shapes, seed)


def write_llada(directory: Path, tensors=None, shards: int = 1, **overrides) -> Path:
    write_checkpoint(directory, llada_config(**overrides), tensors or llada_tensors(), shards)
    tokenizer = build_char_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|endoftext|>", "<|mask|>"]})
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|mask|>"]) == [EOS, MASK]
    tokenizer.save_pretrained(directory)
    return directory


def reference(tensors, ids, swap_gate_and_up=False, **variant) -> torch.Tensor:
    """LLaDA's forward over one unpadded row, from the LLaDA-named tensors."""

    def w(i: int, name: str) -> torch.Tensor:
        return tensors[f"{P}blocks.{i}.{name}.weight"]

    gate, up = ("up_proj", "ff_proj") if swap_gate_and_up else ("ff_proj", "up_proj")
    blocks = [
        Block(
            attn_norm=w(i, "attn_norm"),
            q=w(i, "q_proj"),
            k=w(i, "k_proj"),
            v=w(i, "v_proj"),
            o=w(i, "attn_out"),
            mlp_norm=w(i, "ff_norm"),
            gate=w(i, gate),
            up=w(i, up),
            down=w(i, "ff_out"),
        )
        for i in range(LAYERS)
    ]
    settings = {"eps": EPS, "theta": THETA} | variant
    return decoder_outputs(
        ids,
        tensors[f"{P}wte.weight"],
        blocks,
        tensors[f"{P}ln_f.weight"],
        tensors[f"{P}ff_out.weight"],
        HEADS,
        KV_HEADS,
        **settings,
    )


def rows(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    """A LLaDA checkpoint directory, its tensors and the policy loaded from it."""
    directory = write_llada(tmp_path_factory.mktemp("llada"))
    policy, tokenizer = build_policy(PolicySpec(path=str(directory)))
    return directory, llada_tensors(), policy.eval(), tokenizer


def max_difference(policy, tensors, ids) -> float:
    with torch.no_grad():
        logits = policy(ids).double()
    return max(
        (logits[i] - reference(tensors, row)).abs().max().item() for i, row in enumerate(ids)
    )


def test_llada_loads_natively_and_matches_the_reference(llada):
    directory, tensors, policy, _ = llada
    assert isinstance(policy.model, LlamaForCausalLM)
    assert not policy.shifted_logits
    assert next(policy.parameters()).dtype == torch.float32
    ids = rows(3, 11)
    difference = max_difference(policy, tensors, ids)
    print(f"LLaDA max abs difference to the reference: {difference:.2e}")
    assert difference < 1e-5


@pytest.mark.parametrize(
    "variant",
    [
        {"swap_gate_and_up": True},
        {"causal": True},
        {"rotary": False},
        {"theta": 10000.0},
        {"eps": 1e-1},
    ],
    ids=["gate_up_swapped", "causal", "no_rope", "other_theta", "other_eps"],
)
def test_the_reference_tells_a_wrong_model_apart(llada, variant):
    """Each mistake a loader could make moves the logits far beyond the tolerance."""
    _, tensors, policy, _ = llada
    ids = rows(1, 11)
    with torch.no_grad():
        logits = policy(ids)[0].double()
    assert (logits - reference(tensors, ids[0], **variant)).abs().max() > 1e-3


def test_left_padded_rows_match_each_row_alone(llada):
    _, tensors, policy, tokenizer = llada
    lengths = [11, 7, 4]
    width = max(lengths)
    ids = torch.full((len(lengths), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    alone = [rows(1, n, seed=i)[0] for i, n in enumerate(lengths)]
    for i, row in enumerate(alone):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    with torch.no_grad():
        logits = policy(ids, mask).double()
    for i, row in enumerate(alone):
        difference = (logits[i, width - len(row) :] - reference(tensors, row)).abs().max()
        assert difference < 1e-5


def test_sharded_checkpoint_with_an_index_loads_the_same(llada, tmp_path):
    _, tensors, policy, _ = llada
    directory = write_llada(tmp_path, shards=3)
    weight_map = json.loads((directory / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(weight_map.values())) == 3 and set(weight_map) == set(tensors)
    assert not (directory / "model.safetensors").exists()
    sharded, _ = build_policy(PolicySpec(path=str(directory)))
    ids = rows(2, 9)
    with torch.no_grad():
        assert torch.equal(sharded.eval()(ids), policy(ids))


def test_missing_unknown_or_misshapen_weights_are_one_line_errors(tmp_path):
    key = f"{P}blocks.1.up_proj.weight"
    missing = {name: t for name, t in llada_tensors().items() if name != key}
    directory = write_llada(tmp_path / "missing", missing)
    with pytest.raises(ConfigError) as info:
        load_pretrained(directory)
    assert key in str(info.value) and str(directory) in str(info.value)
    assert "\n" not in str(info.value)

    extra = llada_tensors() | {f"{P}blocks.0.attn_bias.weight": torch.zeros(3)}
    directory = write_llada(tmp_path / "extra", extra, shards=2)
    with pytest.raises(ConfigError, match=r"attn_bias\.weight.*model-0000\d-of-00002") as info:
        load_pretrained(directory)
    assert "\n" not in str(info.value)

    wrong = llada_tensors() | {key: torch.zeros(MLP + 1, HIDDEN)}
    with pytest.raises(ConfigError, match=r"up_proj\.weight.*shape"):
        load_pretrained(write_llada(tmp_path / "shape", wrong))


@pytest.mark.parametrize(
    "setting",
    [
        {"include_bias": True},
        {"include_qkv_bias": True},
        {"weight_tying": True},
        {"block_type": "sequential"},
        {"alibi": True, "rope": False},
        {"attention_layer_norm": True},
        {"activation_type": "swiglu"},
    ],
    ids=lambda setting: next(iter(setting)),
)
def test_unsupported_variants_are_refused_in_one_line(tmp_path, setting):
    directory = write_llada(tmp_path, **setting)
    with pytest.raises(ConfigError, match=next(iter(setting))) as info:
        load_pretrained(directory)
    assert "\n" not in str(info.value) and "config.json" in str(info.value)


def test_absent_settings_take_llada_defaults_and_are_refused_when_not_llama(tmp_path):
    config = llada_config()
    del config["block_type"]  # LLaDA's default is the "sequential" block
    write_checkpoint(tmp_path, config, llada_tensors())
    with pytest.raises(ConfigError, match="block_type='sequential' .absent"):
        load_pretrained(tmp_path)


def test_save_pretrained_writes_a_llama_that_reloads_identically(llada, tmp_path):
    _, _, policy, tokenizer = llada
    policy.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "llama" and "auto_map" not in saved
    assert saved["mask_token_id"] == MASK and saved["eos_token_id"] == EOS
    reloaded, reloaded_tokenizer = build_policy(PolicySpec(path=str(tmp_path)))
    assert reloaded.mask_token_id == MASK and reloaded_tokenizer.eos_token_id == EOS
    ids = rows(2, 10)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(ids), policy(ids))
        assert torch.equal(reloaded(ids, mask), policy(ids, mask))


def test_mask_and_eos_ids_come_from_the_config(llada):
    _, _, policy, tokenizer = llada
    assert build_char_tokenizer().mask_token_id != MASK  # the tokenizer alone would say 2
    assert policy.mask_token_id == MASK
    assert tokenizer.eos_token_id == EOS and tokenizer.eos_token == "<|endoftext|>"


def test_a_chosen_mask_id_wins_and_is_kept_through_save_and_reload(llada, tmp_path):
    chosen, tokenizer = build_policy(PolicySpec(path=str(llada[0]), mask_token_id=7))
    assert chosen.mask_token_id == 7
    chosen.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert build_policy(PolicySpec(path=str(tmp_path)))[0].mask_token_id == 7


def test_no_remote_code_is_used_and_dtype_is_honoured(llada):
    directory, tensors, policy, _ = llada
    assert not (directory / "modeling_llada.py").exists()
    model = load_pretrained(directory, trust_remote_code=True, dtype=torch.bfloat16)
    assert isinstance(model, LlamaForCausalLM)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.config.dtype == torch.bfloat16
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    ids = rows(1, 8)
    with torch.no_grad():
        close = model(input_ids=ids).logits.float()
        # bfloat16 has 8 significant bits, and the causal flag is off as for float32.
        torch.testing.assert_close(close, policy(ids), atol=0.15, rtol=0.05)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_block_cache_serves_the_native_llada(llada, mode):
    _, _, policy, _ = llada
    ids = rows(2, 14)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    cache = BlockKVCache(policy, mask, mode)
    with torch.no_grad():
        expected = policy(ids, mask, logits_to_keep=slice(6, 10))
        torch.testing.assert_close(cache.refresh(ids, 6, 10), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(cache.step(ids, 6, 10), expected, rtol=0, atol=1e-5)
