"""The growth map's figures (``benchmarks/horizon.py --report``): gap against tokens per parameter, a panel per
vocabulary; and for chosen cells, validation loss against FLOPs with growth marked, and final loss against total
FLOPs for every source depth beside fixed-depth runs of different lengths."""

from __future__ import annotations

import math
from pathlib import Path

from horizon import (
    BATCH,
    CONTEXT,
    CURVE_BLOCKS,
    DEFAULT_CORPUS,
    FINAL_BLOCKS,
    KINDS,
    SIZES,
    SOURCE_NAMES,
    Job,
    cell_runs,
    corpus_label,
    corpus_mark,
)


def plot_gaps(rows: list[dict], path: Path, corpus: str = DEFAULT_CORPUS) -> None:
    """Gap against tokens per parameter, a panel per vocabulary, a line per size x source (vs fixed, equal FLOPs
    and the control)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vocabs = sorted({r["vocab"] for r in rows})
    figure, axes = plt.subplots(1, len(vocabs), figsize=(5.5 * len(vocabs), 4.5), squeeze=False, sharey=True)
    for axis, vocab in zip(axes[0], vocabs):
        for size in SIZES:
            for source, marker in zip(SOURCE_NAMES, "os"):
                points = sorted(
                    (r["horizon"], r) for r in rows if r["vocab"] == vocab and r["size"] == size and r.get(source)
                )
                if not points:
                    continue
                xs = [h for h, _ in points]
                label = f"{size} {SOURCE_NAMES[source]}"
                (line,) = axis.plot(xs, [r[f"{source}_gap_fixed"] * 100 for _, r in points], marker=marker, label=label)
                for reference, style in (("equal", "--"), ("control", ":")):
                    ys = [r.get(f"{source}_gap_{reference}") for _, r in points]
                    if any(y is not None for y in ys):
                        axis.plot(
                            xs,
                            [math.nan if y is None else y * 100 for y in ys],
                            linestyle=style,
                            marker=marker,
                            color=line.get_color(),
                            alpha=0.6,
                        )
        axis.axhline(0, color="black", linewidth=0.8)
        axis.axhline(1, color="grey", linewidth=0.6, linestyle="-.")
        axis.set(
            xscale="log",
            xlabel="tokens per non-embedding parameter",
            title=f"vocabulary {vocab}{corpus_mark(corpus, f' ({corpus_label(corpus)})')}",
            ylabel="final validation-loss gap (%)",
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, title="solid: vs fixed, dashed: vs equal FLOPs,\ndotted: vs control", title_fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_shares_by_tokens(rows: list[dict], path: Path) -> None:
    """Each source's share of the control's gap against the tokens the run trained (log x), a panel per source, a
    colour per model size, a marker per kind of vocabulary; cells at another batch than the map's hollow: one curve
    per vocabulary kind across sizes says the tokens, not the size or the steps, set the share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(SOURCE_NAMES), figsize=(6 * len(SOURCE_NAMES), 4.5), sharey=True)
    colours = {size: f"C{index}" for index, size in enumerate(sorted(SIZES, key=lambda n: SIZES[n]["width"]))}
    kinds = {"bytes (257)": lambda v: v <= 257, "BPE 2,048": lambda v: v == 2048, "BPE 8k-32k": lambda v: v >= 8192}
    for axis, source in zip(axes, SOURCE_NAMES):
        for (kind, takes), marker in zip(kinds.items(), "o^s"):
            for size, colour in colours.items():
                for batch in sorted({r.get("batch", BATCH) for r in rows}):
                    points = [
                        (r["steps"] * batch * CONTEXT, r[f"{source}_share_of_control"])
                        for r in rows
                        if takes(r["vocab"]) and r["size"] == size and r.get("batch", BATCH) == batch
                        if r.get(f"{source}_share_of_control") is not None
                    ]
                    if points:
                        axis.scatter(
                            *zip(*points),
                            marker=marker,
                            facecolors=colour if batch == BATCH else "none",
                            edgecolors=colour,
                            label=f"{size}, {kind}" + ("" if batch == BATCH else f", batch {batch}"),
                        )
        axis.axhline(1, color="grey", linewidth=0.6, linestyle="-.")
        axis.set(
            xscale="log",
            xlabel="training tokens of the run",
            ylabel="share of the control's gap (0: fixed, 1: control)",
            title=f"{SOURCE_NAMES[source]}",
        )
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _cell_title(cell: tuple) -> str:
    size, vocab, horizon, _, corpus = cell
    return f"{size}, vocabulary {vocab}, {horizon:g} tokens/param{corpus_mark(corpus, f', {corpus_label(corpus)}')}"


