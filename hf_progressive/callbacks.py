"""``GrowthCallback``: grows the model at the scheduled optimizer steps and records each growth event."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

from torch import nn
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import SchedulerType

from .adapters import get_adapter, unwrap_model
from .configuration import progressive_metadata, update_progressive_metadata
from .flops import ComputeTracker
from .growth import GrowthEvent, current_depth, grow
from .optim import DEFAULT_WSD_DECAY_FRACTION, UpdateRamp
from .schedule import DepthSchedule

logger = logging.getLogger(__name__)


class GrowthCallback(TrainerCallback, ExportableState):
    """Grows the model at the optimizer-step boundaries of a schedule.

    Growth at step ``s`` means updates ``1..s`` run at the old depth and update ``s + 1`` is the first at the new
    depth. It happens in ``on_step_begin`` of update ``s + 1``, before its first micro-batch (so also under
    gradient accumulation): the log line, evaluation and checkpoint of step ``s`` all see the model that
    trained up to step ``s``.

    Each growth event is recorded with the training loss of the step just before it (``loss_before``, step
    ``s``) and just after it (``loss_after``, step ``s + 1``), in the trainer state (so checkpoints carry it)
    and in ``model.config`` (so ``config.json`` carries the model's whole growth lineage).

    Args:
        schedule: the depth schedule.
        init: init strategy of new blocks.
        optimizer_state: ``"fresh"`` or ``"copy"`` (see :class:`ProgressiveTrainingArguments`).
        on_growth: called after each growth with the :class:`GrowthEvent` and its history entry.
        step_loss: returns the mean training loss of a finished optimizer step (over micro-batches and
            processes), or ``None`` if it is unknown. Called on every process at the same step.
        compute: the run's FLOP tracker, saved and restored with the trainer state.
        residual_scale: factor on the residual output projections of new blocks (see :func:`grow`).
        lr_warmup_steps: linear LR warmup of the new blocks alone after each growth (see :class:`UpdateRamp`), in
            steps, or a fraction of ``max_steps`` if below 1.
    """

    def __init__(
        self,
        schedule: DepthSchedule | str,
        init: str = "random",
        optimizer_state: str = "fresh",
        on_growth: Callable[[GrowthEvent, dict], None] | None = None,
        step_loss: Callable[[int], float | None] | None = None,
        compute: ComputeTracker | None = None,
        residual_scale: float = 1.0,
        lr_warmup_steps: float = 0,
    ):
        self.schedule = DepthSchedule(schedule)
        self.residual_scale = residual_scale
        self.lr_warmup_steps = lr_warmup_steps
        self._ramp: UpdateRamp | None = None
        self._ramp_steps = 0
        self.init = init
        self.optimizer_state = optimizer_state
        self.on_growth = on_growth
        self.step_loss = step_loss
        self.compute = compute
        self.history: list[dict] = []
        #: Training loss of the step before the next growth: {"step": s, "loss": value}.
        self.loss_before_growth: dict | None = None
        self._growth_at: dict[int, int] = {}
        self._earlier_lineage: list[dict] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.history and state.global_step == 0 and model is not None:
            # Trainer started a new training loop on the same, already grown model: a second train() call, or
            # auto_find_batch_size retrying with a smaller batch after running out of memory (likely after growth,
            # where steps cost most). A grown model cannot restart a schedule that begins shallower.
            raise ValueError(
                f"This trainer's model already grew to {current_depth(model)} blocks (at step "
                f"{self.history[-1]['step']}) in an earlier training loop; a new loop would restart depth_schedule "
                f"'{self.schedule}' from step 0 at {self.schedule.initial_depth} blocks. If auto_find_batch_size "
                "retried after an out-of-memory error, set a --per_device_train_batch_size that fits the full depth "
                "instead; to train more, resume from a checkpoint or build a new trainer (a grown model fine-tunes "
                "without depth_schedule)."
            )
        # Resolving here (max_steps is known now) raises for a stage beyond the run before any step is taken.
        growth_steps = self.schedule.growth_steps(state.max_steps)
        self._growth_at = {g.step: g.to_depth for g in growth_steps}
        for event in self.history:  # restored from a checkpoint
            if self._growth_at.get(event["step"]) != event["to_depth"]:
                planned = ", ".join(f"to {g.to_depth} at step {g.step}" for g in growth_steps)
                raise ValueError(
                    f"The checkpoint grew to {event['to_depth']} blocks at step {event['step']}, but depth_schedule "
                    f"'{self.schedule}' with max_steps={state.max_steps} grows {planned}: resume with the max_steps "
                    "of the interrupted run."
                )
        # The depth that trained the last finished step (growth at that step happens when the next one begins).
        expected = self.schedule.depth_at(max(state.global_step - 1, 0), state.max_steps)
        if model is not None and current_depth(model) != expected:
            raise ValueError(
                f"At step {state.global_step} depth_schedule '{self.schedule}' expects {expected} blocks but the "
                f"model has {current_depth(model)}."
            )
        if model is not None:
            lineage = list(progressive_metadata(model.config).get("growth_history") or [])
            # The config's lineage ends with this run's events when they were restored from a checkpoint.
            self._earlier_lineage = lineage[: len(lineage) - len(self.history)] if self.history else lineage
        _warn_if_growth_outside_stable_phase(args, state.max_steps, sorted(self._growth_at))
        warmup = self.lr_warmup_steps
        self._ramp_steps = round(warmup * state.max_steps) if 0 < warmup < 1 else int(warmup)
        if self.history and model is not None:
            # Resuming inside the warmup of the last growth's new blocks: carry on where the run left off.
            last = self.history[-1]
            self._start_ramp(model, kwargs.get("optimizer"), last["new_blocks"], state.global_step - last["step"])

    def on_step_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        to_depth = self._growth_at.get(state.global_step)
        if to_depth is None or model is None or current_depth(model) >= to_depth:
            return
        model = unwrap_model(model)  # the model inside a PEFT wrapper grows (its reserve was prepared for PEFT)
        event = grow(model, to_depth, init=self.init, residual_scale=self.residual_scale)
        if self.optimizer_state == "copy" and optimizer is not None:
            copy_optimizer_state(optimizer, model, event)
        self._start_ramp(model, optimizer, event.new_blocks, 0)
        before = self.loss_before_growth or {}
        entry = {
            "step": state.global_step,
            "from_depth": event.from_depth,
            "to_depth": event.to_depth,
            "init": event.init,
            "new_blocks": event.new_blocks,
            "loss_before": before.get("loss") if before.get("step") == state.global_step else None,
            "loss_after": None,
        }
        self.history.append(entry)
        self._update_lineage(model)
        logger.info(
            "Step %d: grew from %d to %d blocks (init=%s).",
            state.global_step,
            event.from_depth,
            event.to_depth,
            event.init,
        )
        if self.on_growth is not None:
            self.on_growth(event, entry)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.step_loss is None:
            return
        step = state.global_step
        if step in self._growth_at:
            self.loss_before_growth = {"step": step, "loss": self.step_loss(step)}
        if self.history and self.history[-1]["step"] == step - 1 and self.history[-1]["loss_after"] is None:
            self.history[-1]["loss_after"] = self.step_loss(step)
            if model is not None:
                self._update_lineage(model)

    def _start_ramp(self, model: nn.Module, optimizer, new_blocks: list[int], done: int) -> None:
        if self._ramp is not None:
            self._ramp.remove()
            self._ramp = None
        if optimizer is None or not 0 <= done < self._ramp_steps:
            return
        model = unwrap_model(model)
        blocks = get_adapter(model).blocks(model)
        parameters = [p for position in new_blocks for p in blocks[position].parameters()]
        self._ramp = UpdateRamp(optimizer, parameters, self._ramp_steps, done=done)

    def needs_step_loss(self, step: int) -> bool:
        """Whether ``step``'s training loss is recorded: the step just before or just after a growth."""
        return step in self._growth_at or step - 1 in self._growth_at

    def _update_lineage(self, model: nn.Module) -> None:
        lineage = self._earlier_lineage + self.history
        update_progressive_metadata(model.config, growth_history=copy.deepcopy(lineage))

    def state(self) -> dict:
        attributes = {"history": self.history, "loss_before_growth": self.loss_before_growth}
        if self.compute is not None:
            attributes["compute"] = self.compute.state_dict()
        return {
            "args": {"schedule": str(self.schedule), "init": self.init, "optimizer_state": self.optimizer_state},
            "attributes": attributes,
        }

    def restore(self, attributes: dict) -> None:
        """Take over the state saved by :meth:`state` (in a checkpoint's trainer state)."""
        self.history = copy.deepcopy(list(attributes.get("history") or []))
        self.loss_before_growth = attributes.get("loss_before_growth")
        if self.compute is not None and attributes.get("compute"):
            self.compute.load_state_dict(attributes["compute"])


def copy_optimizer_state(optimizer, model: nn.Module, event: GrowthEvent) -> int:
    """Give each parameter of a copied block a copy of its source parameter's optimizer state.

    Returns the number of parameters whose state was copied.
    """
    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer
    blocks = get_adapter(model).blocks(model)
    copied = 0
    for position, source in event.copied_from.items():
        for new, old in zip(blocks[position].parameters(), blocks[source].parameters()):
            if old in optimizer.state:
                optimizer.state[new] = copy.deepcopy(optimizer.state[old])
                copied += 1
    return copied


def _warn_if_growth_outside_stable_phase(args, max_steps: int, growth_steps: list[int]) -> None:
    if args.lr_scheduler_type != SchedulerType.WARMUP_STABLE_DECAY or not growth_steps:
        return
    warmup = args.get_warmup_steps(max_steps)
    decay = (args.lr_scheduler_kwargs or {}).get("num_decay_steps", round(DEFAULT_WSD_DECAY_FRACTION * max_steps))
    outside = [s for s in growth_steps if s < warmup or s > max_steps - decay]
    if outside:
        logger.warning(
            "Growth at step(s) %s falls outside the stable phase [%d, %d] of warmup_stable_decay; the paper "
            "grows inside it.",
            outside,
            warmup,
            max_steps - decay,
        )
