import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The Triton attention kernel runs on CPU tensors only in Triton's interpreter, which triton.jit reads when a kernel
# (Triton's own tl.zeros among them) is defined: set before anything imports triton (transformers may), so first.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
EXAMPLE = REPO_ROOT / "examples" / "run_clm_progressive.py"
#: Tests that read ../shared skip where it is missing (a user's clone), but fail under CI (CI=1), where a silent
#: skip would hide that they never ran. pytest lists every skip (-rs in pyproject.toml).
needs_shared = pytest.mark.skipif(
    not SHAKESPEARE.exists() and not os.environ.get("CI"), reason="needs ../shared/data/tinyshakespeare.txt"
)
VOCAB = 64


def run_command(command: list[str], cwd: Path, expect_rc: int = 0, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``command`` to its end and assert its exit status (:func:`assert_exit_status`)."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert_exit_status(result, expect_rc)
    return result


def assert_exit_status(result: subprocess.CompletedProcess, expect_rc: int = 0) -> None:
    """Assert a finished command's exit status, showing the tail of its output where it differs."""
    assert result.returncode == expect_rc, result.stdout[-3000:] + result.stderr[-3000:]


def run_side_by_side(commands: list[list[str]], cwd: Path, timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """Run independent commands at once, one torch thread each, and return their results in order.

    The end-to-end tests run small models whose steps cannot use two cores: one after another they leave a core
    idle for much of each run, side by side they share both. Output goes to files, not pipes, so that no process
    blocks on a full pipe while another is being waited for.
    """
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        started = []
        for number, command in enumerate(commands):
            # Kept open until the process is waited for and read back below.
            stdout = open(Path(scratch) / f"{number}.out", "w+")
            stderr = open(Path(scratch) / f"{number}.err", "w+")
            process = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=stderr, text=True, env=environment)
            started.append((command, process, stdout, stderr))
        results = []
        for command, process, stdout, stderr in started:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for _, other, _, _ in started:
                    other.kill()
                raise
            written = []
            for stream in (stdout, stderr):
                stream.seek(0)
                written.append(stream.read())
                stream.close()
            results.append(subprocess.CompletedProcess(command, process.returncode, *written))
    return results


def outputs(finished: list[subprocess.CompletedProcess]) -> list[str]:
    """The stdout of each of several commands run side by side, once every one has succeeded."""
    for result in finished:
        assert_exit_status(result)
    return [result.stdout for result in finished]


def tiny_config(n_layer: int = 0, **overrides) -> GPT2Config:
    settings = dict(
        n_layer=n_layer,
        n_embd=32,
        n_head=4,
        vocab_size=VOCAB,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    settings.update(overrides)
    return GPT2Config(**settings)


def tiny_model(n_layer: int = 0, seed: int = 0, **overrides) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(tiny_config(n_layer, **overrides)).eval()


def token_dataset(rows: int = 64, length: int = 16, seed: int = 0) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    # A learnable pattern (each token predicts the next) so losses move.
    starts = torch.randint(0, VOCAB, (rows, 1), generator=generator)
    ids = ((starts + torch.arange(length)) % VOCAB).tolist()
    return Dataset.from_dict({"input_ids": ids, "labels": ids})


def progressive_arguments(output_dir, **overrides):
    """ProgressiveTrainingArguments of a short, deterministic CPU run (0 -> 3 blocks at half of 12 steps)."""
    from hf_progressive import ProgressiveTrainingArguments

    settings = dict(
        output_dir=str(output_dir),
        max_steps=12,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        depth_schedule="0@0,3@0.5",
        lr_scheduler_type="warmup_stable_decay",
        warmup_steps=2,
        logging_steps=2,
        weight_decay=0.1,
        save_strategy="no",
        report_to="none",
        seed=0,
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(overrides)
    return ProgressiveTrainingArguments(**settings)


@functools.cache
def load_example():
    """The example script as a module (registered first: its dataclasses resolve their annotations through it)."""
    spec = importlib.util.spec_from_file_location("run_clm_progressive", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))
