"""Small builders shared by the tests."""

from __future__ import annotations

import torch
import torch.distributed as dist
from transformers import AutoTokenizer

from bgpo_lightning.policy import (
    DiffusionLM,
    LoraSpec,
    TinyModelConfig,
    build_char_tokenizer,
    build_tiny_model,
)
from bgpo_lightning.policy.lora import add_lora
from bgpo_lightning.tasks import PromptDataModule

TINY = TinyModelConfig(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32)


def tiny_policy(dtype: torch.dtype = torch.float64, seed: int = 0) -> DiffusionLM:
    """A 2-layer LLaDA-shaped model over the character vocabulary."""
    tokenizer = build_char_tokenizer()
    torch.manual_seed(seed)
    model = build_tiny_model(len(tokenizer), TINY).to(dtype)
    return DiffusionLM(model, tokenizer.mask_token_id)


def perturb_adapter(policy: DiffusionLM, std: float = 0.1) -> DiffusionLM:
    """Gives the LoRA adapter's ``B`` (zero when added) random values, as after training, so
    that the adapter changes the policy's outputs."""
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(std=std, generator=torch.Generator().manual_seed(len(name)))
    return policy


def trained_lora_policy(spec: LoraSpec, seed: int = 0) -> DiffusionLM:
    """A float64 tiny policy with a LoRA adapter that is not zero."""
    return perturb_adapter(add_lora(tiny_policy(seed=seed), spec))


def compact_sudoku_data() -> PromptDataModule:
    """32 generated Sudoku puzzles in the embedded default's compact format (an untrained
    model never closes d1's <answer> tag), 2 prompts a batch."""
    compact = {"prompt_template": "Sudoku {puzzle}=", "target_template": "{solution}"}
    return PromptDataModule(
        task="sudoku",
        task_kwargs={**compact, "reward_mode": "lenient"},
        num_train=32,
        num_val=8,
        num_test=8,
        batch_size=2,
        val_batch_size=8,
    )


def ids_of(tokenizer, text: str) -> list[int]:
    """The token ids of ``text`` alone (no special tokens added)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def reload_and_compare(tokenizer, texts, directory):
    """Saves ``tokenizer``, loads it back with ``AutoTokenizer`` and asserts that it encodes
    and decodes ``texts`` alike, with the same special ids, size and left padding; returns
    the loaded tokenizer."""
    tokenizer.save_pretrained(directory)
    loaded = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    for text in texts:
        assert ids_of(loaded, text) == ids_of(tokenizer, text)
        assert loaded.decode(ids_of(loaded, text)) == text
    for attribute in ("pad_token_id", "eos_token_id", "mask_token_id", "unk_token_id"):
        assert getattr(loaded, attribute) == getattr(tokenizer, attribute), attribute
    assert len(loaded) == len(tokenizer)
    assert loaded.padding_side == "left"
    return loaded


def random_sequences(n: int, prompt: int, response: int, seed: int = 0) -> torch.Tensor:
    """Random ordinary (non-special) tokens, ``(n, prompt + response)``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(4, 100, (n, prompt + response), generator=gen)


def join_as_rank(local_rank: int, world: int, port: int) -> None:
    """Sets the environment torchrun gives a rank on one node, so Lightning joins its group."""
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        NODE_RANK="0",
        LOCAL_RANK=str(local_rank),
        RANK=str(local_rank),
    )


class CollectiveCounter:
    """Counts calls of the named ``torch.distributed`` collectives while active.

    FSDP2 calls them through the module, so wrapping the attribute sees every call. Name each
    variant a torch version may use (``reduce_scatter_single`` or ``reduce_scatter_tensor``).
    """

    REDUCE_SCATTERS = ("reduce_scatter_single", "reduce_scatter_tensor")
    ALL_GATHERS = ("all_gather_single", "all_gather_into_tensor")

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.calls = 0
        self._saved = {}

    def __enter__(self):
        for name in self.names:
            original = getattr(dist, name, None)
            if original is None:
                continue
            self._saved[name] = original

            def counted(*args, _original=original, **kwargs):
                self.calls += 1
                return _original(*args, **kwargs)

            setattr(dist, name, counted)
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(dist, name, original)
        self._saved.clear()
