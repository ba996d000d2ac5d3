"""What growth is expected to cost in loss for a given run, read off the measured growth map.

``growth_map.json`` (written by ``benchmarks/horizon.py --report``) holds, for each measured cell (model size,
vocabulary, horizon in tokens per non-embedding parameter), the final validation-loss gap of 0 -> L and 1 -> L growth
at 0.8T against the fixed-depth run of the same steps, against a fixed run of the same FLOPs, and against a fresh deep
model trained only for the post-growth steps. Where a cell was measured on more than one corpus, the map keeps its
most complete measurement, and of those the one that repeated its data least (``corpus`` and ``passes`` say which),
as users' pretraining runs rarely repeat theirs. :func:`advise` finds the cells nearest to a run (the nearest
vocabulary; of its sizes, the one measured nearest the run's horizon, then the nearest in size) and interpolates over
the horizon; 1 -> L copy's head start follows the tokens trained rather than the horizon, so its share of the
control's gap is read off the cells of that vocabulary nearest in tokens (:func:`read_share_by_tokens`).
Against a fixed run of the run's own FLOPs (``advise_run``: its own LM head and depth), the loss of that run is read
off the cells' fixed runs of fewer tokens (:func:`fixed_runs_from`), and the map's own check of that estimate is
quoted. README "When does growth pay off?" says how the map was measured and how far it reaches.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources

SOURCES = {"zero": 0, "one": 1}
#: Where every cell of the map grows (as a fraction of the steps), and where the recommended schedule grows: the
#: control of a cell is a fixed-depth run of the remaining ``1 - GROWTH_AT`` of the tokens.
GROWTH_AT = 0.8
CONTROL_SHARE = round(1 - GROWTH_AT, 9)  #: the control's share of the tokens (0.2, without float noise in JSON)
#: 1 -> L copy's share of the control's gap rose with the tokens a run trained, at every vocabulary, nearly whatever
#: the model size, the horizon and the batch (README "Steps or tokens": at BPE vocabularies 0.05 at 0.5M tokens,
#: 0.3-0.5 at 5-8M, 0.7 at 50M), so :func:`advise` reads copy's share off the cells nearest in tokens; a run training
#: more than this many times the most tokens measured at its vocabulary would find copy's head start smaller still.
HEAD_START_TOKENS = 2.0
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
    #: Against the cells' fixed-depth run of the same FLOPs as their growth (``measured_flops_ratio`` of the steps);
    #: ``gap_equal_flops`` carries it to this run's own FLOPs ratio.
    measured_gap_equal_flops: float | None
    gap_control: float | None  #: against a fresh deep model trained only for the post-growth steps
    flops_ratio: float | None  #: FLOPs of the progressive run / the fixed run's (LM head and attention counted)
    #: ``gap_fixed`` as a share of the control's gap to the fixed run (0: level with fixed; 1: no better than the
    #: control). Steady over the measured horizons at 8k-32k vocabularies (README "When does growth pay off?"),
    #: so the number to carry to a run beyond the map.
    share_of_control: float | None = None
    #: The FLOPs ratio of the cells' growth, at which ``measured_gap_equal_flops`` was measured; ``flops_ratio`` may
    #: be the run's own (``advise_run``).
    measured_flops_ratio: float | None = None
    #: Final losses of the cells' fixed-depth runs relative to their full run, by the share of its tokens each
    #: trained on (:func:`fixed_runs_from`); ``advise`` gives each source those of both sources. Empty: this
    #: outlook's own (the full run, its equal-FLOPs run, the control).
    fixed_runs: dict[float, float] = field(default_factory=dict)
    #: 1 -> L copy for a run of far more tokens than any cell of its vocabulary trained (``HEAD_START_TOKENS``): its
    #: gaps overstate its head start, so whether it beats a fixed run of the same FLOPs is unknown.
    head_start_worn: bool = False

    def measurements(self) -> list[tuple[float | None, float | None, float | None]]:
        """This source's comparisons with a fixed run of fewer tokens, as :func:`fixed_runs_from` takes them:
        against the equal-FLOPs run (``measured_flops_ratio`` of the tokens) and the control (``CONTROL_SHARE``)."""
        return [
            (self.gap_fixed, self.measured_flops_ratio, self.measured_gap_equal_flops),
            (self.gap_fixed, CONTROL_SHARE, self.gap_control),
        ]

    def fixed_loss_at(self, fraction: float) -> float | None:
        """Final loss of a fixed-depth run trained on ``fraction`` of the tokens (its own WSD), relative to the full
        run's, interpolated linearly on log-log axes (as a power law in the tokens would be) between the cells'
        fixed runs; None below the shortest. The check against the map's own runs: README "In the tools"."""
        return interpolate_log_log(self.fixed_runs or fixed_runs_from(self.measurements()), fraction)

    @property
    def gap_equal_flops(self) -> float | None:
        """Against a fixed-depth run of the same FLOPs as this run's (``flops_ratio`` of the fixed run's tokens).

        The cells' measured gap where the run saves what their growth did; elsewhere read off the cells' fixed runs
        (:meth:`fixed_loss_at`): GPT-2 124M growing 0 -> 12 uses 43% of the FLOPs where the 32k cells' growth used
        96%, so its equal-FLOPs run trains on far fewer tokens than theirs and ends far higher.
        """
        if self.flops_ratio is None or self.measured_flops_ratio is None:
            return self.measured_gap_equal_flops
        fixed = self.fixed_loss_at(self.flops_ratio)
        return None if fixed is None else (1 + self.gap_fixed) / fixed - 1

    @property
    def equal_flops_estimated(self) -> bool:
        """Whether ``gap_equal_flops`` is read off the cells' fixed runs, not measured at this run's FLOPs ratio (as
        the percentages print)."""
        if self.gap_equal_flops is None:
            return False
        if self.measured_gap_equal_flops is None:
            return True
        if self.flops_ratio is None or self.measured_flops_ratio is None:
            return False  # the measured gap, as it is
        return _ratio(self.measured_flops_ratio) != _ratio(self.flops_ratio)

    @property
    def beats_equal_flops(self) -> bool | None:
        """Whether this source is expected to beat a fixed run of the same FLOPs as the run's own; None: unknown."""
        if self.head_start_worn:
            return None
        gap = self.gap_equal_flops
        return None if gap is None else gap < 0


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
    #: How well the equal-FLOPs estimate predicted the map's own equal-FLOPs runs at the vocabulary read, each left
    #: out in turn (``runs``, ``mean_abs_error``, ``max_abs_error``, ``favoured_growth``: written by the report).
    estimate_check: dict | None = None
    #: The most training tokens of a cell that measured 1 -> L copy at the vocabulary read: copy's head start is
    #: measured up to there.
    cells_tokens: float | None = None
    #: The cells 1 -> L copy's share of the control's gap was read from, by the tokens they trained (e.g. "small 100
    #: tokens/param (5.09M tokens) and medium 30 tokens/param (6.04M tokens)"), where they are not ``nearest``'s.
    copy_share_cells: str | None = None

    @property
    def tokens(self) -> float:
        """The run's training tokens."""
        return self.tokens_per_parameter * self.non_embedding_parameters

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

    def schedule(self, target_depth: int) -> str:
        """The recommended ``depth_schedule`` (the best source, growth at 0.8T), or a fixed-depth one."""
        best = self.best
        if best is None or not self.growth_pays:
            return f"{target_depth}@0"
        return f"{best.source_depth}@0,{target_depth}@{GROWTH_AT:g}"

    def to_dict(self) -> dict:
        """The advice as JSON-ready data; each outlook also carries its ``gap_equal_flops`` (derived, so ``asdict``
        alone leaves it out)."""
        data = asdict(self)
        for entry, outlook in zip(data["outlooks"], self.outlooks):
            entry["gap_equal_flops"] = outlook.gap_equal_flops
        return data

    def __str__(self) -> str:
        where = "inside the measured range"
        if not self.measured:
            where = f"OUTSIDE the measured range ({'; '.join(self.outside)}: nearest cells used, a rough guide)"
        lines = [
            f"Growth map: {_count(self.tokens_per_parameter)} tokens per non-embedding parameter, vocabulary "
            f"{self.vocab_size}, {_count(self.non_embedding_parameters)} non-embedding parameters; {where}; "
            f"nearest cells: {self.nearest}."
        ]
        for outlook in self.outlooks:
            flops = f"{_ratio(outlook.flops_ratio)} of the FLOPs"
            if outlook.equal_flops_estimated:
                flops += "; estimated"
                if outlook.measured_gap_equal_flops is not None:
                    flops += (
                        f" from {_pct(outlook.measured_gap_equal_flops)} where the cells' growth used "
                        f"{_ratio(outlook.measured_flops_ratio)}"
                    )
            lines.append(
                f"  {outlook.source_depth} -> L ({outlook.init}) at 0.8T: final loss {_pct(outlook.gap_fixed)} vs the "
                f"fixed-depth run of the same steps, {_pct(outlook.gap_equal_flops)} vs a fixed run of the same FLOPs "
                f"({flops}), {_pct(outlook.gap_control)} vs a fresh deep model trained only for the last 20% of the "
                "steps."
            )
        if any(o.equal_flops_estimated for o in self.outlooks):
            # A fixed run of the user's FLOPs trains on their share of the tokens, not on the cells' share.
            lines.append(
                "  Estimated: a fixed run of your FLOPs trains on that share of your tokens; its loss is read off the "
                "cells' fixed-depth runs of 20% (the control), of each source's share (the equal-FLOPs runs) and of "
                "100% of the tokens, each with its own WSD (log-log interpolation)." + _checked(self.estimate_check)
            )
        # Copy's share rises with the tokens trained: a worn head start has no share to carry.
        shares = [o for o in self.outlooks if o.share_of_control is not None and not o.head_start_worn]
        if shares and not self.measured:
            # Gaps do not carry to another size or horizon, but the share of the control's gap held steady across
            # the map: give the user the number to apply to their own estimate of that control.
            lines.append(
                "  Beyond the map, carry the share instead of the gaps: "
                + ", ".join(f"{o.source_depth} -> L ended {o.share_of_control:.2f}" for o in shares)
                + " of the way from the fixed-depth run to the control; estimate what training your full-depth model "
                "on only the last 20% of your tokens would cost, and expect about that share of it."
            )
        if self.copy_share_cells:
            copy = next(o for o in self.outlooks if o.source_depth == 1)
            lines.append(
                "  1 -> L copy's head start wears down with the tokens trained, not with the horizon: its share of the "
                f"control's gap ({copy.share_of_control:.2f}) is read off the cells nearest your "
                f"{_count(self.tokens)} tokens, {self.copy_share_cells}, and its gaps above follow from that share."
            )
        if any(o.head_start_worn for o in self.outlooks):
            lines.append(
                "  1 -> L copy's head start wears down with the tokens trained, whatever the model size: the cells of "
                f"this vocabulary trained at most {_count(self.cells_tokens)} tokens, your run {_count(self.tokens)}; "
                "its share of the control's gap was still rising there, so expect it to end further from the fixed "
                "run than above; whether it beats a fixed run of the same compute is unknown here."
            )
        if self.one_ended:
            lines.append(
                "  Read from one cell only (the other end of the interpolation did not measure it): "
                + ", ".join(f"{_quantity(name)} (the {h:g} tokens/param cell)" for name, h in self.one_ended.items())
                + "."
            )
        best = self.best
        if best is None:
            # A cell whose equal-FLOPs runs have not run yet: say so rather than claim a loss nobody measured.
            lines.append(
                "  No fixed-depth run near your FLOPs was measured in the cells read, so whether growth beats one "
                "here is unknown; the recommended schedule stays at fixed depth until it is."
            )
            return "\n".join(lines)
        basis = " (by the estimate above)" if best.equal_flops_estimated else ""
        if self.growth_pays:
            lines.append(f"  Growth is expected to beat a fixed-depth run of the same compute here{basis}.")
        else:
            lines.append(
                f"  Growth is expected to LOSE to a fixed-depth run of the same compute here{basis}: for the same "
                "FLOPs, train the full-depth model for fewer steps, or use growth to save compute when its gap is "
                "acceptable."
            )
        return "\n".join(lines)


