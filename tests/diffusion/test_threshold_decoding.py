"""Tests of confidence-threshold parallel decoding in the sampler."""

import math

import pytest
import torch

from bgpo_lightning.diffusion.sampler import SamplerConfig, generate

VOCAB = 12
MASK_ID = VOCAB - 1


class ToyModel:
    """Random embeddings plus a sequence-mean mixing term, so outputs depend on context."""

    def __init__(self, seed: int = 0, dim: int = 16, scale: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        self.embed = torch.randn(VOCAB, dim, generator=g)
        self.pos = torch.randn(64, dim, generator=g)
        self.mix = torch.randn(dim, dim, generator=g) / math.sqrt(dim)
        self.out = torch.randn(dim, VOCAB, generator=g) * scale
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        h = self.embed[x] + self.pos[: x.shape[1]]
        h = h + torch.tanh(h.mean(dim=1, keepdim=True) @ self.mix)
        return h @ self.out


class Recorder:
    """Input-independent per-row logits; keeps a copy of every input it sees."""

    def __init__(self, per_position: torch.Tensor):
        self.per_position = per_position  # (B, L_gen, V)
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        logits = torch.zeros(*x.shape, VOCAB)
        logits[:, -self.per_position.shape[1] :] = self.per_position
        return logits


def _prompts(batch: int, prompt_len: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, MASK_ID, (batch, prompt_len), generator=g)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _commits_per_step(recorder: Recorder, out: torch.Tensor) -> list[list[int]]:
    """Tokens committed per row at each step."""
    masked = [(x == MASK_ID).sum(-1) for x in recorder.inputs] + [(out == MASK_ID).sum(-1)]
    return [(a - b).tolist() for a, b in zip(masked[:-1], masked[1:], strict=True)]


def _confident_logits(batch: int, gen_length: int, sure: torch.Tensor) -> torch.Tensor:
    """Logits whose top token has probability > 0.99 where ``sure`` ``(B, L_gen)``, else < 0.5."""
    logits = torch.zeros(batch, gen_length, VOCAB)
    top = torch.arange(gen_length) % MASK_ID
    # Small per-position offsets give distinct confidences, so the fixed order is unambiguous.
    sharpness = torch.where(sure, 10.0, 1.0) + torch.linspace(0, 0.1, gen_length)
    logits[:, torch.arange(gen_length), top] = sharpness
    return logits


@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize(("gen_length", "block_length", "steps"), [(12, 4, 6), (16, 8, 16)])
def test_threshold_above_one_is_the_fixed_schedule(
    temperature: float, gen_length: int, block_length: int, steps: int
) -> None:
    fixed = SamplerConfig(gen_length, block_length, steps, temperature)
    thresholded = SamplerConfig(gen_length, block_length, steps, temperature, threshold=1.5)
    prompts = _prompts(4)
    model_a, model_b = ToyModel(seed=3, scale=4.0), ToyModel(seed=3, scale=4.0)
    out_fixed = generate(model_a, prompts, MASK_ID, fixed, _seeded(5))
    out_thresholded = generate(model_b, prompts, MASK_ID, thresholded, _seeded(5))
    assert torch.equal(out_fixed, out_thresholded)
    assert model_a.calls == model_b.calls == steps


def test_commits_every_token_above_threshold_and_at_least_the_schedule() -> None:
    sure = torch.tensor([[True, False, True, True, False, False, True, False]])
    recorder = Recorder(_confident_logits(1, 8, sure))
    config = SamplerConfig(gen_length=8, block_length=8, steps=8, threshold=0.9)
    out = generate(recorder, _prompts(1), MASK_ID, config)
    assert not (out == MASK_ID).any()
    # The four sure tokens at once, then one per step (the schedule's count) for the rest.
    assert _commits_per_step(recorder, out) == [[4], [1], [1], [1], [1]]


def test_rows_that_finish_their_block_wait_for_the_others() -> None:
    sure = torch.zeros(2, 8, dtype=torch.bool)
    sure[0] = True  # row 0 is sure of everything, row 1 of nothing
    recorder = Recorder(_confident_logits(2, 8, sure))
    config = SamplerConfig(gen_length=8, block_length=4, steps=4, threshold=0.9)
    out = generate(recorder, _prompts(2), MASK_ID, config)
    assert not (out == MASK_ID).any()
    # Per block: row 0 commits its 4 tokens in step one and waits; row 1 follows the schedule.
    assert _commits_per_step(recorder, out) == [[4, 2], [0, 2]] * 2


def test_fewer_forwards_than_the_fixed_schedule_when_confident() -> None:
    sure = torch.ones(3, 16, dtype=torch.bool)
    config = SamplerConfig(gen_length=16, block_length=8, steps=16, threshold=0.9)
    recorder = Recorder(_confident_logits(3, 16, sure))
    out = generate(recorder, _prompts(3), MASK_ID, config)
    assert not (out == MASK_ID).any()
    assert len(recorder.inputs) == config.num_blocks  # one step per block instead of 8


@pytest.mark.parametrize("threshold", [0.3, 0.9])
def test_threshold_decoding_keeps_the_invariants(threshold: float) -> None:
    config = SamplerConfig(gen_length=12, block_length=4, steps=12, threshold=threshold)
    prompt_len = 5
    prompts = _prompts(3, prompt_len)
    seen: list[torch.Tensor] = []
    model = ToyModel(seed=2, scale=3.0)

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return model(x)

    out = generate(logits_fn, prompts, MASK_ID, config)
    assert not (out == MASK_ID).any()
    assert torch.equal(out[:, :prompt_len], prompts)
    assert torch.equal(out, generate(model, prompts, MASK_ID, config))  # greedy: deterministic
    blocks = [(x[:, prompt_len:] == MASK_ID).view(3, 3, 4) for x in seen]
    # The block being decoded: the first one with a mask left in some row.
    current = [int(b.any(-1).any(0).long().argmax()) for b in blocks]
    for masks, block in zip(blocks, current, strict=True):
        assert not masks[:, :block].any(), "an earlier block is still masked"
        assert masks[:, block + 1 :].all(), "a later block was touched"
    assert current == sorted(current)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": 0.9, "remasking": "random"}, "remasking"),
        ({"threshold": 0.9, "gen_length": 4, "block_length": 4, "steps": 8}, "block_length"),
    ],
)
def test_threshold_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**kwargs)
