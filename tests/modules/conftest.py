import pytest

from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.policy import PolicySpec
from bgpo_lightning.tasks import PromptDataModule
from tests.helpers import TINY

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
    # The embedded default's compact format: an untrained model never closes d1's <answer> tag.
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
