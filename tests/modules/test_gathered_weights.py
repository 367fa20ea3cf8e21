"""``sharding.gathered_weights`` and ``SamplerConfig.gather_weights`` on 2 CPU ranks (gloo).

Each rank shards the tiny float64 policy with FSDP2 over both ranks and keeps an unsharded
copy. ``torch.distributed``'s all-gathers are wrapped to count calls. Inside the block each
FSDP2 unit gathers once, on entry (a unit still holding its weights, as FSDP2's root does after
a forward, gathers nothing), and no forward gathers again. After it the layers are sharded
again and gather per forward as before, the root keeps its weights as after any forward, and a
backward gives the unsharded copy's gradient. A rollout with ``gather_weights`` gathers each
layer once instead of at every step, and samples the unsharded policy's tokens.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.sharding import full_tensor, gathered_weights, shard_model
from tests.helpers import CollectiveCounter, random_sequences
from tests.modules.conftest import SAMPLER, rl_kwargs

WORLD = 2
FORWARDS = 3


def _all_gathers() -> CollectiveCounter:
    return CollectiveCounter(CollectiveCounter.ALL_GATHERS)


def _forwards(policy, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(FORWARDS):
            logits = policy(ids)
    return logits


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    torch.set_num_threads(1)  # two ranks on a 2-core machine
    results = {}
    try:
        torch.manual_seed(0)
        module = DiffusionRLModule(**rl_kwargs())
        module.policy.double()
        plain = copy.deepcopy(module)
        shard_model(module.policy.model, init_device_mesh("cpu", (WORLD,)))
        policy = module.policy
        results["units"] = sum(isinstance(m, FSDPModule) for m in policy.modules())
        ids = random_sequences(2, 3, 5)

        with _all_gathers() as default:
            _forwards(policy, ids)
        with _all_gathers() as entry, gathered_weights(policy.model):
            entry_calls = entry.calls
            logits = _forwards(policy, ids)
        results["default_forwards"] = default.calls
        results["entry"], results["inside"] = entry_calls, entry.calls - entry_calls
        results["logits_error"] = (logits - plain.policy(ids)).abs().max().item()
        layers = policy.model.model.layers
        results["layers_sharded_after"] = all(isinstance(p, DTensor) for p in layers.parameters())
        root_own = [p for n, p in policy.model.named_parameters() if ".layers." not in n]
        results["root_sharded_after"] = all(isinstance(p, DTensor) for p in root_own)
        with _all_gathers() as after:
            _forwards(policy, ids)
        results["after_forwards"] = after.calls
        policy(ids).logsumexp(-1).mean().backward()
        plain.policy(ids).logsumexp(-1).mean().backward()
        results["grad_error"] = max(
            (full_tensor(p.grad) - q.grad).abs().max().item()
            for p, q in zip(policy.parameters(), plain.policy.parameters(), strict=True)
        )

        prompt_ids, prompt_mask = module.prompt_tensors(["ab", "cde"])
        gathered_config = dataclasses.replace(SAMPLER, gather_weights=True)
        for name, config, source in [
            ("rollout_default", SAMPLER, module),
            ("rollout_gathered", gathered_config, module),
            ("rollout_plain", SAMPLER, plain),
        ]:
            with _all_gathers() as rollout:
                generator = torch.Generator().manual_seed(1)
                results[name] = source.sample(prompt_ids, prompt_mask, config, generator)
            results[f"{name}_gathers"] = rollout.calls
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    # Saved: leave without the interpreter's teardown (see test_rl_fsdp.py's _rank_main).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("needs gloo")
    out = tmp_path_factory.mktemp("gathered")
    with pytest.MonkeyPatch.context() as patch:
        # Spawned ranks unpickle this module by name: the repository root must be importable.
        patch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
        mp.spawn(_rank_main, args=(find_free_network_port(), str(out)), nprocs=WORLD)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_inside_the_block_each_unit_gathers_once_and_no_forward_gathers(ranks):
    for r in ranks:
        assert r["units"] == 3  # the root and the two decoder layers
        # By default the root gathers once and keeps its weights; the layers gather at every
        # forward.
        assert r["default_forwards"] == 1 + 2 * FORWARDS
        # On entry the two layers gather (the root still holds its weights), then nothing.
        assert (r["entry"], r["inside"]) == (2, 0)
        assert r["logits_error"] < 1e-12  # the unsharded copy's logits


def test_after_the_block_the_units_are_as_a_forward_leaves_them_and_train_as_before(ranks):
    for r in ranks:
        # The layers are sharded again and gather at every forward; the root keeps its
        # weights, as FSDP2's root does after a forward, until the next backward.
        assert r["layers_sharded_after"] and not r["root_sharded_after"]
        assert r["after_forwards"] == 2 * FORWARDS
        assert r["grad_error"] < 1e-12


def test_a_gathered_rollout_gathers_once_and_samples_the_unsharded_policys_tokens(ranks):
    steps = SAMPLER.steps
    for r in ranks:
        # The layers gather once (the root holds its weights from the rollout before) ...
        assert r["rollout_gathered_gathers"] == 2
        # ... instead of at each of the steps' forwards.
        assert r["rollout_default_gathers"] >= 2 * steps
        assert torch.equal(r["rollout_gathered"], r["rollout_plain"])
        assert torch.equal(r["rollout_default"], r["rollout_plain"])
