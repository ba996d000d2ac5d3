"""Growth under data parallelism: 2 CPU processes (gloo) launched with accelerate, as a user launches them."""

import json
import shutil
import socket
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, outputs, run_command, run_side_by_side, tiny_model, token_dataset

EXAMPLE = REPO_ROOT / "examples" / "run_clm_progressive.py"
ACCELERATE_CONFIG = REPO_ROOT / "examples" / "accelerate" / "ddp_2_processes.yaml"
RUN = [
    "--max_steps", "30", "--eval_steps", "15", "--logging_steps", "5", "--max_eval_samples", "16",
    "--vocab_size", "300", "--max_corpus_bytes", "200000", "--depth_schedule", "0@0,3@0.8",
    "--save_strategy", "steps", "--save_steps", "5", "--log_level_replica", "warning",
]  # fmt: skip
# Two processes of batch 4 see the same 8 sequences per step as one process of batch 8; only the order of float
# additions differs (the gradient all-reduce), so losses agree to float32 rounding.
ONE_VS_TWO_PROCESSES_RTOL = 1e-4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(command, cwd) -> str:
    result = run_command(command, cwd)
    return result.stdout + result.stderr


def two_processes(output_dir: Path, *extra: str) -> list[str]:
    """The example under ``accelerate launch`` with 2 processes of batch 4."""
    launcher = Path(sys.executable).parent / "accelerate"
    port = str(free_port())
    command = [str(launcher), "launch", "--config_file", str(ACCELERATE_CONFIG), "--main_process_port", port]
    return [*command, str(EXAMPLE), *RUN, "--per_device_train_batch_size", "4", "--output_dir", str(output_dir), *extra]


def launch_two_processes(output_dir: Path, *extra: str) -> str:
    return run(two_processes(output_dir, *extra), output_dir.parent)


def logged_losses(output_dir: Path) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    one, two = root / "one", root / "two"
    one_process = [sys.executable, str(EXAMPLE), *RUN, "--per_device_train_batch_size", "8", "--output_dir", str(one)]
    finished = run_side_by_side([one_process, two_processes(two)], root)
    _, output = outputs(finished)
    return one, two, output + finished[1].stderr


@pytest.mark.slow
def test_two_processes_grow_in_sync_and_match_one_process(runs):
    one, two, output = runs
    # ProgressiveTrainer's replica checks (they stop the run on a mismatch) ran and passed; the example shows their
    # lines at its default log level.
    assert "Step 25: the 36 new parameters received gradients, identical on all 2 processes." in output
    assert "All 40 parameters are identical on the 2 processes." in output
    assert "DDP all-reduces only the gradients of blocks in the stack" in output  # the reserve-aware hook is on
    assert "processes:             2, parameters verified identical on all of them" in output
    assert not (two / "_tokenizer").exists() and not (two / "tokenizer").exists()  # the hand-over folder is gone
    # The FLOPs on every log line (and the card's loss-vs-FLOPs plot) count both processes, as config.json does.
    for run in (one, two):
        logged = [
            e["flops"] for e in json.loads((run / "trainer_state.json").read_text())["log_history"] if "flops" in e
        ]
        recorded = json.loads((run / "config.json").read_text())["progressive"]["flops"]
        assert logged[-1] == pytest.approx(recorded, rel=1e-9)
    assert logged[-1] == pytest.approx(
        [e["flops"] for e in json.loads((one / "trainer_state.json").read_text())["log_history"] if "flops" in e][-1]
    )
    summary_one, summary_two = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert [g["step"] for g in summary_two["growth_history"]] == [24]
    expected = pytest.approx(summary_one["eval"]["eval_loss"], rel=ONE_VS_TWO_PROCESSES_RTOL)
    assert summary_two["eval"]["eval_loss"] == expected
    losses_one, losses_two = logged_losses(one), logged_losses(two)
    assert losses_two.keys() == losses_one.keys()
    assert all(losses_two[s] == pytest.approx(losses_one[s], rel=ONE_VS_TWO_PROCESSES_RTOL) for s in losses_one)
    # Saved once, by the main process, at every depth.
    assert json.loads((two / "checkpoint-20" / "config.json").read_text())["n_layer"] == 0
    assert json.loads((two / "checkpoint-25" / "config.json").read_text())["n_layer"] == 3
    assert {p.name for p in (two / "checkpoint-25").glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}


