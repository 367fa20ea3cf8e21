"""A character-level tokenizer built locally, for the embedded default model.

Every printable ASCII character (and newline) is one token, so the embedded tasks need no
trained vocabulary and nothing from a model hub. It is a ``PreTrainedTokenizerFast``, saved
and loaded with ``save_pretrained``/``from_pretrained`` like any Hugging Face tokenizer.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, MASK, UNK = "<|pad|>", "<|eos|>", "<|mdm_mask|>", "<|unk|>"
SPECIAL_TOKENS = (PAD, EOS, MASK, UNK)
CHARACTERS = "".join(sorted(set(string.printable) - set("\t\r\x0b\x0c")))


def build_char_tokenizer(characters: str = CHARACTERS) -> PreTrainedTokenizerFast:
    """A tokenizer with one token per character plus pad, EOS, mask and unknown tokens."""
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *characters))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # [\s\S] matches newlines too, unlike "."; each character becomes its own word.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return as_transformers_tokenizer(backend)


def as_transformers_tokenizer(backend: Tokenizer) -> PreTrainedTokenizerFast:
    """``backend`` with our special tokens named, left padding (prompts end where the
    response starts) and decoding that keeps the text as generated."""
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        mask_token=MASK,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
