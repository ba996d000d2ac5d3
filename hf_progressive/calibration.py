"""Growth timing from the paper's calibration recipe.

The loss of a progressive run spikes at growth and then *mixes* back onto the fixed-depth curve; the number of
steps that takes is the mixing time ``t_mix``. Within a WSD stable phase ``t_mix`` hardly depends on when growth
happens, so one short run that grows right after warmup measures it, and a run of ``T`` steps should grow at
``tau = T - t_mix`` (PAPER.md, "Timing and schedule").
"""

from __future__ import annotations

from collections.abc import Mapping


def mixing_time(
    progressive: Mapping[int, float], fixed: Mapping[int, float], growth_step: int, tolerance: float = 0.01
) -> int | None:
    """Steps after ``growth_step`` until the progressive loss rejoins the fixed-depth loss.

    Args:
        progressive: loss of the progressive run by step (e.g. validation loss at each evaluation).
        fixed: loss of the fixed-depth run at (at least) the same steps.
        growth_step: the step at which the progressive run grew.
        tolerance: relative gap that counts as rejoined: ``progressive <= fixed * (1 + tolerance)``.

    Returns:
        The first evaluated step after growth at which the gap is within tolerance and stays within it for every
        later evaluated step, minus ``growth_step``; ``None`` if it never rejoins.
    """
    steps = sorted(s for s in progressive if s > growth_step and s in fixed)
    rejoined: int | None = None
    for step in steps:
        if progressive[step] <= fixed[step] * (1 + tolerance):
            rejoined = step if rejoined is None else rejoined
        else:
            rejoined = None
    return None if rejoined is None else rejoined - growth_step


def growth_step_for(max_steps: int, t_mix: int, warmup_steps: int = 0, decay_steps: int = 0) -> int:
    """The growth step ``tau = max_steps - t_mix``, kept inside the WSD stable phase.

    Raises:
        ValueError: if the run is too short to grow after warmup and still mix before it ends.
    """
    tau = min(max_steps - t_mix, max_steps - decay_steps)
    if tau <= warmup_steps:
        raise ValueError(
            f"A run of {max_steps} steps cannot fit a mixing time of {t_mix} steps after a warmup of {warmup_steps}: "
            f"use at least {warmup_steps + t_mix + 1} steps."
        )
    return tau