def cell_figure_name(kind: str, cell: tuple) -> str:
    size, vocab, horizon, _, corpus = cell
    return f"{kind}-{size}-v{vocab}-h{horizon:g}{corpus_mark(corpus, f'-{corpus}')}.png"


def plot_curves(runs: dict[str, dict], cell: tuple, path: Path) -> None:
    """Validation loss against FLOPs for every run of one cell, growth marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = cell_runs(runs, cell)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for run in mine:
        job = run["job"]
        if job["kind"] not in KINDS:
            continue
        steps = sorted(int(s) for s in run["eval_curve"])
        per_step = {int(s): f for s, f in run["flops_at_step"].items()}
        known = [s for s in steps if s in per_step]
        (line,) = axis.plot(
            [per_step[s] for s in known], [run["eval_curve"][str(s)] for s in known], label=job["kind"], marker="."
        )
        for growth in run["growth_steps"]:
            nearest = min(known, key=lambda s: abs(s - growth))
            axis.axvline(per_step[nearest], color=line.get_color(), linestyle=":", alpha=0.7)
    # The curve is evaluated on CURVE_BLOCKS held-out blocks; the tables' final losses on FINAL_BLOCKS.
    ylabel = f"validation loss ({CURVE_BLOCKS} held-out blocks; tables: {FINAL_BLOCKS})"
    axis.set(xlabel="training FLOPs", ylabel=ylabel, title=f"{_cell_title(cell)} (dotted: growth)")
    fixed = [min(r["eval_curve"].values()) for r in mine if r["job"]["kind"] == "fixed"]
    if fixed:  # from the fixed run's own curve: the early losses of every run would squash the end
        axis.set_ylim(fixed[0] * 0.97, fixed[0] * 1.8)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_pareto(runs: dict[str, dict], cell: tuple, path: Path) -> None:
    """Final validation loss against total FLOPs of every source depth in one cell, beside the fixed-depth runs of
    different lengths (fixed, equal-FLOPs, control): what each FLOP budget buys (claim 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = cell_runs(runs, cell)
    if not mine:
        return
    figure, axis = plt.subplots(figsize=(7, 4.5))
    fixed = sorted((r["flops"], r["final_losses"]["validation"]) for r in mine if Job(**r["job"]).source_depth is None)
    axis.plot(*zip(*fixed), marker="o", color="black", label="fixed depth, own WSD (control, equal-FLOPs, full)")
    labelled: dict[float, int] = {}  # runs of equal FLOPs (2 -> L with three inits) get stacked labels
    for run in sorted(mine, key=lambda r: r["final_losses"]["validation"]):
        job = Job(**run["job"])
        if job.source_depth is None:
            continue
        point = (run["flops"], run["final_losses"]["validation"])
        axis.scatter(*point, marker="s", zorder=3)
        shift = labelled.get(round(run["flops"], -6), 0)
        labelled[round(run["flops"], -6)] = shift + 1
        label = f"{job.source_depth}→{job.depth} {job.init}: {point[1]:.3f}"
        axis.annotate(label, point, fontsize=7, xytext=(6, -10 - 9 * shift), textcoords="offset points")
    axis.set(
        xscale="log",
        xlabel="training FLOPs (LM head and attention included)",
        ylabel="final validation loss",
        title=f"{_cell_title(cell)}:\nloss vs compute (growth at 0.8T)",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
