#!/usr/bin/env python
"""Where does growth pay? The gap of 0 -> L and 1 -> L growth over horizon x vocabulary x model size.

Every cell (model size, vocabulary, horizon in tokens per non-embedding parameter) trains, on the same data in the
same order from the same init, with WSD and growth at tau = 0.8T:

* ``fixed``: the target depth for all T steps (the paper's reference);
* ``zero``: 0 -> L blocks, ``random`` init;  ``one``: 1 -> L blocks, ``copy`` init;
* ``control``: a fresh fixed-depth model trained only for the post-growth steps (0.2T, its own complete WSD):
  ``control - progressive`` is what the shallow phase bought;
* ``equal_zero`` / ``equal_one``: a fixed-depth model with its own complete WSD and the same total FLOPs (LM head
  and attention included) as the progressive run, i.e. fewer steps: the comparison a user with a budget makes.

Each run is written to its own JSON in ``--results`` and skipped when it is already there (runs are deterministic on
one machine), so the map grows across invocations and several workers can share one queue (a lock file per run).
A run cut off (a killed worker, the end of a session) resumes from its newest checkpoint (``--checkpoints``, every
1,000 steps) when a worker next takes it, and ends where it would have ended uninterrupted — on the same machine:

    OMP_NUM_THREADS=1 python benchmarks/horizon.py --sizes small --vocabs 257 8192 --horizons 10 30 100 &
    OMP_NUM_THREADS=1 python benchmarks/horizon.py --sizes small --vocabs 257 8192 --horizons 10 30 100 &
    OMP_NUM_THREADS=1 python benchmarks/horizon.py --timing --vocabs 257 8192   # step times: on a quiet machine
    python benchmarks/horizon.py --report      # tables, figures and hf_progressive/growth_map.json from the JSONs

This file defines the map (its cells, runs and corpora) and trains it; ``horizon_report.py`` turns the result JSONs
into tables, the README's blocks and the package's growth map, ``horizon_figures.py`` into figures.

Corpus: the Python standard library's source (10.7 MB on Python 3.11: code, docstrings and comments; on every
machine, offline), every 20th file held out; byte-level BPE tokenizers of each vocabulary trained on the training
files (257 = the 256 bytes and <|endoftext|>, no merges). ``--corpus stdlib_torch`` adds the installed torch's own
Python (about 40 MB of the pinned 2.13.0 wheel; its tests, vendored code and generated tables left out), for
horizons where the standard library runs out at large vocabularies; its cells are a map of their own (own
tokenizers, own losses), reported apart.

Batch: 32 sequences of 64 tokens per step. ``--batch N`` trains a cell on the same tokens in more (or fewer) steps,
a cell of its own beside the map (``-bN`` in its names; the report's steps table), to tell whether what a source's
gap follows is the tokens or the optimizer steps.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from run_queue import claim, release
from runs import ProgressLines, RunSpec, Settings, StepTimer, build_trainer, train_one
from shakespeare import Blocks, RandomWindows
from transformers import GPT2Config

from hf_progressive import DepthSchedule, flops
from hf_progressive.checkpointing import last_complete_checkpoint
from hf_progressive.data import (
    END_OF_TEXT,
    python_package_corpus,
    python_stdlib_corpus,
    split_documents,
    train_byte_level_bpe,
)
from hf_progressive.threads import configure_torch_threads

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "benchmarks" / "horizon"
CACHE = REPO / "benchmarks" / "results" / "cache"
#: Each unfinished run's newest checkpoint (git-ignored): a worker that finds one resumes the run from it.
CHECKPOINTS = REPO / "benchmarks" / "results" / "unfinished"
#: Steps between a run's checkpoints (a few minutes of the longest runs here; a save takes well under a second).
SAVE_STEPS = 1000
GROWTH_MAP = REPO / "hf_progressive" / "growth_map.json"

SIZES = {
    "small": dict(width=32, heads=2, depth=4),
    "medium": dict(width=64, heads=4, depth=4),
    # Blocks that dominate the FLOPs, as in GPT-2 124M: with a 2,048-token vocabulary the embedding is 25% of the
    # parameters and 0 -> L uses about 40% of the fixed run's FLOPs (GPT-2 124M: 31% and 43%), the regime where the
    # advice expects growth to pay (benchmarks/gpt2_outlook.py).
    "large": dict(width=128, heads=4, depth=4),
}
KINDS = ("fixed", "zero", "one", "control", "equal_zero", "equal_one")
#: The growing kinds of the map and their names in tables and figures.
SOURCE_NAMES = {"zero": "0→L random", "one": "1→L copy"}
#: k-layer sources for claims 6 and 8 (PAPER.md): "from{k}_{init}", e.g. from2_copy_last grows 2 -> L.
SOURCE_KINDS = ("from2_copy_stack", "from2_copy_inter", "from2_copy_last", "from3_copy_stack")
#: Recipe levers (README "When does growth pay off?"): extra ProgressiveTrainingArguments of the progressive runs.
LEVERS = {
    "none": {},
    "muon_embeddings": {"muon_embeddings": True},
    "new_lr_warmup": {"growth_lr_warmup_steps": 0.05},
    "residual_0.1": {"growth_residual_scale": 0.1},
    "residual_0": {"growth_residual_scale": 0.0},
    "state_copy": {"new_params_optimizer_state": "copy"},
    # A function-preserving start whose new blocks then open gradually: identity blocks, their LR warmed up.
    "residual_0_warmup": {"growth_residual_scale": 0.0, "growth_lr_warmup_steps": 0.05},
}
TAU = 0.8
#: Corpora: the standard library (the map's), and beside it the pinned torch wheel's own Python for horizons where
#: the standard library runs out at large vocabularies (8k at 300 tokens/param reads it 6 times).
CORPORA = {"stdlib": ("stdlib",), "stdlib_torch": ("stdlib", "torch")}
DEFAULT_CORPUS = "stdlib"
CONTEXT, BATCH = 64, 32
CURVE_BLOCKS, FINAL_BLOCKS = 64, 256


@dataclass(frozen=True)
class Job:
    size: str
    vocab: int
    horizon: float  # tokens per non-embedding parameter
    kind: str
    optim: str = "muon_nsgd"
    lr: float = 0.02
    nsgd_norm: str = "row"
    seed: int = 0
    lever: str = "none"
    tau: float = TAU
    corpus: str = DEFAULT_CORPUS
    batch: int = BATCH  # sequences per step; another batch is another cell (the steps-or-tokens check)

    @property
    def name(self) -> str:
        norm = f"-{self.nsgd_norm}" if self.optim == "muon_nsgd" else ""
        lever = "" if self.lever == "none" else f"-{self.lever}"
        tau = "" if self.tau == TAU else f"-tau{self.tau:g}"
        corpus = corpus_mark(self.corpus, f"-{self.corpus}")
        batch = "" if self.batch == BATCH else f"-b{self.batch}"
        return (
            f"{self.size}-v{self.vocab}-h{self.horizon:g}-{self.kind}-{self.optim}{norm}-lr{self.lr:g}"
            f"{lever}{tau}{corpus}{batch}-s{self.seed}"
        )

    @property
    def source_depth(self) -> int | None:
        """Blocks before growth, or None for a fixed-depth run."""
        if self.kind in SOURCE_NAMES:
            return {"zero": 0, "one": 1}[self.kind]
        if self.kind.startswith("from"):
            return int(self.kind[4 : self.kind.index("_")])
        return None

    def config(self) -> GPT2Config:
        size = SIZES[self.size]
        return GPT2Config(
            vocab_size=self.vocab,
            n_positions=CONTEXT,
            n_embd=size["width"],
            n_head=size["heads"],
            n_layer=size["depth"],
            bos_token_id=0,
            eos_token_id=0,
        )

    @property
    def depth(self) -> int:
        return SIZES[self.size]["depth"]

    @property
    def full_steps(self) -> int:
        """T: the steps of the fixed run, from the horizon in tokens per non-embedding parameter."""
        tokens = self.horizon * flops.non_embedding_parameters(self.config(), self.depth)
        return max(50, round(tokens / (self.batch * CONTEXT)))

    def schedule(self) -> str:
        source = self.source_depth
        return f"{self.depth}@0" if source is None else f"{source}@0,{self.depth}@{self.tau}"

    @property
    def init(self) -> str:
        if self.kind.startswith("from"):
            return self.kind[self.kind.index("_") + 1 :]
        return "copy" if self.kind == "one" else "random"

    @property
    def steps(self) -> int:
        T = self.full_steps
        if self.kind == "control":
            return T - round(self.tau * T)
        if self.kind.startswith("equal_"):
            source = "0" if self.kind == "equal_zero" else "1"
            schedule = DepthSchedule(f"{source}@0,{self.depth}@{self.tau}")
            return round(T * flops.schedule_compute_ratios(self.config(), schedule, T, CONTEXT).forward_flops)
        return T

    def settings(self, steps: int, evaluations: int, save_steps: int = 0) -> Settings:
        """The map's training settings for this job (a lever applies to growing runs only)."""
        return Settings(
            steps=steps,
            save_steps=save_steps,
            context=CONTEXT,
            batch=self.batch,
            optim=self.optim,
            lr=self.lr,
            nsgd_norm=self.nsgd_norm,
            seed=self.seed,
            evaluations=evaluations,
            extra=LEVERS[self.lever] if self.source_depth is not None else {},
            **SIZES[self.size],
        )


