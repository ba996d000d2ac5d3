"""The growth map's report (``benchmarks/horizon.py --report``): from the result JSONs of ``horizon.py``, one row per
cell with each source's gap to the same-steps fixed run, the equal-FLOPs run and the control; tables (the map, the
trends, other optimizers and corpora, the levers), the README's marked blocks, ``summary.md`` and the package's growth
map (``hf_progressive/growth_map.json``, read by ``hf_progressive.advise``)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from horizon import (
    BATCH,
    CONTEXT,
    DEFAULT_CORPUS,
    GROWTH_MAP,
    KINDS,
    RESULTS,
    SIZES,
    SOURCE_NAMES,
    TAU,
    Job,
    cell_key,
    corpus_label,
    corpus_mark,
    is_main_optimizer,
    is_plain,
    is_recipe,
    job_batch,
    job_corpus,
    load_timings,
)
from horizon_checks import (
    advice_check,
    advice_check_table,
    estimate_check,
    estimate_summary,
    estimate_table,
    share_reading_check,
    share_reading_table,
)
from horizon_figures import cell_figure_name, plot_curves, plot_gaps, plot_pareto, plot_shares_by_tokens

from hf_progressive import flops


def load(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.stem != "summary"}


def cells(runs: dict[str, dict], timings: dict[tuple, dict] | None = None, select=is_plain) -> list[dict]:
    """One row per (size, vocabulary, horizon, optimizer, seed, batch): gaps of each source against each reference,
    over the runs whose job ``select`` takes (default: the map's recipe and batch).

    Time ratios come from ``timings`` (interleaved step times, --timing) where the cell's size, vocabulary and
    optimizer were timed (``time_measured``), else from the runs' own training seconds (workers sharing cores)."""
    by_cell: dict[tuple, dict[str, dict]] = {}
    for run in runs.values():
        job = run["job"]
        if not select(job) or job["kind"] not in KINDS:
            continue  # levers, other growth steps, k-layer sources and other batches have tables of their own
        by_cell.setdefault(cell_key(job), {})[job["kind"]] = run
    rows = []
    for (size, vocab, horizon, optim, lr, norm, seed, corpus, batch), kinds in sorted(by_cell.items()):
        if "fixed" not in kinds:
            continue
        fixed = kinds["fixed"]
        losses = {kind: run["final_losses"]["validation"] for kind, run in kinds.items()}
        val = losses.get
        row = {
            "size": size,
            "vocab": vocab,
            "horizon": horizon,
            "optim": optim,
            "lr": lr,
            "nsgd_norm": norm if optim == "muon_nsgd" else None,
            "seed": seed,
            "corpus": corpus,
            "batch": batch,
            "steps": fixed["full_steps"],
            "embedding_share": fixed["embedding_parameters"]
            / (fixed["embedding_parameters"] + fixed["non_embedding_parameters"]),
            "epochs": fixed["epochs"],
            "fixed": val("fixed"),
            "fixed_train": fixed["final_losses"]["train"],
            "control": val("control"),
        }
        timing = (timings or {}).get((size, vocab, optim, norm if optim == "muon_nsgd" else None))
        row["time_measured"] = timing is not None
        for source in SOURCE_NAMES:
            loss = val(source)
            row[source] = loss
            if loss is None:
                continue
            run = kinds[source]
            row[f"{source}_train"] = run["final_losses"]["train"]
            row[f"{source}_gap_fixed"] = loss / row["fixed"] - 1
            row[f"{source}_flops_ratio"] = run["ratios"]["forward_flops"]
            row[f"{source}_nonemb_ratio"] = run["ratios"]["non_embedding"]
            row[f"{source}_time_ratio"] = (
                timing["time_ratio"][source] if timing else run["train_seconds"] / fixed["train_seconds"]
            )
            if row["control"] is not None:
                row[f"{source}_gap_control"] = loss / row["control"] - 1
                if row["control"] > row["fixed"]:
                    # Where the source ends between fixed (0) and the control (1): what the shallow phase left of
                    # the deficit of a deep model that trained only after growth (shares_table).
                    row[f"{source}_share_of_control"] = (loss - row["fixed"]) / (row["control"] - row["fixed"])
            equal = val(f"equal_{source}")
            if equal is not None:
                row[f"{source}_gap_equal"] = loss / equal - 1
                row[f"equal_{source}"] = equal
        rows.append(row)
    return rows


def averaged(rows: list[dict]) -> list[dict]:
    """Rows of the same cell over seeds, averaged (numbers) with the seed count and the spread of the 0 -> L gap."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(seedless_key(row), []).append(row)
    merged = []
    for group in groups.values():
        # A seed whose growing runs have not run yet (its fixed run alone) would count as a seed and move the mean
        # fixed loss away from the one the gaps were measured against; fixed-only cells (sweeps) keep every seed.
        grown = [r for r in group if any(r.get(f"{s}_gap_fixed") is not None for s in SOURCE_NAMES)]
        group = grown or group
        row = dict(group[0])
        for name, value in group[0].items():
            if isinstance(value, float) and name not in ("horizon", "lr"):
                values = [r[name] for r in group if r.get(name) is not None]
                row[name] = statistics.mean(values) if values else None
        row["seeds"] = len(group)
        for source in SOURCE_NAMES:
            gaps = [r[f"{source}_gap_fixed"] for r in group if r.get(f"{source}_gap_fixed") is not None]
            row[f"{source}_gap_spread"] = max(gaps) - min(gaps) if len(gaps) > 1 else 0.0
            # A second seed may carry one source only (its other runs not trained): say so instead of one count.
            row[f"{source}_seeds"] = len(gaps)
            row[f"{source}_equal_seeds"] = sum(r.get(f"{source}_gap_equal") is not None for r in group)
        row["control_seeds"] = sum(r.get("control") is not None for r in group)
        merged.append(row)
    return merged


def seedless_key(row: dict) -> tuple:
    """A row's cell without its seed: the rows that ``averaged`` merges."""
    return tuple(row[k] for k in ("size", "vocab", "horizon", "optim", "lr", "nsgd_norm", "corpus")) + (
        row.get("batch", BATCH),
    )


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def optimizer_name(row: dict) -> str:
    if row["optim"] == "muon_nsgd":
        return f"Muon-NSGD {row['nsgd_norm']} {row['lr']:g}"
    return f"{row['optim'].replace('_torch', '')} {row['lr']:g}"


def table(rows: list[dict]) -> str:
    lines = [
        "| size | vocab | tokens/param | optimizer | steps | passes | emb. share | fixed val (train) | 0→L gap: "
        "fixed / equal-FLOPs / control | 1→L copy gap: fixed / equal-FLOPs / control | FLOPs ratio 0→L / 1→L "
        "(non-emb) | time ratio 0→L / 1→L | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def gaps(row: dict, source: str) -> str:
        spread = row.get(f"{source}_gap_spread") or 0.0
        first = percent(row.get(f"{source}_gap_fixed")) + (f" ±{spread / 2:.1%}" if spread else "")
        return " / ".join([first] + [percent(row.get(f"{source}_gap_{k}")) for k in ("equal", "control")])

    def pair(row: dict, name: str, rough: bool = False) -> str:
        values = [row.get(f"{source}_{name}") for source in SOURCE_NAMES]
        return " / ".join("—" if v is None else f"{'~' if rough else ''}{v:.2f}" for v in values)

    for r in rows:
        fixed = f"{r['fixed']:.3f} ({r['fixed_train']:.3f})"
        times = pair(r, "time_ratio", rough=not r.get("time_measured"))
        nonemb = f" ({r['zero_nonemb_ratio']:.2f} / {r['one_nonemb_ratio']:.2f})" if r.get("one_nonemb_ratio") else ""
        lines.append(
            f"| {r['size']} | {r['vocab']} | {r['horizon']:g} | {optimizer_name(r)} | {r['steps']} | "
            f"{r['epochs']:.1f} | {r['embedding_share']:.0%} | {fixed} | {gaps(r, 'zero')} | {gaps(r, 'one')} | "
            f"{pair(r, 'flops_ratio')}{nonemb} | {times} | {seed_count(r)} |"
        )
    return "\n".join(lines)


def seed_count(row: dict) -> str:
    """The row's seeds, and each source's, its equal-FLOPs run's and the control's own where measured on fewer (e.g.
    "2 (0→L equal FLOPs: 1; 1→L copy: 1)"): a seed trained a few of its runs at a time averages with the full ones."""
    seeds = row.get("seeds", 1)
    fewer = []
    for source in SOURCE_NAMES:
        own = row.get(f"{source}_seeds", seeds)
        if 0 < own < seeds:
            fewer.append(f"{SOURCE_NAMES[source]}: {own}")
        if 0 < row.get(f"{source}_equal_seeds", own) < own:
            fewer.append(f"{SOURCE_NAMES[source]} equal FLOPs: {row[f'{source}_equal_seeds']}")
    if 0 < row.get("control_seeds", seeds) < seeds:
        fewer.append(f"control: {row['control_seeds']}")
    return f"{seeds} ({'; '.join(fewer)})" if fewer else str(seeds)


def sweep_table(rows: list[dict], reference: list[dict]) -> str:
    """Fixed-depth runs of other optimizer settings, against the main optimizer's fixed run of the same cell."""
    main = {(r["size"], r["vocab"], r["horizon"]): r["fixed"] for r in reference}
    lines = [
        "| size | vocab | tokens/param | optimizer | fixed val (train) | vs Muon-NSGD row 0.02 fixed |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["size"], r["vocab"], r["horizon"], r["optim"], r["lr"])):
        base = main.get((r["size"], r["vocab"], r["horizon"]))
        versus = percent(r["fixed"] / base - 1) if base else "—"
        lines.append(
            f"| {r['size']} | {r['vocab']} | {r['horizon']:g} | {optimizer_name(r)} | "
            f"{r['fixed']:.3f} ({r['fixed_train']:.3f}) | {versus} |"
        )
    return "\n".join(lines)


#: Gaps the trend table asks about: where would the fitted gap reach them?
TREND_TARGETS = (0.01, 0.005)


def crossing(h1: float, gap1: float, h2: float, gap2: float, target: float) -> dict[str, float | None]:
    """Tokens/param where a gap measured ``gap1`` at ``h1`` and ``gap2`` at ``h2 > h1`` would reach ``target``.

    Two extrapolations, because two points cannot tell them apart and they disagree by several times: the gap
    linear in log(horizon) (it falls by the same amount per factor of horizon, reaches zero and goes on: the
    optimistic one) and a power law (it falls by the same factor per factor of horizon, never reaching zero).
    None where the gap does not shrink between the points, or a power law cannot be fitted (a gap that is not
    positive).
    """
    if gap2 <= target:
        return {"log_linear": h2, "power_law": h2}
    if gap2 >= gap1:
        return {"log_linear": None, "power_law": None}
    log_span = math.log(h2 / h1)
    log_linear = h2 * math.exp((gap2 - target) * log_span / (gap1 - gap2))
    power_law = None
    if gap2 > 0:
        exponent = math.log(gap1 / gap2) / log_span
        power_law = h2 * (gap2 / target) ** (1 / exponent)
    return {"log_linear": log_linear, "power_law": power_law}


def trends(rows: list[dict]) -> list[dict]:
    """Per (size, vocabulary, source): the gap to the fixed run at the two longest measured horizons, and where
    each extrapolation (:func:`crossing`) would put the gap at each of :data:`TREND_TARGETS`."""
    fitted = []
    for size, vocab in sorted({(r["size"], r["vocab"]) for r in rows}):
        for source in SOURCE_NAMES:
            points = sorted(
                (r["horizon"], r[f"{source}_gap_fixed"], r[f"{source}_flops_ratio"])
                for r in rows
                if (r["size"], r["vocab"]) == (size, vocab) and r.get(f"{source}_gap_fixed") is not None
            )
            if len(points) < 2:
                continue
            (h1, gap1, _), (h2, gap2, flops_ratio) = points[-2:]
            fitted.append(
                {
                    "size": size,
                    "vocab": vocab,
                    "source": source,
                    "points": [(h1, gap1), (h2, gap2)],
                    "flops_ratio": flops_ratio,
                    "crossings": {target: crossing(h1, gap1, h2, gap2, target) for target in TREND_TARGETS},
                }
            )
    return fitted


def corpora_tables(rows: list[dict]) -> str:
    """The map's table and trends for each corpus other than the standard library (cells of one corpus compare
    with each other: a corpus brings its own tokenizers and losses)."""
    parts = []
    for corpus in sorted({r["corpus"] for r in rows}):
        mine = averaged([r for r in rows if r["corpus"] == corpus])
        parts.append(f"Corpus `{corpus}` ({corpus_label(corpus)}):\n\n{table(mine)}")
        fitted = trends([r for r in mine if is_main_optimizer(r)])
        if fitted:
            parts.append(trends_table(fitted))
    return "\n\n".join(parts)


#: What the package's advice reads of a cell (hf_progressive.advice), besides its size and place on the map.
ADVICE_FIELDS = ("size", "vocab", "horizon", "embedding_share", "seeds", "fixed") + tuple(
    f"{s}_{k}"
    for s in SOURCE_NAMES
    for k in ("gap_fixed", "gap_equal", "gap_control", "flops_ratio", "share_of_control")
)


def advice_cells(rows: list[dict]) -> list[dict]:
    """One row per (size, vocabulary, horizon) for the package's growth map, from the Muon-NSGD rows (averaged over
    seeds) of every corpus whose runs have all run (fixed, both sources, their equal-FLOPs runs and the control), and
    of those the one that read its data fewest times.

    A cell still running stays out: at the map's edge it would be the nearest end for every run beyond it and hide
    what it has not measured yet (a GPT-2 124M run's advice would lose 1 -> L and the equal-FLOPs answer). Users
    pretrain on about one pass of their data, and a cell that repeats a small corpus (8k at 300 tokens/param reads
    the standard library 6 times) measures a data-limited run instead; gaps are relative, so a cell of the larger
    corpus stands in for it (each entry names its corpus and passes)."""
    chosen: dict[tuple, dict] = {}
    for row in rows:
        key = (row["size"], row["vocab"], row["horizon"])
        complete = all(row.get(name) is not None for name in ADVICE_FIELDS)
        if complete and (key not in chosen or row["epochs"] < chosen[key]["epochs"]):
            chosen[key] = row
    return [chosen[key] for key in sorted(chosen)]


def _tokens_per_param(value: float | None) -> str:
    if value is None:
        return "never"
    if value >= 1e7:
        return "> 10M"
    return f"{float(f'{value:.2g}'):,.0f}"  # two significant figures: a two-point extrapolation is no finer


def trends_table(fitted: list[dict]) -> str:
    lines = [
        "| size | vocab | source | gap vs fixed at the two longest horizons | "
        + " | ".join(f"{t:.1%} reached at (log-linear / power law)" for t in TREND_TARGETS)
        + " | FLOPs saved |",
        "|---|---|---|---|" + "---|" * len(TREND_TARGETS) + "---|",
    ]
    for f in fitted:
        (h1, gap1), (h2, gap2) = f["points"]
        reached = [
            " / ".join(_tokens_per_param(f["crossings"][t][k]) for k in ("log_linear", "power_law"))
            for t in TREND_TARGETS
        ]
        lines.append(
            f"| {f['size']} | {f['vocab']} | {SOURCE_NAMES[f['source']]} | {percent(gap1)} at {h1:g}, "
            f"{percent(gap2)} at {h2:g} | " + " | ".join(reached) + f" | {1 - f['flops_ratio']:.0%} |"
        )
    return "\n".join(lines)


#: Smaller models first in the tables.
SIZE_ORDER = {name: index for index, name in enumerate(sorted(SIZES, key=lambda n: SIZES[n]["width"]))}


def shares_table(rows: list[dict]) -> str:
    """Each source's gap to the fixed run as a share of the control's (0: level with fixed, 1: no better than a deep
    model trained only for the post-growth steps), per corpus, size and vocabulary (rows) and horizon (columns),
    averaged over seeds, with the control's own gap beside it.

    The shallow phase recovers ``1 - share`` of the control's deficit: a share that holds across horizons says its
    value shrinks exactly as fast as the control catches up, and lets a user estimate 0 -> L's gap from what
    training the deep model on the last ``1 - tau`` of the tokens alone would cost."""
    rows = [r for r in rows if any(r.get(f"{s}_share_of_control") is not None for s in SOURCE_NAMES)]
    horizons = sorted({r["horizon"] for r in rows})
    lines = [
        "| corpus | size | vocab | " + " | ".join(f"{h:,.0f} tokens/param" for h in horizons) + " |",
        "|---|---|---|" + "---|" * len(horizons),
    ]
    by_line: dict[tuple, dict[float, dict]] = {}
    for row in rows:
        line_key = (row["corpus"], SIZE_ORDER[row["size"]], row["size"], row["vocab"])
        by_line.setdefault(line_key, {})[row["horizon"]] = row
    for (corpus, _, size, vocab), line in sorted(by_line.items()):
        entries = []
        for horizon_ in horizons:
            row = line.get(horizon_)
            if row is None:
                entries.append("")
                continue
            shares = " / ".join(
                "—" if row.get(f"{s}_share_of_control") is None else f"{row[f'{s}_share_of_control']:.2f}"
                for s in SOURCE_NAMES
            )
            entries.append(f"{shares} ({percent(row['control'] / row['fixed'] - 1)})")
        lines.append(f"| {corpus} | {size} | {vocab} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def at_another_batch(job: dict) -> bool:
    """The paper's recipe (no lever, growth at 0.8T) at a batch other than the map's."""
    return is_recipe(job) and job_batch(job) != BATCH


def steps_table(rows: list[dict]) -> str:
    """Each source's share of the control's gap (``shares_table``) against the run's length in optimizer steps, the
    map's cells (batch 32) and the cells trained at another batch (the same tokens in more or fewer steps) together,
    shortest run first, byte level apart: whether what decides the share is the horizon in tokens per parameter, the
    tokens, or the steps."""
    rows = [r for r in rows if r.get("one_share_of_control") is not None or r.get("zero_share_of_control") is not None]
    lines = [
        "| vocabulary | steps | batch | tokens | size | tokens/param | corpus | 0→L share | 1→L copy share | "
        "control's gap | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (r["vocab"] > 257, r["steps"], SIZE_ORDER[r["size"]], r["vocab"])):
        batch = row.get("batch", BATCH)
        shares = [
            "—" if row.get(f"{s}_share_of_control") is None else f"{row[f'{s}_share_of_control']:.2f}"
            for s in SOURCE_NAMES
        ]
        lines.append(
            f"| {'bytes' if row['vocab'] <= 257 else 'BPE'} {row['vocab']} | {row['steps']:,} | {batch} | "
            f"{row['steps'] * batch * CONTEXT / 1e6:.1f}M | {row['size']} | {row['horizon']:,g} | {row['corpus']} | "
            f"{' | '.join(shares)} | {percent(row['control'] / row['fixed'] - 1)} | {seed_count(row)} |"
        )
    return "\n".join(lines)


def variants_table(runs: dict[str, dict]) -> str:
    """Levers, other growth steps and k-layer sources, each against the plain run and the fixed run of its cell."""
    plain: dict[tuple, dict] = {}
    for run in runs.values():
        job = run["job"]
        if is_plain(job):
            plain[cell_key(job) + (job["kind"],)] = run
    lines = [
        "| cell | run | lever | τ | final val loss (train) | gap vs fixed | plain run's gap | FLOPs ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def order(run: dict) -> tuple:
        return cell_key(run["job"]) + (run["job"]["kind"], run["job"].get("lever", "none"), run["job"].get("tau", TAU))

    for run in sorted(runs.values(), key=order):
        job = run["job"]
        lever, tau = job.get("lever", "none"), job.get("tau", TAU)
        fixed = plain.get(cell_key(job) + ("fixed",))
        growing = job["kind"] in SOURCE_NAMES or job["kind"].startswith("from")
        if fixed is None or not growing or (lever == "none" and tau == TAU and job["kind"] in SOURCE_NAMES):
            continue
        base = plain.get(cell_key(job) + (job["kind"],))
        loss, reference = run["final_losses"]["validation"], fixed["final_losses"]["validation"]
        plain_gap = percent(base["final_losses"]["validation"] / reference - 1) if base and base is not run else "—"
        corpus = corpus_mark(job_corpus(job), f" {job_corpus(job)}")
        seed = f" s{job['seed']}" if job["seed"] else ""  # another seed of a lever: a row of its own
        lines.append(
            f"| {job['size']} v{job['vocab']} h{job['horizon']:g}{corpus}{seed} | {job['kind']} | {lever} | {tau:g} | "
            f"{loss:.4f} ({run['final_losses']['train']:.4f}) | {percent(loss / reference - 1)} | {plain_gap} | "
            f"{run['ratios']['forward_flops']:.2f} |"
        )
    return "\n".join(lines)


def update_readme(path: Path, blocks: dict[str, str]) -> None:
    """Replace what stands between ``<!-- horizon:NAME -->`` and ``<!-- /horizon:NAME -->`` by ``blocks[NAME]``."""
    text = path.read_text()
    for name, block in blocks.items():
        start, end = f"<!-- horizon:{name} -->", f"<!-- /horizon:{name} -->"
        if start not in text or end not in text:
            raise ValueError(f"{path} has no {start} ... {end} markers")
        head, rest = text.split(start, 1)
        text = head + start + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    path.write_text(text)


def report(results: Path, curves: list[tuple], readme: Path | None = None) -> None:
    all_runs = load(results)
    all_rows = cells(all_runs, load_timings(results))
    # The map and its figures are the standard library's; other corpora get a block and a gap figure each (and feed
    # the package's growth map where they measured a cell with fewer passes: advice_cells).
    rows = [r for r in all_rows if r["corpus"] == DEFAULT_CORPUS]
    main_optimizer = averaged([r for r in all_rows if is_main_optimizer(r)])  # every corpus: the advice reads them
    muon = [r for r in main_optimizer if r["corpus"] == DEFAULT_CORPUS]
    other = averaged([r for r in rows if not is_main_optimizer(r)])
    # Optimizer settings tried at fixed depth only (learning-rate sweeps) get a table of their own.
    fixed_only = [r for r in other if r.get("zero") is None and r.get("one") is None]
    swept = {(r["size"], r["vocab"], r["horizon"], r["optim"]) for r in fixed_only}
    sweep = [r for r in other if (r["size"], r["vocab"], r["horizon"], r["optim"]) in swept]
    other = [r for r in other if r not in fixed_only]
    # The table the package's advice reads (hf_progressive.advice): one entry per measured cell, of any corpus.
    entries = [
        {
            **{k: r.get(k) for k in ADVICE_FIELDS},
            "corpus": r["corpus"],
            "passes": round(r["epochs"], 2),
            **SIZES[r["size"]],
            "non_embedding_parameters": _non_embedding(r),
        }
        for r in advice_cells(main_optimizer)
    ]
    # How well the advice's equal-FLOPs estimate predicts the map's own runs: the map carries it to the advice.
    check = estimate_summary(estimate_check(entries))
    other_batches = averaged([r for r in cells(all_runs, select=at_another_batch) if is_main_optimizer(r)])
    # Each table is built once: summary.md and the README's marked blocks show the same text.
    blocks = {
        "map": table(muon),
        "trends": trends_table(trends(muon)),
        "other": table(other),
        "levers": variants_table(all_runs),
        "shares": shares_table(main_optimizer),
        "steps": steps_table(main_optimizer + other_batches),
        "estimate": estimate_table(check),
        "advice_check": advice_check_table(advice_check(entries)),
        "share_reading": share_reading_table(share_reading_check(entries)),
    }
    if sweep:
        blocks["sweep"] = sweep_table(sweep, muon)
    larger = [r for r in all_rows if r["corpus"] != DEFAULT_CORPUS]
    blocks["corpora"] = corpora_tables(larger) if larger else "No cell has run on another corpus yet."
    text = "## Muon-NSGD (row norm), lr 0.02\n\n" + blocks["map"]
    text += "\n\n## Trends: where the gap would reach 1% and 0.5%\n\n" + blocks["trends"]
    text += "\n\n## Gap as a share of the control's (0→L / 1→L copy; the control's gap)\n\n" + blocks["shares"]
    text += "\n\n## Shares against the run's length in steps (other batches beside the map's)\n\n" + blocks["steps"]
    if other:
        text += "\n\n## Other optimizers\n\n" + blocks["other"]
    if sweep:
        text += "\n\n## Fixed depth only (learning-rate sweeps)\n\n" + blocks["sweep"]
    if larger:
        text += "\n\n## Other corpora\n\n" + blocks["corpora"]
    text += "\n\n## Levers, growth steps and k-layer sources\n\n" + blocks["levers"]
    text += "\n\n## The equal-FLOPs estimate, checked on the map (leave one out)\n\n" + blocks["estimate"]
    text += "\n\n## The advice, checked on the map (leave one cell out)\n\n" + blocks["advice_check"]
    text += "\n\n## Each source's share read by horizon or by tokens (leave one cell out)\n\n" + blocks["share_reading"]
    if readme is not None:
        update_readme(readme, blocks)
    print(text)
    (results / "summary.md").write_text(text + "\n")
    (results / "summary.json").write_text(json.dumps({"muon_nsgd_row": muon, "other": other}, indent=1))
    plot_gaps(muon, results / "gaps.png")
    plot_shares_by_tokens(main_optimizer + other_batches, results / "shares-by-tokens.png")
    for corpus in sorted({r["corpus"] for r in main_optimizer} - {DEFAULT_CORPUS}):  # a figure per corpus, as a table
        plot_gaps([r for r in main_optimizer if r["corpus"] == corpus], results / f"gaps-{corpus}.png", corpus)
    for cell in curves:
        plot_curves(all_runs, cell, results / cell_figure_name("curves", cell))
        plot_pareto(all_runs, cell, results / cell_figure_name("pareto", cell))
    accuracy = {str(vocab): {k: v for k, v in c.items() if k != "worst"} for vocab, c in check.items()}
    # Only the committed map feeds the package; a map elsewhere (tests, experiments) keeps its table beside it.
    growth_map = GROWTH_MAP if results.resolve() == RESULTS.resolve() else results / GROWTH_MAP.name
    growth_map.write_text(
        json.dumps({"source": "benchmarks/horizon.py --report", "cells": entries, "estimate_check": accuracy}, indent=1)
        + "\n"
    )
    print(f"\nwrote {results / 'summary.md'}, gaps.png, curve plots and {growth_map}")


def _non_embedding(row: dict) -> int:
    job = Job(row["size"], row["vocab"], row["horizon"], "fixed")
    return flops.non_embedding_parameters(job.config(), job.depth)
