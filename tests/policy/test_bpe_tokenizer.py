"""The byte-level BPE tokenizer trained on d1's prompts."""

import random
import string

import pytest

from bgpo_lightning.policy import train_bpe_tokenizer
from bgpo_lightning.policy.tokenizer import SPECIAL_TOKENS
from bgpo_lightning.tasks.d1_prompts import ANSWER_TARGET, COUNTDOWN_PROMPT, SUDOKU_PROMPT
from tests.helpers import ids_of, reload_and_compare

AWKWARD = [
    "",
    " ",
    "\n",
    "\n\n\n",
    "\ttab\tseparated\t",
    "  two leading spaces and two trailing  ",
    "line one\r\nline two\n\n\nline five",
    "caf\u00e9 na\u00efve \u00fcber \u4e2d\u6587 \U0001f600 \u00a0nbsp",
    "1234 + 5678 = 6912",
    "<|pad <|eos| mdm_mask|> <| |>",
    string.printable,
]


def countdown_prompt(rng: random.Random) -> str:
    nums = [rng.randint(1, 99) for _ in range(rng.choice((3, 4)))]
    return COUNTDOWN_PROMPT.format(nums=nums, target=rng.randint(1, 200))


def sudoku_prompt(rng: random.Random) -> str:
    return SUDOKU_PROMPT.format(puzzle="".join(rng.choice("01234") for _ in range(16)))


def d1_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        texts.append(countdown_prompt(rng))
        texts.append(ANSWER_TARGET.format(solution=f"{rng.randint(1, 99)}*{rng.randint(1, 9)}"))
        texts.append(sudoku_prompt(rng))
        texts.append(ANSWER_TARGET.format(solution="".join(rng.choices("1234", k=16))))
    return texts


CORPUS = d1_texts(seed=0, count=100)


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(CORPUS, vocab_size=1024)


def test_d1_texts_round_trip_without_special_ids(tokenizer):
    for text in CORPUS + d1_texts(seed=1, count=20):
        ids = ids_of(tokenizer, text)
        assert tokenizer.decode(ids) == text
        assert min(ids) >= len(SPECIAL_TOKENS)


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_text_round_trips_without_special_ids(tokenizer, text):
    ids = ids_of(tokenizer, text)
    assert tokenizer.decode(ids) == text
    assert all(i >= len(SPECIAL_TOKENS) for i in ids)


def test_digits_are_single_tokens(tokenizer):
    assert tokenizer.convert_ids_to_tokens(ids_of(tokenizer, "1234")) == list("1234")
    assert tokenizer.convert_ids_to_tokens(ids_of(tokenizer, "[12, 7]")[1:3]) == ["1", "2"]
    learned = [t for t in tokenizer.get_vocab() if t not in SPECIAL_TOKENS]
    for token in learned:
        text = tokenizer.convert_tokens_to_string([token])
        if any(c in string.digits for c in text):
            assert text in string.digits and len(text) == 1, token


def test_special_tokens_take_ids_zero_to_three(tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == list(SPECIAL_TOKENS)
    assert tokenizer.pad_token_id == 0
    assert tokenizer.eos_token_id == 1
    assert tokenizer.mask_token_id == 2
    assert tokenizer.unk_token_id == 3
    # As with the character tokenizer, a special token's own text is that one id.
    assert ids_of(tokenizer, tokenizer.mask_token) == [2]
    assert tokenizer.decode([0, 1, 2, 3, *ids_of(tokenizer, "ok")], skip_special_tokens=True) == (
        "ok"
    )


def test_learns_merges_within_vocab_size(tokenizer):
    assert 256 + len(SPECIAL_TOKENS) < len(tokenizer) <= 1024
    small = train_bpe_tokenizer(CORPUS, vocab_size=300)
    assert len(small) == 300


def test_d1_prompts_shrink_several_fold(tokenizer):
    rng = random.Random(2)  # held-out numbers and puzzles
    for name, make in (("sudoku", sudoku_prompt), ("countdown", countdown_prompt)):
        prompts = [make(rng) for _ in range(20)]
        ratio = max(len(ids_of(tokenizer, p)) / len(p) for p in prompts)
        print(f"{name}: at most {ratio:.3f} tokens per character")
        # Measured at vocab 1024: ~0.29 for Sudoku, ~0.28 for Countdown.
        assert ratio <= 1 / 3, name


def test_save_pretrained_and_auto_tokenizer_keep_behaviour(tokenizer, tmp_path):
    loaded = reload_and_compare(tokenizer, CORPUS[:8] + AWKWARD, tmp_path)
    batch = loaded(["12", CORPUS[0]], add_special_tokens=False, padding=True)
    short, long = batch["input_ids"]
    width = len(long)
    assert short == [loaded.pad_token_id] * (width - 2) + ids_of(tokenizer, "12")
    assert batch["attention_mask"][0] == [0] * (width - 2) + [1, 1]
    assert batch["attention_mask"][1] == [1] * width


def test_training_is_deterministic():
    first = train_bpe_tokenizer(CORPUS, vocab_size=512)
    second = train_bpe_tokenizer(iter(list(CORPUS)), vocab_size=512)
    assert first.get_vocab() == second.get_vocab()
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()


@pytest.mark.parametrize("vocab_size", [0, 256, 259])
def test_rejects_vocab_size_below_bytes_and_specials(vocab_size):
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(CORPUS, vocab_size=vocab_size)


@pytest.mark.parametrize("texts", [[], (), iter(())], ids=["list", "tuple", "iterator"])
def test_rejects_no_texts(texts):
    with pytest.raises(ValueError, match="no texts"):
        train_bpe_tokenizer(texts)


def test_rejects_a_single_string():
    with pytest.raises(TypeError, match="single string"):
        train_bpe_tokenizer("just one text")