#: Each source whole by default; tests take less (--corpus_bytes, per source).
CORPUS_BYTES = 10**9


def corpus_documents(corpus: str) -> tuple[list[str], list[str]]:
    """Train and validation documents of a corpus: every 20th file of each of its sources held out."""
    train, validation = [], []
    for source in CORPORA[corpus]:
        documents = (
            python_stdlib_corpus(max_bytes=CORPUS_BYTES)
            if source == "stdlib"
            else python_package_corpus(source, max_bytes=CORPUS_BYTES)
        )
        held_in, held_out = split_documents(documents, 0.05)
        train += held_in
        validation += held_out
    return train, validation


def corpus_tokens(vocab: int, corpus: str = DEFAULT_CORPUS, cache: Path = CACHE) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation token streams of ``corpus`` under a byte-level BPE of ``vocab`` trained on its
    training files (cached)."""
    size = "" if CORPUS_BYTES == 10**9 else f"-{CORPUS_BYTES}"
    path = cache / f"{corpus}-bpe{vocab}{size}.pt"
    if path.exists():
        cached = torch.load(path)
        return cached["train"], cached["validation"]
    train_docs, validation_docs = corpus_documents(corpus)
    tokenizer = train_byte_level_bpe(train_docs, vocab_size=vocab)
    if len(tokenizer) != vocab:
        raise RuntimeError(f"the BPE has {len(tokenizer)} tokens, not {vocab}")
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)

    def stream(documents: list[str]) -> torch.Tensor:
        ids = []
        for encoded in tokenizer(documents)["input_ids"]:
            ids += encoded + [eot]
        return torch.tensor(ids, dtype=torch.long)

    tokens = {"train": stream(train_docs), "validation": stream(validation_docs)}
    cache.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(tokens, scratch)
    os.replace(scratch, path)
    return tokens["train"], tokens["validation"]


def run_job(job: Job, checkpoints: Path) -> dict:
    """Train ``job``, checkpointing into ``checkpoints / job.name`` every ``SAVE_STEPS`` steps and resuming from the
    newest checkpoint found there (a run cut off: the end of a session, a killed worker). Resuming is exact, as any
    ProgressiveTrainer resume, so a resumed run ends where an uninterrupted one would
    (tests/test_benchmark_resume.py)."""
    train_tokens, validation_tokens = corpus_tokens(job.vocab, job.corpus)
    settings = job.settings(job.steps, evaluations=20, save_steps=SAVE_STEPS)
    train = RandomWindows(train_tokens, CONTEXT, settings.steps * settings.batch, job.seed)
    finals = {
        "validation": Blocks(validation_tokens, CONTEXT, limit=FINAL_BLOCKS),
        "train": Blocks(train_tokens, CONTEXT, limit=FINAL_BLOCKS),
    }
    spec = RunSpec(job.kind, job.schedule(), init=job.init)
    output_dir = checkpoints / job.name
    if checkpoint := last_complete_checkpoint(output_dir):
        print(f"{job.name}: resuming from {checkpoint}", flush=True)
    validation = Blocks(validation_tokens, CONTEXT, CURVE_BLOCKS)
    result = train_one(
        spec, settings, job.vocab, train, validation, str(output_dir), finals, callbacks=[ProgressLines(job.name)]
    )
    config = job.config()
    result.update(
        job=asdict(job),
        full_steps=job.full_steps,
        tokens=settings.steps * settings.batch * CONTEXT,
        non_embedding_parameters=flops.non_embedding_parameters(config, job.depth),
        embedding_parameters=flops.embedding_parameters(config),
        train_tokens_available=len(train_tokens),
        corpus_bytes=CORPUS_BYTES,
        epochs=settings.steps * settings.batch * CONTEXT / len(train_tokens),
        environment=environment(),
    )
    return result


def environment() -> dict[str, str]:
    """What a run's exact numbers depend on beyond the code: runs are deterministic on one machine, but float
    rounding differs between CPUs (torch picks kernels by instruction set) and library versions, and training
    amplifies it (README)."""
    found = {name: importlib.metadata.version(name) for name in ("torch", "transformers", "accelerate", "tokenizers")}
    found["cpu"] = f"{platform.machine()}, torch kernels for {torch.backends.cpu.get_cpu_capability()}"
    return found


def work(jobs: list[Job], results: Path, checkpoints: Path = CHECKPOINTS) -> None:
    results.mkdir(parents=True, exist_ok=True)
    for number, job in enumerate(jobs, 1):
        path = results / f"{job.name}.json"
        if path.exists() or not claim(path):
            continue
        started = time.time()
        try:
            if path.exists():  # another worker wrote it between our look and our claim
                continue
            result = run_job(job, checkpoints)
            scratch = path.with_suffix(".tmp")
            scratch.write_text(json.dumps(result, indent=1))
            os.replace(scratch, path)
            shutil.rmtree(checkpoints / job.name, ignore_errors=True)  # only once its result is safely written
        finally:
            release(path)
        losses = result["final_losses"]
        print(
            f"[{number}/{len(jobs)}] {job.name}: {job.steps} steps, val {losses['validation']:.4f}, "
            f"train {losses['train']:.4f}, {time.time() - started:.0f} s",
            flush=True,
        )


# ------------------------------------------------------------------------------ step times, interleaved (--timing)

#: Under --results: one JSON per (size, vocabulary, optimizer) with the step times of each phase.
TIMING_DIR = "timing"
UNTIMED_STEPS = 3  # the first steps of each run (allocation, first-call dispatch) are not timed


def phase_step_times(job: Job, steps: int) -> list[float]:
    """Seconds of each training step in the phase where ``job`` spends 0.8T: the source depth (reserve attached) of
    a progressive run, the target depth of a fixed one; the same trainer, optimizer, batch and data as the map."""
    train_tokens, _ = corpus_tokens(job.vocab)
    source = job.source_depth
    settings = job.settings(steps + 1, evaluations=0)
    # A progressive run grows at the last step: every step before it runs at the source depth, as in its 0.8T.
    # A constant LR (the schedule costs nothing per step): WSD would rightly warn that such a growth step lies in
    # its decay phase.
    schedule = f"{job.depth}@0" if source is None else f"{source}@0,{job.depth}@{steps}"
    timer = StepTimer()
    data = RandomWindows(train_tokens, CONTEXT, settings.steps * settings.batch, job.seed)
    with tempfile.TemporaryDirectory() as scratch:
        spec = RunSpec(job.kind, schedule, init=job.init, scheduler="constant")
        trainer, _ = build_trainer(spec, settings, job.vocab, data, None, scratch, [timer])
        trainer.train()
    depth = job.depth if source is None else source
    return [seconds for step_depth, seconds in timer.steps[UNTIMED_STEPS:] if step_depth == depth]


def measure_timing(jobs: list[Job], rounds: int, steps: int, results: Path) -> None:
    """Median step time of each phase, the three runs of a cell interleaved ``rounds`` times (fixed, 0-block,
    1-block, fixed, ...), so that whatever else the machine does falls on all three alike; then the time ratio of a
    progressive run to the fixed one: tau * t_source / t_fixed + (1 - tau) (its deep phase costs what the fixed
    run's steps cost: benchmarks/ddp_overhead.py measures that within 1%). Evaluation is not counted, as in the
    map's own ``train_seconds``."""
    folder = results / TIMING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        kinds = {
            kind: Job(job.size, job.vocab, job.horizon, kind, job.optim, job.lr, job.nsgd_norm)
            for kind in ("fixed", *SOURCE_NAMES)
        }
        seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(rounds):
            for kind, timed in kinds.items():
                seconds[kind] += phase_step_times(timed, steps)
        ms = {kind: 1e3 * statistics.median(values) for kind, values in seconds.items()}
        ratios = {kind: job.tau * ms[kind] / ms["fixed"] + (1 - job.tau) for kind in SOURCE_NAMES}
        record = {
            "size": job.size,
            "vocab": job.vocab,
            "optim": job.optim,
            "nsgd_norm": job.nsgd_norm if job.optim == "muon_nsgd" else None,
            "tau": job.tau,
            "ms_per_step": ms,
            "time_ratio": ratios,
            "rounds": rounds,
            "timed_steps": {kind: len(values) for kind, values in seconds.items()},
            "torch_threads": torch.get_num_threads(),
            "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, torch {torch.__version__}",
            "measured": time.strftime("%Y-%m-%d"),
        }
        norm = f"-{job.nsgd_norm}" if job.optim == "muon_nsgd" else ""
        path = folder / f"{job.size}-v{job.vocab}-{job.optim}{norm}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(
            f"{job.size} v{job.vocab} {job.optim}{norm}: ms/step fixed {ms['fixed']:.1f}, 0 blocks {ms['zero']:.1f}, "
            f"1 block {ms['one']:.1f}; time ratio 0->L {ratios['zero']:.2f}, 1->L {ratios['one']:.2f} ({path.name})",
            flush=True,
        )


