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

Corpus: the Python standard library's source (10.7 MB on Python 3.11: code, docstrings and comments; on every
machine, offline), every 20th file held out; byte-level BPE tokenizers of each vocabulary trained on the training
files (257 = the 256 bytes and <|endoftext|>, no merges). ``--corpus stdlib_torch`` adds the installed torch's own
Python (about 40 MB of the pinned 2.13.0 wheel; its tests, vendored code and generated tables left out), for
horizons where the standard library runs out at large vocabularies; its cells are a map of their own (own
tokenizers, own losses), reported apart.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
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
from runs import RunSpec, Settings, StepTimer, build_trainer, train_one
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

    @property
    def name(self) -> str:
        norm = f"-{self.nsgd_norm}" if self.optim == "muon_nsgd" else ""
        lever = "" if self.lever == "none" else f"-{self.lever}"
        tau = "" if self.tau == TAU else f"-tau{self.tau:g}"
        corpus = corpus_mark(self.corpus, f"-{self.corpus}")
        return (
            f"{self.size}-v{self.vocab}-h{self.horizon:g}-{self.kind}-{self.optim}{norm}-lr{self.lr:g}"
            f"{lever}{tau}{corpus}-s{self.seed}"
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
        return max(50, round(tokens / (BATCH * CONTEXT)))

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
            batch=BATCH,
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
    train = RandomWindows(train_tokens, CONTEXT, settings.steps * BATCH, job.seed)
    finals = {
        "validation": Blocks(validation_tokens, CONTEXT, limit=FINAL_BLOCKS),
        "train": Blocks(train_tokens, CONTEXT, limit=FINAL_BLOCKS),
    }
    spec = RunSpec(job.kind, job.schedule(), init=job.init)
    output_dir = checkpoints / job.name
    if checkpoint := last_complete_checkpoint(output_dir):
        print(f"{job.name}: resuming from {checkpoint}", flush=True)
    result = train_one(
        spec, settings, job.vocab, train, Blocks(validation_tokens, CONTEXT, CURVE_BLOCKS), str(output_dir), finals
    )
    config = job.config()
    result.update(
        job=asdict(job),
        full_steps=job.full_steps,
        tokens=settings.steps * BATCH * CONTEXT,
        non_embedding_parameters=flops.non_embedding_parameters(config, job.depth),
        embedding_parameters=flops.embedding_parameters(config),
        train_tokens_available=len(train_tokens),
        corpus_bytes=CORPUS_BYTES,
        epochs=settings.steps * BATCH * CONTEXT / len(train_tokens),
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


def claim(path: Path) -> bool:
    """Take the lock of one run (a file holding our pid); a lock whose process is gone is taken over."""
    lock = path.with_suffix(".lock")
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text() or "0"), 0)
            return False
        except (ProcessLookupError, ValueError):
            lock.unlink(missing_ok=True)
            return claim(path)
        except PermissionError:
            return False
    os.write(descriptor, str(os.getpid()).encode())
    os.close(descriptor)
    return True


def work(jobs: list[Job], results: Path, checkpoints: Path = CHECKPOINTS) -> None:
    results.mkdir(parents=True, exist_ok=True)
    for number, job in enumerate(jobs, 1):
        path = results / f"{job.name}.json"
        if path.exists() or not claim(path):
            continue
        started = time.time()
        try:
            result = run_job(job, checkpoints)
            scratch = path.with_suffix(".tmp")
            scratch.write_text(json.dumps(result, indent=1))
            os.replace(scratch, path)
            shutil.rmtree(checkpoints / job.name, ignore_errors=True)  # only once its result is safely written
        finally:
            path.with_suffix(".lock").unlink(missing_ok=True)
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
    data = RandomWindows(train_tokens, CONTEXT, settings.steps * BATCH, job.seed)
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


# ----------------------------------------------------------------------------------------------- the report


def load(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.stem != "summary"}


