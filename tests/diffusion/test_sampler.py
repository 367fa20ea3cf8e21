"""Tests of the vectorised LLaDA-style sampler and its per-row reference."""

import math

import pytest
import torch

from bgpo_lightning.diffusion.reference_sampler import reference_generate
from bgpo_lightning.diffusion.sampler import (
    SamplerConfig,
    generate,
    select_top_k,
    unmask_schedule,
)

VOCAB = 12
MASK_ID = VOCAB - 1


class ToyModel:
    """Fixed random "model": token + position embedding, plus a sequence-mean mixing term.

    The mean over positions lets every position see every other one, so outputs depend on context
    (including which positions are still masked). Rows are independent of each other.
    """

    def __init__(
        self,
        seed: int = 0,
        dim: int = 16,
        dtype: torch.dtype = torch.float32,
        positional: bool = True,
        device: str = "cpu",
    ):
        g = torch.Generator().manual_seed(seed)
        self.embed = torch.randn(VOCAB, dim, generator=g).to(device)
        # Without positions, all masked positions share the same logits: exact confidence ties.
        self.pos = (torch.randn(64, dim, generator=g) * float(positional)).to(device)
        self.mix = (torch.randn(dim, dim, generator=g) / math.sqrt(dim)).to(device)
        self.out = torch.randn(dim, VOCAB, generator=g).to(device)
        self.dtype = dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed[x] + self.pos[: x.shape[1]]
        h = h + torch.tanh(h.mean(dim=1, keepdim=True) @ self.mix)
        return (h @ self.out).to(self.dtype)


class Recorder:
    """Wraps a logits function and keeps a copy of every input it sees."""

    def __init__(self, fn):
        self.fn = fn
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return self.fn(x)


