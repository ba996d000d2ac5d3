"""Loss curves against step and against compute, with growth events marked."""

from __future__ import annotations

from pathlib import Path


def plot_training_curves(log_history: list[dict], path: str | Path, title: str = "Progressive training") -> Path:
    """Save a PNG with training (and validation, if logged) loss against optimizer step and against FLOPs.

    ``log_history`` is ``trainer.state.log_history`` of a :class:`~hf_progressive.ProgressiveTrainer` run:
    training entries carry ``loss`` and ``flops``; growth entries carry ``grown_from_depth`` and ``depth``.
    Needs matplotlib (``pip install hf_progressive[examples]``).
    """
    # A Figure of its own, drawn by the Agg canvas: no pyplot, so the user's backend and open figures are untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [e for e in log_history if "loss" in e and "flops" in e]
    evals = [e for e in log_history if "eval_loss" in e]
    growth = [e for e in log_history if "grown_from_depth" in e]
    flops_at_step = {e["step"]: e["flops"] for e in train}

    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    by_step, by_flops = figure.subplots(1, 2)
    by_step.plot([e["step"] for e in train], [e["loss"] for e in train], label="train loss")
    if evals:
        by_step.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="validation loss")
    by_flops.plot([e["flops"] for e in train], [e["loss"] for e in train], label="train loss")
    for event in growth:
        label = f"grow {event['grown_from_depth']}→{event['depth']}"
        by_step.axvline(event["step"], color="tab:red", linestyle="--", label=label)
        # The FLOPs at growth: the last training log at or before the growth step.
        before = [f for step, f in flops_at_step.items() if step <= event["step"]]
        if before:
            by_flops.axvline(max(before), color="tab:red", linestyle="--", label=label)
    by_step.set(xlabel="optimizer step", ylabel="loss", title=f"{title}: loss vs step")
    by_flops.set(xlabel="training FLOPs", ylabel="loss", title="loss vs compute")
    for axes in (by_step, by_flops):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path
