"""RL of a diffusion LM with a pluggable objective, following Algorithm 1 of the BGPO paper.

One training step = one rollout batch:

1. sample G responses per prompt with the current policy (the old policy, on-policy);
2. score them with the task's reward; the objective turns rewards into advantages;
3. draw the mask samples once, from an explicit generator, with the objective's estimator;
4. for each of mu inner updates, run the likelihood loop (:mod:`.likelihood`): one
   ``manual_backward`` per (MC sample, micro-batch) for a linear objective such as BGPO, one
   per micro-batch for a coupled one such as VRPO-OL; then clip and take one optimizer step.

Objectives (``bgpo``, ``vrpo_ol``, ``gdpo``, ``diffu_grpo``, ``wd1``, ``spg``) live in
:mod:`bgpo_lightning.objectives`, one file each; adding one does not touch this module.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules.base import DiffusionPolicyModule
from bgpo_lightning.modules.hparams import as_config, plain
from bgpo_lightning.modules.likelihood import LikelihoodLoop, OldTerms
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.modules.policy_gradient import PolicyGradientMixin
from bgpo_lightning.modules.rollout import Rollout, completion_mask
from bgpo_lightning.modules.sharding import data_parallel_mesh, gradient_sync, shard_model
from bgpo_lightning.objectives import build_objective
from bgpo_lightning.policy import (
    PolicySpec,
    build_reference,
    decode_responses,
    parse_reference_dtype,
)
from bgpo_lightning.tasks import Example


class DiffusionRLModule(PolicyGradientMixin, DiffusionPolicyModule):
    """RL for a masked diffusion LM with any registered objective.

    Args:
        policy: where the policy comes from.
        objective: a name from ``bgpo_lightning.objectives.OBJECTIVES``: ``bgpo`` (memory
            flat in n_t), ``vrpo_ol`` (all n_t graphs kept), ``gdpo``, ``diffu_grpo``, ``wd1``,
            ``spg``.
        objective_settings: the objective's own settings (its ``Settings`` dataclass), e.g.
            ``{kl_coef: 0.04, clip_eps: 0.5}``; unknown keys are a one-line error.
        estimator: how masks are drawn (``bgpo_lightning.diffusion.estimators.ESTIMATORS``:
            ``stratified``, ``iid``, ``complementary``, ``sdmc``, ``one_step``, ``blockwise``);
            None uses the objective's default.
        estimator_settings: the estimator's own settings, e.g. ``{rule: gauss_legendre,
            nodes: 3}`` for ``sdmc``; ``blockwise``'s ``block_length`` defaults to the
            rollout's.
        num_mc_samples: n_t, mask samples (forwards) per response and inner update.
        group_size: G, responses per prompt.
        micro_batch_size: responses per forward/backward in the likelihood phase.
        num_inner_updates: mu, optimizer steps per rollout batch (1 = on-policy).
        rollout: sampler for training rollouts (temperature > 0).
        eval_sampler: sampler for validation (greedy).
        optim: optimizer settings.
        share_masks_in_group: draw one set of masks per prompt and use it for all G of
            its responses (common random numbers). Each response's ELBO estimate stays
            unbiased; because a group's advantages sum to zero, the Monte Carlo noise of the
            tokens its responses share largely cancels in the gradient.
        separate_old_pass: spend extra no-grad forwards to compute the old values (what peer
            code does); only for benchmarking the single-pass default against.
        on_reward_error: ``zero`` (warn, reward 0, count it) or ``raise``.
        max_nonfinite_steps: consecutive steps with a non-finite loss that are skipped before
            training stops with an error.
        log_completions_every_n_steps: how often sample completions go to TensorBoard.
        seed: seeds the rollout and mask generators.
        use_chat_template: wrap prompts in the tokenizer's chat template when it has one
            (LLaDA-Instruct has one; the embedded character tokenizer has none).
        gradient_sync: ``last`` communicates gradients once per optimizer step, on its last
            backward (DDP ``no_sync``, FSDP2 ``set_requires_gradient_sync``); ``every`` on
            every backward. Under FSDP2, ``last`` keeps the whole unsharded gradient on each
            GPU between backwards (26 GiB at 8B in float32); ``every`` keeps only its shard,
            at n_t reduce-scatters per step.
        reference_dtype: weights' dtype of the frozen KL reference copy (``bfloat16`` halves a
            float32 reference's memory); None keeps the policy's. A LoRA policy's reference
            is its base with the adapter disabled, no copy, so it takes None.
    """

    def __init__(
        self,
        policy: PolicySpec | None = None,
        objective: str = "bgpo",
        objective_settings: dict[str, Any] | None = None,
        estimator: str | None = None,
        estimator_settings: dict[str, Any] | None = None,
        num_mc_samples: int = 4,
        group_size: int = 8,
        micro_batch_size: int = 64,
        num_inner_updates: int = 1,
        rollout: SamplerConfig | None = None,
        eval_sampler: SamplerConfig | None = None,
        optim: OptimConfig | None = None,
        share_masks_in_group: bool = False,
        separate_old_pass: bool = False,
        on_reward_error: str = "zero",
        max_nonfinite_steps: int = 3,
        log_completions_every_n_steps: int = 10,
        seed: int = 0,
        use_chat_template: bool = True,
        reference_dtype: str | None = None,
        gradient_sync: str = "last",
    ) -> None:
        hparams = plain(dict(locals()))
        for name, value in (
            ("num_mc_samples", num_mc_samples),
            ("group_size", group_size),
            ("micro_batch_size", micro_batch_size),
            ("num_inner_updates", num_inner_updates),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if gradient_sync not in ("last", "every"):
            raise ConfigError(f"gradient_sync must be 'last' or 'every', got {gradient_sync!r}")
        if on_reward_error not in ("zero", "raise"):
            raise ConfigError(f"on_reward_error must be 'zero' or 'raise', got {on_reward_error!r}")
        parse_reference_dtype(reference_dtype)  # a one-line error even without a KL term
        chosen = build_objective(objective, objective_settings)
        estimator_name = estimator or chosen.default_estimator
        allowed = chosen.estimators
        if allowed is not None and estimator_name not in allowed:
            raise ConfigError(
                f"objective {objective!r} cannot use estimator {estimator_name!r}; "
                f"it needs one of: {', '.join(allowed)}"
            )
        rollout = as_config(SamplerConfig, rollout, SamplerConfig(temperature=0.6))
        # Block-wise masks (SPG) follow the generation blocks unless told otherwise.
        context = {"block_length": rollout.block_length}
        mask_estimator = build_estimator(estimator_name, estimator_settings, defaults=context)
        mask_estimator.check_num_samples(chosen.num_samples(num_mc_samples, num_inner_updates))
        super().__init__(policy, eval_sampler, optim, seed, use_chat_template)
        self.check_sampler("rollout", rollout)
        self.save_hyperparameters(
            {k: v for k, v in hparams.items() if k not in ("self", "__class__")}
        )
        self.automatic_optimization = False
        self.objective = chosen
        self.estimator = mask_estimator
        self.num_mc_samples = num_mc_samples
        self.group_size = group_size
        self.micro_batch_size = micro_batch_size
        self.num_inner_updates = num_inner_updates
        self.rollout = rollout
        self.share_masks_in_group = share_masks_in_group
        self.separate_old_pass = separate_old_pass
        self.on_reward_error = on_reward_error
        self.gradient_sync = gradient_sync
        self.max_nonfinite_steps = max_nonfinite_steps
        self.log_completions_every_n_steps = log_completions_every_n_steps
        self._nonfinite_streak = 0
        self.reward_errors = 0
        # Kept out of nn.Module registration: not trained, not in the optimizer, not in
        # checkpoints (it is the initial policy, rebuilt from the config). With LoRA it is
        # the policy with its adapter disabled, sharing the base's weights.
        needs_reference = self.objective.kl_coef > 0
        self.__dict__["reference"] = (
            build_reference(self.policy, reference_dtype) if needs_reference else None
        )

    @property
    def progress_label(self) -> str:
        return self.objective.name.upper()

    @property
    def kl_coef(self) -> float:
        return self.objective.kl_coef

    # ---- 1-2: rollouts and rewards -------------------------------------------------------------
    def sampler_settings(self) -> dict[str, SamplerConfig]:
        return {"rollout": self.rollout, **super().sampler_settings()}

    def rollout_batch(self, batch: list[Example]) -> Rollout:
        """Generates G responses per prompt, scores them, computes the advantages."""
        ids, mask = self.prompt_tensors([e.prompt for e in batch])
        ids = ids.repeat_interleave(self.group_size, dim=0)
        mask = mask.repeat_interleave(self.group_size, dim=0)
        responses = self.sample(ids, mask, self.rollout, self.generator("rollout"))
        texts = decode_responses(self.tokenizer, responses, self.task.cut_at_eos)
        examples = [e for e in batch for _ in range(self.group_size)]
        rewards, accuracy = self._scores(texts, examples)
        rewards = rewards.to(self.device, torch.float32)
        return Rollout(
            prompt_ids=ids,
            prompt_mask=mask,
            responses=responses,
            completion_mask=completion_mask(responses, self.tokenizer.eos_token_id),
            rewards=rewards,
            accuracy=accuracy.to(self.device, torch.float32),
            advantages=self.objective.advantages(rewards, self.group_size),
            texts=texts,
            examples=examples,
        )

    def _scores(
        self, texts: list[str], examples: list[Example]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards and accuracies, scored as one batch (parallel for code tasks).

        If the batch call raises, each completion is scored on its own so that one bad
        completion costs only its own reward (see ``on_reward_error``).
        """
        try:
            pairs = self.task.score_batch(texts, examples)
            rewards = [float(r) for r, _ in pairs]
            accuracy = [float(a) for _, a in pairs]
        except Exception:
            rewards = [self._reward(t, e) for t, e in zip(texts, examples, strict=True)]
            accuracy = [self._accuracy(t, e) for t, e in zip(texts, examples, strict=True)]
        rewards = [r if r == r else 0.0 for r in rewards]  # NaN reward -> 0
        return torch.tensor(rewards), torch.tensor(accuracy)

    def _reward(self, text: str, example: Example) -> float:
        try:
            value = float(self.task.reward(text, example))
        except Exception as error:  # the task's code, not ours: report and go on
            if self.on_reward_error == "raise":
                raise RuntimeError(
                    f"reward of task {self.task.name!r} raised on prompt {example.prompt!r}, "
                    f"completion {text!r}: {error!r}"
                ) from error
            self.reward_errors += 1
            warnings.warn(
                f"reward of task {self.task.name!r} raised {error!r} on completion {text!r}; "
                "using reward 0",
                stacklevel=2,
            )
            return 0.0
        return value  # a NaN is zeroed by _scores, for both paths

    def _accuracy(self, text: str, example: Example) -> float:
        try:
            return float(self.task.accuracy(text, example))
        except Exception:
            return 0.0

    # ---- 3-4: the likelihood phase -------------------------------------------------------------
    def configure_model(self) -> None:
        """FSDP2 under ModelParallelStrategy: the policy (base class), then a frozen reference
        copy the same way, freeing its full parameters after every forward. A LoRA policy's
        reference is the policy itself with the adapter off: already sharded with it."""
        super().configure_model()
        reference = self.__dict__.get("reference")
        if self.device_mesh is not None and isinstance(reference, nn.Module):
            mesh = data_parallel_mesh(self.device_mesh)
            shard_model(reference.model, mesh, reshard_after_forward=True)

    def _sync_context(self, is_last: bool):
        """Gradients are communicated only on the last backward of the step: DDP's
        ``no_sync`` (all-reduce) or FSDP2's ``set_requires_gradient_sync`` (reduce-scatter)."""
        if self.gradient_sync == "every":
            return nullcontext()
        model = self._trainer.model if self._trainer else None
        if isinstance(model, DistributedDataParallel):
            return model.no_sync() if not is_last else nullcontext()
        return gradient_sync(self, enabled=is_last)  # a no-op without FSDP2 modules

    def likelihood_loop(self, objective=None) -> LikelihoodLoop:
        """The loop over mask samples for ``objective`` (default: this module's)."""
        reference = self.__dict__["reference"]

        def policy_logits(ids, attention, length):
            return self.policy(ids, attention, logits_to_keep=length)

        def reference_logits(ids, attention, length):
            # A separate copy follows the module to its device; a LoRA reference is the policy.
            separate = isinstance(reference, torch.nn.Module)
            if separate and next(reference.parameters()).device != self.device:
                reference.to(self.device)
            return reference(ids, attention, logits_to_keep=length)

        return LikelihoodLoop(
            policy_logits,
            reference_logits if reference is not None else None,
            objective or self.objective,
            self.policy.mask_token_id,
            self.micro_batch_size,
        )

    def draw_rollout_masks(self, n: int, length: int, prompt_length: int = 0) -> MaskSamples:
        """The rollout batch's mask samples, shared by the old and the current policy."""
        groups = self.group_size if self.share_masks_in_group else 1
        masks = self.estimator.draw(
            n // groups,
            length,
            self.objective.num_samples(self.num_mc_samples, self.num_inner_updates),
            self.generator("mask"),
            self.device,
            prompt_length=prompt_length,
        )
        # A group's responses are adjacent (see rollout_batch).
        return masks if groups == 1 else masks.repeat_rows(groups)

    def training_step(self, batch: list[Example], batch_idx: int) -> dict:
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()

        start = time.perf_counter()
        roll = self.rollout_batch(batch)
        rollout_time = time.perf_counter() - start

        start = time.perf_counter()
        masks = self.draw_rollout_masks(
            roll.num_responses, roll.response_length, roll.prompt_ids.shape[1]
        )
        loop, old = self.likelihood_loop(), OldTerms()
        updates = [
            list(self.objective.samples_in_update(m, masks.num_samples, self.num_inner_updates))
            for m in range(self.num_inner_updates)
        ]
        if self.objective.uses_old:
            # Samples first used after an optimizer step need the rollout-time values now.
            later = sorted({j for u in updates[1:] for j in u} - set(updates[0]))
            used = sorted({j for u in updates for j in u})
            loop.fill_old(roll, masks, old, used if self.separate_old_pass else later)
        for inner, samples in enumerate(updates):
            loss = loop.update(
                roll,
                masks,
                old,
                samples,
                backward=self.manual_backward,
                sync=self._sync_context,
                may_fill_old=inner == 0,
            )
            # Decided by all ranks together (MIN of the flags; the identity in one process):
            # a rank skipping alone would leave the others stepping on the gradients its
            # non-finite loss poisoned (DDP), or waiting alone in the clipping collective
            # (FSDP2).
            finite = torch.isfinite(loss.detach()).float()
            if self.trainer.strategy.reduce(finite, reduce_op="min") > 0:
                self._nonfinite_streak = 0
                optimizer.step()
            else:
                self._skip_nonfinite_step(loss)
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        likelihood_time = time.perf_counter() - start
        self._log_step(roll, loss, rollout_time, likelihood_time)
        # Lightning hands this to on_train_batch_end (the gradient-statistics callback).
        return {"loss": loss, "rollout": roll.detached()}

    def _skip_nonfinite_step(self, loss: torch.Tensor) -> None:
        self._nonfinite_streak += 1
        self.log("train/skipped_nonfinite", 1.0, on_step=True)
        message = (
            f"non-finite loss at step {self.global_step} (on some rank; this rank's loss is "
            f"{loss.item()}): update skipped "
            f"({self._nonfinite_streak} in a row)"
        )
        if self._nonfinite_streak >= self.max_nonfinite_steps:
            raise FloatingPointError(message + "; stopping (checkpoints so far are kept)")
        warnings.warn(message, stacklevel=2)

    def _log_step(self, roll: Rollout, loss, rollout_time, likelihood_time) -> None:
        advantages = roll.advantages
        generated = roll.responses.numel()
        metrics = {
            "train/reward": roll.rewards.mean(),
            "train/reward_std": roll.rewards.std() if roll.rewards.numel() > 1 else 0.0,
            "train/accuracy": roll.accuracy.mean(),
            "train/advantage_mean": advantages.mean(),
            "train/advantage_std": advantages.std() if advantages.numel() > 1 else 0.0,
            "train/advantage_max": advantages.max(),
            "train/advantage_min": advantages.min(),
            "train/loss": loss,
            "time/rollout_s": rollout_time,
            "time/likelihood_s": likelihood_time,
            "time/rollout_tokens_per_s": generated / max(rollout_time, 1e-9),
            "train/reward_errors": float(self.reward_errors),
        }
        if self.device.type == "cuda":
            metrics["memory/peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            torch.cuda.reset_peak_memory_stats(self.device)
        shown = {"train/reward", "train/accuracy"}  # what the progress bar shows
        for on_bar in (True, False):
            self.log_dict(
                {k: v for k, v in metrics.items() if (k in shown) == on_bar},
                on_step=True,
                on_epoch=False,
                prog_bar=on_bar,
                batch_size=len(roll.texts),
            )
        every = self.log_completions_every_n_steps
        experiment = getattr(self.logger, "experiment", None)
        if every and self.global_step % every == 0 and hasattr(experiment, "add_text"):
            lines = [
                f"reward {r:.2f}: {e.prompt} -> {t!r}"
                for t, e, r in zip(
                    roll.texts[:8],
                    roll.examples[:8],
                    roll.rewards[:8].tolist(),
                    strict=True,
                )
            ]
            experiment.add_text("train/completions", "\n\n".join(lines), self.global_step)
