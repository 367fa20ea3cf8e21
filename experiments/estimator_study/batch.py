"""The warm-started policy and the study's fixed rollout batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.rollout import Rollout, completion_mask
from bgpo_lightning.policy import PolicySpec, TinyModelConfig, decode_responses
from bgpo_lightning.tasks import Example, Task
from bgpo_lightning.tasks.registry import get_task
from experiments.embedded_default import RL_CONFIG, ROOT, _fingerprint, warm_start
from experiments.gradient_statistics import WARM_START


@dataclass(frozen=True)
class WarmStart:
    """Where the policy came from.

    Attributes:
        path: the Hugging Face checkpoint directory.
        built: True when this run trained it (no cache was there).
        matches_config: whether its stamp matches today's SFT config (a cache built before a
            config edit is still used, as ``experiments.gradient_statistics`` does).
    """

    path: Path
    built: bool
    matches_config: bool


def ensure_warm_start(seed: int = 0) -> WarmStart:
    """The cached SFT warm start of the embedded default, trained first if it is missing."""
    if (WARM_START / "model.safetensors").is_file():
        stamp = WARM_START / "sft_config.sha256"
        matches = stamp.is_file() and stamp.read_text() == _fingerprint(seed, [])
        return WarmStart(WARM_START, built=False, matches_config=matches)
    path, _ = warm_start(ROOT / f"seed_{seed}", seed, [])
    return WarmStart(path, built=True, matches_config=True)


def rl_settings(config: Path = RL_CONFIG) -> dict[str, Any]:
    """The rollout sampler and the task of the embedded BGPO config."""
    text = yaml.safe_load(config.read_text())
    model, data = text["model"]["init_args"], text["data"]
    return {
        "rollout": dict(model["rollout"]),
        "task": data["task"],
        "task_kwargs": dict(data.get("task_kwargs") or {}),
    }


def build_module(
    policy_path: Path | None,
    num_responses: int,
    group_size: int,
    tiny: TinyModelConfig | None = None,
    tokenizer_path: Path | None = None,
    dtype: str | None = None,
) -> DiffusionRLModule:
    """An on-policy BGPO module around the policy (None: a random tiny model of shape
    ``tiny``); one forward covers the whole batch of ``num_responses``. ``tokenizer_path``
    and ``dtype`` are ``PolicySpec``'s (None: the checkpoint's own)."""
    spec = PolicySpec(
        path=None if policy_path is None else str(policy_path),
        tokenizer_path=None if tokenizer_path is None else str(tokenizer_path),
        dtype=dtype,
    )
    if tiny is not None:
        spec.tiny = tiny
    return DiffusionRLModule(
        policy=spec, objective="bgpo", group_size=group_size, micro_batch_size=num_responses
    )


def study_task(settings: dict[str, Any]) -> Task:
    """The config's task (reward and prompt format)."""
    return get_task(settings["task"], **settings["task_kwargs"])


def sample_rollout(
    module: DiffusionRLModule,
    task: Task,
    examples: list[Example],
    group_size: int,
    sampler: SamplerConfig,
    seed: int,
) -> Rollout:
    """G responses per prompt from the policy, their rewards and BGPO's group advantages.

    What ``DiffusionRLModule.rollout_batch`` does, with the sampler and the seed given here
    instead of the module's (the study samples two batches of different lengths).
    """
    ids, mask = module.prompt_tensors([e.prompt for e in examples])
    ids = ids.repeat_interleave(group_size, dim=0)
    mask = mask.repeat_interleave(group_size, dim=0)
    generator = torch.Generator(device=module.device).manual_seed(seed)
    responses = module.sample(ids, mask, sampler, generator)
    texts = decode_responses(module.tokenizer, responses, task.cut_at_eos)
    repeated = [e for e in examples for _ in range(group_size)]
    scores = task.score_batch(texts, repeated)
    rewards = torch.tensor([float(r) for r, _ in scores], device=module.device)
    accuracy = torch.tensor([float(a) for _, a in scores], device=module.device)
    advantages = module.objective.advantages(rewards, group_size)
    if not advantages.any():
        raise SystemExit("every advantage of the batch is 0: nothing to measure (change --seed)")
    return Rollout(
        prompt_ids=ids,
        prompt_mask=mask,
        responses=responses,
        completion_mask=completion_mask(responses, module.tokenizer.eos_token_id),
        rewards=rewards,
        accuracy=accuracy,
        advantages=advantages,
        texts=texts,
        examples=repeated,
    )


def fixed_sampler(settings: dict[str, Any], length: int | None = None) -> SamplerConfig:
    """The config's rollout sampler, or a one-block sampler of ``length`` tokens."""
    rollout = dict(settings["rollout"])
    if length is not None:
        rollout.update(gen_length=length, block_length=length, steps=length)
    return SamplerConfig(**rollout)
