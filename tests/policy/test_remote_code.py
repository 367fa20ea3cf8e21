"""Models with their own (remote) code load through transformers' auto classes, and the policy
adapts to what their forward takes.

The tiny remote model here is written into the checkpoint directory as ``configuration_*.py``
and ``modeling_*.py`` with an ``auto_map``; its forward takes only ``(input_ids,
attention_mask)`` with a 2-D key mask, like LLaDA's own code (no ``position_ids``).
"""

import pytest
import torch
from torch import nn

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy import DiffusionLM, PolicySpec, build_char_tokenizer, build_policy
from tests.policy.reference_decoder import random_tensors, write_checkpoint

VOCAB, HIDDEN = 100, 16

CONFIGURATION = """
from transformers import PretrainedConfig


class TinyRemoteConfig(PretrainedConfig):
    model_type = "tiny_remote"

    def __init__(self, vocab_size=100, hidden_size=16, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        super().__init__(**kwargs)
"""

MODELING = """
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_tiny_remote import TinyRemoteConfig


class TinyRemoteModel(PreTrainedModel):
    config_class = TinyRemoteConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        POST_INIT

    def forward(self, FORWARD_ARGUMENTS):
        attention_mask = locals().get("attention_mask")
        if attention_mask is not None and attention_mask.dim() != 2:
            raise ValueError(f"expected a 2-D attention mask, got {attention_mask.dim()}-D")
        x = self.embed(input_ids)
        scores = self.query(x) @ self.key(x).transpose(1, 2) / x.shape[-1] ** 0.5
        if attention_mask is not None:
            scores = scores.masked_fill(~attention_mask.bool()[:, None, :], float("-inf"))
        x = x + scores.softmax(-1) @ self.value(x)
        return CausalLMOutput(logits=self.head(x))
"""


def write_remote(directory, post_init=True, takes_mask=True):
    """A checkpoint of the tiny remote model, its code and a tokenizer."""
    config = {
        "model_type": "tiny_remote",
        "architectures": ["TinyRemoteModel"],
        "auto_map": {
            "AutoConfig": "configuration_tiny_remote.TinyRemoteConfig",
            "AutoModelForCausalLM": "modeling_tiny_remote.TinyRemoteModel",
        },
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
    }
    shapes = {
        "embed.weight": (VOCAB, HIDDEN),
        "head.weight": (VOCAB, HIDDEN),
        "head.bias": (VOCAB,),
    }
    for name in ("query", "key", "value"):
        shapes |= {f"{name}.weight": (HIDDEN, HIDDEN), f"{name}.bias": (HIDDEN,)}
    write_checkpoint(directory, config, random_tensors(shapes, seed=0))
    (directory / "configuration_tiny_remote.py").write_text(CONFIGURATION)
    modeling = MODELING.replace("POST_INIT", "self.post_init()" if post_init else "pass")
    arguments = "input_ids, attention_mask=None" if takes_mask else "input_ids"
    modeling = modeling.replace("FORWARD_ARGUMENTS", arguments)
    (directory / "modeling_tiny_remote.py").write_text(modeling)
    build_char_tokenizer().save_pretrained(directory)
    return directory


def rows(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def remote_policy(tmp_path_factory) -> DiffusionLM:
    directory = write_remote(tmp_path_factory.mktemp("remote_2d"))
    return build_policy(PolicySpec(path=str(directory), trust_remote_code=True))[0].eval()


def test_remote_model_gets_a_2d_mask_and_hides_padding(remote_policy):
    policy = remote_policy
    assert type(policy.model).__name__ == "TinyRemoteModel" and not policy.shifted_logits
    lengths = [9, 6, 3]
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    alone = [rows(1, n, seed=i)[0] for i, n in enumerate(lengths)]
    for i, row in enumerate(alone):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    other_pads = torch.where(mask.bool(), ids, 77)
    with torch.no_grad():
        # The model raises on anything but a 2-D mask, so getting here means it got one.
        padded = policy(ids, mask)
        real = mask.bool()
        torch.testing.assert_close(policy(other_pads, mask)[real], padded[real], rtol=0, atol=1e-6)
        for i, row in enumerate(alone):
            own = policy(row[None])[0]
            torch.testing.assert_close(padded[i, width - len(row) :], own, rtol=0, atol=1e-6)
        # Unmasked, the padding would be attended to.
        assert (policy(other_pads)[1, -1] - padded[1, -1]).abs().max() > 1e-3
        full = policy(ids, mask)
        torch.testing.assert_close(policy(ids, mask, logits_to_keep=4), full[:, -4:])
        torch.testing.assert_close(policy(ids, mask, logits_to_keep=slice(2, 5)), full[:, 2:5])


def test_remote_code_without_post_init_is_one_clear_line(tmp_path):
    directory = write_remote(tmp_path / "no_post_init", post_init=False)
    with pytest.raises(ConfigError, match="post_init") as info:
        build_policy(PolicySpec(path=str(directory), trust_remote_code=True))
    message = str(info.value)
    assert str(directory) in message and "LLaDA" in message and "\n" not in message


def test_remote_model_without_attention_mask_is_refused_when_built(tmp_path):
    directory = write_remote(tmp_path / "no_mask", takes_mask=False)
    with pytest.raises(ConfigError, match="attention_mask") as info:
        build_policy(PolicySpec(path=str(directory), trust_remote_code=True))
    assert str(directory) in str(info.value) and "\n" not in str(info.value)


def test_policy_around_a_maskless_model_refuses_only_padded_batches():
    class Maskless(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, VOCAB)

        def forward(self, input_ids):
            return (self.embed(input_ids),)

    policy = DiffusionLM(Maskless(), 2)
    ids = rows(2, 5)
    assert policy(ids).shape == (2, 5, VOCAB)
    assert policy(ids, torch.ones_like(ids), logits_to_keep=2).shape == (2, 2, VOCAB)
    mask = torch.ones_like(ids)
    mask[0, 0] = 0
    with pytest.raises(ValueError, match="takes no attention_mask"):
        policy(ids, mask)
