"""The character tokenizer of the embedded model."""

import string

import pytest

from bgpo_lightning.policy import build_char_tokenizer
from bgpo_lightning.policy.tokenizer import CHARACTERS
from tests.helpers import ids_of, reload_and_compare

TEXTS = [
    "Hello, world!",
    "line one\nline two\n",
    "  two leading spaces and two trailing  ",
    "1234 + 5678 = 6912",
    "Sudoku:\n1.3.\n..21\n",
    "punctuation: ~`!@#$%^&*()-_=+[]{}|\\;:'\",<.>/?",
    string.digits + string.ascii_letters,
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


@pytest.mark.parametrize("text", TEXTS)
def test_text_round_trips_one_token_per_character(tokenizer, text):
    ids = ids_of(tokenizer, text)
    assert len(ids) == len(text)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_every_character_is_its_own_token(tokenizer):
    ids = ids_of(tokenizer, CHARACTERS)
    assert len(set(ids)) == len(CHARACTERS) == len(ids)
    assert "\n" in CHARACTERS and " " in CHARACTERS
    assert len(tokenizer) == len(CHARACTERS) + 4


def test_special_tokens_are_single_distinct_ids(tokenizer):
    specials = {
        "pad": (tokenizer.pad_token, tokenizer.pad_token_id),
        "eos": (tokenizer.eos_token, tokenizer.eos_token_id),
        "mask": (tokenizer.mask_token, tokenizer.mask_token_id),
        "unk": (tokenizer.unk_token, tokenizer.unk_token_id),
    }
    ids = [token_id for _, token_id in specials.values()]
    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == 4
    ordinary = set(ids_of(tokenizer, CHARACTERS))
    assert not ordinary & set(ids)
    for name, (token, token_id) in specials.items():
        # The special token's text is one id, not its characters.
        assert ids_of(tokenizer, token) == [token_id], name
    assert ids_of(tokenizer, f"a{tokenizer.mask_token}b") == [
        ids_of(tokenizer, "a")[0],
        tokenizer.mask_token_id,
        ids_of(tokenizer, "b")[0],
    ]
    assert tokenizer.decode(ids, skip_special_tokens=True) == ""


def test_unknown_characters_map_to_unk(tokenizer):
    ids = ids_of(tokenizer, "a\tb\u00e9\u4e2d")
    unk = tokenizer.unk_token_id
    assert ids == [ids_of(tokenizer, "a")[0], unk, ids_of(tokenizer, "b")[0], unk, unk]


def test_save_pretrained_and_auto_tokenizer_round_trip(tokenizer, tmp_path):
    reload_and_compare(tokenizer, TEXTS, tmp_path)
