"""End-to-end runs of examples/run_clm_progressive.py as a user runs it (slow: tens of seconds each)."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, SHAKESPEARE

EXAMPLE = REPO_ROOT / "examples" / "run_clm_progressive.py"
QUICK = [
    "--max_steps",
    "30",
    "--eval_steps",
    "15",
    "--logging_steps",
    "5",
    "--per_device_train_batch_size",
    "8",
    "--max_eval_samples",
    "16",
    "--vocab_size",
    "300",
    "--depth_schedule",
    "0@0,3@0.8",
]


def run(command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def check_output(output_dir, stdout, depth):
    summary = json.loads((output_dir / "summary.json").read_text())
    assert [g["step"] for g in summary["growth_history"]] == [24]  # 0.8 * 30
    assert summary["eval"]["eval_loss"] > 0 and 0 < summary["train"]["compute_saved"] < 1
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["n_layer"] == depth and config["progressive"]["growth_history"][0]["to_depth"] == depth
    assert (output_dir / "loss.png").stat().st_size > 10_000
    assert (output_dir / "tokenizer.json").exists()
    assert "final validation loss:" in stdout and "growth at step 24: 0 -> 3 blocks" in stdout
    assert "compute saved vs fixed depth" in stdout


@pytest.mark.slow
def test_embedded_default_corpus(tmp_path):
    output_dir = tmp_path / "out"
    stdout = run(
        [sys.executable, str(EXAMPLE), *QUICK, "--max_corpus_bytes", "400000", "--output_dir", str(output_dir)],
        cwd=tmp_path,
    )
    check_output(output_dir, stdout, depth=3)


@pytest.mark.slow
@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="needs ../shared/data/tinyshakespeare.txt")
def test_user_text_file_under_accelerate_launch(tmp_path):
    launcher = shutil.which("accelerate", path=str(REPO_ROOT.parent)) or shutil.which("accelerate")
    assert launcher is not None, "accelerate's launcher is installed with the package"
    output_dir = tmp_path / "out"
    stdout = run(
        [
            launcher,
            "launch",
            "--num_processes",
            "1",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(EXAMPLE),
            *QUICK,
            "--train_file",
            str(SHAKESPEARE),
            "--output_dir",
            str(output_dir),
        ],
        cwd=tmp_path,
    )
    check_output(output_dir, stdout, depth=3)
