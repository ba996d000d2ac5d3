"""One benchmark run: a GPT-2 trained by ProgressiveTrainer under a named schedule, with its curves and timings."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback, default_data_collator
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hf_progressive import DepthSchedule, ProgressiveTrainer, ProgressiveTrainingArguments, flops
from hf_progressive.checkpointing import last_complete_checkpoint


@dataclass(frozen=True)
class RunSpec:
    name: str
    schedule: str  # with fractions of max_steps, e.g. "0@0,6@0.8"; "6@0" is the fixed-depth run
    init: str = "random"
    scheduler: str = "warmup_stable_decay"


@dataclass
class Settings:
    steps: int
    width: int = 128
    heads: int = 4
    depth: int = 6
    context: int = 128
    batch: int = 32
    lr: float = 2e-3
    optim: str = "adamw_torch"
    weight_decay: float = 0.01
    warmup: float = 0.02
    evaluations: int = 40
    seed: int = 0
    nsgd_norm: str = "tensor"  # what README's reproduction Results were measured with (the paper's NSGD)
    #: a checkpoint every this many steps (the newest kept), so that a run cut off can resume; 0: none
    save_steps: int = 0
    #: further ProgressiveTrainingArguments (e.g. growth_lr_warmup_steps), applied last
    extra: dict = field(default_factory=dict)


class TrainingClock(TrainerCallback):
    """Wall-clock seconds spent in training steps alone (evaluation excluded), carried across a resume: each
    checkpoint holds the seconds up to its step (``training_clock.json``), since ``trainer_state.json`` has no
    field for them."""

    FILE = "training_clock.json"

    def __init__(self):
        self.seconds = 0.0
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds += time.perf_counter() - self._start

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        (checkpoint / self.FILE).write_text(json.dumps({"seconds": self.seconds}))

    def resume(self, checkpoint: str) -> None:
        """Start from the seconds ``checkpoint`` recorded (NaN if it has none: a save cut off before this file)."""
        path = Path(checkpoint, self.FILE)
        self.seconds = json.loads(path.read_text())["seconds"] if path.exists() else float("nan")


class ProgressLines(TrainerCallback):
    """One line per evaluation while training (``label: step 584/2931 (20%), depth 0, val 5.615, 11m 18s, ~34m 05s
    to growth``): a map run takes up to hours in a background worker whose log would otherwise stay empty until the
    run ends, and several workers writing tqdm bars into their logs would garble them. Time ahead is extrapolated
    from the pace at the current depth, so before a growth it is the time to that growth (a shallow step can be
    several times faster than a deep one), after the last the time left; a resumed run counts from its checkpoint."""

    def __init__(self, label: str):
        self.label = label
        self._training = False

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._training, self._started = True, time.perf_counter()
        self._pace_from, self._depth = (state.global_step, self._started), len(model.transformer.h)
        schedule = getattr(args, "depth_schedule", None)
        self._growths = [g.step for g in DepthSchedule(schedule).growth_steps(state.max_steps)] if schedule else []

    def on_train_end(self, args, state, control, **kwargs):
        self._training = False  # the final evaluations after training are the run's summary line, not progress

    def on_step_end(self, args, state, control, model=None, **kwargs):
        depth = len(model.transformer.h)
        if depth != self._depth:  # a new pace starts with the first step at this depth, not at the next evaluation
            self._pace_from, self._depth = (state.global_step, time.perf_counter()), depth

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not self._training:
            return
        step, total, now = state.global_step, state.max_steps, time.perf_counter()
        depth = len(model.transformer.h)
        paced_steps, paced_seconds = step - self._pace_from[0], now - self._pace_from[1]
        growth = next((g for g in self._growths if g >= step), None)  # growth at g: after step g
        target, what = (growth, "to growth") if growth is not None else (total, "left")
        ahead = paced_seconds / paced_steps * (target - step) if paced_steps else float("nan")
        print(
            f"{self.label}: step {step}/{total} ({step / total:.0%}), depth {depth}, val {metrics['eval_loss']:.3f}, "
            f"{_duration(now - self._started)}, ~{_duration(ahead)} {what}",
            flush=True,
        )


def _duration(seconds: float) -> str:
    """``1h 05m``, ``9m 40s`` or ``12s``: a log line's times at the precision they are worth."""
    if seconds != seconds:  # NaN: nothing trained yet to extrapolate from
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


