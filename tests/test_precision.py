"""Precision and compilation across a growth step: bf16 autocast, gradient checkpointing and torch.compile give
the run the same growth and (up to their own rounding) the same losses as a plain fp32 run."""

import pytest
import torch
from conftest import progressive_arguments, tiny_model, token_dataset

from hf_progressive import ProgressiveTrainer, current_depth


def run(tmp_path, **overrides) -> tuple[ProgressiveTrainer, list[float]]:
    torch.manual_seed(0)
    model = tiny_model(0)
    args = progressive_arguments(tmp_path, max_steps=8, depth_schedule="0@0,3@0.5", logging_steps=1, **overrides)
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    trainer.train()
    assert current_depth(model) == 3 and [g["step"] for g in trainer.growth_history] == [4]
    return trainer, [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[float]:
    """The plain fp32 eager run's losses, which every variant here is compared with (trained once)."""
    return run(tmp_path_factory.mktemp("fp32"))[1]


def test_bf16_autocast_grows_and_trains_like_fp32(tmp_path, reference):
    trainer, losses = run(tmp_path / "bf16", bf16=True)
    assert trainer.accelerator.mixed_precision == "bf16"
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses == pytest.approx(reference, rel=2e-2)  # bf16 rounding, not another run
    assert losses[4:] != reference[4:]  # autocast really ran (bf16 matmuls round differently)


def test_gradient_checkpointing_covers_the_grown_blocks_and_changes_no_number(tmp_path, reference):
    trainer, losses = run(tmp_path / "checkpointed", gradient_checkpointing=True)
    blocks = trainer.model.transformer.h
    assert len(blocks) == 3 and all(block.gradient_checkpointing for block in blocks)  # grown blocks too
    assert losses == pytest.approx(reference, abs=1e-5)


@pytest.mark.slow
def test_torch_compile_recompiles_at_growth_and_matches_eager(tmp_path, reference):
    """A compiled model that kept running its 0-block graph after growth would log the shallow model's losses."""
    _, losses = run(tmp_path / "compiled", torch_compile=True)
    assert losses == pytest.approx(reference, abs=1e-4)