def cells(runs: dict[str, dict], timings: dict[tuple, dict] | None = None) -> list[dict]:
    """One row per (size, vocabulary, horizon, optimizer, seed): gaps of each source against each reference.

    Time ratios come from ``timings`` (interleaved step times, --timing) where the cell's size, vocabulary and
    optimizer were timed (``time_measured``), else from the runs' own training seconds (workers sharing cores)."""
    by_cell: dict[tuple, dict[str, dict]] = {}
    for run in runs.values():
        job = run["job"]
        if not _is_plain(job) or job["kind"] not in KINDS:
            continue  # levers, other growth steps and k-layer sources have tables of their own
        by_cell.setdefault(_cell_key(job), {})[job["kind"]] = run
    rows = []
    for (size, vocab, horizon, optim, lr, norm, seed, corpus), kinds in sorted(by_cell.items()):
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
        key = tuple(row[k] for k in ("size", "vocab", "horizon", "optim", "lr", "nsgd_norm", "corpus"))
        groups.setdefault(key, []).append(row)
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
        merged.append(row)
    return merged


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
    """The row's seeds, and each source's own where a source was measured on fewer (e.g. "2 (1→L copy: 1)")."""
    seeds = row.get("seeds", 1)
    fewer = [
        f"{SOURCE_NAMES[source]}: {row[f'{source}_seeds']}"
        for source in SOURCE_NAMES
        if 0 < row.get(f"{source}_seeds", seeds) < seeds
    ]
    return f"{seeds} ({', '.join(fewer)})" if fewer else str(seeds)


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
        fitted = trends([r for r in mine if _is_main_optimizer(r)])
        if fitted:
            parts.append(trends_table(fitted))
    return "\n\n".join(parts)


#: What the package's advice reads of a cell (hf_progressive.advice), besides its size and place on the map.
ADVICE_FIELDS = ("size", "vocab", "horizon", "embedding_share", "seeds", "fixed") + tuple(
    f"{s}_{k}" for s in SOURCE_NAMES for k in ("gap_fixed", "gap_equal", "gap_control", "flops_ratio")
)


def advice_cells(rows: list[dict]) -> list[dict]:
    """One row per (size, vocabulary, horizon) for the package's growth map, from the Muon-NSGD rows (averaged over
    seeds) of every corpus: the most complete measurement, and of those the one that read its data fewest times.

    Users pretrain on about one pass of their data, and a cell that repeats a small corpus (8k at 300 tokens/param
    reads the standard library 6 times) measures a data-limited run instead; gaps are relative, so a cell of the
    larger corpus stands in for it (each entry names its corpus and passes)."""

    def rank(row: dict) -> tuple[int, float]:
        return sum(row.get(name) is None for name in ADVICE_FIELDS), row["epochs"]

    chosen: dict[tuple, dict] = {}
    for row in rows:
        key = (row["size"], row["vocab"], row["horizon"])
        if row.get("zero_gap_fixed") is not None and (key not in chosen or rank(row) < rank(chosen[key])):
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


def variants_table(runs: dict[str, dict]) -> str:
    """Levers, other growth steps and k-layer sources, each against the plain run and the fixed run of its cell."""
    plain: dict[tuple, dict] = {}
    for run in runs.values():
        job = run["job"]
        if _is_plain(job):
            plain[_cell_key(job) + (job["kind"],)] = run
    lines = [
        "| cell | run | lever | τ | final val loss (train) | gap vs fixed | plain run's gap | FLOPs ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def order(run: dict) -> tuple:
        return _cell_key(run["job"]) + (run["job"]["kind"], run["job"].get("lever", "none"), run["job"].get("tau", TAU))

    for run in sorted(runs.values(), key=order):
        job = run["job"]
        lever, tau = job.get("lever", "none"), job.get("tau", TAU)
        fixed = plain.get(_cell_key(job) + ("fixed",))
        growing = job["kind"] in SOURCE_NAMES or job["kind"].startswith("from")
        if fixed is None or not growing or (lever == "none" and tau == TAU and job["kind"] in SOURCE_NAMES):
            continue
        base = plain.get(_cell_key(job) + (job["kind"],))
        loss, reference = run["final_losses"]["validation"], fixed["final_losses"]["validation"]
        plain_gap = percent(base["final_losses"]["validation"] / reference - 1) if base and base is not run else "—"
        corpus = corpus_mark(_corpus(job), f" {_corpus(job)}")
        seed = f" s{job['seed']}" if job["seed"] else ""  # another seed of a lever: a row of its own
        lines.append(
            f"| {job['size']} v{job['vocab']} h{job['horizon']:g}{corpus}{seed} | {job['kind']} | {lever} | {tau:g} | "
            f"{loss:.4f} ({run['final_losses']['train']:.4f}) | {percent(loss / reference - 1)} | {plain_gap} | "
            f"{run['ratios']['forward_flops']:.2f} |"
        )
    return "\n".join(lines)


def _is_plain(job: dict) -> bool:
    """A run of the paper's recipe: no lever, growth at 0.8T (results written before levers existed count too)."""
    return job.get("lever", "none") == "none" and job.get("tau", TAU) == TAU


def _cell_key(job: dict) -> tuple:
    return (
        job["size"],
        job["vocab"],
        job["horizon"],
        job["optim"],
        job["lr"],
        job["nsgd_norm"],
        job["seed"],
        _corpus(job),
    )


def corpus_mark(corpus: str, text: str) -> str:
    """``text`` for a corpus other than the map's own, nothing for the standard library: names, rows and titles of
    the map's cells stay as they were before the corpus was a choice."""
    return "" if corpus == DEFAULT_CORPUS else text


def corpus_label(corpus: str) -> str:
    """What a corpus reads, for tables and figures: "stdlib + torch"."""
    return " + ".join(CORPORA[corpus])


def _corpus(job: dict) -> str:
    return job.get("corpus", DEFAULT_CORPUS)  # runs written before the corpus was a choice: the standard library


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
        if (*(run["job"][k] for k in ("size", "vocab", "horizon", "seed")), _corpus(run["job"])) == cell
        and _is_main_optimizer(run["job"])
        and _is_plain(run["job"])
    ]


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


