"""What growth is expected to cost in loss for a given run, read off the measured growth map.

``growth_map.json`` (written by ``benchmarks/horizon.py --report``) holds, for each measured cell (model size,
vocabulary, horizon in tokens per non-embedding parameter), the final validation-loss gap of 0 -> L and 1 -> L growth
at 0.8T against the fixed-depth run of the same steps, against a fixed run of the same FLOPs, and against a fresh deep
model trained only for the post-growth steps. Where a cell was measured on more than one corpus, the map keeps its
most complete measurement, and of those the one that repeated its data least (``corpus`` and ``passes`` say which),
as users' pretraining runs rarely repeat theirs. :func:`advise` finds the cells nearest to a run (the nearest
vocabulary; of its sizes, the one measured nearest the run's horizon, then the nearest in size) and interpolates over
the horizon; README "When does growth pay off?" says how the map was measured and how far it reaches.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

SOURCES = {"zero": 0, "one": 1}
#: How far (as a factor) a run's FLOPs ratio may lie from the measured cells' before their equal-FLOPs comparison
#: stops carrying to it as it is: the fixed run of the run's FLOPs trains on that factor more or fewer tokens than the
#: cells' did. Within a quarter, as between the example's small configs and the cells; GPT-2 124M growing 0 -> 12
#: uses 43% of the FLOPs where the 32k cells' growth used 96%, a fixed run of less than half the tokens.
FLOPS_RATIO_TOLERANCE = 1.25
#: How the advice names a cell's fields ("one_gap_equal" -> "1 -> L vs equal FLOPs").
QUANTITIES = {
    "gap_fixed": "vs fixed",
    "gap_equal": "vs equal FLOPs",
    "gap_control": "vs the control",
    "flops_ratio": "FLOPs ratio",
    "share_of_control": "share of the control's gap",
}


@dataclass
class SourceOutlook:
    """Expected final-loss gaps of one source depth (from the map), as fractions (0.05 = 5% higher loss)."""

    source_depth: int
    init: str
    gap_fixed: float | None  #: against the fixed-depth run of the same steps (the paper's comparison)
    gap_equal_flops: float | None  #: against a fixed-depth run of the same FLOPs (fewer steps)
    gap_control: float | None  #: against a fresh deep model trained only for the post-growth steps
    flops_ratio: float | None  #: FLOPs of the progressive run / the fixed run's (LM head and attention counted)
    #: ``gap_fixed`` as a share of the control's gap to the fixed run (0: level with fixed; 1: no better than the
    #: control). Steady over the measured horizons at 8k-32k vocabularies (README "When does growth pay off?"),
    #: so the number to carry to a run beyond the map.
    share_of_control: float | None = None
    #: The FLOPs ratio at which ``gap_equal_flops`` was measured (the cells'); ``flops_ratio`` may be the run's own.
    measured_flops_ratio: float | None = None

    @property
    def beats_equal_flops(self) -> bool | None:
        """Whether this source is expected to beat a fixed run of the same FLOPs as the run's own; None: unknown.

        A schedule that saves more compute than the measured cells faces a fixed run of fewer tokens, so the measured
        gap is an upper bound on its own: it carries a win, not a loss. One that saves less carries a loss, not a win.
        """
        gap = self.gap_equal_flops
        if gap is None:
            return None
        if not _shifted(self):
            return gap < 0
        if self.flops_ratio < self.measured_flops_ratio:  # the run saves more than the cells did
            return True if gap < 0 else None
        return False if gap >= 0 else None


@dataclass
class GrowthAdvice:
    """What the growth map says about one run; ``str()`` gives a short report for a log."""

    tokens_per_parameter: float
    vocab_size: int
    non_embedding_parameters: int
    #: Whether the run lies inside the measured map on every axis: its horizon within the horizons measured for the
    #: size read (at the nearest vocabulary), its model size within the sizes measured at that vocabulary, its
    #: vocabulary within the vocabularies measured.
    measured: bool
    nearest: str  #: the cells interpolated, e.g. "small (32 wide, 4 blocks), vocabulary 8192, 30-100 tokens/param"
    outlooks: list[SourceOutlook] = field(default_factory=list)
    #: Quantities that only one of the two interpolated cells measured (map field -> that cell's horizon): they are
    #: that cell's value as it is, not an interpolation.
    one_ended: dict[str, float] = field(default_factory=dict)
    #: Where the run lies outside the map, one phrase per axis (e.g. "non-embedding parameters 85M, measured
    #: 50.9k-200k"): the advice then reads the nearest measured cells.
    outside: list[str] = field(default_factory=list)

    @property
    def best(self) -> SourceOutlook | None:
        """The source with the smallest expected gap against a fixed run of equal FLOPs, of those whose comparison
        with that run is known (``beats_equal_flops`` not None)."""
        known = [o for o in self.outlooks if o.beats_equal_flops is not None]
        return min(known, key=lambda o: o.gap_equal_flops) if known else None

    @property
    def growth_pays(self) -> bool:
        """Whether the best source is expected to beat a fixed-depth run of the same FLOPs."""
        best = self.best
        return best is not None and best.beats_equal_flops is True

    @property
    def growth_loses(self) -> bool:
        """Whether every source is expected to lose to a fixed-depth run of the same FLOPs."""
        return bool(self.outlooks) and all(o.beats_equal_flops is False for o in self.outlooks)

    def schedule(self, target_depth: int) -> str:
        """The recommended ``depth_schedule`` (the best source, growth at 0.8T), or a fixed-depth one."""
        best = self.best
        if best is None or not self.growth_pays:
            return f"{target_depth}@0"
        return f"{best.source_depth}@0,{target_depth}@0.8"

    def __str__(self) -> str:
        where = "inside the measured range"
        if not self.measured:
            where = f"OUTSIDE the measured range ({'; '.join(self.outside)}: nearest cells used, a rough guide)"
        lines = [
            f"Growth map: {_count(self.tokens_per_parameter)} tokens per non-embedding parameter, vocabulary "
            f"{self.vocab_size}, {_count(self.non_embedding_parameters)} non-embedding parameters; {where}; "
            f"nearest cells: {self.nearest}."
        ]
        shifted = []
        for outlook in self.outlooks:
            flops = f"{_ratio(outlook.flops_ratio)} of the FLOPs"
            if outlook.gap_equal_flops is not None and _shifted(outlook):
                flops = f"measured where growth used {_ratio(outlook.measured_flops_ratio)} of the FLOPs; yours: "
                flops += _ratio(outlook.flops_ratio)
                shifted.append(outlook)
            lines.append(
                f"  {outlook.source_depth} -> L ({outlook.init}) at 0.8T: final loss {_pct(outlook.gap_fixed)} vs the "
                f"fixed-depth run of the same steps, {_pct(outlook.gap_equal_flops)} vs a fixed run of the same FLOPs "
                f"({flops}), {_pct(outlook.gap_control)} vs a fresh deep model trained only for the last 20% of the "
                "steps."
            )
        shares = [o for o in self.outlooks if o.share_of_control is not None]
        if shares and not self.measured:
            # Gaps do not carry to another size or horizon, but the share of the control's gap held steady across
            # the map: give the user the number to apply to their own estimate of that control.
            lines.append(
                "  Beyond the map, carry the share instead of the gaps: "
                + ", ".join(f"{o.source_depth} -> L ended {o.share_of_control:.2f}" for o in shares)
                + " of the way from the fixed-depth run to the control; estimate what training your full-depth model "
                "on only the last 20% of your tokens would cost, and expect about that share of it."
            )
        if self.one_ended:
            lines.append(
                "  Read from one cell only (the other end of the interpolation did not measure it): "
                + ", ".join(f"{_quantity(name)} (the {h:g} tokens/param cell)" for name, h in self.one_ended.items())
                + "."
            )
        if self.growth_pays:
            lines.append("  Growth is expected to beat a fixed-depth run of the same compute here.")
        elif shifted and not self.growth_loses:
            # The cells' equal-FLOPs runs trained on more (or fewer) tokens than one of this run's FLOPs would, so
            # their verdict carries only one way: say which way and leave the rest to the user's own estimate.
            lines.append(
                "  Your schedule saves a different share of the compute than the measured cells' growth did, so a "
                "fixed run of your FLOPs trains on a different number of tokens than the one measured: the gap vs "
                "equal FLOPs above is an upper bound where you save more, a lower bound where you save less, and "
                "whether growth beats a fixed run of the same compute is unknown here (estimate that run's loss from "
                "a scaling law, README 'When does growth pay off?'); the recommended schedule stays at fixed depth."
            )
        elif self.best is None:
            # A cell whose equal-FLOPs runs have not run yet: say so rather than claim a loss nobody measured.
            lines.append(
                "  No fixed-depth run of the same FLOPs was measured in the cells read, so whether growth beats one "
                "here is unknown; the recommended schedule stays at fixed depth until it is."
            )
        else:
            lines.append(
                "  Growth is expected to LOSE to a fixed-depth run of the same compute here: for the same FLOPs, train "
                "the full-depth model for fewer steps, or use growth to save compute when its gap is acceptable."
            )
        return "\n".join(lines)


def advise(
    non_embedding_parameters: int, vocab_size: int, tokens: float, growth_map: dict | None = None
) -> GrowthAdvice:
    """Expected gaps of 0 -> L and 1 -> L growth for a run, from the measured growth map.

    The FLOPs ratios in the outlooks are those of the measured cells; ``advise_run`` replaces them with your model's
    own (its LM head and attention counted), which is what to read when you have a config.

    Args:
        non_embedding_parameters: parameters of the target-depth model outside the token and position embeddings
            (``hf_progressive.flops.non_embedding_parameters(config, depth)``).
        vocab_size: the vocabulary size.
        tokens: training tokens of the whole run (``max_steps * batch * context``, summed over processes).
        growth_map: a map as written by ``benchmarks/horizon.py --report``; default: the one shipped with the package.

    Raises:
        ValueError: for non-positive sizes, or an empty map.
    """
    if non_embedding_parameters <= 0 or vocab_size <= 0 or tokens <= 0:
        raise ValueError(
            f"advise() needs positive sizes: non_embedding_parameters={non_embedding_parameters}, "
            f"vocab_size={vocab_size}, tokens={tokens}."
        )
    cells = (growth_map or load_growth_map())["cells"]
    if not cells:
        raise ValueError("The growth map has no measured cells.")
    horizon = tokens / non_embedding_parameters
    vocab = min({c["vocab"] for c in cells}, key=lambda v: abs(math.log(v / vocab_size)))
    same_vocab = [c for c in cells if c["vocab"] == vocab]

    def horizon_miss(size: int) -> float:
        """How far (log scale) the run's horizon lies outside the horizons measured for this size; 0 inside."""
        measured = [c["horizon"] for c in same_vocab if c["non_embedding_parameters"] == size]
        return max(0.0, math.log(min(measured) / horizon), math.log(horizon / max(measured)))

    # The size whose measured horizons reach the run's, then the nearest size: along each row of the map the gaps
    # move more than between its sizes (at 32k the 1 -> L copy share rises from 0.13 at 30 tokens/param to 0.66 at
    # 300), so a GPT-2-sized run at 2,000 tokens/param reads the small model's 300 cell, not the medium one's 30.
    size = min(
        {c["non_embedding_parameters"] for c in same_vocab},
        key=lambda n: (round(horizon_miss(n), 9), abs(math.log(n / non_embedding_parameters))),
    )
    row = sorted((c for c in same_vocab if c["non_embedding_parameters"] == size), key=lambda c: c["horizon"])
    horizons = [c["horizon"] for c in row]
    sizes = sorted({c["non_embedding_parameters"] for c in same_vocab})
    vocabs = sorted({c["vocab"] for c in cells})
    # Each axis on its own: a 124M model at 100 tokens/param lies inside the horizons and far outside the sizes.
    outside = [
        f"{label} {show(value)}, measured {show(low) if low == high else f'{show(low)}-{show(high)}'}"
        for label, value, low, high, show in (
            ("tokens/param", horizon, horizons[0], horizons[-1], _count),
            ("non-embedding parameters", non_embedding_parameters, sizes[0], sizes[-1], _count),
            ("vocabulary", vocab_size, vocabs[0], vocabs[-1], str),
        )
        if not low <= value <= high
    ]
    below = max((c for c in row if c["horizon"] <= horizon), key=lambda c: c["horizon"], default=row[0])
    above = min((c for c in row if c["horizon"] >= horizon), key=lambda c: c["horizon"], default=row[-1])
    described = row[0]
    span = f"{below['horizon']:g}" if below is above else f"{below['horizon']:g}-{above['horizon']:g}"
    nearest = (
        f"{described['size']} ({described['width']} wide, {described['depth']} blocks), vocabulary {vocab}, "
        f"{span} tokens/param"
    )
    # The map takes a cell from the larger corpus where the standard library's repeated its data more often.
    corpora = sorted({c.get("corpus", "stdlib") for c in (below, above)})
    if corpora != ["stdlib"]:
        nearest += f" (corpus {' and '.join(corpora)})"

    one_ended: dict[str, float] = {}

    def value(name: str) -> float | None:
        low, high = below.get(name), above.get(name)
        if below is above:
            return low
        if low is None or high is None:
            if (low, high) != (None, None):
                one_ended[name] = (below if high is None else above)["horizon"]
            return low if high is None else high
        weight = math.log(horizon / below["horizon"]) / math.log(above["horizon"] / below["horizon"])
        return low + weight * (high - low)

    outlooks = []
    for source, depth in SOURCES.items():
        gap_fixed = value(f"{source}_gap_fixed")
        if gap_fixed is None:  # this source was not run in the cells read
            continue
        outlooks.append(
            SourceOutlook(
                source_depth=depth,
                init="random" if depth == 0 else "copy",
                gap_fixed=gap_fixed,
                gap_equal_flops=value(f"{source}_gap_equal"),
                gap_control=value(f"{source}_gap_control"),
                flops_ratio=value(f"{source}_flops_ratio"),
                measured_flops_ratio=value(f"{source}_flops_ratio"),
                share_of_control=value(f"{source}_share_of_control"),
            )
        )
    return GrowthAdvice(
        tokens_per_parameter=horizon,
        vocab_size=vocab_size,
        non_embedding_parameters=non_embedding_parameters,
        measured=not outside,
        nearest=nearest,
        outlooks=outlooks,
        one_ended=one_ended,
        outside=outside,
    )


