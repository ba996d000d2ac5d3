"""How far the growth map's advice can be trusted, checked on the map itself (``horizon.py --report`` prints their
tables into README and summary.md): the equal-FLOPs estimate, each equal-FLOPs run predicted from its cell's other
fixed runs; the advice as a whole, each cell predicted from the other cells; and the two readings of a source's share
of the control's gap (by horizon, by tokens) side by side."""

from __future__ import annotations

import inspect
import statistics
from collections.abc import Iterator

from horizon import SOURCE_NAMES

from hf_progressive.advice import CONTROL_SHARE, SOURCES, advise, fixed_runs_from, interpolate_log_log


def estimate_check(entries: list[dict]) -> list[dict]:
    """Each equal-FLOPs run of the growth map predicted from its cell's other fixed runs, as the advice estimates a
    run's own equal-FLOPs gap (``hf_progressive.advice.fixed_runs_from``, log-log interpolation): leave one out.

    Returns one row per (cell, source): the measured gap to that run, the estimate without it, and the error
    (estimate - measured; negative: the estimate favoured growth)."""
    checked = []
    for entry in entries:
        for source in SOURCE_NAMES:
            share, gap = entry[f"{source}_flops_ratio"], entry[f"{source}_gap_equal"]
            # Every (gap_fixed, share, gap) triple of the cell but this source's equal-FLOPs one.
            others = [
                (entry[f"{s}_gap_fixed"], run_share, entry[f"{s}_{name}"])
                for s in SOURCE_NAMES
                for name, run_share in (("gap_equal", entry[f"{s}_flops_ratio"]), ("gap_control", CONTROL_SHARE))
                if (s, name) != (source, "gap_equal")
            ]
            fixed = interpolate_log_log(fixed_runs_from(others), share)
            if fixed is None or gap is None:
                continue
            estimate = (1 + entry[f"{source}_gap_fixed"]) / fixed - 1
            checked.append(
                {
                    **{k: entry[k] for k in ("size", "vocab", "horizon")},
                    "source": source,
                    "share": share,
                    "measured": gap,
                    "estimate": estimate,
                    "error": estimate - gap,
                }
            )
    return checked


def estimate_summary(checked: list[dict]) -> dict[int, dict]:
    """:func:`estimate_check` per vocabulary: the count, the mean and largest absolute error, how many estimates
    favoured growth, and the worst row. The package's map carries it, so the advice can say how far to trust it."""
    summary = {}
    for vocab in sorted({c["vocab"] for c in checked}):
        mine = [c for c in checked if c["vocab"] == vocab]
        worst = max(mine, key=lambda c: abs(c["error"]))
        summary[vocab] = {
            "runs": len(mine),
            "mean_abs_error": round(statistics.mean(abs(c["error"]) for c in mine), 5),
            "max_abs_error": round(abs(worst["error"]), 5),
            "favoured_growth": sum(c["error"] < 0 for c in mine),
            "worst": worst,
        }
    return summary


def estimate_table(summary: dict[int, dict]) -> str:
    """The leave-one-out check of :func:`estimate_check`, one line per vocabulary."""
    lines = [
        "| vocab | equal-FLOPs runs predicted | mean absolute error | largest error (cell) | favoured growth |",
        "|---|---|---|---|---|",
    ]
    for vocab, check in summary.items():
        worst = check["worst"]
        lines.append(
            f"| {vocab} | {check['runs']} | {check['mean_abs_error']:.2%} | {worst['error']:+.2%} ({worst['size']} "
            f"{worst['horizon']:g} tokens/param, {SOURCE_NAMES[worst['source']]} at {worst['share']:.0%} of the "
            f"FLOPs) | {check['favoured_growth']} of {check['runs']} |"
        )
    return "\n".join(lines)


def left_out_predictions(entries: list[dict], **advise_options) -> Iterator[dict]:
    """Each cell of the growth map as the advice reads it from the other cells (leave one cell out), one row per
    (cell, source) that both measured and predicted its gaps to the same-steps and equal-FLOPs fixed runs: what
    ``hf_progressive.advise`` (with ``advise_options``) told a run of that size, vocabulary and horizon before the cell
    was measured (the equal-FLOPs gap read at the cell's own FLOPs shares, as ``advise_run`` reads a run's)."""
    for entry in entries:
        others = [other for other in entries if other is not entry]
        if not others:
            continue
        parameters = entry["non_embedding_parameters"]
        advice = advise(
            parameters, entry["vocab"], entry["horizon"] * parameters, growth_map={"cells": others}, **advise_options
        )
        for outlook in advice.outlooks:
            source = next(name for name, depth in SOURCES.items() if depth == outlook.source_depth)
            outlook.flops_ratio = entry[f"{source}_flops_ratio"]
            measured_fixed, measured_equal = entry[f"{source}_gap_fixed"], entry[f"{source}_gap_equal"]
            if None in (measured_fixed, measured_equal, outlook.gap_fixed, outlook.gap_equal_flops):
                continue
            yield {
                **{k: entry[k] for k in ("size", "vocab", "horizon")},
                "parameters": parameters,
                "source": source,
                "inside": advice.measured,
                # 1 -> L copy read off cells of far fewer tokens: the advice withholds its verdict.
                "withheld": outlook.head_start_worn,
                "share": (outlook.share_of_control, entry.get(f"{source}_share_of_control")),
                "fixed": (outlook.gap_fixed, measured_fixed),
                "equal": (outlook.gap_equal_flops, measured_equal),
            }


