"""The growth plan of a run: the schedule and settings from the arguments (or the model's config), checked
against the model before anything trains."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

from .adapters import get_adapter, unwrap_model
from .configuration import progressive_metadata
from .growth import target_depth_of
from .schedule import DepthSchedule
from .training_args import check_init_for_schedule, check_optimizer_state_policy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrowthPlan:
    """The resolved growth settings of one run."""

    schedule: DepthSchedule
    init: str
    optimizer_state: str
    residual_scale: float = 1.0
    lr_warmup_steps: float = 0


def plan_growth(model: nn.Module, args: Any) -> GrowthPlan | None:
    """Read the growth settings from ``args`` (first) and ``model.config`` (fallback) and check them against
    the model. Returns ``None`` when no schedule is set anywhere (the trainer then behaves as ``Trainer``).

    Raises:
        ValueError: for an unsupported model, a schedule above the target depth, a model deeper than the
            schedule's final depth or shallower than its first stage, or an init that cannot grow the schedule.
    """
    metadata = progressive_metadata(model.config)
    explicit, recorded = getattr(args, "depth_schedule", None), metadata.get("depth_schedule")
    if explicit is None and recorded is None:
        return None
    adapter, inner = get_adapter(model), unwrap_model(model)
    depth = adapter.depth(inner)
    already_grown = bool(metadata.get("growth_history"))
    if explicit is None and (already_grown or DepthSchedule(recorded).initial_depth != depth):
        # A schedule recorded by an earlier run (e.g. in a grown checkpoint) must not reset the trained model.
        logger.warning(
            "model.config records depth_schedule '%s' of an earlier run, but the model has %d blocks: not applied. "
            "Pass depth_schedule to grow it again.",
            recorded,
            depth,
        )
        return None
    target = target_depth_of(model)
    if already_grown and target is not None and depth >= target:
        target = None  # the recorded plan is complete: a new schedule may take the model deeper
    schedule = DepthSchedule(explicit or recorded, target)
    if already_grown and schedule.initial_depth < depth:
        raise ValueError(
            f"The model already grew to {depth} blocks (see growth_history in its config), but depth_schedule "
            f"'{schedule}' starts at {schedule.initial_depth}, which would discard trained blocks: start the schedule "
            f"at {depth}, e.g. '{depth}@0,{2 * depth}@0.8'."
        )
    init = getattr(args, "growth_init", None) or metadata.get("growth_init") or "random"
    check_init_for_schedule(init, schedule)
    optimizer_state = getattr(args, "new_params_optimizer_state", "fresh")
    check_optimizer_state_policy(optimizer_state, init)
    reserved = len(adapter.reserved_blocks(inner))
    if depth + reserved > schedule.final_depth:
        raise ValueError(
            f"The model has {depth + reserved} blocks ({depth} active, {reserved} reserved) but depth_schedule "
            f"'{schedule}' ends at {schedule.final_depth}: end the schedule at {depth + reserved} or build the model "
            f"with {schedule.final_depth} blocks."
        )
    if depth < schedule.initial_depth:
        raise ValueError(
            f"The model has {depth} blocks but depth_schedule '{schedule}' starts at {schedule.initial_depth}: "
            f"build the model with {adapter.depth_field}={schedule.initial_depth}, or at the target depth "
            f"{schedule.final_depth} (blocks beyond the first stage then wait in reserve)."
        )
    adapter.check_depth(inner.config, schedule.final_depth, start=schedule.initial_depth)
    return GrowthPlan(
        schedule=schedule,
        init=init,
        optimizer_state=optimizer_state,
        residual_scale=getattr(args, "growth_residual_scale", 1.0),
        lr_warmup_steps=getattr(args, "growth_lr_warmup_steps", 0),
    )