def load_timings(results: Path) -> dict[tuple, dict]:
    """The --timing measurements, keyed like a map row: (size, vocab, optimizer, NSGD norm or None)."""
    timings = {}
    for path in sorted((results / TIMING_DIR).glob("*.json")):
        record = json.loads(path.read_text())
        timings[(record["size"], record["vocab"], record["optim"], record["nsgd_norm"])] = record
    return timings


# ------------------------------------------------------------------------- which runs make up a cell


def is_recipe(job: dict) -> bool:
    """A run of the paper's recipe: no lever, growth at 0.8T (results written before levers existed count too)."""
    return job.get("lever", "none") == "none" and job.get("tau", TAU) == TAU


def is_plain(job: dict) -> bool:
    """A run of the paper's recipe at the map's batch (results written before the batch was a choice count too)."""
    return is_recipe(job) and job_batch(job) == BATCH


def job_batch(job: dict) -> int:
    return job.get("batch", BATCH)  # runs written before the batch was a choice: the map's


def cell_key(job: dict) -> tuple:
    return (
        job["size"],
        job["vocab"],
        job["horizon"],
        job["optim"],
        job["lr"],
        job["nsgd_norm"],
        job["seed"],
        job_corpus(job),
        job_batch(job),
    )


def job_corpus(job: dict) -> str:
    return job.get("corpus", DEFAULT_CORPUS)  # runs written before the corpus was a choice: the standard library


