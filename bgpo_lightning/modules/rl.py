"""RL of a diffusion LM with BGPO (or VRPO-OL), following Algorithm 1 of the BGPO paper.

One training step = one rollout batch:

1. sample G responses per prompt with the current policy (the old policy, on-policy);
2. score them with the task's reward, compute group-relative advantages;
3. draw n_t masks per response once, from an explicit generator;
4. for each of mu inner updates, loop over MC samples x micro-batches, one
   ``manual_backward`` each (BGPO), or keep every sample's graph and back-propagate once per
   micro-batch (VRPO-OL); then clip and take one optimizer step.

On the first inner update ``l_old`` is the detached value of the same forward pass
(``d_j = l_theta - l_theta.detach()``: value 0, the right gradient), so no separate no-grad
pass over the old policy is spent; later inner updates reuse those detached values.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext

import torch
from torch.nn.parallel import DistributedDataParallel

from bgpo_lightning.diffusion.elbo import elbo_term, token_log_probs
from bgpo_lightning.diffusion.masking import (
    MaskSamples,
    apply_mask,
    check_timestep_sampler,
    draw_masks,
)
from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules.base import DiffusionPolicyModule
from bgpo_lightning.modules.hparams import as_config, plain
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.modules.policy_gradient import PolicyGradientMixin
from bgpo_lightning.objectives import (
    bgpo_sample_term,
    check_objective,
    group_advantages,
    k3_kl,
    vrpo_ol_objective,
)
from bgpo_lightning.policy import PolicySpec, decode_responses, frozen_copy
from bgpo_lightning.tasks import Example


class DiffusionRLModule(PolicyGradientMixin, DiffusionPolicyModule):
    """On-policy RL for a masked diffusion LM with ELBO-based objectives.

    Args:
        policy: where the policy comes from.
        objective: ``bgpo`` (memory flat in n_t) or ``vrpo_ol`` (all n_t graphs kept).
        num_mc_samples: n_t, Monte Carlo mask samples per response.
        group_size: G, responses per prompt.
        micro_batch_size: responses per forward/backward in the likelihood phase.
        num_inner_updates: mu, optimizer steps per rollout batch (1 = on-policy).
        kl_coef: weight of a k3 KL penalty to a frozen copy of the initial policy (0 = none,
            and then no reference model is built).
        timestep_sampler: ``stratified`` (default; official code, lower variance) or ``iid``.
        rollout: sampler for training rollouts (temperature > 0).
        eval_sampler: sampler for validation (greedy).
        optim: optimizer settings.
        normalize_advantage_std: divide advantages by the group's std.
        share_masks_in_group: draw one set of n_t masks per prompt and use it for all G of
            its responses (common random numbers). Each response's ELBO estimate stays
            unbiased; because a group's advantages sum to zero, the Monte Carlo noise of the
            tokens its responses share largely cancels in the gradient.
        separate_old_pass: spend n_t extra no-grad forwards to compute ``l_old`` (what peer
            code does); only for benchmarking the single-pass default against.
        on_reward_error: ``zero`` (warn, reward 0, count it) or ``raise``.
        max_nonfinite_steps: consecutive steps with a non-finite loss that are skipped before
            training stops with an error.
        log_completions_every_n_steps: how often sample completions go to TensorBoard.
        seed: seeds the rollout and mask generators.
        use_chat_template: wrap prompts in the tokenizer's chat template when it has one
            (LLaDA-Instruct has one; the embedded character tokenizer has none).
    """

    def __init__(
        self,
        policy: PolicySpec | None = None,
        objective: str = "bgpo",
        num_mc_samples: int = 4,
        group_size: int = 8,
        micro_batch_size: int = 64,
        num_inner_updates: int = 1,
        kl_coef: float = 0.0,
        timestep_sampler: str = "stratified",
        rollout: SamplerConfig | None = None,
        eval_sampler: SamplerConfig | None = None,
        optim: OptimConfig | None = None,
        normalize_advantage_std: bool = True,
        share_masks_in_group: bool = False,
        separate_old_pass: bool = False,
        on_reward_error: str = "zero",
        max_nonfinite_steps: int = 3,
        log_completions_every_n_steps: int = 10,
        seed: int = 0,
        use_chat_template: bool = True,
    ) -> None:
        hparams = plain(dict(locals()))
        check_objective(objective)
        for name, value in (
            ("num_mc_samples", num_mc_samples),
            ("group_size", group_size),
            ("micro_batch_size", micro_batch_size),
            ("num_inner_updates", num_inner_updates),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        check_timestep_sampler(timestep_sampler)
        if on_reward_error not in ("zero", "raise"):
            raise ConfigError(f"on_reward_error must be 'zero' or 'raise', got {on_reward_error!r}")
        if kl_coef < 0:
            raise ConfigError(f"kl_coef must be >= 0, got {kl_coef}")
        super().__init__(policy, eval_sampler, optim, seed, use_chat_template)
        self.save_hyperparameters(
            {k: v for k, v in hparams.items() if k not in ("self", "__class__")}
        )
        self.automatic_optimization = False
        self.objective = objective
        self.num_mc_samples = num_mc_samples
        self.group_size = group_size
        self.micro_batch_size = micro_batch_size
        self.num_inner_updates = num_inner_updates
        self.kl_coef = kl_coef
        self.timestep_sampler = timestep_sampler
        self.rollout = as_config(SamplerConfig, rollout, SamplerConfig(temperature=0.6))
        self.normalize_advantage_std = normalize_advantage_std
        self.share_masks_in_group = share_masks_in_group
        self.separate_old_pass = separate_old_pass
        self.on_reward_error = on_reward_error
        self.max_nonfinite_steps = max_nonfinite_steps
        self.log_completions_every_n_steps = log_completions_every_n_steps
        self._nonfinite_streak = 0
        self.reward_errors = 0
        # Set by callbacks that measure gradients (GradientStatistics). The step's rollout
        # tensors (token ids, rewards, advantages: small next to activations) are then kept
        # from the end of training_step, for on_train_batch_end, to the start of the next step.
        self.keep_last_rollout = False
        self.last_rollout: dict | None = None
        # Kept out of nn.Module registration: not trained, not in the optimizer, not in
        # checkpoints (it is the initial policy, rebuilt from the config).
        self.__dict__["reference"] = frozen_copy(self.policy) if kl_coef > 0 else None

    @property
    def progress_label(self) -> str:
        return self.objective.upper()

    # ---- 1-2: rollouts and rewards -------------------------------------------------------------
    def rollout_batch(self, batch: list[Example]) -> dict:
        """Generates G responses per prompt and scores them."""
        ids, mask = self.prompt_tensors([e.prompt for e in batch])
        ids = ids.repeat_interleave(self.group_size, dim=0)
        mask = mask.repeat_interleave(self.group_size, dim=0)
        responses = self.sample(ids, mask, self.rollout, self.generator("rollout"))
        texts = decode_responses(self.tokenizer, responses, self.task.cut_at_eos)
        examples = [e for e in batch for _ in range(self.group_size)]
        rewards, accuracy = self._scores(texts, examples)
        return {
            "prompt_ids": ids,
            "prompt_mask": mask,
            "responses": responses,
            "texts": texts,
            "examples": examples,
            "rewards": rewards.to(self.device, torch.float32),
            "accuracy": accuracy.to(self.device, torch.float32),
        }

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
    def _sync_context(self, is_last: bool):
        """Under DDP, all-reduce gradients only on the last backward of the step."""
        model = self._trainer.model if self._trainer else None
        if not is_last and isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return nullcontext()

    def _micro_batches(self, n: int) -> list[slice]:
        return [
            slice(i, min(i + self.micro_batch_size, n)) for i in range(0, n, self.micro_batch_size)
        ]

    def _forward_sample(self, roll: dict, masks: MaskSamples, j: int, rows: slice):
        """ELBO term of sample j for ``rows`` (and the per-token log-probs, for the KL)."""
        sequences = torch.cat([roll["prompt_ids"][rows], roll["responses"][rows]], dim=1)
        attention = torch.cat(
            [roll["prompt_mask"][rows], torch.ones_like(roll["responses"][rows])], dim=1
        )
        noisy = apply_mask(sequences, masks.mask[j, rows], self.policy.mask_token_id)
        length = roll["responses"].shape[1]
        # Only the response's logits: the prompt's would cost lm_head FLOPs and activations.
        logits = self.policy(noisy, attention, logits_to_keep=length)
        elbo = elbo_term(
            logits, roll["responses"][rows], masks.mask[j, rows], masks.weight[j, rows]
        )
        kl = None
        if self.kl_coef > 0:
            reference = self._reference_on_device()
            with torch.no_grad():
                ref_logits = reference(noisy, attention, logits_to_keep=length)
            kl = k3_kl(
                token_log_probs(logits, roll["responses"][rows]),
                token_log_probs(ref_logits, roll["responses"][rows]),
                masks.mask[j, rows],
            )
        return elbo, kl

    def _reference_on_device(self):
        reference = self.__dict__["reference"]
        if next(reference.parameters()).device != self.device:
            reference.to(self.device)
        return reference

    @torch.no_grad()
    def _old_elbos_separately(self, roll: dict, masks: MaskSamples) -> torch.Tensor:
        """``l_old`` from a separate no-grad pass (only with ``separate_old_pass``)."""
        n = roll["responses"].shape[0]
        old = torch.empty(self.num_mc_samples, n, device=self.device, dtype=torch.float64)
        for j in range(self.num_mc_samples):
            for rows in self._micro_batches(n):
                old[j, rows] = self._forward_sample(roll, masks, j, rows)[0]
        return old

    def _bgpo_update(self, roll, masks, advantages, old, first: bool) -> torch.Tensor:
        """One inner update's backwards, one per (MC sample, micro-batch); returns the loss."""
        n = advantages.shape[0]
        parts = [(j, rows) for j in range(self.num_mc_samples) for rows in self._micro_batches(n)]
        total = advantages.new_zeros(())
        for index, (j, rows) in enumerate(parts):
            with self._sync_context(is_last=index == len(parts) - 1):
                elbo, kl = self._forward_sample(roll, masks, j, rows)
                if first and not self.separate_old_pass:
                    old[j, rows] = elbo.detach()
                g = bgpo_sample_term(elbo, old[j, rows], advantages[rows], self.num_mc_samples)
                loss = -g.sum() / n
                if kl is not None:
                    loss = loss + self.kl_coef * kl.sum() / (n * self.num_mc_samples)
                self.manual_backward(loss)
            total += loss.detach()
        return total

    def _vrpo_ol_update(self, roll, masks, advantages, old, first: bool) -> torch.Tensor:
        """One inner update: every sample's graph kept, one backward per micro-batch."""
        n = advantages.shape[0]
        batches = self._micro_batches(n)
        total = advantages.new_zeros(())
        for index, rows in enumerate(batches):
            with self._sync_context(is_last=index == len(batches) - 1):
                pairs = [
                    self._forward_sample(roll, masks, j, rows) for j in range(self.num_mc_samples)
                ]
                elbos = torch.stack([e for e, _ in pairs], dim=-1)
                if first and not self.separate_old_pass:
                    old[:, rows] = elbos.detach().T
                objective = vrpo_ol_objective(elbos, old[:, rows].T, advantages[rows])
                loss = -objective.sum() / n
                if self.kl_coef > 0:
                    kl = torch.stack([k for _, k in pairs], dim=-1).mean(dim=-1)
                    loss = loss + self.kl_coef * kl.sum() / n
                self.manual_backward(loss)
            total += loss.detach()
        return total

    def draw_rollout_masks(self, n: int, length: int) -> MaskSamples:
        """The n_t masks of a rollout batch, shared by old and current policy."""
        groups = self.group_size if self.share_masks_in_group else 1
        masks = draw_masks(
            n // groups,
            length,
            self.num_mc_samples,
            self.timestep_sampler,
            self.generator("mask"),
            self.device,
        )
        if groups == 1:
            return masks
        # A group's responses are adjacent (see rollout_batch).
        return MaskSamples(
            masks.mask.repeat_interleave(groups, dim=1),
            masks.weight.repeat_interleave(groups, dim=1),
        )

    def training_step(self, batch: list[Example], batch_idx: int) -> None:
        self.last_rollout = None  # the previous step's, no longer needed
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()

        start = time.perf_counter()
        roll = self.rollout_batch(batch)
        rollout_time = time.perf_counter() - start

        advantages = group_advantages(
            roll["rewards"], self.group_size, normalize_std=self.normalize_advantage_std
        )
        n, length = roll["responses"].shape
        masks = self.draw_rollout_masks(n, length)
        start = time.perf_counter()
        old = (
            self._old_elbos_separately(roll, masks)
            if self.separate_old_pass
            # float64: an exact copy of l_theta in any compute dtype, so d_j is exactly 0.
            else torch.empty(self.num_mc_samples, n, device=self.device, dtype=torch.float64)
        )
        update = self._bgpo_update if self.objective == "bgpo" else self._vrpo_ol_update
        for inner in range(self.num_inner_updates):
            loss = update(roll, masks, advantages, old, first=inner == 0)
            if torch.isfinite(loss):
                self._nonfinite_streak = 0
                optimizer.step()
            else:
                self._skip_nonfinite_step(loss)
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        likelihood_time = time.perf_counter() - start
        self.last_rollout = self._kept_rollout(roll, advantages) if self.keep_last_rollout else None
        self._log_step(roll, advantages, loss, rollout_time, likelihood_time)

    @staticmethod
    def _kept_rollout(roll: dict, advantages: torch.Tensor) -> dict:
        """The step's rollout tensors for callbacks: token ids, rewards, advantages."""
        keys = ("prompt_ids", "prompt_mask", "responses", "rewards")
        kept = {key: roll[key].detach() for key in keys}
        kept["advantages"] = advantages.detach()
        return kept

    def _skip_nonfinite_step(self, loss: torch.Tensor) -> None:
        self._nonfinite_streak += 1
        self.log("train/skipped_nonfinite", 1.0, on_step=True)
        message = (
            f"non-finite loss {loss.item()} at step {self.global_step}: update skipped "
            f"({self._nonfinite_streak} in a row)"
        )
        if self._nonfinite_streak >= self.max_nonfinite_steps:
            raise FloatingPointError(message + "; stopping (checkpoints so far are kept)")
        warnings.warn(message, stacklevel=2)

    def _log_step(self, roll, advantages, loss, rollout_time, likelihood_time) -> None:
        generated = roll["responses"].numel()
        metrics = {
            "train/reward": roll["rewards"].mean(),
            "train/reward_std": roll["rewards"].std() if roll["rewards"].numel() > 1 else 0.0,
            "train/accuracy": roll["accuracy"].mean(),
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
                batch_size=len(roll["texts"]),
            )
        every = self.log_completions_every_n_steps
        experiment = getattr(self.logger, "experiment", None)
        if every and self.global_step % every == 0 and hasattr(experiment, "add_text"):
            lines = [
                f"reward {r:.2f}: {e.prompt} -> {t!r}"
                for t, e, r in zip(
                    roll["texts"][:8],
                    roll["examples"][:8],
                    roll["rewards"][:8].tolist(),
                    strict=True,
                )
            ]
            experiment.add_text("train/completions", "\n\n".join(lines), self.global_step)
