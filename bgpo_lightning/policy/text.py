"""Between text and token tensors: prompts, fixed-length responses and their decoding."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    device: torch.device | str = "cpu",
    use_chat_template: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and attention mask, ``(B, P)`` each.

    Left padding keeps every response at the same positions, right after its prompt.
    """
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def encode_responses(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    length: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Fixed-length responses ``(N, length)``: the text, then EOS up to ``length``.

    The trailing EOS tokens are part of the response, as in LLaDA's SFT: the model learns to
    fill the rest of its fixed-length canvas with EOS. Longer texts are truncated.
    """
    eos = tokenizer.eos_token_id
    out = torch.full((len(texts), length), eos, dtype=torch.long)
    for i, text in enumerate(texts):
        row = tokenizer(text, add_special_tokens=False)["input_ids"][:length]
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out.to(device)


def decode_responses(
    tokenizer: PreTrainedTokenizerBase, responses: torch.Tensor, cut_at_eos: bool = True
) -> list[str]:
    """Text of each response, special tokens dropped.

    ``cut_at_eos`` keeps only what comes before the first EOS (default); without it the whole
    fixed-length response is decoded, as d1 scores it.
    """
    eos = tokenizer.eos_token_id
    texts = []
    for row in responses.tolist():
        if cut_at_eos and eos in row:
            row = row[: row.index(eos)]
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts
