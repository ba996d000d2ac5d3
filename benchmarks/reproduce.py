#!/usr/bin/env python
"""Side-by-side reproduction of zero/one-layer progressive training on character-level tinyshakespeare.

Every run trains the same GPT-2 (width 128, target depth 6, context 64) on the same data in the same order, with
the same batch, steps and optimizer; only the depth schedule, the init of new blocks and the LR scheduler differ.
It prints a table (final validation loss, gap to the fixed-depth run under the same scheduler, FLOP ratios in
every convention, wall-clock ratio measured in this process, mixing time) and writes a JSON of every run and
plots of validation loss against step and against FLOPs, growth marked.

    python benchmarks/reproduce.py --quick                 # < 10 minutes on 2 CPU cores
    python benchmarks/reproduce.py                         # the full mode behind README's Results (about an hour)
    python benchmarks/reproduce.py --seeds 1 --output benchmarks/results/seed1   # another seed
    python benchmarks/reproduce.py --merge a.json b.json   # earlier runs together, seeds averaged
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from runs import RunSpec, Settings, train_one
from shakespeare import DEFAULT_PATH, Blocks, RandomWindows, bigram_cross_entropy, load_characters
from tqdm.auto import tqdm

from hf_progressive.calibration import mixing_time
from hf_progressive.threads import configure_torch_threads


def full_runs(tau: float = 0.8) -> list[RunSpec]:
    """Every run of the full mode; single-stage growth at ``tau`` (0→2→6 grows at tau/2 and tau)."""
    return [
        RunSpec("fixed", "6@0"),
        RunSpec("0→6 random", f"0@0,6@{tau}"),
        RunSpec("1→6 random", f"1@0,6@{tau}"),
        RunSpec("1→6 copy", f"1@0,6@{tau}", init="copy"),
        RunSpec("0→6 zero", f"0@0,6@{tau}", init="zero"),
        RunSpec("0→2→6 random", f"0@0,2@{tau / 2},6@{tau}"),
        RunSpec("fixed", "6@0", scheduler="cosine"),
        RunSpec("0→6 random", f"0@0,6@{tau}", scheduler="cosine"),
        RunSpec("1→6 copy", f"1@0,6@{tau}", init="copy", scheduler="cosine"),
    ]


QUICK_RUNS = [full_runs()[i] for i in (0, 1, 3)]
MIXING_TOLERANCE = 0.02


def key(spec: dict) -> str:
    scheduler = "WSD" if spec["scheduler"] == "warmup_stable_decay" else spec["scheduler"]
    return f"{spec['name']} ({scheduler})"


def summarize(results: list[dict]) -> list[dict]:
    """One row per run name and scheduler, averaged over seeds, against the fixed run of the same scheduler."""
    rows = []
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(key(result["spec"]), []).append(result)
    for name, runs in groups.items():
        spec = runs[0]["spec"]
        fixed = [r for r in results if r["spec"]["schedule"] == "6@0" and r["spec"]["scheduler"] == spec["scheduler"]]
        fixed_by_seed = {r["settings"]["seed"]: r for r in fixed}
        gaps, walls, mixes = [], [], []
        for run in runs:
            reference = fixed_by_seed[run["settings"]["seed"]]
            gaps.append(run["final_eval_loss"] / reference["final_eval_loss"] - 1)
            walls.append(run["train_seconds"] / reference["train_seconds"])
            if run["growth_steps"]:
                curve = {int(k): v for k, v in run["eval_curve"].items()}
                fixed_curve = {int(k): v for k, v in reference["eval_curve"].items()}
                mixes.append(mixing_time(curve, fixed_curve, run["growth_steps"][-1], MIXING_TOLERANCE))
        losses = [r["final_eval_loss"] for r in runs]
        rows.append(
            {
                "run": name,
                "seeds": len(runs),
                "final_eval_loss": statistics.mean(losses),
                "loss_spread": (max(losses) - min(losses)) if len(losses) > 1 else 0.0,
                "gap": statistics.mean(gaps),
                "flop_ratio": runs[0]["ratios"]["forward_flops"],
                "param_ratio_all": runs[0]["ratios"]["all_parameters"],
                "param_ratio_nonemb": runs[0]["ratios"]["non_embedding"],
                "wall_ratio": statistics.mean(walls),
                "t_mix": mixes if mixes else None,
            }
        )
    return rows


def table(rows: list[dict], steps: int) -> str:
    header = (
        "| run | final val loss | gap vs fixed | FLOPs ratio | params ratio (all / non-emb) | wall-clock ratio "
        f"| t_mix (±{MIXING_TOLERANCE:.0%}) |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        spread = f" ± {row['loss_spread'] / 2:.3f}" if row["seeds"] > 1 else ""
        if row["t_mix"] is None:
            mix = "—"
        else:
            mix = ", ".join("never" if m is None else f"{m} ({m / steps:.0%} of T)" for m in row["t_mix"])
        lines.append(
            f"| {row['run']} | {row['final_eval_loss']:.4f}{spread} | {row['gap']:+.2%} | {row['flop_ratio']:.2f} | "
            f"{row['param_ratio_all']:.2f} / {row['param_ratio_nonemb']:.2f} | {row['wall_ratio']:.2f} | {mix} |"
        )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedulers = sorted({r["spec"]["scheduler"] for r in results}, reverse=True)
    figure, axes = plt.subplots(len(schedulers), 2, figsize=(13, 4.5 * len(schedulers)), squeeze=False)
    for row, scheduler in zip(axes, schedulers):
        first_seed = min(r["settings"]["seed"] for r in results)  # one seed per plot, the first one run
        runs = [r for r in results if r["spec"]["scheduler"] == scheduler and r["settings"]["seed"] == first_seed]
        fixed_final = next(r["final_eval_loss"] for r in runs if r["spec"]["schedule"] == "6@0")
        for run in runs:
            steps = [int(s) for s in run["eval_curve"]]
            losses = list(run["eval_curve"].values())
            spent = [run["flops_at_step"].get(s, run["flops_at_step"].get(str(s), float("nan"))) for s in steps]
            (line,) = row[0].plot(steps, losses, label=run["spec"]["name"])
            row[1].plot(spent, losses, label=run["spec"]["name"], color=line.get_color())
            for growth in run["growth_steps"]:
                row[0].axvline(growth, color=line.get_color(), linestyle=":", alpha=0.7)
        name = "WSD" if scheduler == "warmup_stable_decay" else scheduler
        for axis, label in zip(row, ("optimizer step", "training FLOPs")):
            axis.set(xlabel=label, ylabel="validation loss", title=f"{name}: validation loss vs {label.split()[-1]}")
            axis.set_ylim(fixed_final * 0.97, fixed_final * 1.6)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 runs of 300 steps (< 10 minutes)")
    parser.add_argument("--steps", type=int, default=4000, help="optimizer steps per run (full mode)")
    parser.add_argument("--context", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--optim", default="adamw_torch", help="adamw_torch or muon_nsgd")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--only", nargs="*", help="runs to keep, by name or name and scheduler (e.g. fixed '0→6 random (WSD)')"
    )
    parser.add_argument("--tau", type=float, default=0.8, help="growth step as a fraction of the steps (full mode)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a JSON written by an earlier run with the same settings: "
        "its fixed-depth runs are reused instead of trained again",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="JSONs of earlier runs (e.g. other seeds): train nothing, print and plot them together, seeds averaged",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    arguments = parser.parse_args()

    configure_torch_threads()  # OMP_NUM_THREADS when set, else the cores other work leaves free
    steps = 300 if arguments.quick else arguments.steps
    specs = QUICK_RUNS if arguments.quick else full_runs(arguments.tau)
    if arguments.only:
        specs = [s for s in specs if s.name in arguments.only or key(asdict(s)) in arguments.only]
    train_tokens, validation_tokens, vocab_size = load_characters(arguments.data)
    arguments.output.mkdir(parents=True, exist_ok=True)
    tau = "" if arguments.quick or arguments.tau == 0.8 else f"-tau{arguments.tau}"
    tag = f"{'quick' if arguments.quick else 'full'}-{arguments.optim}-{steps}-ctx{arguments.context}{tau}"
    results = []
    if arguments.baseline is not None:
        # Runs are deterministic for given settings and seed, so an earlier fixed-depth run is this run's baseline.
        reused = [r for r in json.loads(arguments.baseline.read_text()) if r["spec"]["schedule"] == "6@0"]
        reused = [
            r
            for r in reused
            if r["settings"]["steps"] == steps
            and r["settings"]["context"] == arguments.context
            and r["settings"]["optim"] == arguments.optim
            and r["settings"]["seed"] in arguments.seeds
        ]
        results += reused
        specs = [s for s in specs if not any(r["spec"] == asdict(s) for r in reused)]
    if arguments.merge:
        merged = {}
        for path in arguments.merge:
            for result in json.loads(path.read_text()):
                merged.setdefault((key(result["spec"]), result["settings"]["seed"]), result)
        results, specs = list(merged.values()), []
        if {r["settings"]["steps"] for r in results} != {steps}:
            parser.error(f"--merge: every run must have {steps} steps (--steps)")
        tag = "merged-" + tag
    started = time.time()
    jobs = [(seed, spec) for seed in arguments.seeds for spec in specs]
    for seed, spec in tqdm(jobs, desc="runs", unit="run"):
        settings = Settings(steps=steps, optim=arguments.optim, lr=arguments.lr, seed=seed, context=arguments.context)
        train = RandomWindows(train_tokens, settings.context, steps * settings.batch, seed)
        validation = Blocks(validation_tokens, settings.context, limit=256)
        with tempfile.TemporaryDirectory() as scratch:
            result = train_one(spec, settings, vocab_size, train, validation, scratch)
        results.append(result)
        tqdm.write(
            f"{key(result['spec'])} seed {seed}: final validation loss {result['final_eval_loss']:.4f}, "
            f"{result['train_seconds']:.0f} s of training"
        )
        (arguments.output / f"{tag}.json").write_text(json.dumps(results, indent=1))

    rows = summarize(results)
    report = table(rows, steps)
    plot(results, arguments.output / f"{tag}.png")
    print(
        f"\n{len(results)} runs of {steps} steps in {time.time() - started:.0f} s ({tag}); "
        f"ratios are progressive / fixed depth under the same scheduler.\n"
    )
    print(report)
    bigram = bigram_cross_entropy(train_tokens, validation_tokens, vocab_size)
    notes = [f"bigram cross-entropy of the validation text (train bigrams, add-one): {bigram:.4f}"]
    for result in results:
        growth = result["growth_steps"]
        if result["spec"]["schedule"].startswith("0@0") and growth:
            before = [loss for step, loss in result["eval_curve"].items() if int(step) <= growth[0]]
            if before:
                notes.append(
                    f"{key(result['spec'])} seed {result['settings']['seed']}: 0-layer loss before growth "
                    f"{before[-1]:.4f}"
                )
    print("\n" + "\n".join(notes))
    (arguments.output / f"{tag}.md").write_text(report + "\n\n" + "\n".join(notes) + "\n")
    print(f"\nwrote {arguments.output / (tag + '.json')}, {tag}.png, {tag}.md")


if __name__ == "__main__":
    main()
