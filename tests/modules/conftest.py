import pytest

from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.policy import PolicySpec
from tests.helpers import TINY, compact_sudoku_data

SAMPLER = SamplerConfig(gen_length=16, block_length=8, steps=4, temperature=1.0)
GREEDY = SamplerConfig(gen_length=16, block_length=8, steps=4, temperature=0.0)


def rl_kwargs(**overrides):
    kwargs = dict(
        policy=PolicySpec(tiny=TINY),
        num_mc_samples=2,
        group_size=4,
        micro_batch_size=3,  # does not divide 8 responses: exercises ragged micro-batches
        rollout=SAMPLER,
        eval_sampler=GREEDY,
        log_completions_every_n_steps=1,
    )
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def sudoku_data():
    return compact_sudoku_data()