def _is_main_optimizer(job: dict) -> bool:
    """The map's optimizer: Muon-NSGD, row norm, lr 0.02."""
    return job["optim"] == "muon_nsgd" and job["nsgd_norm"] == "row" and job["lr"] == 0.02


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
    main_optimizer = averaged([r for r in all_rows if _is_main_optimizer(r)])  # every corpus: the advice reads them
    muon = [r for r in main_optimizer if r["corpus"] == DEFAULT_CORPUS]
    other = averaged([r for r in rows if not _is_main_optimizer(r)])
    # Optimizer settings tried at fixed depth only (learning-rate sweeps) get a table of their own.
    fixed_only = [r for r in other if r.get("zero") is None and r.get("one") is None]
    swept = {(r["size"], r["vocab"], r["horizon"], r["optim"]) for r in fixed_only}
    sweep = [r for r in other if (r["size"], r["vocab"], r["horizon"], r["optim"]) in swept]
    other = [r for r in other if r not in fixed_only]
    # Each table is built once: summary.md and the README's marked blocks show the same text.
    blocks = {
        "map": table(muon),
        "trends": trends_table(trends(muon)),
        "other": table(other),
        "levers": variants_table(all_runs),
    }
    if sweep:
        blocks["sweep"] = sweep_table(sweep, muon)
    larger = [r for r in all_rows if r["corpus"] != DEFAULT_CORPUS]
    blocks["corpora"] = corpora_tables(larger) if larger else "No cell has run on another corpus yet."
    text = "## Muon-NSGD (row norm), lr 0.02\n\n" + blocks["map"]
    text += "\n\n## Trends: where the gap would reach 1% and 0.5%\n\n" + blocks["trends"]
    if other:
        text += "\n\n## Other optimizers\n\n" + blocks["other"]
    if sweep:
        text += "\n\n## Fixed depth only (learning-rate sweeps)\n\n" + blocks["sweep"]
    if larger:
        text += "\n\n## Other corpora\n\n" + blocks["corpora"]
    text += "\n\n## Levers, growth steps and k-layer sources\n\n" + blocks["levers"]
    if readme is not None:
        update_readme(readme, blocks)
    print(text)
    (results / "summary.md").write_text(text + "\n")
    (results / "summary.json").write_text(json.dumps({"muon_nsgd_row": muon, "other": other}, indent=1))
    plot_gaps(muon, results / "gaps.png")
    for corpus in sorted({r["corpus"] for r in main_optimizer} - {DEFAULT_CORPUS}):  # a figure per corpus, as a table
        plot_gaps([r for r in main_optimizer if r["corpus"] == corpus], results / f"gaps-{corpus}.png", corpus)
    for cell in curves:
        plot_curves(all_runs, cell, results / cell_figure_name("curves", cell))
        plot_pareto(all_runs, cell, results / cell_figure_name("pareto", cell))
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
    # Only the committed map feeds the package; a map elsewhere (tests, experiments) keeps its table beside it.
    growth_map = GROWTH_MAP if results.resolve() == RESULTS.resolve() else results / GROWTH_MAP.name
    growth_map.write_text(json.dumps({"source": "benchmarks/horizon.py --report", "cells": entries}, indent=1) + "\n")
    print(f"\nwrote {results / 'summary.md'}, gaps.png, curve plots and {growth_map}")


def _non_embedding(row: dict) -> int:
    job = Job(row["size"], row["vocab"], row["horizon"], "fixed")
    return flops.non_embedding_parameters(job.config(), job.depth)


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
        report(arguments.results, curves, arguments.readme)
        return
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
