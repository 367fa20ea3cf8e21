"""The module's random streams in a checkpoint, one process: the per-rank list and old files.

Several ranks (each resuming its own streams from the file rank 0 wrote) are in
test_rl_ddp.py and test_rl_fsdp.py.
"""

from __future__ import annotations

import torch

from bgpo_lightning.modules import DiffusionRLModule
from tests.modules.conftest import rl_kwargs


class OnRank(DiffusionRLModule):
    """The module as a given global rank sees itself (no Trainer needed)."""

    rank = 0
    global_rank = property(lambda self: self.rank)


def module(rank: int = 0) -> OnRank:
    model = OnRank(**rl_kwargs())
    model.rank = rank
    return model


def states(model: DiffusionRLModule) -> dict[str, torch.Tensor]:
    return {name: model.generator(name).get_state() for name in ("rollout", "mask")}


def advanced(model: DiffusionRLModule) -> dict[str, torch.Tensor]:
    """Draws from both streams, so that their states differ from a fresh seeding's."""
    for name in ("rollout", "mask"):
        torch.rand(5, generator=model.generator(name))
    return states(model)


def test_one_process_saves_its_states_as_rank_zeros_entry():
    saving = module()
    drawn = advanced(saving)
    checkpoint = {"state_dict": {}}
    saving.on_save_checkpoint(checkpoint)
    assert len(checkpoint["generator_states_by_rank"]) == 1
    for name, state in drawn.items():
        assert torch.equal(checkpoint["generator_states_by_rank"][0][name], state)
        assert torch.equal(checkpoint["generator_states"][name], state)
    loading = module()
    loading.on_load_checkpoint(checkpoint)
    for name, state in states(loading).items():
        assert torch.equal(state, drawn[name]), name


def test_each_rank_takes_its_own_entry_and_an_unknown_rank_starts_from_its_seed():
    by_rank = [advanced(module(rank)) for rank in range(2)]
    # The single-rank key holds rank 0's, as the file rank 0 writes does: not to be used.
    checkpoint = {"generator_states": by_rank[0], "generator_states_by_rank": by_rank}
    second = module(rank=1)
    second.on_load_checkpoint(checkpoint)
    for name, state in states(second).items():
        assert torch.equal(state, by_rank[1][name]), name
    # Resumed on more ranks than saved: rank 2 starts from its seed (a fresh module's
    # streams), not from another rank's entry.
    fresh = states(module(rank=2))
    third = module(rank=2)
    third.on_load_checkpoint(checkpoint)
    for name, state in states(third).items():
        assert torch.equal(state, fresh[name]), name
        assert not any(torch.equal(state, saved[name]) for saved in by_rank), name


def test_a_checkpoint_without_the_per_rank_list_still_loads_its_states():
    drawn = advanced(module())
    old = module()
    old.on_load_checkpoint({"generator_states": drawn})  # written before the list existed
    for name, state in states(old).items():
        assert torch.equal(state, drawn[name]), name