def corpus_mark(corpus: str, text: str) -> str:
    """``text`` for a corpus other than the map's own, nothing for the standard library: names, rows and titles of
    the map's cells stay as they were before the corpus was a choice."""
    return "" if corpus == DEFAULT_CORPUS else text


def corpus_label(corpus: str) -> str:
    """What a corpus reads, for tables and figures: "stdlib + torch"."""
    return " + ".join(CORPORA[corpus])


def is_main_optimizer(job: dict) -> bool:
    """The map's optimizer: Muon-NSGD, row norm, lr 0.02."""
    return job["optim"] == "muon_nsgd" and job["nsgd_norm"] == "row" and job["lr"] == 0.02


def parse_cell(spec: str) -> tuple[str, int, float, int, str]:
    """A ``--curves`` cell, ``size:vocab:horizon[:corpus]``, as (size, vocab, horizon, seed 0, corpus)."""
    parts = spec.split(":")
    corpus = parts[3] if len(parts) == 4 else DEFAULT_CORPUS
    try:
        size, vocab, horizon = parts[0], int(parts[1]), float(parts[2])
        if size not in SIZES or len(parts) > 4 or corpus not in CORPORA:
            raise ValueError
    except (IndexError, ValueError):
        raise ValueError(
            f"--curves {spec!r}: expected size:vocab:horizon[:corpus] with a size in {sorted(SIZES)} and a corpus in "
            f"{sorted(CORPORA)}, e.g. small:8192:30 or medium:8192:100:stdlib_torch"
        ) from None
    return size, vocab, horizon, 0, corpus