def advise(
    non_embedding_parameters: int,
    vocab_size: int,
    tokens: float,
    growth_map: dict | None = None,
    *,
    shares_by_tokens: Collection[str] = ("one",),
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
        shares_by_tokens: the sources (``"zero"``, ``"one"``) whose share of the control's gap is read off the cells
            nearest in tokens (:func:`read_share_by_tokens`) rather than interpolated over the horizon with the rest.
            The default reads 1 -> L copy so, as its head start follows the tokens; the map's own check of both
            readings for both sources (README "When does growth pay off?") is what set it. ``copy_share_cells``
            names the cells read for copy only.

    Raises:
        ValueError: for non-positive sizes, an empty map, or a source in ``shares_by_tokens`` that is not one.
    """
    unknown = sorted(set(shares_by_tokens) - set(SOURCES))
    if unknown:
        raise ValueError(f"shares_by_tokens: unknown source(s) {unknown}; valid: {sorted(SOURCES)}.")
    if non_embedding_parameters <= 0 or vocab_size <= 0 or tokens <= 0:
        raise ValueError(
            f"advise() needs positive sizes: non_embedding_parameters={non_embedding_parameters}, "
            f"vocab_size={vocab_size}, tokens={tokens}."
        )
    growth_map = growth_map or load_growth_map()
    cells = growth_map["cells"]
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
    below, above = _bracket(row, lambda c: c["horizon"], horizon)
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
        weight = _log_weight(horizon, below["horizon"], above["horizon"])
        return low + weight * (high - low)

    copy_cells = [c for c in same_vocab if c.get("one_gap_fixed") is not None]
    cells_tokens = max(map(_tokens, copy_cells), default=None)
    outlooks = []
    for source, depth in SOURCES.items():
        gap_fixed = value(f"{source}_gap_fixed")
        if gap_fixed is None:  # this source was not run in the cells read
            continue
        flops_ratio = value(f"{source}_flops_ratio")
        outlooks.append(
            SourceOutlook(
                source_depth=depth,
                init="random" if depth == 0 else "copy",
                gap_fixed=gap_fixed,
                measured_gap_equal_flops=value(f"{source}_gap_equal"),
                gap_control=value(f"{source}_gap_control"),
                flops_ratio=flops_ratio,
                measured_flops_ratio=flops_ratio,
                share_of_control=value(f"{source}_share_of_control"),
                head_start_worn=depth == 1 and tokens > HEAD_START_TOKENS * cells_tokens,
            )
        )
    # Both sources' equal-FLOPs runs and the control are fixed runs of the same cells: each source reads all of them.
    shared = fixed_runs_from(m for outlook in outlooks for m in outlook.measurements())
    for outlook in outlooks:
        outlook.fixed_runs = shared
    read_by_tokens = {
        name: read_share_by_tokens(outlook, same_vocab, tokens, (below, above))
        for name, outlook in ((_source_name(o), o) for o in outlooks)
        if name in shares_by_tokens
    }
    return GrowthAdvice(
        tokens_per_parameter=horizon,
        vocab_size=vocab_size,
        non_embedding_parameters=non_embedding_parameters,
        measured=not outside,
        nearest=nearest,
        outlooks=outlooks,
        one_ended=one_ended,
        outside=outside,
        estimate_check=growth_map.get("estimate_check", {}).get(str(vocab)),
        cells_tokens=cells_tokens,
        copy_share_cells=read_by_tokens.get("one"),
    )


def read_share_by_tokens(
    outlook: SourceOutlook, cells: list[dict], tokens: float, horizon_cells: tuple[dict, dict]
) -> str | None:
    """Re-read a source's outlook at the run's tokens rather than its horizon; returns the cells read, or None
    where they are the horizon's own cells (or lack the share), leaving ``outlook`` as it was.

    1 -> L copy's share of the control's gap follows the tokens trained across model sizes (README "Steps or
    tokens"), so :func:`advise` reads it so: interpolated on log tokens between the two cells of the vocabulary
    nearest in tokens (the nearest one alone outside them); the control's gap to the fixed run stays the horizon
    cells' (it is the cost of training only the last 20% of the steps, a property of the horizon), and the source's
    gaps follow from the two. Its equal-FLOPs gap is then estimated from the horizon cells' fixed runs, as at any
    FLOPs share the cells did not measure.
    """
    key = f"{_source_name(outlook)}_share_of_control"
    cells = [c for c in cells if c.get(key) is not None]
    if not cells or outlook.gap_fixed is None or outlook.gap_control is None:
        return None
    below, above = _bracket(cells, _tokens, tokens)
    if {id(below), id(above)} == {id(c) for c in horizon_cells}:
        return None
    share = below[key]
    if below is not above:
        share += _log_weight(tokens, _tokens(below), _tokens(above)) * (above[key] - share)
    control_gap = (1 + outlook.gap_fixed) / (1 + outlook.gap_control) - 1
    outlook.share_of_control = share
    outlook.gap_fixed = share * control_gap
    outlook.gap_control = (1 + outlook.gap_fixed) / (1 + control_gap) - 1
    outlook.measured_gap_equal_flops = None
    read = [below] if below is above else [below, above]
    return " and ".join(f"{c['size']} {c['horizon']:g} tokens/param ({_count(_tokens(c))} tokens)" for c in read)


def _source_name(outlook: SourceOutlook) -> str:
    """The map's name of an outlook's source ("zero", "one")."""
    return next(name for name, depth in SOURCES.items() if depth == outlook.source_depth)


def _bracket(cells: list[dict], key, x: float) -> tuple[dict, dict]:
    """The cells nearest ``x`` by ``key`` from below and from above; the same cell at or beyond either end."""
    below = max((c for c in cells if key(c) <= x), key=key, default=None)
    above = min((c for c in cells if key(c) >= x), key=key, default=None)
    return below or above, above or below


def _log_weight(x: float, low: float, high: float) -> float:
    """Where ``x`` lies between ``low`` and ``high`` on a log scale: 0 at ``low``, 1 at ``high``."""
    return math.log(x / low) / math.log(high / low)


def _tokens(cell: dict) -> float:
    """A cell's training tokens."""
    return cell["horizon"] * cell["non_embedding_parameters"]


def advise_run(config, target_depth: int, tokens: float, context_length: int | None = None) -> GrowthAdvice:
    """:func:`advise` for a model config (GPT-2 or another registered family) growing to ``target_depth`` blocks on
    ``tokens`` training tokens.

    The FLOP ratios are this model's own (its LM head, width and depth), not the measured cell's.
    """
    from .flops import non_embedding_parameters, schedule_compute_ratios
    from .schedule import DepthSchedule

    advice = advise(non_embedding_parameters(config, target_depth), config.vocab_size, tokens)
    for outlook in advice.outlooks:
        schedule = DepthSchedule(f"{outlook.source_depth}@0,{target_depth}@{GROWTH_AT:g}")
        outlook.flops_ratio = schedule_compute_ratios(config, schedule, 1000, context_length).forward_flops
    for source in SOURCES:
        advice.one_ended.pop(f"{source}_flops_ratio", None)  # the ratios are now this model's own
    return advice


@cache
def load_growth_map() -> dict:
    """The growth map shipped with the package (``hf_progressive/growth_map.json``)."""
    return json.loads(resources.files("hf_progressive").joinpath("growth_map.json").read_text(encoding="utf-8"))


def fixed_runs_from(measurements: Iterable[tuple[float | None, float | None, float | None]]) -> dict[float, float]:
    """The final losses of a cell's fixed-depth runs relative to its full run (1.0 at 1.0), by the share of the
    full run's tokens each trained on.

    Args:
        measurements: ``(gap_fixed, share, gap)`` triples: a progressive run's gap to the full fixed run and its gap
            to a fixed run of ``share`` of the tokens (an equal-FLOPs run, or the control: a fresh model trained on
            the post-growth steps is a fixed run of ``CONTROL_SHARE`` of the tokens). Incomplete triples are skipped;
            of two at one share the first is kept (both sources compare with the same control).
    """
    runs = {1.0: 1.0}
    for gap_fixed, share, gap in measurements:
        if gap_fixed is not None and share and gap is not None:
            runs.setdefault(share, (1 + gap_fixed) / (1 + gap))
    return runs


def interpolate_log_log(points: dict[float, float], x: float) -> float | None:
    """Piecewise-linear interpolation of ``points`` on log-log axes; None outside their span."""
    if x in points:
        return points[x]
    xs = sorted(points)
    for low, high in zip(xs, xs[1:]):
        if low < x < high:
            weight = _log_weight(x, low, high)
            return math.exp((1 - weight) * math.log(points[low]) + weight * math.log(points[high]))
    return None


def _quantity(name: str) -> str:
    source, _, quantity = name.partition("_")
    return f"{SOURCES[source]} -> L {QUANTITIES.get(quantity, quantity)}"


def _count(value: float) -> str:
    """3 significant figures with a k/M/B suffix: 50.9k, 1.19M."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= 0.9995 * size:  # 999.7 rounds to 1k at 3 figures, not to "1e+03"
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _checked(check: dict | None) -> str:
    """What the map's own check says of the estimate, for the advice's "Estimated" line."""
    if not check:
        return ""
    return (
        f" Left out one at a time, the map's {check['runs']} equal-FLOPs runs at this vocabulary were estimated "
        f"within {check['mean_abs_error']:.1%} on average and {check['max_abs_error']:.1%} at most; "
        f"{check['favoured_growth']} of the {check['runs']} estimates favoured growth."
    )


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:+.1%}"


def _ratio(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"
