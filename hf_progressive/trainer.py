"""``ProgressiveTrainer``: a ``Trainer`` that grows the model's depth on a schedule.

How growth stays valid for the optimizer, the LR schedule and DDP
-----------------------------------------------------------------
Every block the schedule will add is allocated *before* the optimizer and the distributed wrappers exist
(:func:`~hf_progressive.reserve_blocks`), in a reserve that the forward pass does not run. Growth moves those
same ``Parameter`` objects into the block stack. So:

* the optimizer built by ``Trainer`` already holds them in its usual groups (decay / no decay), and the LR
  scheduler's per-group state needs no change: new parameters follow the same schedule from the first step;
* until growth they get no gradient, so AdamW (and Muon) create no state and apply no weight decay to them:
  their optimizer state starts fresh at growth, while existing parameters keep theirs untouched;
* DDP registered them when it wrapped the model, so gradients of new parameters are synchronised without
  re-wrapping. DDP must tolerate parameters without gradients, hence ``ddp_find_unused_parameters=True`` (set by
  :class:`ProgressiveTrainingArguments` and the trainer); a communication hook keeps the reserve's (zero)
  gradients off the wire (:mod:`hf_progressive.distributed`);
* every rank holds identical reserve weights (DDP broadcasts rank 0's parameters, reserve included, when it wraps
  the model), and growth itself is deterministic, so ranks stay in step; the trainer checks that they do;
* FSDP and DeepSpeed shard parameters when they wrap the model, which growth would then bypass: a schedule under
  either is refused before training.

The price is memory: the target-depth weights (not their gradients or optimizer state) exist from step 0. The
alternative, creating blocks at growth and re-wrapping the model and optimizer, would reach deep into
``Trainer``'s and accelerate's internals and break whenever they change.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch import nn
from transformers import Trainer
from transformers.optimization import get_scheduler
from transformers.trainer_utils import SchedulerType
from transformers.utils import CONFIG_NAME, is_sagemaker_mp_enabled

from .adapters import get_adapter
from .callbacks import DEFAULT_WSD_DECAY_FRACTION, GrowthCallback, copy_optimizer_state
from .checkpointing import (
    ProgressiveCheckpoint,
    check_resumable,
    check_weights_match,
    last_complete_checkpoint,
    read_checkpoint,
    regrow_to_checkpoint,
    tied_weight_names,
)
from .configuration import progressive_metadata, update_progressive_metadata
from .distributed import ReplicaCheckCallback, ReserveCommHookCallback
from .flops import ComputeTracker
from .growth import GrowthEvent, active_parameters, current_depth, reserve_blocks
from .hub import HUB_ERRORS, HubPushError, explain_push_failure, write_model_card
from .optim import MUON_NSGD, MuonNSGD, muon_nsgd_param_groups
from .planning import GrowthPlan, plan_growth
from .training_args import allow_unused_parameters

logger = logging.getLogger(__name__)

__all__ = ["GrowthCallback", "GrowthPlan", "ProgressiveTrainer", "copy_optimizer_state", "plan_growth"]


class ProgressiveTrainer(Trainer):
    """``Trainer`` that grows the model's depth during training, following a depth schedule.

    Use it exactly like ``Trainer``, with :class:`ProgressiveTrainingArguments` (or a model whose
    :class:`ProgressiveGPT2Config` carries a ``depth_schedule``). Without a schedule it is a plain ``Trainer``.

    What it adds:
        * the model is prepared for growth before the optimizer exists (see the module docstring);
        * growth at the scheduled optimizer steps, recorded in the trainer state, ``model.config`` (saved in
          ``config.json``) and the logs (a ``depth`` entry on every log line);
        * compute accounting: ``total_flos`` counts the active depth (blocks, LM head, attention), and the logs
          and train metrics carry ``flops``, ``flops_fixed_equivalent`` and ``compute_saved``;
        * ``warmup_stable_decay`` decays over the last 10% of steps when ``num_decay_steps`` is not given;
        * ``optim="muon_nsgd"``: the paper's Muon-NSGD (see :mod:`hf_progressive.optim`);
        * ``train(resume_from_checkpoint=...)`` from a checkpoint at any depth: the model re-grows to the
          checkpoint's depth before its weights and optimizer state load (see :mod:`hf_progressive.checkpointing`);
        * ``save_model`` and ``push_to_hub`` write the progressive model card (:mod:`hf_progressive.hub`), and a
          failed push raises :class:`~hf_progressive.hub.HubPushError` with the local model saved.
    """

    def __init__(self, model: nn.Module | None = None, args: Any = None, *positional, **kwargs):
        plan = None
        if model is not None:
            plan = plan_growth(model, args)
        elif getattr(args, "depth_schedule", None) is not None:
            raise ValueError("ProgressiveTrainer with a depth_schedule needs `model=`; `model_init` is not supported.")
        if plan is not None:
            if args is not None:
                allow_unused_parameters(args)  # also for a schedule that comes from the model config
            reserve_blocks(model, plan.schedule.final_depth, plan.schedule.initial_depth)
            update_progressive_metadata(
                model.config,
                target_n_layer=plan.schedule.final_depth,
                depth_schedule=str(plan.schedule),
                growth_init=plan.init,
                growth_history=list(progressive_metadata(model.config).get("growth_history") or []),
            )
        super().__init__(model, args, *positional, **kwargs)
        self.growth_plan = plan
        self.compute: ComputeTracker | None = None
        self._step_loss: tuple[int, torch.Tensor] | None = None  # (step, sum of its micro-batch losses)
        # What create_model_card was told (data, base model, license...), kept for every later rewrite of the card.
        self._card_details: dict[str, Any] = {}
        self._saves = 0  # save_model calls, so a failed push saves the model only if Trainer had not yet
        self.growth_callback: GrowthCallback | None = None
        self._clipped: tuple[int, list[nn.Parameter]] | None = None  # (depth, the parameters clipped at that depth)
        if plan is not None:
            self.compute = ComputeTracker(copy.deepcopy(self.model.config), plan.schedule.final_depth)
            self.growth_callback = GrowthCallback(
                plan.schedule,
                plan.init,
                plan.optimizer_state,
                on_growth=self._log_growth,
                step_loss=self._mean_step_loss,
                compute=self.compute,
                residual_scale=plan.residual_scale,
                lr_warmup_steps=plan.lr_warmup_steps,
            )
            self.add_callback(self.growth_callback)
            self._refuse_sharded_training()
            if self.args.world_size > 1:
                self.add_callback(ReserveCommHookCallback(lambda: self.model_wrapped))
                self.add_callback(ReplicaCheckCallback(lambda: self.growth_callback.history))

    def _refuse_sharded_training(self) -> None:
        # Checked once Trainer has built its accelerator, which knows about FSDP and DeepSpeed however they were
        # asked for (TrainingArguments or `accelerate launch` configs).
        for enabled, name in ((self.is_fsdp_enabled, "FSDP"), (self.is_deepspeed_enabled, "DeepSpeed")):
            if enabled:
                raise ValueError(
                    f"Growing depth under {name} is not supported: {name} shards parameters into per-block flat "
                    "buffers when it wraps the model, and growth moves blocks from the reserve into the stack after "
                    "that, which the sharded state does not follow. Run the progressive schedule under DDP "
                    "(`accelerate launch --multi_gpu ...`, see README 'Scaling out'): every process holds the whole "
                    f"model, which the zero/one-layer phase keeps small. Training without depth_schedule under {name} "
                    "works as with Trainer."
                )

    @property
    def growth_history(self) -> list[dict]:
        """Every growth event of this run so far."""
        return self.growth_callback.history if self.growth_callback is not None else []

    def _log_growth(self, event: GrowthEvent, entry: dict) -> None:
        # Logging resets control.should_log; keep the step's regular log line if one is due.
        should_log = self.control.should_log
        self.log({"grown_from_depth": event.from_depth, "grown_blocks": len(event.new_blocks)})
        self.control.should_log = should_log

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.growth_plan is not None:
            logs = {**logs, "depth": current_depth(self.model)}
            if "loss" in logs or "train_loss" in logs:
                logs.update(self.compute.metrics(processes=self.args.world_size))
        super().log(logs, start_time)

    def floating_point_ops(self, inputs: dict[str, Any]) -> float:
        input_ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else None  # also BatchEncoding
        if self.compute is None or input_ids is None:
            return super().floating_point_ops(inputs)
        return self.compute.add(current_depth(self.model), input_ids.numel(), input_ids.shape[-1])

    def create_optimizer(self, model: nn.Module | None = None):
        if self.optimizer is None and getattr(self.args, "optim", None) == MUON_NSGD:
            model = self.model if model is None else model
            groups = muon_nsgd_param_groups(
                model,
                lr=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                decay_parameter_names=self.get_decay_parameter_names(model),
                muon_embeddings=self.args.muon_embeddings,
                split_fused=getattr(self.args, "muon_split_fused", False),
            )
            self.optimizer = MuonNSGD(
                groups,
                lr=self.args.learning_rate,
                momentum=self.args.muon_momentum,
                nsgd_norm=getattr(self.args, "nsgd_norm", "row"),
            )
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        kwargs = dict(self.args.lr_scheduler_kwargs or {})
        if (
            self.lr_scheduler is None
            and self.args.lr_scheduler_type == SchedulerType.WARMUP_STABLE_DECAY
            and "num_decay_steps" not in kwargs
        ):
            kwargs["num_decay_steps"] = max(1, round(DEFAULT_WSD_DECAY_FRACTION * num_training_steps))
            logger.info("warmup_stable_decay: decaying over the last %d steps.", kwargs["num_decay_steps"])
            self.lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=optimizer if optimizer is not None else self.optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=kwargs,
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """``Trainer.save_model``, with the growth metadata (history, FLOPs) brought up to date in ``config.json``."""
        if self.compute is not None:
            # Trainer brings total_flos up to date before each checkpoint and at the end of training.
            totals = self._run_compute()
            update_progressive_metadata(
                self.model.config, flops=totals["flops"], flops_fixed_equivalent=totals["flops_fixed_equivalent"]
            )
        super().save_model(output_dir, _internal_call)
        self._saves += 1
        if self.compute is not None and self.args.should_save:
            try:
                write_model_card(
                    output_dir or self.args.output_dir, self.model, self.state.log_history, **self._card_details
                )
            except Exception as error:  # a card is documentation: it must never stop training at a checkpoint
                logger.warning("Could not write the model card to %s: %r", output_dir or self.args.output_dir, error)

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Write the progressive model card (growth history, compute, loss plot) to ``output_dir/README.md``.

        Without a depth schedule this is ``Trainer.create_model_card``.
        """
        if self.growth_plan is None:
            return super().create_model_card(
                language, license, tags, model_name, finetuned_from, tasks, dataset_tags, dataset, dataset_args
            )
        self._card_details = dict(
            model_name=model_name or Path(self.args.output_dir).name,  # as Trainer names its cards
            repo_id=self.hub_model_id,
            datasets=dataset_tags or dataset,
            base_model=finetuned_from,
            license=license,
            language=language,
            tags=[tags] if isinstance(tags, str) else tags,
        )
        if not self.is_world_process_zero():
            return
        write_model_card(self.args.output_dir, self.model, self.state.log_history, **self._card_details)

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        try:
            super().init_hf_repo(token=token, private=private)
        except HUB_ERRORS as error:
            raise HubPushError(explain_push_failure(self.args.hub_model_id, error, None)) from error

    def push_to_hub(self, *positional, **kwargs):
        """``Trainer.push_to_hub``: saves the model, writes the progressive card and uploads ``output_dir``.

        Raises:
            HubPushError: when the Hub cannot be reached or refuses the push (e.g. no token). The model is then
                saved in ``output_dir`` all the same, and earlier checkpoints are untouched.
        """
        saves_before = self._saves
        try:
            return super().push_to_hub(*positional, **kwargs)
        except (HubPushError, *HUB_ERRORS) as error:
            # Trainer creates the repository before it saves: if that failed, the model is not on disk yet.
            if self._saves == saves_before:
                try:
                    self.save_model(_internal_call=True)
                except OSError:
                    logger.exception("Saving the model to %s after the failed push failed too.", self.args.output_dir)
            repo_id = self.hub_model_id or self.args.hub_model_id
            cause = error.__cause__ if isinstance(error, HubPushError) else error
            raise HubPushError(explain_push_failure(repo_id, cause, self.args.output_dir)) from error

    def _clip_grad_norm(self, model: nn.Module):
        # Private override: Trainer clips `model.parameters()`, a walk through every module of every reserved block
        # on every step (a tenth of a shallow step at width 128), and no hook lets it clip fewer. The reserve has no
        # gradients: clip the parameters outside it, listed once per depth. Sharded and SageMaker runs keep
        # Trainer's own path (growth refuses FSDP and DeepSpeed anyway).
        plain = self.accelerator.distributed_type not in (
            DistributedType.FSDP,
            DistributedType.DEEPSPEED,
            DistributedType.XLA,
        )
        if self.growth_plan is None or not plain or (is_sagemaker_mp_enabled() and self.args.fp16):
            return super()._clip_grad_norm(model)
        depth = current_depth(model)
        if self._clipped is None or self._clipped[0] != depth:
            self._clipped = (depth, active_parameters(model))
        return self.accelerator.clip_grad_norm_(self._clipped[1], self.args.max_grad_norm)

    def _load_best_model(self) -> None:
        # Private override: Trainer loads the best checkpoint inside train() with no public hook before it, and a
        # checkpoint shallower than the grown model cannot load into it.
        best = self.state.best_model_checkpoint
        if self.growth_plan is not None and best and os.path.isfile(os.path.join(best, CONFIG_NAME)):
            with open(os.path.join(best, CONFIG_NAME), encoding="utf-8") as handle:
                best_depth = get_adapter(self.model).config_depth(json.load(handle))
            if best_depth != current_depth(self.model):
                logger.warning(
                    "The best checkpoint %s has %d blocks but the model has grown to %d: its weights cannot load "
                    "into the grown model, keeping the final model.",
                    best,
                    best_depth,
                    current_depth(self.model),
                )
                return
        super()._load_best_model()

    def save_state(self) -> None:
        # Trainer refreshes callback states only inside checkpoints; keep the growth history current here too.
        if self.growth_callback is not None:
            self.state.stateful_callbacks[type(self.growth_callback).__name__] = self.growth_callback.state()
        super().save_state()

    def training_step(self, model: nn.Module, inputs: dict[str, Any], *positional, **kwargs) -> torch.Tensor:
        loss = super().training_step(model, inputs, *positional, **kwargs)
        step = self.state.global_step + 1
        if self.growth_callback is not None and self.growth_callback.needs_step_loss(step):
            # Summed over micro-batches, as Trainer sums them for the logged loss (each is already divided
            # by the accumulation steps). Kept only for the steps just before and after a growth.
            running = self._step_loss[1] if self._step_loss is not None and self._step_loss[0] == step else 0.0
            self._step_loss = (step, running + loss.detach())
        return loss

    def _mean_step_loss(self, step: int) -> float | None:
        """Training loss of finished step ``step``, averaged over processes (a collective: call on every rank)."""
        if self._step_loss is None or self._step_loss[0] != step:
            return None
        return self.accelerator.gather(self._step_loss[1].reshape(1)).mean().item()

    def train(self, resume_from_checkpoint: str | bool | None = None, *positional, **kwargs):
        """``Trainer.train``; resuming a progressive run re-grows the model to the checkpoint's depth first.

        With a depth schedule, ``resume_from_checkpoint=True`` picks the last checkpoint of ``output_dir`` whose save
        finished (see :func:`~hf_progressive.checkpointing.last_complete_checkpoint`). Without one, this is
        ``Trainer.train`` unchanged (PEFT adapter and sharded checkpoints resume as Trainer resumes them).

        Raises:
            ValueError: before any step, if the checkpoint is missing, incomplete or does not match this run
                (architecture, depth schedule, init, optimizer-state policy, depth, weight names).
        """
        if self.growth_plan is None:
            if isinstance(resume_from_checkpoint, str):
                logger.info("Resuming from %s.", resume_from_checkpoint)
            return super().train(resume_from_checkpoint, *positional, **kwargs)
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint found in output_dir {self.args.output_dir}.")
        if resume_from_checkpoint:
            # Checked here, before Trainer reads it: a missing folder would otherwise be taken for a Hub repo id,
            # and a truncated weights file fails deep inside safetensors without its name.
            checkpoint = read_checkpoint(resume_from_checkpoint)
            logger.info("Resuming from %s (step %d).", resume_from_checkpoint, checkpoint.global_step)
            self._regrow_for_resume(checkpoint)
        output = super().train(resume_from_checkpoint or None, *positional, **kwargs)
        if self.compute is not None:
            output.metrics.update(self._run_compute())
        return output

    def _run_compute(self) -> dict[str, float]:
        """FLOPs of the whole run (all processes) and their fixed-depth equivalent.

        ``total_flos`` is summed over processes by Trainer; the tracker's ratio is the same on every process.
        """
        spent = float(self.state.total_flos)
        return {
            "flops": spent,
            "flops_fixed_equivalent": spent / self.compute.ratio,
            "compute_saved": 1.0 - self.compute.ratio,
        }

    def _regrow_for_resume(self, checkpoint: ProgressiveCheckpoint) -> None:
        plan = self.growth_plan
        check_resumable(
            checkpoint, self.model, plan.schedule, plan.init, plan.optimizer_state, max_steps=self.args.max_steps
        )
        # The optimizer must list parameters in the order of the run that saved the checkpoint, which built it
        # before any growth. Build it now, before replaying growth: parameters keep their identity through
        # growth, so each saved optimizer state then loads onto the parameter it belongs to.
        if self.optimizer is None:
            self.create_optimizer()
        regrow_to_checkpoint(self.model, checkpoint)
        check_weights_match(checkpoint, self.model)
        update_progressive_metadata(
            self.model.config, growth_history=copy.deepcopy(checkpoint.metadata.get("growth_history") or [])
        )
        self.growth_callback.restore({"history": checkpoint.history, **checkpoint.attributes})
        logger.info(
            "Re-grew the model to %d blocks (%d growth events) to resume from %s.",
            current_depth(self.model),
            len(checkpoint.history),
            checkpoint.path,
        )

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # Private override: the only place Trainer reports a checkpoint's missing keys; no hook filters them.
        # A tied weight is saved once, so transformers reports its other name (GPT-2's lm_head.weight) missing on
        # every resume; it is not, and check_weights_match has already refused real mismatches. Warn about the rest.
        tied = tied_weight_names(self.model)
        missing = [name for name in load_result.missing_keys if name not in tied]
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def _load_callback_state(self) -> None:
        # Private override: Trainer swaps stateful callbacks here, inside train(), with no public hook after it.
        # With restore_callback_states_from_checkpoint, Trainer replaces each stateful callback by a new one built
        # from its saved arguments. Ours was already restored (and checked against the checkpoint) in train();
        # keep it, so the growth hooks and the trainer's reference stay attached.
        super()._load_callback_state()
        if self.growth_callback is not None:
            for callback in list(self.callback_handler.callbacks):
                if isinstance(callback, GrowthCallback) and callback is not self.growth_callback:
                    self.callback_handler.remove_callback(callback)
            if self.growth_callback not in self.callback_handler.callbacks:
                self.add_callback(self.growth_callback)
