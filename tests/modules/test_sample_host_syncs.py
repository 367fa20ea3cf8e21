"""The module's rollout never waits for the GPU inside its step loop (issue 11, part 3).

Counted with CUDA's sync debug mode: a sync inside the loop grows with the number of steps,
one outside it (deciding whether the batch is padded, a CUDA graph's capture) does not.
"""

import dataclasses
import warnings

import pytest
import torch

from bgpo_lightning.modules import DiffusionRLModule
from tests.modules.conftest import SAMPLER, rl_kwargs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

PADDED = ["12+3=", "7*8-1=", "4="]
UNPADDED = ["12+3=", "4*5+6", "9-1=0"]


@pytest.fixture(scope="module")
def module() -> DiffusionRLModule:
    return DiffusionRLModule(**rl_kwargs()).cuda().eval()


def _syncs(run) -> int:
    """Synchronising CUDA calls while ``run()`` runs."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


@pytest.mark.parametrize("prompts", [PADDED, UNPADDED], ids=["padded", "unpadded"])
@pytest.mark.parametrize(
    "mode",
    [
        {},
        {"precision": "float32"},
        {"cache": "prefix"},
        {"cache": "dual"},
        {"cache": "dual", "cuda_graph": True, "precision": "float32"},
    ],
    ids=["exact", "exact-f32", "prefix", "dual", "dual-graph-f32"],
)
def test_no_host_sync_per_step(module: DiffusionRLModule, prompts: list[str], mode: dict) -> None:
    ids, mask = module.prompt_tensors(prompts)
    assert bool(mask.all()) == (prompts is UNPADDED)

    def syncs(steps_per_block: int) -> int:
        config = dataclasses.replace(SAMPLER, steps=2 * steps_per_block, **mode)
        generator = torch.Generator(device="cuda").manual_seed(0)
        return _syncs(lambda: module.sample(ids, mask, config, generator))

    syncs(2)  # warm-up: first-call work (a CUDA graph's capture) is not the loop's
    few, many = syncs(2), syncs(8)  # the same two blocks, 6 more steps in each
    assert many == few, f"{many - few} more host syncs with 12 more steps ({few} with 4 steps)"


def test_the_counter_sees_a_sync() -> None:
    """Guards the test above: the sync debug mode reports through Python warnings here."""
    x = torch.ones(3, device="cuda")
    assert _syncs(lambda: bool(x.sum() > 0)) >= 1