def _fixed_logits(per_position: torch.Tensor):
    """Input-independent logits; ``per_position`` ``(L_gen, V)`` fills the response part."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, VOCAB)
        logits[:, -per_position.shape[0] :] = per_position
        return logits

    return fn


def _prompts(batch: int, prompt_len: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, MASK_ID, (batch, prompt_len), generator=g)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fill_order(recorder: Recorder, out: torch.Tensor, prompt_len: int) -> list[list[int]]:
    """For row 0: the response positions committed at each step, in step order."""
    states = [x[0, prompt_len:] for x in recorder.inputs] + [out[0, prompt_len:]]
    return [
        ((before == MASK_ID) & (after != MASK_ID)).nonzero().flatten().tolist()
        for before, after in zip(states[:-1], states[1:], strict=True)
    ]


def test_output_shape_prompt_kept_and_no_mask_left() -> None:
    prompts = _prompts(3)
    config = SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=0.7)
    out = generate(ToyModel(), prompts, MASK_ID, config, _seeded(0))
    assert out.shape == (3, 5 + 12)
    assert out.dtype == prompts.dtype
    assert torch.equal(out[:, :5], prompts)
    assert not (out == MASK_ID).any()


def test_blocks_are_filled_left_to_right() -> None:
    config = SamplerConfig(gen_length=12, block_length=4, steps=6)
    recorder = Recorder(ToyModel())
    prompt_len = 5
    generate(recorder, _prompts(2, prompt_len), MASK_ID, config)
    assert len(recorder.inputs) == config.steps
    for call, x in enumerate(recorder.inputs):
        current = call // config.steps_per_block
        blocks = (x[:, prompt_len:] == MASK_ID).view(2, config.num_blocks, config.block_length)
        assert not blocks[:, :current].any(), f"earlier block still masked at call {call}"
        assert blocks[:, current + 1 :].all(), f"later block touched at call {call}"
        if call % config.steps_per_block == 0:
            assert blocks[:, current].all(), "block not fully masked when its decoding starts"


@pytest.mark.parametrize(
    ("gen_length", "block_length", "steps", "expected"),
    [
        (8, 8, 4, [2, 2, 2, 2]),
        (8, 8, 3, [3, 3, 2]),
        (14, 7, 6, [3, 2, 2]),
        (10, 5, 4, [3, 2]),
        (4, 4, 6, [1, 1, 1, 1, 0, 0]),
    ],
)
def test_tokens_unmasked_per_step_follow_schedule(
    gen_length: int, block_length: int, steps: int, expected: list[int]
) -> None:
    config = SamplerConfig(gen_length=gen_length, block_length=block_length, steps=steps)
    recorder = Recorder(ToyModel())
    prompts = _prompts(3)
    out = generate(recorder, prompts, MASK_ID, config, _seeded(0))
    masked = [(x == MASK_ID).sum(-1) for x in recorder.inputs] + [(out == MASK_ID).sum(-1)]
    per_step = [(a - b).tolist() for a, b in zip(masked[:-1], masked[1:], strict=True)]
    assert per_step == [[k] * 3 for k in expected * config.num_blocks]


def test_unmask_schedule_splits_evenly_per_row() -> None:
    schedule = unmask_schedule(torch.tensor([8, 7, 0, 2]), 3)
    assert schedule.tolist() == [[3, 3, 2], [3, 2, 2], [0, 0, 0], [1, 1, 0]]


def test_select_top_k_per_row_with_stable_ties_and_never_minus_inf() -> None:
    inf = float("inf")
    confidence = torch.tensor([[0.1, 0.5, 0.5, 0.2], [0.3, -inf, 0.3, -inf], [1.0, 1.0, 1.0, 1.0]])
    chosen = select_top_k(confidence, torch.tensor([2, 4, 1]))
    assert chosen.tolist() == [
        [False, True, True, False],
        [True, False, True, False],
        [True, False, False, False],
    ]


def test_greedy_is_deterministic_and_ignores_generator() -> None:
    config = SamplerConfig(gen_length=16, block_length=8, steps=8)
    prompts = _prompts(4)
    model = ToyModel()
    outs = [
        generate(model, prompts, MASK_ID, config, generator)
        for generator in (None, _seeded(0), _seeded(1))
    ]
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_sampling_repeats_with_same_seed_and_differs_with_another(remasking: str) -> None:
    config = SamplerConfig(
        gen_length=16, block_length=8, steps=8, temperature=1.0, remasking=remasking
    )
    prompts = _prompts(4)
    model = ToyModel()
    first = generate(model, prompts, MASK_ID, config, _seeded(7))
    again = generate(model, prompts, MASK_ID, config, _seeded(7))
    other = generate(model, prompts, MASK_ID, config, _seeded(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sampled_token_frequencies_match_tempered_softmax(
    temperature: float, precision: str
) -> None:
    gen_length, batch = 64, 64
    base = torch.tensor([1.0, 0.2, -0.5, 0.8, 0.0, -1.0, 0.4, 0.1, -0.2, 0.6, -0.8, 3.0])
    config = SamplerConfig(
        gen_length=gen_length,
        block_length=gen_length,
        steps=1,
        temperature=temperature,
        precision=precision,
    )
    out = generate(
        _fixed_logits(base.expand(gen_length, VOCAB)), _prompts(batch), MASK_ID, config, _seeded(3)
    )
    counts = torch.bincount(out[:, -gen_length:].flatten(), minlength=VOCAB).double()
    # The mask token (given the largest logit here) is banned, so expect softmax over the rest.
    assert counts[MASK_ID] == 0
    expected = torch.softmax(base[:MASK_ID].double() / temperature, -1) * counts.sum()
    chi2 = ((counts[:MASK_ID] - expected) ** 2 / expected).sum().item()
    # 10 degrees of freedom: chi2 > 35 has p < 2e-4 (and the seed is fixed, so no flakiness).
    assert chi2 < 35.0, chi2


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_float32_precision_is_another_stream_with_the_same_greedy_tokens(remasking) -> None:
    prompts, model = _prompts(6), ToyModel()
    shape = {"gen_length": 16, "block_length": 8, "steps": 8, "remasking": remasking}
    greedy = [generate(model, prompts, MASK_ID, SamplerConfig(**shape, precision=p), _seeded(0))
              for p in ("float64", "float32")]  # fmt: skip
    if remasking == "low_confidence":  # the same argmax and the same confidence order
        assert torch.equal(greedy[0], greedy[1])
    sampled = [
        generate(model, prompts, MASK_ID, SamplerConfig(**shape, temperature=1.0, precision=p),
                 _seeded(5))
        for p in ("float64", "float32")
    ]  # fmt: skip
    assert not torch.equal(sampled[0], sampled[1])
    assert not (sampled[1][:, prompts.shape[1] :] == MASK_ID).any()


def test_low_confidence_unmasks_most_probable_positions_first() -> None:
    gen_length = 8
    sharpness = torch.tensor([0.5, 4.0, 1.0, 3.0, 0.0, 2.5, 2.0, 1.5])
    per_position = torch.zeros(gen_length, VOCAB)
    per_position[torch.arange(gen_length), torch.arange(gen_length) % MASK_ID] = sharpness
    config = SamplerConfig(gen_length=gen_length, block_length=gen_length, steps=gen_length)
    recorder = Recorder(_fixed_logits(per_position))
    out = generate(recorder, _prompts(2), MASK_ID, config)
    order = [step[0] for step in _fill_order(recorder, out, prompt_len=5)]
    assert order == torch.argsort(sharpness, descending=True).tolist()


def test_equal_confidences_unmask_left_to_right() -> None:
    config = SamplerConfig(gen_length=6, block_length=6, steps=3)
    recorder = Recorder(_fixed_logits(torch.zeros(6, VOCAB)))
    out = generate(recorder, _prompts(2), MASK_ID, config)
    assert _fill_order(recorder, out, prompt_len=5) == [[0, 1], [2, 3], [4, 5]]


def test_random_remasking_is_seeded() -> None:
    config = SamplerConfig(gen_length=8, block_length=8, steps=8, remasking="random")
    per_position = torch.randn(8, VOCAB, generator=_seeded(0))

    def order(seed: int) -> list[list[int]]:
        recorder = Recorder(_fixed_logits(per_position))
        out = generate(recorder, _prompts(1), MASK_ID, config, _seeded(seed))
        return _fill_order(recorder, out, prompt_len=5)

    assert order(0) == order(0)
    assert order(0) != order(1)


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_vectorised_matches_reference(batch: int, remasking: str, temperature: float) -> None:
    config = SamplerConfig(
        gen_length=12, block_length=4, steps=9, temperature=temperature, remasking=remasking
    )
    prompts = _prompts(batch)
    model = ToyModel(seed=batch)
    fast = generate(model, prompts, MASK_ID, config, _seeded(11))
    slow = reference_generate(model, prompts, MASK_ID, config, _seeded(11))
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_vectorised_matches_reference_with_bf16_logits_and_ties(temperature: float) -> None:
    config = SamplerConfig(gen_length=16, block_length=8, steps=6, temperature=temperature)
    prompts = _prompts(6)
    model = ToyModel(seed=5, dtype=torch.bfloat16, positional=False)
    fast = generate(model, prompts, MASK_ID, config, _seeded(2))
    slow = reference_generate(model, prompts, MASK_ID, config, _seeded(2))
    assert torch.equal(fast, slow)
    tied = Recorder(_fixed_logits(torch.zeros(16, VOCAB)))
    assert torch.equal(
        generate(tied, prompts, MASK_ID, config, _seeded(2)),
        reference_generate(tied, prompts, MASK_ID, config, _seeded(2)),
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_vectorised_matches_reference_on_cuda(remasking: str) -> None:
    config = SamplerConfig(
        gen_length=16, block_length=8, steps=6, temperature=0.8, remasking=remasking
    )
    prompts = _prompts(6).cuda()
    model = ToyModel(dtype=torch.bfloat16, device="cuda")

    def run(sampler) -> torch.Tensor:
        return sampler(model, prompts, MASK_ID, config, torch.Generator("cuda").manual_seed(4))

    fast = run(generate)
    assert fast.device == prompts.device
    assert not (fast == MASK_ID).any()
    assert torch.equal(fast, run(reference_generate))


def test_greedy_row_is_the_same_alone_or_in_a_batch() -> None:
    config = SamplerConfig(gen_length=16, block_length=4, steps=8)
    prompts = _prompts(5)
    model = ToyModel()
    batched = generate(model, prompts, MASK_ID, config)
    for row in range(prompts.shape[0]):
        alone = generate(model, prompts[row : row + 1], MASK_ID, config)
        assert torch.equal(alone[0], batched[row])


def test_does_not_modify_prompt_or_caller_logits() -> None:
    prompts = _prompts(2)
    prompts_before = prompts.clone()
    logits = torch.zeros(2, 5 + 4, VOCAB, dtype=torch.float64)
    generate(lambda x: logits, prompts, MASK_ID, SamplerConfig(4, 4, 2))
    assert torch.equal(prompts, prompts_before)
    assert not logits.any()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gen_length": 0}, "gen_length"),
        ({"block_length": -1}, "block_length"),
        ({"gen_length": 10, "block_length": 4}, "block_length"),
        ({"gen_length": 16, "block_length": 4, "steps": 2}, "steps"),
        ({"gen_length": 16, "block_length": 4, "steps": 6}, "steps"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"remasking": "top_k"}, "remasking"),
        ({"precision": "float16"}, "precision"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SamplerConfig(**kwargs)


def test_input_validation() -> None:
    config = SamplerConfig(4, 4, 2)
    with pytest.raises(ValueError, match="prompt_ids"):
        generate(ToyModel(), torch.zeros(5, dtype=torch.long), MASK_ID, config)
    with pytest.raises(ValueError, match="logits_fn"):
        generate(lambda x: torch.zeros(1, 3, VOCAB), _prompts(1), MASK_ID, config)
    with pytest.raises(ValueError, match="mask_id"):
        generate(lambda x: torch.zeros(*x.shape, VOCAB), _prompts(1), VOCAB + 3, config)


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_windowed_logits_give_the_same_output(remasking: str, temperature: float) -> None:
    config = SamplerConfig(
        gen_length=12, block_length=4, steps=6, temperature=temperature, remasking=remasking
    )
    prompts = _prompts(3)
    model = ToyModel(seed=5)
    seen: list[slice] = []

    def window_fn(x: torch.Tensor, window: slice) -> torch.Tensor:
        seen.append(window)
        return model(x)[:, window]

    full = generate(model, prompts, MASK_ID, config, _seeded(4))
    windowed = generate(window_fn, prompts, MASK_ID, config, _seeded(4), windowed=True)
    assert torch.equal(full, windowed)
    prompt_len = prompts.shape[1]
    assert seen[0] == slice(prompt_len, prompt_len + 4)
    assert seen[-1] == slice(prompt_len + 8, prompt_len + 12)
    with pytest.raises(ValueError, match=r"\(B, W, V\)"):
        generate(lambda x, w: model(x), prompts, MASK_ID, config, windowed=True)