def advice_check(entries: list[dict]) -> list[dict]:
    """The advice as shipped, checked on the map (:func:`left_out_predictions`): one row per (cell, source), with
    the predicted and measured gaps and whether the left-out cell lay inside the rest."""
    return list(left_out_predictions(entries))


def advice_check_table(rows: list[dict]) -> str:
    """:func:`advice_check` per source and by whether the left-out cell lay inside the other cells' range."""
    lines = [
        "| source | cells | left-out cell | mean error vs fixed (points) | mean error vs equal FLOPs | "
        "verdict vs equal FLOPs right | verdict withheld (head start worn): growth measured losing |",
        "|---|---|---|---|---|---|---|",
    ]
    for source in SOURCE_NAMES:
        for inside in (True, False):
            mine = [r for r in rows if r["source"] == source and r["inside"] == inside]
            if not mine:
                continue
            fixed = statistics.mean(abs(p - m) for p, m in (r["fixed"] for r in mine))
            equal = statistics.mean(abs(p - m) for p, m in (r["equal"] for r in mine))
            given = [r["equal"] for r in mine if not r["withheld"]]
            right = sum((p < 0) == (m < 0) for p, m in given)
            withheld = [r["equal"][1] for r in mine if r["withheld"]]  # the measured gaps
            lost = f"{sum(m >= 0 for m in withheld)} of {len(withheld)}" if withheld else "—"
            where = "inside the others (interpolated)" if inside else "outside them (nearest cells)"
            lines.append(
                f"| {SOURCE_NAMES[source]} | {len(mine)} | {where} | {fixed:.2%} | {equal:.2%} | "
                f"{right} of {len(given)} | {lost} |"
            )
    return "\n".join(lines)


#: The two ways the advice can read a source's share of the control's gap, and the reading it ships for each source
#: (``hf_progressive.advise``'s ``shares_by_tokens`` default, read off its signature so the table cannot drift).
SHARE_READINGS = {"horizon": (), "tokens": tuple(SOURCES)}
_SHIPPED_BY_TOKENS = inspect.signature(advise).parameters["shares_by_tokens"].default
SHIPPED_READING = {source: "tokens" if source in _SHIPPED_BY_TOKENS else "horizon" for source in SOURCES}


def share_reading_check(entries: list[dict]) -> list[dict]:
    """Both readings of each source's share of the control's gap, each cell left out in turn
    (:func:`left_out_predictions`): interpolated over the horizon with the cell's other gaps, or read off the cells of
    its vocabulary nearest in tokens, whatever their size (as the advice reads 1 -> L copy's). The evidence for which
    reading the advice ships, regenerated with the map.

    Returns one row per (cell, source, reading): the predicted and measured share, gaps and verdict, and whether the
    copy verdict was withheld (a head start worn by far more tokens than the other cells trained)."""
    return [
        {**row, "reading": reading}
        for reading, by_tokens in SHARE_READINGS.items()
        for row in left_out_predictions(entries, shares_by_tokens=by_tokens)
    ]


def share_reading_table(rows: list[dict]) -> str:
    """:func:`share_reading_check` per source, reading and model size (the map's smallest model apart: the advice
    carries the map to larger models, so the larger cells' rows say more of a user's run); the advice's own reading
    marked."""
    lines = [
        "| source | share read by | left-out cells | cells | mean share error | mean error vs fixed (points) | "
        "mean error vs equal FLOPs | verdict vs equal FLOPs right |",
        "|---|---|---|---|---|---|---|---|",
    ]
    smallest = min((r["parameters"] for r in rows), default=None)
    groups = (
        ("of the smallest model", lambda r: r["parameters"] == smallest),
        ("of larger models", lambda r: r["parameters"] > smallest),
    )
    for source in SOURCE_NAMES:
        for reading in SHARE_READINGS:
            for where, belongs in groups:
                mine = [r for r in rows if r["source"] == source and r["reading"] == reading and belongs(r)]
                if not mine:
                    continue
                shares = [abs(p - m) for p, m in (r["share"] for r in mine) if None not in (p, m)]
                share = f"{statistics.mean(shares):.2f}" if shares else "—"
                fixed = statistics.mean(abs(p - m) for p, m in (r["fixed"] for r in mine))
                equal = statistics.mean(abs(p - m) for p, m in (r["equal"] for r in mine))
                given = [r["equal"] for r in mine if not r["withheld"]]
                right = sum((p < 0) == (m < 0) for p, m in given)
                shipped = " (the advice)" if SHIPPED_READING[source] == reading else ""
                withheld = len(mine) - len(given)
                lines.append(
                    f"| {SOURCE_NAMES[source]} | {reading}{shipped} | {where} | {len(mine)} | {share} | {fixed:.2%} | "
                    f"{equal:.2%} | {right} of {len(given)}{f' ({withheld} withheld)' if withheld else ''} |"
                )
    return "\n".join(lines)
