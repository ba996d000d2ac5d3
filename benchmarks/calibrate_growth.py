#!/usr/bin/env python
"""Choose the growth step by the paper's calibration recipe.

One short progressive run grows right after warmup under a constant learning rate; a fixed-depth run of the same
length is the reference. The mixing time t_mix is how long the progressive validation loss takes to rejoin the
fixed-depth curve (within --tolerance) and stay there. A run of T steps should then grow at tau = T - t_mix.

    python benchmarks/calibrate_growth.py --calibration_steps 1000 --steps 4000

Before any calibration, ``--advise`` reads the measured growth map (README "When does growth pay off?") for a
planned run and prints the expected gap of 0 -> L and 1 -> L growth and a recommended schedule, training nothing:

    python benchmarks/calibrate_growth.py --advise --width 768 --depth 12 --vocab 50257 --steps 100000 \
        --batch 512 --context 1024
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from runs import RunSpec, Settings, train_one
from shakespeare import DEFAULT_PATH, Blocks, RandomWindows, load_characters
from transformers import GPT2Config

from hf_progressive.advice import advise_run
from hf_progressive.calibration import growth_step_for, mixing_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="length T of the run to plan")
    parser.add_argument("--calibration_steps", type=int, default=1000, help="length of the two calibration runs")
    parser.add_argument("--source_depth", type=int, default=0, choices=[0, 1])
    parser.add_argument("--init", default="random")
    parser.add_argument("--optim", default="adamw_torch")
    parser.add_argument("--tolerance", type=float, default=0.02, help="relative gap that counts as mixed")
    parser.add_argument("--warmup", type=float, default=0.02, help="warmup fraction (of each run)")
    parser.add_argument("--decay", type=float, default=0.1, help="WSD decay fraction of the planned run")
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--evaluations", type=int, default=50, help="validation evaluations per calibration run")
    parser.add_argument("--data", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--advise", action="store_true", help="print the growth map's outlook for the run; no training")
    parser.add_argument("--width", type=int, default=128, help="with --advise: model width (n_embd)")
    parser.add_argument("--depth", type=int, default=6, help="with --advise: target depth")
    parser.add_argument("--vocab", type=int, default=65, help="with --advise: vocabulary size")
    parser.add_argument("--batch", type=int, default=32, help="with --advise: sequences per optimizer step (global)")
    parser.add_argument(
        "--heads",
        type=int,
        help="with --advise: attention heads (default: width / 64, as GPT-2; the advice does not depend on them)",
    )
    arguments = parser.parse_args()
    if arguments.advise:
        heads = arguments.heads or max(1, arguments.width // 64)
        if arguments.width % heads:
            parser.error(f"--width {arguments.width} is not divisible by --heads {heads}: pick a divisor of the width")
        config = GPT2Config(
            n_embd=arguments.width, n_head=heads, vocab_size=arguments.vocab, n_positions=arguments.context
        )
        tokens = arguments.steps * arguments.batch * arguments.context
        advice = advise_run(config, arguments.depth, tokens, arguments.context)
        print(advice)
        print(f"recommended: --depth_schedule {advice.schedule(arguments.depth)}")
        return

    settings = Settings(
        steps=arguments.calibration_steps,
        optim=arguments.optim,
        warmup=arguments.warmup,
        context=arguments.context,
        evaluations=arguments.evaluations,
    )
    warmup_steps = math.ceil(arguments.warmup * settings.steps)
    growth = warmup_steps + 1
    train_tokens, validation_tokens, vocab_size = load_characters(arguments.data)
    train = RandomWindows(train_tokens, settings.context, settings.steps * settings.batch, settings.seed)
    validation = Blocks(validation_tokens, settings.context, limit=256)
    curves = {}
    for name, schedule in (
        ("fixed", f"{settings.depth}@0"),
        ("progressive", f"{arguments.source_depth}@0,{settings.depth}@{growth}"),
    ):
        spec = RunSpec(name, schedule, init=arguments.init, scheduler="constant_with_warmup")
        with tempfile.TemporaryDirectory() as scratch:
            result = train_one(spec, settings, vocab_size, train, validation, scratch)
        curves[name] = {int(step): loss for step, loss in result["eval_curve"].items()}
        print(f"{name}: final validation loss {result['final_eval_loss']:.4f}")

    t_mix = mixing_time(curves["progressive"], curves["fixed"], growth, arguments.tolerance)
    if t_mix is None:
        print(
            f"The progressive run did not rejoin the fixed-depth curve within {arguments.tolerance:.0%} in "
            f"{settings.steps} steps: calibrate with more --calibration_steps (or a larger --tolerance)."
        )
        return
    tau = growth_step_for(
        arguments.steps, t_mix, math.ceil(arguments.warmup * arguments.steps), round(arguments.decay * arguments.steps)
    )
    print(f"t_mix = {t_mix} steps (grew at step {growth}, rejoined within {arguments.tolerance:.0%}).")
    print(
        f"For a run of T = {arguments.steps} steps grow at tau = {tau} (= {tau / arguments.steps:.2f} T): "
        f"--depth_schedule {arguments.source_depth}@0,{settings.depth}@{tau}"
    )


if __name__ == "__main__":
    main()