class StepTimer(TrainerCallback):
    """Wall-clock seconds of every optimizer step, with the depth (active blocks) it ran at: read when the step
    ends, since growth happens in a callback at the beginning of its step, which may run after this one's."""

    def __init__(self):
        self.steps: list[tuple[int, float]] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.steps.append((len(model.transformer.h), time.perf_counter() - self._start))


def build_trainer(
    spec: RunSpec,
    settings: Settings,
    vocab_size: int,
    train_dataset,
    eval_dataset,
    output_dir: str,
    callbacks: list[TrainerCallback] = (),
) -> tuple[ProgressiveTrainer, GPT2Config]:
    """The ProgressiveTrainer of one run, built at the target depth from ``settings.seed`` (so the fixed-depth run
    and every progressive run start from the same init); ``settings.evaluations == 0`` evaluates nothing."""
    torch.manual_seed(settings.seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=settings.context,
        n_embd=settings.width,
        n_head=settings.heads,
        n_layer=settings.depth,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu",
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    every = max(1, settings.steps // max(1, settings.evaluations))
    args = ProgressiveTrainingArguments(
        output_dir=output_dir,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch,
        per_device_eval_batch_size=128,
        learning_rate=settings.lr,
        weight_decay=settings.weight_decay,
        optim=settings.optim,
        nsgd_norm=settings.nsgd_norm,
        lr_scheduler_type=spec.scheduler,
        warmup_steps=settings.warmup,
        depth_schedule=spec.schedule,
        growth_init=spec.init,
        eval_strategy="steps" if settings.evaluations else "no",
        eval_steps=every,
        logging_steps=every,
        save_strategy="steps" if settings.save_steps else "no",
        save_steps=settings.save_steps or 500,
        save_total_limit=1,
        report_to="none",
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        **settings.extra,
    )
    # A fixed-depth run ("6@0") goes through the same trainer and loop, with a one-stage schedule: no growth.
    trainer = ProgressiveTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=default_data_collator,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # the benchmark prints its own summary
    return trainer, config


def train_one(
    spec: RunSpec,
    settings: Settings,
    vocab_size: int,
    train_dataset,
    eval_dataset,
    output_dir: str,
    final_datasets: dict | None = None,
    callbacks: list[TrainerCallback] = (),
):
    """Train one run; ``eval_dataset`` gives the validation curve, ``final_datasets`` (name -> dataset) the final
    losses reported as ``final_losses[name]`` (e.g. a larger validation set and a sample of the training data).

    With ``settings.save_steps``, a complete checkpoint already in ``output_dir`` (a run cut off) is resumed from —
    exactly, as any ProgressiveTrainer resume — and ``resumed_from_step`` says from where."""
    schedule = DepthSchedule(spec.schedule)
    clock = TrainingClock()
    trainer, config = build_trainer(
        spec, settings, vocab_size, train_dataset, eval_dataset, output_dir, [clock, *callbacks]
    )
    checkpoint = last_complete_checkpoint(output_dir) if settings.save_steps else None
    if checkpoint:
        clock.resume(checkpoint)
    metrics = trainer.train(resume_from_checkpoint=checkpoint).metrics
    final = trainer.evaluate()
    final_losses = {
        name: trainer.evaluate(dataset, metric_key_prefix=name)[f"{name}_loss"]
        for name, dataset in (final_datasets or {}).items()
    }
    history = trainer.state.log_history
    ratios = flops.schedule_compute_ratios(config, schedule, settings.steps, settings.context)
    return {
        "spec": asdict(spec),
        "settings": asdict(settings),
        "final_eval_loss": final["eval_loss"],
        "final_losses": final_losses,
        "eval_curve": {
            **{e["step"]: e["eval_loss"] for e in history if "eval_loss" in e and e["step"] < settings.steps},
            settings.steps: final["eval_loss"],
        },
        "train_curve": {e["step"]: e["loss"] for e in history if "loss" in e},
        "flops_at_step": {e["step"]: e.get("flops", 0.0) for e in history if "loss" in e},
        "growth": trainer.growth_history,
        "growth_steps": [g.step for g in schedule.growth_steps(settings.steps)],
        "train_seconds": clock.seconds,
        "resumed_from_step": int(checkpoint.rsplit("-", 1)[1]) if checkpoint else None,
        "flops": metrics.get("flops", metrics.get("total_flos")),
        "ratios": asdict(ratios),
    }
