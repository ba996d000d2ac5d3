#!/usr/bin/env python
"""What growth support costs: step time of ProgressiveTrainer vs the stock Trainer at the same depth, under DDP or
in a single process (``--processes 1``).

Growth support under DDP means two things (see hf_progressive/trainer.py): the reserved blocks are registered with
DDP from the start, and DDP runs with ``find_unused_parameters=True`` because they get no gradient until growth.
This measures, in one launch of 2 processes on the same data, batch and model:

* the deep phase: ProgressiveTrainer after growth to 6 blocks vs the stock Trainer on a 6-block GPT-2;
* the shallow phase: ProgressiveTrainer at 0 blocks with 6 in reserve vs the stock Trainer on a 0-block GPT-2.

Each configuration runs twice, interleaved (stock, ours, stock, ours), and the median step time over both runs is
compared; the first steps of each run are not timed.

    python benchmarks/ddp_overhead.py            # launches itself on 2 processes (CPU: gloo; GPUs: NCCL)
    python benchmarks/ddp_overhead.py --processes 1 --rounds 3   # one process, no DDP: the trainer's own cost
    python benchmarks/ddp_overhead.py --steps 200 --width 256
    python benchmarks/ddp_overhead.py --processes 1 --phases shallow   # only the 0-block phase
    python benchmarks/ddp_overhead.py --phases shallow --comm_hook ddp    # without hf_progressive's DDP hook
    python benchmarks/ddp_overhead.py --phases shallow --comm_hook noop   # communicate nothing: DDP's own cost
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from runs import StepTimer
from shakespeare import DEFAULT_PATH, RandomWindows, load_characters
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments, default_data_collator
from transformers.trainer_callback import PrinterCallback

import hf_progressive.distributed
from hf_progressive import ProgressiveTrainer, ProgressiveTrainingArguments
from hf_progressive.distributed import ReplicaCheckCallback
from hf_progressive.threads import configure_torch_threads

TARGET_DEPTH = 6
UNTIMED_STEPS = 5


class NoCommunication(TrainerCallback):
    """Diagnostic: a DDP communication hook that communicates nothing, on the stock and the progressive run alike,
    so that what remains of the difference is DDP's own per-step work for the reserve (not a valid training run)."""

    def __init__(self, wrapped_model):
        self._wrapped_model = wrapped_model

    def on_train_begin(self, args, state, control, **kwargs):
        def keep_local(state, bucket):
            future = torch.futures.Future()
            future.set_result(bucket.buffer())
            return future

        wrapped = self._wrapped_model()
        if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
            wrapped.register_comm_hook(state=None, hook=keep_local)


def run(kind: str, depth: int, options: argparse.Namespace, data, vocab_size: int) -> list[float]:
    """Step times of one run: ``kind`` is "stock" or "progressive"; ``depth`` the depth that is timed."""
    torch.manual_seed(0)
    # The progressive model starts at 0 blocks with TARGET_DEPTH in reserve; the stock one is built at `depth`.
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=options.context,
        n_embd=options.width,
        n_head=4,
        n_layer=depth if kind == "stock" else 0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    common = dict(
        output_dir=tempfile.mkdtemp(),
        max_steps=options.steps,
        per_device_train_batch_size=options.batch,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=10**6,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        seed=0,
    )
    timer = StepTimer()
    if kind == "stock":
        args = TrainingArguments(**common)
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
    else:
        # Deep phase: grow at step 1 and time what follows. Shallow phase: grow before the last step, time the rest.
        schedule = f"0@0,{TARGET_DEPTH}@{1 if depth == TARGET_DEPTH else options.steps - 1}"
        args = ProgressiveTrainingArguments(**common, depth_schedule=schedule)
        trainer = ProgressiveTrainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(timer)
    if options.comm_hook == "noop":
        trainer.add_callback(NoCommunication(lambda: trainer.model_wrapped))
        trainer.remove_callback(ReplicaCheckCallback)  # it would rightly refuse replicas that drift apart
    trainer.train()
    return [seconds for step_depth, seconds in timer.steps[UNTIMED_STEPS:] if step_depth == depth]


