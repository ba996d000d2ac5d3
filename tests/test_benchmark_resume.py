"""A benchmark run cut off resumes from its newest checkpoint and ends exactly where an uninterrupted run does
(benchmarks/runs.py; the growth map's long runs span several sessions this way)."""

import argparse
import inspect
import json
import sys
import time

import pytest
import torch
from conftest import REPO_ROOT
from transformers import TrainerCallback

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from runs import RunSpec, Settings, train_one  # noqa: E402  (scripts beside the package)
from shakespeare import Blocks, RandomWindows  # noqa: E402

STEPS, SAVE_STEPS, CUT_AT = 40, 10, 25


class CutOff(TrainerCallback):
    """Stands for the end of a session: the process dies between two checkpoints."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == CUT_AT:
            raise KeyboardInterrupt


class StepCount(TrainerCallback):
    """The steps this process trains, and their seconds."""

    def __init__(self):
        self.steps, self.seconds = 0, 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1
        self.seconds += time.perf_counter() - self._start


def one_run(output_dir, callbacks=()):
    tokens = torch.tensor(list(inspect.getsource(argparse).encode()))  # real text on every machine: bytes
    settings = Settings(
        steps=STEPS, width=32, heads=2, depth=3, context=32, batch=4, optim="muon_nsgd", lr=0.02, nsgd_norm="row",
        evaluations=4, save_steps=SAVE_STEPS,
    )  # fmt: skip
    # Growth at 0.4T = step 16: the checkpoint resumed from (step 20) holds the grown model and its optimizer state.
    spec = RunSpec("one", "1@0,3@0.4", init="copy")
    train = RandomWindows(tokens[:-4096], 32, STEPS * 4, seed=0)
    validation = Blocks(tokens[-4096:], 32)
    return train_one(spec, settings, 256, train, validation, str(output_dir), {"validation": validation}, callbacks)


def test_a_run_cut_off_resumes_from_its_last_checkpoint_to_the_uninterrupted_result(tmp_path):
    whole = one_run(tmp_path / "whole")
    assert whole["resumed_from_step"] is None

    with pytest.raises(KeyboardInterrupt):
        one_run(tmp_path / "cut", [CutOff()])
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["checkpoint-20"]  # the newest one only
    seconds_before = json.loads((tmp_path / "cut" / "checkpoint-20" / "training_clock.json").read_text())["seconds"]
    after = StepCount()
    resumed = one_run(tmp_path / "cut", [after])

    assert resumed["resumed_from_step"] == 20 and after.steps == STEPS - 20  # not trained again from the start
    assert resumed["growth"] == whole["growth"] and whole["growth"][0]["step"] == 16
    assert resumed["final_losses"]["validation"] == pytest.approx(whole["final_losses"]["validation"], rel=1e-6)
    assert resumed["eval_curve"].keys() == whole["eval_curve"].keys()  # the curve before the cut comes back too
    for step, loss in whole["eval_curve"].items():
        assert resumed["eval_curve"][step] == pytest.approx(loss, rel=1e-6)
    assert resumed["train_curve"] == pytest.approx(whole["train_curve"], rel=1e-6)
    # The training seconds carry over: those up to the checkpoint plus those of the steps after it.
    assert seconds_before > 0
    assert resumed["train_seconds"] == pytest.approx(seconds_before + after.seconds, rel=0.05)
