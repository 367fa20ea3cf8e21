"""Between text and token tensors: left-padded prompts, EOS-padded responses, decoding."""

import pytest
import torch

from bgpo_lightning.policy import (
    build_char_tokenizer,
    decode_responses,
    encode_prompts,
    encode_responses,
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_encode_prompts_left_pads_with_an_attention_mask(tokenizer):
    prompts = ["ab", "a\nb c", "", "x"]
    ids, mask = encode_prompts(tokenizer, prompts)
    assert ids.shape == mask.shape == (4, 5)
    assert ids.dtype == mask.dtype == torch.long
    for row, text in enumerate(prompts):
        n = len(text)
        assert mask[row].tolist() == [0] * (5 - n) + [1] * n
        assert ids[row, 5 - n :].tolist() == ids_of(tokenizer, text)
        assert (ids[row, : 5 - n] == tokenizer.pad_token_id).all()
        assert tokenizer.decode(ids[row], skip_special_tokens=True) == text


def test_encode_prompts_uses_the_chat_template_only_when_asked(tokenizer):
    chat = build_char_tokenizer()
    chat.chat_template = (
        "{% for m in messages %}U:{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}A:{% endif %}"
    )
    ids, mask = encode_prompts(chat, ["1+1"], use_chat_template=True)
    assert chat.decode(ids[0]) == "U:1+1\nA:" and mask.all()
    plain, _ = encode_prompts(chat, ["1+1"])
    assert plain[0].tolist() == ids_of(tokenizer, "1+1")
    # Without a template the flag changes nothing.
    same, _ = encode_prompts(tokenizer, ["1+1"], use_chat_template=True)
    assert torch.equal(same, plain)


def test_encode_responses_pads_with_eos_and_truncates(tokenizer):
    eos = tokenizer.eos_token_id
    out = encode_responses(tokenizer, ["12", "", "abcdefgh", "a b\n"], 6)
    assert out.shape == (4, 6) and out.dtype == torch.long
    assert out[0].tolist() == ids_of(tokenizer, "12") + [eos] * 4
    assert out[1].tolist() == [eos] * 6
    assert out[2].tolist() == ids_of(tokenizer, "abcdef")
    assert out[3].tolist() == ids_of(tokenizer, "a b\n") + [eos] * 2


def test_decode_responses_cuts_at_the_first_eos_and_drops_special_tokens(tokenizer):
    eos, mask_id, pad = tokenizer.eos_token_id, tokenizer.mask_token_id, tokenizer.pad_token_id
    a, b, c = (ids_of(tokenizer, ch)[0] for ch in "abc")
    responses = torch.tensor(
        [
            [a, b, eos, c, c, c],  # text after the first EOS is dropped
            [a, mask_id, b, pad, c, eos],  # special tokens before EOS are dropped
            [c, c, c, c, c, c],  # no EOS: the whole row
            [eos, a, eos, b, eos, c],
        ]
    )
    assert decode_responses(tokenizer, responses) == ["ab", "abc", "cccccc", ""]
    # d1's decoding: the whole fixed-length response, special tokens (EOS too) skipped.
    full = ["abccc", "abc", "cccccc", "abc"]
    assert decode_responses(tokenizer, responses, cut_at_eos=False) == full


def test_encode_then_decode_responses_round_trips(tokenizer):
    texts = ["4 3 2 1\n1 2 3 4", "", "(6+4)*2=20"]
    out = encode_responses(tokenizer, texts, 20)
    assert decode_responses(tokenizer, out) == texts