def measure(options: argparse.Namespace) -> None:
    if options.comm_hook != "reserve":
        # Without hf_progressive's hook: DDP's own all-reduce ("ddp"), or the diagnostic no-op hook ("noop").
        hf_progressive.distributed.register_reserve_aware_comm_hook = lambda wrapped, model: False
    configure_torch_threads(int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))))
    train, _, vocab_size = load_characters(options.data)
    data = RandomWindows(train, options.context, options.steps * options.batch * 2, seed=0)
    results = {}
    depths = {"deep": TARGET_DEPTH, "shallow": 0}
    for depth in [depths[phase] for phase in options.phases]:
        times = {"stock": [], "progressive": []}
        for _ in range(options.rounds):
            for kind in ("stock", "progressive"):
                times[kind] += run(kind, depth, options, data, vocab_size)
        results[depth] = {kind: statistics.median(values) for kind, values in times.items()}
        results[depth]["timed_steps"] = {kind: len(values) for kind, values in times.items()}
    if not dist.is_initialized() or dist.get_rank() == 0:
        report(results, options)


def report(results: dict, options: argparse.Namespace) -> None:
    processes = dist.get_world_size() if dist.is_initialized() else 1
    device = ("GPU" if torch.cuda.is_available() else "CPU") + (" (DDP)" if processes > 1 else ", no DDP")
    print(
        f"\nStep time, {processes} process(es) on {device}; GPT-2 width {options.width}, context "
        f"{options.context}, batch {options.batch} per process; median of {options.rounds} interleaved runs of "
        f"{options.steps} steps each; DDP communication hook: {options.comm_hook}\n"
    )
    print("| phase | stock Trainer (ms/step) | ProgressiveTrainer (ms/step) | ratio | overhead |")
    print("|---|---|---|---|---|")
    rows = []
    phases = {TARGET_DEPTH: f"deep: {TARGET_DEPTH} blocks, grown", 0: f"shallow: 0 blocks, {TARGET_DEPTH} reserved"}
    for depth, label in phases.items():
        if depth not in results:
            continue
        stock, ours = results[depth]["stock"], results[depth]["progressive"]
        ratio = ours / stock
        rows.append({"phase": label, "stock_ms": 1e3 * stock, "progressive_ms": 1e3 * ours, "ratio": ratio})
        print(f"| {label} | {1e3 * stock:.1f} | {1e3 * ours:.1f} | {ratio:.3f} | {ratio - 1:+.1%} |")
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    hook = "" if options.comm_hook == "reserve" else f"-hook_{options.comm_hook}"
    path = output / f"ddp-overhead-{processes}proc-w{options.width}{hook}.json"
    path.write_text(json.dumps({"settings": vars(options) | {"data": str(options.data)}, "rows": rows}, indent=1))
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of each configuration")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="sequences per process and step")
    parser.add_argument(
        "--phases", nargs="+", choices=("deep", "shallow"), default=["deep", "shallow"], help="phases to time"
    )
    parser.add_argument(
        "--comm_hook",
        choices=("reserve", "ddp", "noop"),
        default="reserve",
        help="DDP communication: hf_progressive's reserve-aware hook (what users get), DDP's default all-reduce of "
        "every bucket, or a diagnostic hook that communicates nothing in either run",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--output", default="benchmarks/results")
    options = parser.parse_args()
    if options.processes == 1:
        measure(options)  # the stock Trainer and ProgressiveTrainer in this process, no process group
        return
    if "LOCAL_RANK" not in os.environ:
        # Started by hand: launch this script on `--processes` processes with torch's launcher.
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(options.processes)]
        raise SystemExit(subprocess.call([*command, __file__, *sys.argv[1:]]))
    measure(options)
    # Rank 0 writes the report while the others would already tear down: a gloo peer gone mid-teardown can abort
    # rank 0 ("terminate called without an active exception", seen once in CI). Tear down together.
    dist.barrier()
    dist.destroy_process_group()
    # Even so, gloo's threads sometimes abort the interpreter's own teardown after the report is written (CI, stop
    # 27: rank 1 "terminate called without an active exception" in about 1 run in 6). Nothing is left to do: leave
    # without running the C++ destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
