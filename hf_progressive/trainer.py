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
import logging
from collections.abc import Mapping
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch import nn
from transformers import Trainer
from transformers.utils import is_sagemaker_mp_enabled

from .adapters import get_adapter, unwrap_model
from .adapters.registry import is_peft_wrapped
from .callbacks import GrowthCallback, copy_optimizer_state
from .checkpointing import ResumeTrainerMixin
from .configuration import progressive_metadata, update_progressive_metadata
from .distributed import ReplicaCheckCallback, ReserveCommHookCallback
from .flops import ComputeTracker
from .growth import GrowthEvent, current_depth, reserve_blocks
from .hub import ModelCardTrainerMixin
from .optim import OptimizerTrainerMixin
from .planning import GrowthPlan, plan_growth
from .step_overhead import ActiveParameters, ZeroGradOutsideReserve
from .training_args import allow_unused_parameters

logger = logging.getLogger(__name__)

__all__ = [
    "GrowthCallback",
    "GrowthPlan",
    "ProgressiveTrainer",
    "ProgressiveTrainerMixin",
    "copy_optimizer_state",
    "plan_growth",
]


class ProgressiveTrainerMixin(ModelCardTrainerMixin, ResumeTrainerMixin, OptimizerTrainerMixin):
    """What makes a ``Trainer`` grow the model's depth during training, following a depth schedule.

    Mix it in before a ``Trainer`` class (:class:`ProgressiveTrainer` is ``ProgressiveTrainerMixin`` + ``Trainer``).
    Each idea lives in its own module and mixin: the optimizer and LR schedule
    (:class:`~hf_progressive.optim.OptimizerTrainerMixin`), resuming
    (:class:`~hf_progressive.checkpointing.ResumeTrainerMixin`), the model card and the push
    (:class:`~hf_progressive.hub.ModelCardTrainerMixin`); growth itself is :class:`GrowthCallback`, planned by
    :func:`plan_growth`. This class wires them and does the compute accounting.
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
            reserve_blocks(unwrap_model(model), plan.schedule.final_depth, plan.schedule.initial_depth)
            get_adapter(model).reserve(unwrap_model(model)).awaiting_trainer = False  # claimed: this trainer grows it
            if is_peft_wrapped(model):
                from .peft_support import prepare_reserve_for_peft

                prepare_reserve_for_peft(model)
            update_progressive_metadata(
                model.config,
                target_n_layer=plan.schedule.final_depth,
                depth_schedule=str(plan.schedule),
                growth_init=plan.init,
                growth_history=list(progressive_metadata(model.config).get("growth_history") or []),
            )
        if args is not None:
            args._read_by_progressive_trainer = True  # see ProgressiveTrainingArguments.get_warmup_steps
        super().__init__(model, args, *positional, **kwargs)
        self.growth_plan = plan
        self.compute: ComputeTracker | None = None
        self._step_loss: tuple[int, torch.Tensor] | None = None  # (step, sum of its micro-batch losses)
        self.growth_callback: GrowthCallback | None = None
        self._active_parameters = ActiveParameters()  # outside the reserve: what clipping and zero_grad walk
        self._zero_grad_callback: ZeroGradOutsideReserve | None = None
        if plan is not None:
            self.compute = ComputeTracker(copy.deepcopy(self.model.config), plan.schedule.final_depth)
            self.growth_callback = GrowthCallback(
                plan.schedule,
                plan.init,
                plan.optimizer_state,
                on_growth=self._after_growth,
                step_loss=self._mean_step_loss,
                compute=self.compute,
                residual_scale=plan.residual_scale,
                lr_warmup_steps=plan.lr_warmup_steps,
            )
            self.add_callback(self.growth_callback)
            self._zero_grad_callback = ZeroGradOutsideReserve(lambda: self.model_wrapped, self._active_parameters)
            self.add_callback(self._zero_grad_callback)
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

    def _after_growth(self, event: GrowthEvent, entry: dict) -> None:
        # A PEFT model's adapter config names the new blocks, so the saved adapter loads onto a base grown alike.
        if is_peft_wrapped(self.model):
            from .peft_support import register_grown_blocks

            register_grown_blocks(self.model, event)
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
        return self.compute.add(self._active_parameters.depth(self.model), input_ids.numel(), input_ids.shape[-1])

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """``Trainer.save_model``, with the growth metadata (history, FLOPs) brought up to date in ``config.json``."""
        if self.compute is not None:
            # Trainer brings total_flos up to date before each checkpoint and at the end of training.
            totals = self._run_compute()
            update_progressive_metadata(
                self.model.config, flops=totals["flops"], flops_fixed_equivalent=totals["flops_fixed_equivalent"]
            )
        super().save_model(output_dir, _internal_call)

    def _clip_grad_norm(self, model: nn.Module):
        # Private override: Trainer clips `model.parameters()`, a walk through every module of every reserved block
        # on every step (a tenth of a shallow step at width 128), and no hook lets it clip fewer. The reserve has no
        # gradients: clip the parameters outside it (see hf_progressive.step_overhead). Sharded and SageMaker runs
        # keep Trainer's own path (growth refuses FSDP and DeepSpeed anyway).
        plain = self.accelerator.distributed_type not in (
            DistributedType.FSDP,
            DistributedType.DEEPSPEED,
            DistributedType.XLA,
        )
        if self.growth_plan is None or not plain or (is_sagemaker_mp_enabled() and self.args.fp16):
            return super()._clip_grad_norm(model)
        return self.accelerator.clip_grad_norm_(self._active_parameters(model), self.args.max_grad_norm)

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
        """``Trainer.train`` (resuming as :meth:`ResumeTrainerMixin.train` says); with a depth schedule the train
        metrics carry ``flops``, ``flops_fixed_equivalent`` and ``compute_saved``."""
        try:
            output = super().train(resume_from_checkpoint, *positional, **kwargs)
        finally:
            if self._zero_grad_callback is not None:
                self._zero_grad_callback.restore()  # also when training raised before on_train_end
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


class ProgressiveTrainer(ProgressiveTrainerMixin, Trainer):
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
