"""Depth schedules: when the model grows, and to which depth.

A schedule is a list of stages ``(depth, at)``. ``at`` is an optimizer step (an ``int``) or a fraction of
``max_steps`` (a ``float`` below 1). The first stage must be at step 0 and gives the starting depth; every
later stage is one growth event. On the command line the same schedule is written ``"0@0,12@0.8"``.

This module is pure Python: it knows nothing of models or of ``Trainer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union

StageSpec = Union["DepthStage", tuple, list, dict]

_STAGE_RE = re.compile(r"^\s*(?P<depth>[^@\s]+)\s*@\s*(?P<at>[^@\s]+)\s*$")
_EXAMPLE = "'0@0,12@0.8' (depth 0 from step 0, depth 12 from 80% of max_steps)"


@dataclass(frozen=True)
class DepthStage:
    """One stage of a schedule: the model has ``depth`` blocks from ``at`` onwards.

    ``at`` is an optimizer step (``int``) or a fraction of ``max_steps`` (``float`` in ``[0, 1)``).
    """

    depth: int
    at: int | float

    def resolve(self, max_steps: int) -> int:
        """Return the optimizer step of this stage for a run of ``max_steps`` steps."""
        if isinstance(self.at, float):
            return int(round(self.at * max_steps))
        return self.at

    def __str__(self) -> str:
        return f"{self.depth}@{self.at}"


@dataclass(frozen=True)
class GrowthStep:
    """A resolved growth event: after ``step`` optimizer steps, grow from ``from_depth`` to ``to_depth``."""

    step: int
    from_depth: int
    to_depth: int


class DepthSchedule:
    """An ordered list of :class:`DepthStage`, validated on construction.

    Args:
        stages: a string such as ``"0@0,12@0.8"``, or a sequence of ``DepthStage``, ``(depth, at)`` pairs or
            ``{"depth": ..., "at": ...}`` dicts.
        target_depth: if given, no stage may exceed it.

    Raises:
        ValueError: naming the bad value and what would be valid, for malformed stages, a first stage that is
            not at step 0, depths that do not strictly increase, steps that do not strictly increase, negative
            values, fractions outside ``[0, 1)`` or a depth above ``target_depth``.

    Example:
        >>> schedule = DepthSchedule("0@0,12@0.8")
        >>> schedule.growth_steps(max_steps=1000)
        [GrowthStep(step=800, from_depth=0, to_depth=12)]
    """

    def __init__(self, stages: str | Sequence[StageSpec] | DepthSchedule, target_depth: int | None = None):
        if isinstance(stages, DepthSchedule):
            stages = stages.stages
        parsed = _parse_string(stages) if isinstance(stages, str) else [_coerce_stage(s) for s in stages]
        _validate(parsed, target_depth)
        self.stages: tuple[DepthStage, ...] = tuple(parsed)

    @classmethod
    def constant(cls, depth: int) -> DepthSchedule:
        """A schedule that never grows (a fixed-depth run)."""
        return cls([DepthStage(depth, 0)])

    @property
    def initial_depth(self) -> int:
        return self.stages[0].depth

    @property
    def final_depth(self) -> int:
        return self.stages[-1].depth

    def resolve(self, max_steps: int) -> list[int]:
        """Return the optimizer step of every stage, checking that each fits in a run of ``max_steps``."""
        if max_steps <= 0:
            raise ValueError(f"max_steps={max_steps} must be positive to resolve depth_schedule '{self}'.")
        steps = [stage.resolve(max_steps) for stage in self.stages]
        for stage, step in zip(self.stages[1:], steps[1:]):
            if step >= max_steps:
                raise ValueError(
                    f"depth_schedule stage '{stage}' falls at step {step}, at or beyond max_steps={max_steps}: "
                    f"a growth step must lie in [1, {max_steps - 1}]."
                )
            if step <= 0:
                raise ValueError(
                    f"depth_schedule stage '{stage}' resolves to step {step} with max_steps={max_steps}: "
                    "only the first stage may be at step 0; use a later step or a larger fraction."
                )
        for (a, sa), (b, sb) in zip(zip(self.stages, steps), zip(self.stages[1:], steps[1:])):
            if sb <= sa:
                raise ValueError(
                    f"depth_schedule stages '{a}' and '{b}' resolve to steps {sa} and {sb} with "
                    f"max_steps={max_steps}: steps must strictly increase."
                )
        return steps

    def growth_steps(self, max_steps: int) -> list[GrowthStep]:
        """Resolve every growth event (every stage after the first) to an optimizer step."""
        steps = self.resolve(max_steps)
        return [
            GrowthStep(step=step, from_depth=prev.depth, to_depth=stage.depth)
            for prev, stage, step in zip(self.stages, self.stages[1:], steps[1:])
        ]

    def depth_at(self, step: int, max_steps: int) -> int:
        """Depth of the model while optimizer step ``step + 1`` runs, i.e. after ``step`` steps are done."""
        depth = self.initial_depth
        for stage, stage_step in zip(self.stages, self.resolve(max_steps)):
            if step >= stage_step:
                depth = stage.depth
        return depth

    def __str__(self) -> str:
        return ",".join(str(s) for s in self.stages)

    def __repr__(self) -> str:
        return f"DepthSchedule('{self}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DepthSchedule) and self.stages == other.stages

    def __hash__(self) -> int:
        return hash(self.stages)


def _parse_string(text: str) -> list[DepthStage]:
    if not text.strip():
        raise ValueError(f"depth_schedule is empty: expected comma-separated 'depth@step' stages such as {_EXAMPLE}.")
    stages = []
    for part in text.split(","):
        match = _STAGE_RE.match(part)
        if match is None:
            raise ValueError(
                f"depth_schedule stage '{part.strip()}' in '{text}' is not 'depth@step': "
                f"expected comma-separated stages such as {_EXAMPLE}."
            )
        stages.append(DepthStage(_parse_depth(match["depth"], part), _parse_at(match["at"], part)))
    return stages


def _parse_depth(token: str, stage: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise ValueError(
            f"depth '{token}' in depth_schedule stage '{stage.strip()}' is not a whole number of blocks."
        ) from None


def _parse_at(token: str, stage: str) -> int | float:
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        raise ValueError(
            f"step '{token}' in depth_schedule stage '{stage.strip()}' is neither an optimizer step (int) nor a "
            "fraction of max_steps (float in [0, 1))."
        ) from None


def _coerce_stage(spec: StageSpec) -> DepthStage:
    if isinstance(spec, DepthStage):
        return spec
    if isinstance(spec, dict):
        if set(spec) != {"depth", "at"}:
            raise ValueError(f"depth_schedule stage {spec!r} must have exactly the keys 'depth' and 'at'.")
        return DepthStage(spec["depth"], spec["at"])
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return DepthStage(spec[0], spec[1])
    raise ValueError(
        f"depth_schedule stage {spec!r} is not a (depth, at) pair, a {{'depth', 'at'}} dict or a DepthStage."
    )


def _validate(stages: list[DepthStage], target_depth: int | None) -> None:
    if not stages:
        raise ValueError(f"depth_schedule has no stages: expected at least one, such as {_EXAMPLE}.")
    normalized = []
    for stage in stages:
        depth, at = stage.depth, stage.at
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise ValueError(f"depth {depth!r} in depth_schedule stage '{stage}' must be an int.")
        if depth < 0:
            raise ValueError(f"depth {depth} in depth_schedule stage '{stage}' is negative: depths are >= 0.")
        if target_depth is not None and depth > target_depth:
            raise ValueError(
                f"depth {depth} in depth_schedule stage '{stage}' is above the target depth {target_depth}: "
                f"depths must lie in [0, {target_depth}]."
            )
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            raise ValueError(f"step {at!r} in depth_schedule stage '{stage}' must be an int or a float.")
        if at < 0:
            raise ValueError(f"step {at} in depth_schedule stage '{stage}' is negative: steps are >= 0.")
        if isinstance(at, float) and at >= 1:
            if not at.is_integer():
                raise ValueError(
                    f"step {at} in depth_schedule stage '{stage}' is a float >= 1: write an optimizer step as an "
                    "int, or a fraction of max_steps as a float in [0, 1)."
                )
            at = int(at)
        if isinstance(at, float) and at == 0:
            at = 0
        normalized.append(DepthStage(depth, at))
    stages[:] = normalized
    if stages[0].at != 0:
        raise ValueError(
            f"depth_schedule must start with a stage at step 0 giving the starting depth, got '{stages[0]}': "
            f"for example {_EXAMPLE}."
        )
    for prev, stage in zip(stages, stages[1:]):
        if stage.depth <= prev.depth:
            raise ValueError(
                f"depth_schedule depths must strictly increase, but stage '{stage}' follows '{prev}': "
                "the model only grows."
            )
        # A step and a fraction can only be compared once max_steps is known (see ``resolve``).
        if type(stage.at) is type(prev.at) and stage.at <= prev.at:
            raise ValueError(f"depth_schedule steps must strictly increase, but stage '{stage}' follows '{prev}'.")


def as_schedule(value: str | Iterable[StageSpec] | DepthSchedule | None, target_depth: int | None = None):
    """Build a :class:`DepthSchedule` from any accepted form, or return ``None`` for ``None``."""
    if value is None:
        return None
    return DepthSchedule(value if isinstance(value, (str, DepthSchedule)) else list(value), target_depth)
