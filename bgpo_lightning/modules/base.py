"""What the RL and SFT modules share: the policy, generators, greedy evaluation, export."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist

from bgpo_lightning.diffusion.sampler import SamplerConfig, generate
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules.hparams import as_config
from bgpo_lightning.modules.metrics import MeanWithStdError
from bgpo_lightning.modules.optim import OptimConfig, build_optimizer
from bgpo_lightning.modules.sharding import (
    data_parallel_mesh,
    full_state_dict,
    full_tensor,
    gathered_weights,
    is_sharded,
    shard_model,
)
from bgpo_lightning.policy import (
    PolicySpec,
    build_policy,
    decode_responses,
    encode_prompts,
    lora,
)
from bgpo_lightning.policy.block_models import build_block_model
from bgpo_lightning.policy.compiled_forward import compiled_forward
from bgpo_lightning.policy.diffusion_lm import padding_mask
from bgpo_lightning.policy.lora_checkpoint import drop_frozen_base, restore_frozen_base
from bgpo_lightning.policy.merged_lora import merged_adapter
from bgpo_lightning.tasks import Example, Task


class DiffusionPolicyModule(L.LightningModule):
    """Base class: owns the policy and tokenizer, evaluates with greedy decoding.

    Args:
        policy: where the policy comes from (embedded tiny model or a local checkpoint).
        eval_sampler: sampler for validation and test; keep ``temperature=0`` (greedy).
        optim: optimizer settings.
        seed: seeds this module's random generators (offset by the rank under DDP).
        use_chat_template: wrap prompts in the tokenizer's chat template when it has one
            (LLaDA-Instruct has one; the embedded character tokenizer has none).
    """

    def __init__(
        self,
        policy: PolicySpec | None = None,
        eval_sampler: SamplerConfig | None = None,
        optim: OptimConfig | None = None,
        seed: int = 0,
        use_chat_template: bool = True,
    ) -> None:
        super().__init__()
        self.policy_spec = as_config(PolicySpec, policy)
        self.eval_sampler = as_config(SamplerConfig, eval_sampler)
        self.optim = as_config(OptimConfig, optim)
        self.seed = seed
        self.use_chat_template = use_chat_template
        self.policy, self.tokenizer = build_policy(self.policy_spec)
        self.policy.train()  # from_pretrained returns eval mode; Lightning keeps module modes
        self.check_sampler("eval_sampler", self.eval_sampler)
        self.val_accuracy = MeanWithStdError()
        self.test_accuracy = MeanWithStdError()
        self._test_scores: list[torch.Tensor] = []
        self._generators: dict[str, torch.Generator] = {}
        self._pending_generator_states: dict[str, torch.Tensor] = {}

    def check_sampler(self, key: str, config: SamplerConfig) -> None:
        """One-line errors for sampler settings this policy cannot run."""
        if config.merge_lora and lora.adapter_of(self.policy) is None:
            raise ConfigError(f"{key}.merge_lora needs a LoRA policy (policy.lora)")

    def sampler_settings(self) -> dict[str, SamplerConfig]:
        """This module's sampler settings by their key (the RL module adds ``rollout``)."""
        return {"eval_sampler": self.eval_sampler}

    # ---- runtime objects -------------------------------------------------------------------
    @property
    def progress_label(self) -> str:
        """What a progress bar calls this module's training (``SFT``, ``BGPO``)."""
        return "train"

    @property
    def task(self) -> Task:
        """The reward/accuracy definitions, handed over by the DataModule."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is None or not hasattr(datamodule, "task"):
            raise RuntimeError("this module needs a PromptDataModule (it provides the task)")
        return datamodule.task

    def generator(self, name: str) -> torch.Generator:
        """A named random stream on this module's device, seeded by ``seed`` and the rank.

        Streams are independent of the global RNG, saved in checkpoints and restored on
        resume, so masks and rollouts replay exactly.
        """
        gen = self._generators.get(name)
        if gen is None or gen.device.type != self.device.type:
            gen = torch.Generator(device=self.device)
            offset = sum(name.encode()) * 1000003
            rank = self.global_rank if self._trainer else 0
            gen.manual_seed(self.seed + offset + 7919 * rank)
            if name in self._pending_generator_states:
                gen.set_state(self._pending_generator_states.pop(name))
            self._generators[name] = gen
        return gen

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        states = {k: g.get_state() for k, g in self._generators.items()}
        checkpoint["generator_states"] = states  # this rank's; what older versions read
        # Only rank 0 writes the file (DDP) or the metadata (FSDP2's distributed checkpoint),
        # but every rank runs this hook: gather every rank's streams, indexed by global rank,
        # so that a resumed rank replays its own rollouts and masks, not rank 0's.
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            by_rank: list = [None] * dist.get_world_size()
            dist.all_gather_object(by_rank, states)
        else:
            by_rank = [states]
        checkpoint["generator_states_by_rank"] = by_rank
        # With LoRA only the adapter is kept: the frozen base comes from the config on resume.
        drop_frozen_base(self.policy, checkpoint, prefix="policy.")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        by_rank = checkpoint.get("generator_states_by_rank")
        if by_rank is None:  # a checkpoint from before the per-rank states
            states = checkpoint.get("generator_states", {})
        else:
            # A rank the saving run did not have (resumed on more ranks) starts its streams
            # from its seed: taking another rank's would replay that rank's draws.
            rank = self.global_rank
            states = by_rank[rank] if rank < len(by_rank) else {}
        self._pending_generator_states = dict(states)
        self._generators.clear()
        restore_frozen_base(self.policy, checkpoint, prefix="policy.")

    # ---- optimisation ------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # Refused here, where ModelParallelStrategy has set the mesh and just before
        # configure_model shards.
        if self.device_mesh is None:
            return
        # LoRA's adapter-only checkpoint hooks and its merged export are written for whole,
        # unsharded weights.
        if lora.adapter_of(self.policy) is not None:
            raise ConfigError(
                "policy.lora is not supported under FSDP2 (ModelParallelStrategy): its "
                "adapter-only checkpoints and merged export need unsharded weights; use DDP"
            )
        # A replayed CUDA graph runs none of FSDP2's per-forward all-gathers, and FSDP2 frees
        # the gathered weights the graph captured after each forward: they must stay gathered.
        for key, config in self.sampler_settings().items():
            if config.cuda_graph and not config.gather_weights:
                raise ConfigError(
                    f"{key}.cuda_graph under FSDP2 needs {key}.gather_weights: true (a CUDA "
                    "graph replays none of FSDP2's all-gathers)"
                )

    def configure_model(self) -> None:
        """Under ModelParallelStrategy, shards the policy with FSDP2 over the data-parallel
        mesh (:mod:`.sharding`); a no-op under other strategies, which leave no mesh."""
        if self.device_mesh is not None:
            shard_model(self.policy.model, data_parallel_mesh(self.device_mesh))

    def configure_optimizers(self):
        return build_optimizer(self.policy.parameters(), self.optim)

    def on_before_optimizer_step(self, optimizer) -> None:
        # Runs inside opt.step(), after AMP unscaling: clip the true gradient, log its norm.
        # Under FSDP2 the gradients are DTensor shards and the norm is the global one, as a
        # replicated DTensor: full_tensor makes it a plain tensor for the logger.
        max_norm = self.optim.grad_clip or float("inf")
        params = [p for p in self.policy.parameters() if p.grad is not None]
        if params:
            norm = full_tensor(torch.nn.utils.clip_grad_norm_(params, max_norm))
            self.log("train/grad_norm", norm.float(), on_step=True, on_epoch=False)

    # ---- generation and evaluation -----------------------------------------------------------
    def prompt_tensors(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and attention mask on this module's device."""
        return encode_prompts(self.tokenizer, prompts, self.device, self.use_chat_template)

    @torch.no_grad()
    def sample(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        config: SamplerConfig,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Responses ``(N, gen_length)`` for left-padded prompts.

        ``config.cache`` picks the exact sampler (``"none"``) or a block-cached one, and
        ``config.threshold`` the fixed or the confidence-threshold schedule; both are part of
        the ``rollout``/``eval_sampler`` settings, so they are logged with the hyperparameters.
        """
        # Whether the batch is padded is decided here, once: checked in every forward, it
        # would be a host-device sync at every step of the loop.
        full_mask = padding_mask(
            torch.cat(
                [prompt_mask, prompt_mask.new_ones(prompt_mask.shape[0], config.gen_length)],
                dim=1,
            )
        )

        def block_logits(x: torch.Tensor, block: slice) -> torch.Tensor:
            return self.policy(x, full_mask, logits_to_keep=block, padded=True)

        block_model = build_block_model(self.policy, full_mask, config.cache, config.cuda_graph)
        with (
            gathered_weights(self.policy.model, config.gather_weights),
            merged_adapter(self.policy, config.merge_lora),
            compiled_forward(self.policy.model, config.compile),
        ):
            out = generate(
                block_logits,
                prompt_ids,
                self.policy.mask_token_id,
                config,
                generator,
                windowed=True,
                block_model=block_model,
            )
        return out[:, prompt_ids.shape[1] :]

    def evaluate_batch(self, batch: list[Example]) -> tuple[list[str], torch.Tensor]:
        """Greedy completions and their accuracies for a batch of examples."""
        ids, mask = self.prompt_tensors([e.prompt for e in batch])
        was_training = self.policy.training
        self.policy.eval()
        responses = self.sample(ids, mask, self.eval_sampler)
        self.policy.train(was_training)
        texts = decode_responses(self.tokenizer, responses, self.task.cut_at_eos)
        scores = torch.tensor([accuracy for _, accuracy in self.task.score_batch(texts, batch)])
        return texts, scores.to(self.device)

    def validation_step(self, batch: list[Example], batch_idx: int) -> None:
        texts, scores = self.evaluate_batch(batch)
        self.val_accuracy.update(scores)
        if (
            batch_idx == 0
            and self.logger is not None
            and hasattr(self.logger.experiment, "add_text")
        ):
            sample = "\n\n".join(
                f"{e.prompt} -> {t!r}" for e, t in zip(batch[:4], texts[:4], strict=True)
            )
            self.logger.experiment.add_text("val/completions", sample, self.global_step)

    def on_validation_epoch_end(self) -> None:
        mean, se = self.val_accuracy.compute()
        self.log("val/accuracy", mean, sync_dist=False, prog_bar=True)
        self.log("val/accuracy_se", se, sync_dist=False)
        self.val_accuracy.reset()

    def on_test_epoch_start(self) -> None:
        self._test_scores.clear()

    def test_step(self, batch: list[Example], batch_idx: int) -> None:
        _, scores = self.evaluate_batch(batch)
        self.test_accuracy.update(scores)
        self._test_scores.append(scores.detach().cpu())

    @property
    def test_scores(self) -> torch.Tensor:
        """Per-example accuracies of the last test run on this rank, in dataloader order.

        Two runs over the same (unshuffled) test split pair up example by example, which is
        what a paired standard error of a before/after difference needs.
        """
        return torch.cat(self._test_scores) if self._test_scores else torch.empty(0)

    def on_test_epoch_end(self) -> None:
        mean, se = self.test_accuracy.compute()
        self.log("test/accuracy", mean)
        self.log("test/accuracy_se", se)
        self.test_accuracy.reset()

    # ---- export --------------------------------------------------------------------------------
    def save_hf(self, directory: str | Path, save_adapter: bool = True) -> Path:
        """Writes the policy and tokenizer in Hugging Face format (``from_pretrained`` reads it).

        Under FSDP2 this gathers the sharded weights, a collective: call it on every rank.
        Only global rank 0 writes (every rank gets ``directory`` back), so calling it on every
        DDP rank writes the files once.

        A LoRA policy is written merged, as a plain model (a merged copy: the live policy keeps
        its adapter); with ``save_adapter`` its adapter alone also goes to ``directory/adapter``
        in peft's format.
        """
        directory = Path(directory)
        # Sharded (never with LoRA: setup refuses it), every rank takes part in the gather and
        # rank 0 gets the full weights. Unsharded, save_pretrained reads the model itself, as
        # before: no CPU copy of the weights, and tied weights keep sharing one tensor.
        state = full_state_dict(self.policy.model) if is_sharded(self.policy) else None
        if self.global_rank == 0:  # also 0 outside a Trainer
            directory.mkdir(parents=True, exist_ok=True)
            if lora.adapter_of(self.policy) is None:
                self.policy.model.save_pretrained(directory, state_dict=state)
            else:
                lora.merged_model(self.policy).save_pretrained(directory)
                if save_adapter:
                    lora.save_adapter(self.policy, directory / "adapter")
            self.tokenizer.save_pretrained(directory)
        return directory