def advise_run(config, target_depth: int, tokens: float, context_length: int | None = None) -> GrowthAdvice:
    """:func:`advise` for a GPT-2 config growing to ``target_depth`` blocks on ``tokens`` training tokens.

    The FLOP ratios are this model's own (its LM head, width and depth), not the measured cell's.
    """
    from .flops import non_embedding_parameters, schedule_compute_ratios
    from .schedule import DepthSchedule

    advice = advise(non_embedding_parameters(config, target_depth), config.vocab_size, tokens)
    for outlook in advice.outlooks:
        schedule = DepthSchedule(f"{outlook.source_depth}@0,{target_depth}@0.8")
        outlook.flops_ratio = schedule_compute_ratios(config, schedule, 1000, context_length).forward_flops
    for source in SOURCES:
        advice.one_ended.pop(f"{source}_flops_ratio", None)  # the ratios are now this model's own
    return advice


@cache
def load_growth_map() -> dict:
    """The growth map shipped with the package (``hf_progressive/growth_map.json``)."""
    return json.loads(resources.files("hf_progressive").joinpath("growth_map.json").read_text(encoding="utf-8"))


def _quantity(name: str) -> str:
    source, _, quantity = name.partition("_")
    return f"{SOURCES[source]} -> L {QUANTITIES.get(quantity, quantity)}"


def _count(value: float) -> str:
    """3 significant figures with a k/M/B suffix: 50.9k, 1.19M."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= 0.9995 * size:  # 999.7 rounds to 1k at 3 figures, not to "1e+03"
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _shifted(outlook: SourceOutlook) -> bool:
    """Whether the run's FLOPs ratio lies beyond the tolerance from the one the cells measured their gap at."""
    if not outlook.flops_ratio or not outlook.measured_flops_ratio:
        return False
    factor = outlook.flops_ratio / outlook.measured_flops_ratio
    return not 1 / FLOPS_RATIO_TOLERANCE <= factor <= FLOPS_RATIO_TOLERANCE


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:+.1%}"


def _ratio(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"