def cell_runs(runs: dict[str, dict], cell: tuple) -> list[dict]:
    """The map's runs of one cell (size, vocab, horizon, seed, corpus): the main optimizer, the paper's recipe (no
    lever, growth at 0.8T); a cell on another corpus or of another optimizer is another measurement."""
    return [
        run
        for run in runs.values()
        if (*(run["job"][k] for k in ("size", "vocab", "horizon", "seed")), job_corpus(run["job"])) == cell
        and is_main_optimizer(run["job"])
        and is_plain(run["job"])
    ]


def main() -> None:
    global CORPUS_BYTES
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["small"], choices=sorted(SIZES))
    parser.add_argument("--vocabs", nargs="+", type=int, default=[257, 8192])
    parser.add_argument("--horizons", nargs="+", type=float, default=[10, 30, 100])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS + SOURCE_KINDS)
    parser.add_argument("--lever", default="none", choices=sorted(LEVERS), help="a recipe lever for growing runs")
    parser.add_argument("--tau", type=float, default=TAU, help="growth step as a fraction of T")
    parser.add_argument("--optim", default="muon_nsgd", help="muon_nsgd or a transformers optimizer (adamw_torch)")
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--nsgd_norm", default="row", choices=["tensor", "row"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        help=f"sequences per step (default {BATCH}, the map's); the same tokens in more, smaller steps: another "
        "batch is a cell of its own, beside the map (README 'Steps or tokens')",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="one JSON per run; existing runs are skipped")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=CHECKPOINTS,
        help=f"each unfinished run's newest checkpoint (every {SAVE_STEPS} steps), resumed by the next worker "
        "that takes the run; removed once its JSON is written",
    )
    parser.add_argument("--dry_run", action="store_true", help="list the runs (and their steps) without training")
    parser.add_argument("--report", action="store_true", help="train nothing: tables, figures and the growth map")
    parser.add_argument(
        "--curves",
        nargs="*",
        default=[],
        help="with --report: cells to plot against FLOPs, as size:vocab:horizon[:corpus] (seed 0)",
    )
    parser.add_argument(
        "--corpus",
        default=DEFAULT_CORPUS,
        choices=sorted(CORPORA),
        help="stdlib: the standard library's source (the map's); stdlib_torch: with the installed torch's own Python "
        "beside it (~50 MB), for long horizons at large vocabularies",
    )
    parser.add_argument("--corpus_bytes", type=int, default=CORPUS_BYTES, help="bytes to use of each source (tests)")
    parser.add_argument("--readme", type=Path, help="with --report: rewrite the tables between horizon markers here")
    parser.add_argument(
        "--timing",
        action="store_true",
        help="train nothing to the end: time the steps of each phase (fixed, 0-block, 1-block), interleaved, for "
        "each size and vocabulary, into RESULTS/timing/ (run it on a quiet machine; --report then uses it)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --timing: interleaved repetitions")
    parser.add_argument("--timed_steps", type=int, default=20, help="with --timing: steps per run")
    arguments = parser.parse_args()
    if arguments.report:
        try:
            curves = [parse_cell(spec) for spec in arguments.curves]
        except ValueError as error:
            parser.error(str(error))
        # Imported here, not at the top: the report imports this module (the map's definition), and a worker that
        # only trains needs neither it nor matplotlib.
        from horizon_report import report

        report(arguments.results, curves, arguments.readme)
        return
    if arguments.batch < 1:
        parser.error(f"--batch {arguments.batch}: needs at least 1 sequence per step (the map's is {BATCH})")
    if arguments.timing and arguments.batch != BATCH:
        parser.error(f"--timing times the map's batch ({BATCH}), not --batch {arguments.batch}")
    CORPUS_BYTES = arguments.corpus_bytes
    configure_torch_threads()  # OMP_NUM_THREADS when set, else the cores other work leaves free
    jobs = [
        Job(
            size,
            vocab,
            horizon,
            kind,
            arguments.optim,
            arguments.lr,
            arguments.nsgd_norm,
            seed,
            arguments.lever,
            arguments.tau,
            arguments.corpus,
            arguments.batch,
        )
        for seed in arguments.seeds
        for size in arguments.sizes
        for vocab in arguments.vocabs
        for horizon in arguments.horizons
        for kind in arguments.kinds
    ]
    if arguments.timing:
        cells_to_time = {(job.size, job.vocab): job for job in jobs}.values()  # horizons and kinds do not matter
        measure_timing(list(cells_to_time), arguments.rounds, arguments.timed_steps + UNTIMED_STEPS, arguments.results)
        return
    if arguments.dry_run:
        for job in jobs:
            print(f"{job.name}: {job.steps} steps")
        return
    work(jobs, arguments.results, arguments.checkpoints)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
