"""The hf-progressive command line: inspect a checkpoint's growth, grow one offline."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import progressive_arguments, token_dataset
from transformers import AutoModelForCausalLM

from hf_progressive import ProgressiveTrainer
from hf_progressive.adapters.hf_decoder import example_decoder
from hf_progressive.cli import main


@pytest.fixture(scope="module")
def grown_llama(tmp_path_factory) -> Path:
    """A Llama grown 1 -> 3 blocks by ProgressiveTrainer and saved."""
    folder = tmp_path_factory.mktemp("grown")
    args = progressive_arguments(folder, depth_schedule="1@0,3@0.5", growth_init="copy", max_steps=6)
    trainer = ProgressiveTrainer(model=example_decoder("llama", 1), args=args, train_dataset=token_dataset())
    trainer.train()
    trainer.save_model()
    return folder


def test_inspect_prints_depth_plan_lineage_and_compute(grown_llama, capsys):
    assert main(["inspect", str(grown_llama)]) == 0
    printed = capsys.readouterr().out
    assert f"{grown_llama}: Llama (LlamaForCausalLM), 3 blocks" in printed
    assert "depth_schedule 1@0,3@0.5, growth_init copy, target depth 3" in printed
    assert "lineage: 1 -> 3 (copy, step 3)" in printed
    assert "training FLOPs:" in printed and "saved against the run's target depth throughout" in printed


def test_grow_offline_is_function_preserving_with_llama_pro_and_records_the_lineage(grown_llama, tmp_path, capsys):
    before = AutoModelForCausalLM.from_pretrained(grown_llama).eval()
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    out = tmp_path / "five"
    assert main(["grow", str(grown_llama), "--to", "5", "--init", "llama_pro", "--out", str(out)]) == 0
    assert "from 3 to 5 blocks (init=llama_pro; new blocks at [2, 4])" in capsys.readouterr().out
    grown = AutoModelForCausalLM.from_pretrained(out).eval()
    assert grown.config.num_hidden_layers == 5
    assert torch.allclose(grown(ids).logits, before(ids).logits, atol=1e-5)
    history = json.loads((out / "config.json").read_text())["progressive"]["growth_history"]
    assert [(e["step"], e["from_depth"], e["to_depth"], e["init"]) for e in history] == [
        (3, 1, 3, "copy"),
        (None, 3, 5, "llama_pro"),
    ]
    assert json.loads((out / "config.json").read_text())["progressive"]["target_n_layer"] == 5
    assert main(["inspect", str(out)]) == 0
    assert "lineage: 1 -> 3 (copy, step 3) -> 5 (llama_pro, offline)" in capsys.readouterr().out

    from hf_progressive import write_model_card

    card = write_model_card(tmp_path / "card", grown, model_name="five").read_text()
    assert "at step 3, offline" in card and "| offline (`hf-progressive grow`) | 3 | 5 | llama_pro |" in card


def test_bad_input_fails_naming_it_and_writes_nothing(grown_llama, tmp_path, capsys):
    weights = (grown_llama / "model.safetensors").read_bytes()
    (tmp_path / "taken").mkdir()
    shutil.copy(grown_llama / "config.json", tmp_path / "taken" / "config.json")
    cases = [
        (["grow", str(grown_llama), "--to", "5", "--out", str(grown_llama)], "the folder the run loads its model from"),
        (["grow", str(grown_llama), "--to", "5", "--out", str(tmp_path / "taken")], "already holds a model"),
        (["grow", str(grown_llama), "--to", "3", "--out", str(tmp_path / "a")], "--to 3 is not above the depth"),
        (["grow", str(grown_llama), "--to", "5", "--init", "clone", "--out", str(tmp_path / "b")], "'clone'"),
        (["grow", str(tmp_path), "--to", "5", "--out", str(tmp_path / "c")], "holds no config.json"),
        (["inspect", str(tmp_path / "missing")], "no such folder (and not a Hub model id)"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        error = capsys.readouterr().err
        assert error.startswith(f"hf-progressive {argv[0]}: error:") and message in error, error
    assert (grown_llama / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["config.json"]


def test_the_console_script_is_installed(grown_llama):
    script = Path(sys.executable).parent / "hf-progressive"
    result = subprocess.run([str(script), "inspect", str(grown_llama)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "3 blocks" in result.stdout, result.stderr


@pytest.mark.slow
def test_train_runs_the_example_script_with_its_flags(tmp_path):
    script = Path(sys.executable).parent / "hf-progressive"
    out = tmp_path / "out"
    quick = ["--max_steps", "10", "--eval_steps", "5", "--per_device_train_batch_size", "4", "--max_eval_samples", "8"]
    flags = [*quick, "--vocab_size", "300", "--max_corpus_bytes", "100000", "--model_type", "qwen3"]
    result = subprocess.run(
        [str(script), "train", *flags, "--depth_schedule", "1@0,2@0.5", "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "growth at step 5: 1 -> 2 blocks" in result.stdout
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen3"
    refused = subprocess.run(
        [str(script), "train", "--model_type", "bert"], capture_output=True, text=True, cwd=tmp_path
    )
    assert refused.returncode == 2 and "invalid choice: 'bert'" in refused.stderr
