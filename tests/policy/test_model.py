"""Building, wrapping, saving and loading the LLaDA-shaped bidirectional model."""

import copy

import pytest
import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy import (
    DiffusionLM,
    PolicySpec,
    build_char_tokenizer,
    build_policy,
    load_pretrained,
    make_bidirectional,
)
from bgpo_lightning.policy.diffusion_lm import padding_mask
from tests.helpers import TINY, random_sequences, tiny_policy


def attention_layers(model):
    return [m for m in model.modules() if hasattr(m, "is_causal") and hasattr(m, "q_proj")]


def set_causal(policy: DiffusionLM, causal: bool) -> DiffusionLM:
    layers = attention_layers(policy.model)
    assert len(layers) == TINY.num_layers
    for layer in layers:
        layer.is_causal = causal
    policy.model.config.is_causal = causal  # transformers builds its mask from this one
    return policy


def last_token_changed(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, -1] = (y[:, -1] - 4 + 17) % 96 + 4  # another ordinary character
    assert not torch.equal(x, y)
    return y


def first_logits_move(policy: DiffusionLM, x: torch.Tensor) -> float:
    """How much position 0's logits change when only the last token changes."""
    with torch.no_grad():
        return (policy(x)[:, 0] - policy(last_token_changed(x))[:, 0]).abs().max().item()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny policy written with save_pretrained, with its tokenizer."""
    directory = tmp_path_factory.mktemp("tiny_hf")
    policy = tiny_policy(seed=3).eval()
    policy.model.save_pretrained(directory)
    build_char_tokenizer().save_pretrained(directory)
    return policy, directory


def test_built_model_is_bidirectional_and_a_causal_one_is_not():
    policy = tiny_policy().eval()
    x = random_sequences(2, 5, 6)
    assert first_logits_move(policy, x) > 1e-6
    causal = set_causal(copy.deepcopy(policy), True)
    assert first_logits_move(causal, x) == 0.0
    with torch.no_grad():  # ... although the last position does see the change.
        assert (causal(x)[:, -1] - causal(last_token_changed(x))[:, -1]).abs().max() > 1e-6
    make_bidirectional(causal.model)
    assert first_logits_move(causal, x) > 1e-6


def test_a_compiled_forward_stays_bidirectional():
    # Where transformers builds a mask under dynamo (a padded batch, or transformers' own SDPA
    # with torch < 2.14), config.is_causal = False keeps it bidirectional. The eager backend
    # traces the same way and compiles nothing, so the logits must match eager's exactly.
    policy = tiny_policy().eval()
    model = policy.model
    x = random_sequences(2, 5, 6)
    window = slice(2, 5)  # a tensor logits_to_keep, as the sampler asks
    with torch.no_grad():
        eager = policy(x, logits_to_keep=window)
        moved = first_logits_move(policy, x)
        torch._dynamo.reset()
        model.forward = torch.compile(model.forward, backend="eager")
        try:
            assert torch.equal(policy(x, logits_to_keep=window), eager)
            assert first_logits_move(policy, x) == pytest.approx(moved)
        finally:
            del model.forward
            torch._dynamo.reset()
    assert model.config.is_causal is False


def test_left_padding_matches_unpadded_logits_and_ignores_pad_values():
    policy = tiny_policy().eval()
    lengths = [9, 6, 4]
    width = max(lengths)
    rows = [random_sequences(1, 0, n, seed=i)[0] for i, n in enumerate(lengths)]
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    other_pads = torch.where(
        mask.bool(),
        ids,
        torch.randint(4, 100, ids.shape, generator=torch.Generator().manual_seed(1)),
    )
    with torch.no_grad():
        padded = policy(ids, mask)
        repadded = policy(other_pads, mask)
        for i, row in enumerate(rows):
            alone = policy(row[None])[0]
            torch.testing.assert_close(padded[i, width - len(row) :], alone)
            torch.testing.assert_close(repadded[i, width - len(row) :], alone)
        # Without the mask the pad tokens would be attended to.
        assert (policy(other_pads)[1, -1] - policy(ids)[1, -1]).abs().max() > 1e-6
    # An all-ones mask is the same as no mask.
    with torch.no_grad():
        torch.testing.assert_close(policy(ids, torch.ones_like(ids)), policy(ids))


def test_a_mask_checked_once_gives_the_logits_of_one_checked_at_every_forward():
    policy = tiny_policy().eval()
    ids = random_sequences(3, 2, 5, seed=3)
    padded = torch.ones_like(ids)
    padded[1, :2] = 0
    unpadded = torch.ones_like(ids)
    assert padding_mask(padded) is padded
    assert padding_mask(unpadded) is None and padding_mask(None) is None
    with torch.no_grad():
        for mask, window in [(padded, slice(4, 7)), (padded, 0), (unpadded, slice(2, 5))]:
            # What the sampler does: decide once, then skip the per-forward check.
            once = policy(ids, padding_mask(mask), logits_to_keep=window, padded=True)
            torch.testing.assert_close(once, policy(ids, mask, logits_to_keep=window))
        # An all-ones mask passed as padded still hides nothing.
        torch.testing.assert_close(policy(ids, unpadded, padded=True), policy(ids))


def test_save_and_load_pretrained_keep_logits_and_bidirectionality(saved):
    policy, directory = saved
    loaded = DiffusionLM(load_pretrained(directory), policy.mask_token_id).eval()
    x = random_sequences(2, 5, 6, seed=4)
    assert next(loaded.parameters()).dtype == torch.float64
    with torch.no_grad():
        # Loading may take a different (equally exact) kernel path: float64 rounding only.
        torch.testing.assert_close(loaded(x), policy(x), rtol=1e-12, atol=1e-12)
    assert first_logits_move(loaded, x) > 1e-6
    assert all(not layer.is_causal for layer in attention_layers(loaded.model))


def test_load_pretrained_without_config_names_the_path(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="config.json") as info:
        load_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(ConfigError, match="config.json"):
        build_policy(PolicySpec(path=str(tmp_path / "missing")))


def test_build_policy_loads_model_tokenizer_and_mask_id(saved):
    policy, directory = saved
    loaded, tokenizer = build_policy(PolicySpec(path=str(directory)))
    assert isinstance(loaded, DiffusionLM)
    assert loaded.mask_token_id == tokenizer.mask_token_id == build_char_tokenizer().mask_token_id
    assert tokenizer.eos_token_id == build_char_tokenizer().eos_token_id
    x = random_sequences(1, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), policy(x))
    halved, _ = build_policy(PolicySpec(path=str(directory), dtype="bfloat16", mask_token_id=7))
    assert next(halved.parameters()).dtype == torch.bfloat16
    assert halved.mask_token_id == 7


def test_unknown_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="float8"):
        build_policy(PolicySpec(dtype="float8", tiny=TINY))


def test_tiny_model_is_llada_shaped():
    model = tiny_policy().model
    config = model.config
    assert config.num_hidden_layers == TINY.num_layers
    assert config.hidden_size == TINY.hidden_size
    assert not config.attention_bias and not config.mlp_bias
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert not config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert config.rms_norm_eps == 1e-5
    norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
    assert len(norms) == 2 * TINY.num_layers + 1
    assert all(m.variance_epsilon == 1e-5 for m in norms)
    rope = getattr(config, "rope_parameters", None) or {"rope_theta": config.rope_theta}
    assert rope["rope_theta"] == 5e5
    assert config.hidden_act == "silu"


class NoSlicingModel(torch.nn.Module):
    """A model whose forward has no ``logits_to_keep`` (as some remote-code dLLMs)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        return self.inner(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        )


@pytest.mark.parametrize("wrap", [False, True], ids=["transformers", "no_logits_to_keep"])
@pytest.mark.parametrize("padded", [False, True])
def test_logits_to_keep_equals_slicing_the_full_logits(wrap, padded):
    policy = tiny_policy().eval()
    if wrap:
        policy = DiffusionLM(NoSlicingModel(policy.model), policy.mask_token_id)
        assert not policy._model_slices_logits
    else:
        assert policy._model_slices_logits
    ids = random_sequences(3, 4, 7)
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :2] = 0
    with torch.no_grad():
        full = policy(ids, mask)
        assert full.shape[:2] == ids.shape
        torch.testing.assert_close(policy(ids, mask, logits_to_keep=7), full[:, -7:])
        torch.testing.assert_close(policy(ids, mask, logits_to_keep=slice(5, 9)), full[:, 5:9])
        torch.testing.assert_close(policy(ids, mask, logits_to_keep=slice(0, 11)), full)
    for bad in (-1, slice(3, 3), slice(0, 6, 2)):
        with pytest.raises(ValueError, match="logits_to_keep"):
            policy(ids, mask, logits_to_keep=bad)
