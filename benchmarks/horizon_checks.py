"""How far the growth map's advice can be trusted, checked on the map itself (``horizon.py --report`` prints both
tables into README and summary.md): the equal-FLOPs estimate, each equal-FLOPs run predicted from its cell's other
fixed runs, and the advice as a whole, each cell predicted from the other cells."""

from __future__ import annotations

import statistics

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


def advice_check(entries: list[dict]) -> list[dict]:
    """Each cell of the growth map as the advice would have predicted it from the other cells (leave one cell out):
    what ``hf_progressive.advise`` told a run of that size, vocabulary and horizon before the cell was measured (the
    equal-FLOPs gap read at the cell's own FLOPs shares, as ``advise_run`` reads a run's), against what it measured.
    Rows: one per (cell, source), with the predicted and measured gaps and whether the advice lay inside the rest."""
    rows = []
    for entry in entries:
        others = [other for other in entries if other is not entry]
        if not others:
            continue
        parameters = entry["non_embedding_parameters"]
        advice = advise(parameters, entry["vocab"], entry["horizon"] * parameters, growth_map={"cells": others})
        for outlook in advice.outlooks:
            source = next(name for name, depth in SOURCES.items() if depth == outlook.source_depth)
            outlook.flops_ratio = entry[f"{source}_flops_ratio"]
            measured_fixed, measured_equal = entry[f"{source}_gap_fixed"], entry[f"{source}_gap_equal"]
            if None in (measured_fixed, measured_equal, outlook.gap_fixed, outlook.gap_equal_flops):
                continue
            rows.append(
                {
                    **{k: entry[k] for k in ("size", "vocab", "horizon")},
                    "source": source,
                    "inside": advice.measured,
                    # 1 -> L copy read off cells of far fewer tokens: the advice withholds its verdict.
                    "withheld": outlook.head_start_worn,
                    "fixed": (outlook.gap_fixed, measured_fixed),
                    "equal": (outlook.gap_equal_flops, measured_equal),
                }
            )
    return rows


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
