"""One optimizer step's likelihood phase, measured through the real training code.

``DiffusionRLModule.training_step`` runs unchanged under a Lightning ``Trainer``: the same
likelihood loop (one ``manual_backward`` per sample for linear objectives such as BGPO, kept
graphs for coupled ones such as VRPO-OL), optimizer step and clipping.
Only the rollout is replaced by random prompt and response tokens with random rewards: the
likelihood phase's cost does not depend on what the tokens say, and the rollout is measured on
its own (``rollout.py``), once, since it does not depend on the objective or n_t.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader

from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.modules.rollout import Rollout
from bgpo_lightning.policy import frozen_copy, lora
from bgpo_lightning.policy.checkpointing import (
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
)

#: How the policy is trained: every weight (``plain``), with gradient checkpointing (``gc``),
#: a LoRA adapter (``lora``: d1's rank 128, alpha 64, every projection), or both.
# "lora+merged": lora's likelihood phase, with its rollout run with the adapter merged
# (SamplerConfig.merge_lora).
VARIANTS = ("plain", "gc", "lora", "lora+gc", "lora+merged")


@dataclass(frozen=True)
class LikelihoodCase:
    """One benchmark row: objective, n_t, whether l_old costs a separate no-grad pass, and the
    policy variant (``VARIANTS``)."""

    objective: str
    num_mc_samples: int
    separate_old_pass: bool = False
    variant: str = "plain"

    @property
    def estimator_settings(self) -> dict | None:
        # GDPO's SDMC with n_t plain-MC nodes: the same forwards as n_t quadrature nodes.
        return {"rule": "mc", "nodes": self.num_mc_samples} if self.objective == "gdpo" else None

    @property
    def label(self) -> str:
        label = self.objective + ("+old_pass" if self.separate_old_pass else "")
        return label + ("" if self.variant == "plain" else f"[{self.variant}]")


def apply_variant(policy, variant: str) -> None:
    """Sets the shared policy up for ``variant``. An adapter cannot be taken off again, so the
    caller runs every LoRA variant after the others."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    if "lora" in variant and lora.adapter_of(policy) is None:
        lora.add_lora(policy, lora.LoraSpec())
    elif "lora" not in variant and lora.adapter_of(policy) is not None:
        raise ValueError(f"variant {variant!r} after a LoRA variant: the adapter stays on")
    if "gc" in variant:
        enable_gradient_checkpointing(policy.model)
    else:
        disable_gradient_checkpointing(policy.model)


class RandomRolloutRL(DiffusionRLModule):
    """The RL module with a prebuilt policy and random rollouts; records each step's cost."""

    def __init__(self, policy, num_prompts: int, prompt_length: int, response_length: int, **kw):
        super().__init__(**kw)
        self.policy = policy  # the large random model, shared across cases
        if self.reference is not None:  # a KL objective: its reference must be this model's
            self.__dict__["reference"] = frozen_copy(policy)
        self.num_prompts = num_prompts
        self.prompt_length = prompt_length
        self.response_length = response_length
        self.records: list[dict] = []

    def rollout_batch(self, batch) -> Rollout:
        gen = self.generator("rollout")
        vocab = self.policy.model.config.vocab_size
        n = self.num_prompts * self.group_size
        prompts = torch.randint(
            0,
            self.policy.mask_token_id,
            (self.num_prompts, self.prompt_length),
            generator=gen,
            device=self.device,
        )
        responses = torch.randint(
            0,
            min(vocab, self.policy.mask_token_id),
            (n, self.response_length),
            generator=gen,
            device=self.device,
        )
        rewards = torch.rand(n, generator=gen, device=self.device)
        prompt_ids = prompts.repeat_interleave(self.group_size, dim=0)
        return self.random_rollout(prompt_ids, responses, rewards)

    def random_rollout(
        self, prompt_ids: torch.Tensor, responses: torch.Tensor, rewards: torch.Tensor
    ) -> Rollout:
        """A rollout of unpadded prompts (one row per response) and complete responses."""
        n = responses.shape[0]
        return Rollout(
            prompt_ids=prompt_ids,
            prompt_mask=torch.ones_like(prompt_ids),
            responses=responses,
            completion_mask=torch.ones_like(responses, dtype=torch.bool),
            rewards=rewards,
            accuracy=torch.zeros_like(rewards),
            advantages=self.objective.advantages(rewards, self.group_size),
            texts=[""] * n,
            examples=[None] * n,
        )

    def _log_step(self, roll, loss, rollout_time, likelihood_time) -> None:
        cuda = self.device.type == "cuda"
        self.records.append(
            {
                "likelihood_s": likelihood_time,
                "peak_bytes": torch.cuda.max_memory_allocated(self.device) if cuda else 0,
                "loss_finite": bool(torch.isfinite(loss)),
            }
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)


def measure_likelihood(
    policy,
    case: LikelihoodCase,
    *,
    device: torch.device,
    num_prompts: int,
    group_size: int,
    micro_batch_size: int,
    prompt_length: int,
    response_length: int,
    warmup_steps: int,
    measured_steps: int,
    precision: str = "bf16-true",
) -> dict:
    """Runs ``warmup_steps + measured_steps`` optimizer steps of one case.

    Returns:
        ``status`` (``ok`` or ``OOM``), the mean likelihood-phase seconds and the largest peak
        memory over the measured steps (bytes allocated by PyTorch, parameters, gradients and
        optimizer state included).
    """
    # Lightning's teardown moves the module, and with it the shared policy, to the CPU.
    policy.to(device)
    apply_variant(policy, case.variant)
    _release(policy)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    module = RandomRolloutRL(
        policy,
        num_prompts,
        prompt_length,
        response_length,
        objective=case.objective,
        estimator_settings=case.estimator_settings,
        num_mc_samples=case.num_mc_samples,
        group_size=group_size,
        micro_batch_size=micro_batch_size,
        separate_old_pass=case.separate_old_pass,
        optim=OptimConfig(lr=5e-7, weight_decay=0.01, grad_clip=1.0),
        log_completions_every_n_steps=0,
    )
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        precision=precision,
        max_steps=warmup_steps + measured_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    loader = DataLoader(list(range(warmup_steps + measured_steps)), batch_size=1)
    status = "ok"
    start = time.perf_counter()
    try:
        trainer.fit(module, loader)
    except torch.OutOfMemoryError:
        status = "OOM"
    records = module.records[warmup_steps:]
    row = {
        "case": case.label,
        "objective": case.objective,
        "separate_old_pass": case.separate_old_pass,
        "n_t": case.num_mc_samples,
        "variant": case.variant,
        "trainable_params": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        "status": status,
        "likelihood_s": (
            sum(r["likelihood_s"] for r in records) / len(records)
            if status == "ok" and records
            else float("nan")
        ),
        "peak_gib": (
            max(r["peak_bytes"] for r in records) / 2**30
            if status == "ok" and records
            else float("nan")
        ),
        "loss_finite": all(r["loss_finite"] for r in records),
        "wall_s": time.perf_counter() - start,
    }
    del trainer, module
    _release(policy)
    return row


def _release(policy) -> None:
    """Frees gradients, optimizer state and any half-built graph of the previous case."""
    for p in policy.parameters():
        p.grad = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
