"""A byte-level BPE tokenizer trained locally, for small models on long fixed prompts.

d1's task prompts are several hundred characters of constant English, so the character
tokenizer spends ~900 positions per prompt; merges learned from those prompts shrink them
several-fold while every byte stays encodable, so any text still round-trips exactly. Digits are
split before the byte-level step and so are never merged: Sudoku grids and Countdown numbers
stay digit-level, as arithmetic and grid reading need.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from bgpo_lightning.policy.tokenizer import SPECIAL_TOKENS, as_transformers_tokenizer

BYTE_ALPHABET = pre_tokenizers.ByteLevel.alphabet()
MIN_VOCAB_SIZE = len(BYTE_ALPHABET) + len(SPECIAL_TOKENS)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A BPE tokenizer of at most ``vocab_size`` tokens learned from ``texts``.

    Ids 0..3 are pad, EOS, mask and unknown, as in the character tokenizer; then the 256 bytes,
    then the learned merges. The same texts and ``vocab_size`` give the same vocabulary; fewer
    tokens than ``vocab_size`` come back when the texts offer no more merges.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not a single string")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size {vocab_size} is below {MIN_VOCAB_SIZE} (256 bytes + 4 special tokens)"
        )
    corpus = list(texts)
    if not corpus:
        raise ValueError("no texts to train the BPE tokenizer on")

    backend = Tokenizer(models.BPE())
    # Digits first, each isolated, so no merge can join a digit to anything; then bytes.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=BYTE_ALPHABET,
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    return as_transformers_tokenizer(backend)