@pytest.mark.slow
@pytest.mark.parametrize("step", [20, 25])  # before and after growth at step 24
def test_two_processes_resume_at_any_depth(runs, tmp_path, step):
    _, two, _ = runs
    resumed = tmp_path / "resumed"
    shutil.copytree(two / f"checkpoint-{step}", resumed / f"checkpoint-{step}")
    launch_two_processes(resumed, "--resume_from_checkpoint", "last")
    expected, got = (json.loads((d / "summary.json").read_text()) for d in (two, resumed))
    assert got["eval"]["eval_loss"] == pytest.approx(expected["eval"]["eval_loss"], abs=1e-6)
    assert got["growth_history"] == expected["growth_history"]
    # The resumed run's log history starts with the checkpoint's; compare what it trained itself.
    after = {run: {s: loss for s, loss in logged_losses(run).items() if s > step} for run in (two, resumed)}
    assert after[resumed] == pytest.approx(after[two], abs=1e-6) and len(after[resumed]) == (30 - step) // 5


@pytest.mark.parametrize("backend", ["fsdp", "deepspeed"])
def test_sharded_backends_are_refused_before_training(tmp_path, monkeypatch, backend):
    # On CPU, transformers drops --fsdp silently and DeepSpeed is not installed: stand in for the state accelerate
    # reports when either is configured, which is what ProgressiveTrainer reads.
    from conftest import progressive_arguments
    from transformers import Trainer

    from hf_progressive import ProgressiveTrainer

    original = Trainer.create_accelerator_and_postprocess

    def with_sharding(self):
        original(self)
        setattr(self, f"is_{backend}_enabled", True)

    monkeypatch.setattr(Trainer, "create_accelerator_and_postprocess", with_sharding)
    name = {"fsdp": "FSDP", "deepspeed": "DeepSpeed"}[backend]
    message = f"Growing depth under {name} is not supported.*Run the progressive schedule under DDP"
    with pytest.raises(ValueError, match=message):
        ProgressiveTrainer(model=tiny_model(0), args=progressive_arguments(tmp_path), train_dataset=token_dataset())


def _compare_on_two_processes(rank: int, init_file: str, results: str) -> None:
    import torch
    import torch.distributed as dist

    from hf_progressive.distributed import mismatches_across_processes

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    same, drifted = torch.arange(6.0), torch.arange(6.0)
    if rank == 1:
        drifted[3] += 1e-6  # a divergence far below anything a loss would show
    gradient = None if rank == 1 else torch.ones(2)  # a gradient that did not arrive on one process
    bad = mismatches_across_processes(["same", "drifted", "gradient"], [same, drifted, gradient])
    Path(results, f"{rank}.json").write_text(json.dumps(bad))
    dist.destroy_process_group()


def test_replica_comparison_finds_any_difference_between_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_compare_on_two_processes, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    # Every process reaches the same verdict, so all of them stop together.
    assert [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)] == [["drifted", "gradient"]] * 2


def test_a_comm_hook_registered_before_ours_is_kept(tmp_path, caplog):
    """accelerate registers its own DDP hook when its config asks for gradient compression; DDP takes one."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import fp16_compress_hook
    from torch.nn.parallel import DistributedDataParallel

    from hf_progressive import reserve_blocks
    from hf_progressive.distributed import register_reserve_aware_comm_hook

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = tiny_model(0)
        reserve_blocks(model, final_depth=2)
        wrapped = DistributedDataParallel(model, find_unused_parameters=True)
        wrapped.register_comm_hook(state=None, hook=fp16_compress_hook)
        assert register_reserve_aware_comm_hook(wrapped, model) is False
        assert "DDP already has a communication hook" in caplog.text
    finally:
        dist.destroy_process_group()
