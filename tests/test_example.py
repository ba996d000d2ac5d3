"""End-to-end runs of examples/run_clm_progressive.py as a user runs it (slow: tens of seconds each)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, SHAKESPEARE, needs_shared, outputs, run_command, run_side_by_side

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
]
GROW = ["--depth_schedule", "0@0,3@0.8"]


def run(command, cwd, expect_rc=0, both=False):
    result = run_command(command, cwd, expect_rc)
    return result.stdout + result.stderr if both else result.stdout


def check_output(output_dir, stdout, depth, source=0):
    summary = json.loads((output_dir / "summary.json").read_text())
    assert [g["step"] for g in summary["growth_history"]] == [24]  # 0.8 * 30
    assert summary["eval"]["eval_loss"] > 0 and 0 < summary["train"]["compute_saved"] < 1
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["n_layer"] == depth and config["progressive"]["growth_history"][0]["to_depth"] == depth
    assert (output_dir / "training_curves.png").stat().st_size > 10_000
    assert "(training_curves.png)" in (output_dir / "README.md").read_text()  # the model card shows it
    assert (output_dir / "tokenizer.json").exists() and not (output_dir / "tokenizer").exists()
    assert "final validation loss:" in stdout and f"growth at step 24: {source} -> {depth} blocks" in stdout
    assert "compute saved vs fixed depth" in stdout
    # What the growth map expects of this (far too short) run, and a warning before training that growth loses here.
    assert "what the growth map expects against fixed depth" in stdout and "Growth map:" in stdout
    assert summary["growth_outlook"]["tokens_per_parameter"] > 0
    # The derived gap against a fixed run of this run's own FLOPs is kept, not dropped with the properties.
    assert all(o["gap_equal_flops"] is not None for o in summary["growth_outlook"]["outlooks"])
    if source == 0:  # the map expects 0 -> L to lose to a fixed run of equal FLOPs, and says so before training
        assert "the growth map expects this schedule" in stdout and "grow from 1 block(s) instead" in stdout


def check_generation_stays_in_context(output_dir):
    """The saved tokenizer and generation config know the model's context: a pipeline stops there by default,
    keeps the end of a long prompt, and refuses clearly (not IndexError) to generate past the context."""
    from transformers import pipeline

    config = json.loads((output_dir / "config.json").read_text())
    context = config["n_positions"]
    assert json.loads((output_dir / "tokenizer_config.json").read_text())["model_max_length"] == context
    assert json.loads((output_dir / "generation_config.json").read_text())["max_length"] == context
    generator = pipeline("text-generation", model=str(output_dir))
    ids = generator.tokenizer("def main(")["input_ids"]
    default = generator("def main(", do_sample=False, return_tensors=True)[0]["generated_token_ids"]
    assert len(ids) < len(default) <= context
    long_prompt = "import os\n" * 200  # far beyond the context
    kept = generator(long_prompt, max_new_tokens=8, do_sample=False, handle_long_generation="hole")
    assert kept[0]["generated_text"].startswith(long_prompt)
    with pytest.raises(ValueError, match="exceeds the models max length"):
        generator("def main(", max_new_tokens=context + 72, handle_long_generation="hole")


@pytest.mark.slow
def test_embedded_default_corpus_then_keep_growing(tmp_path):
    output_dir = tmp_path / "out"
    common = [sys.executable, str(EXAMPLE), *QUICK, "--max_corpus_bytes", "400000"]
    # A fixed-depth reference of the same configuration with fewer steps, stored as README's demo reference is.
    reference = tmp_path / "reference.json"
    fixed = ["--depth_schedule", "6@0", "--max_steps", "12", "--write_fixed_reference", str(reference)]
    run([*common, *fixed, "--output_dir", str(tmp_path / "fixed")], cwd=tmp_path)
    stored = json.loads(reference.read_text())
    assert stored["max_steps"] == 12 and stored["fingerprint"]["target_depth"] == 6 and stored["eval_loss"] > 0

    # The default schedule, 1@0,6@0.8 with copy, compared with the reference; beside it, another configuration (here
    # another seed), which is not compared with it.
    other = [*common, "--output_dir", str(tmp_path / "other"), "--fixed_reference", str(reference), "--seed", "1"]
    stdout, other = outputs(
        run_side_by_side(
            [[*common, "--output_dir", str(output_dir), "--fixed_reference", str(reference)], other], tmp_path
        )
    )
    check_output(output_dir, stdout, depth=6, source=1)
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["growth_history"][0]["init"] == "copy"
    assert "fixed-depth reference: 6 blocks for 12 steps" in stdout and "at equal compute" in stdout
    assert summary["fixed_reference"].startswith("fixed-depth reference")
    assert "fixed-depth reference:" not in other
    check_generation_stays_in_context(output_dir)

    # Side by side: the same command again would replace this model: refused, with what to do instead, and the model
    # untouched; keeping growing the grown checkpoint into its own folder is refused too; into another folder, as the
    # README shows, it grows 6 -> 8 blocks.
    before = (output_dir / "model.safetensors").read_bytes()
    deeper = tmp_path / "deeper"
    continued = ["--model_name_or_path", str(output_dir), "--depth_schedule", "6@0,8@0.5", "--max_steps", "10"]
    refused, into_itself, grown = run_side_by_side(
        [
            [*common, "--output_dir", str(output_dir)],
            [*common, *continued, "--output_dir", str(output_dir), "--overwrite_output_dir"],
            [*common, *continued, "--output_dir", str(deeper)],
        ],
        tmp_path,
    )
    assert (refused.returncode, into_itself.returncode) == (1, 1), refused.stderr[-2000:] + into_itself.stderr[-2000:]
    refused, into_itself = (result.stdout + result.stderr for result in (refused, into_itself))
    assert "already holds a model or results" in refused and "--overwrite_output_dir" in refused
    assert (output_dir / "model.safetensors").read_bytes() == before
    assert "would replace the source model" in into_itself
    (stdout,) = outputs([grown])
    config = json.loads((deeper / "config.json").read_text())
    assert config["n_layer"] == 8
    assert [(g["from_depth"], g["to_depth"]) for g in config["progressive"]["growth_history"]] == [(1, 6), (6, 8)]
    assert "growth at step 5: 6 -> 8 blocks" in stdout

    # Fine-tuning the grown checkpoint without a schedule trains it at its depth and keeps its lineage.
    tuned = tmp_path / "tuned"
    run([*common, "--model_name_or_path", str(deeper), "--max_steps", "4", "--output_dir", str(tuned)], cwd=tmp_path)
    config = json.loads((tuned / "config.json").read_text())
    assert config["n_layer"] == 8 and len(config["progressive"]["growth_history"]) == 2


@pytest.mark.slow
@needs_shared
def test_user_text_files_under_accelerate_launch(tmp_path):
    launcher = Path(sys.executable).parent / "accelerate"
    assert launcher.exists(), "accelerate's launcher is installed beside the Python that runs the tests"
    # A copy split in two at test time, to pass --validation_file as a user would.
    lines = SHAKESPEARE.read_text().splitlines(keepends=True)
    cut = len(lines) * 9 // 10
    (tmp_path / "train.txt").write_text("".join(lines[:cut]))
    (tmp_path / "valid.txt").write_text("".join(lines[cut:]))
    output_dir = tmp_path / "out"
    launch = [
        str(launcher),
        "launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    files = ["--train_file", str(tmp_path / "train.txt"), "--validation_file", str(tmp_path / "valid.txt")]
    stdout = run([*launch, str(EXAMPLE), *QUICK, *GROW, *files, "--output_dir", str(output_dir)], cwd=tmp_path)
    check_output(output_dir, stdout, depth=3)


@pytest.mark.slow
def test_resume_from_the_last_checkpoint_matches_the_uninterrupted_run(tmp_path):
    common = [sys.executable, str(EXAMPLE), *QUICK, *GROW, "--max_corpus_bytes", "200000", "--save_strategy", "steps"]
    full = tmp_path / "full"
    run([*common, "--save_steps", "10", "--output_dir", str(full)], cwd=tmp_path)

    # A run that died after its checkpoint at step 20 (before growth at 24): only that checkpoint is left.
    interrupted = tmp_path / "interrupted"
    shutil.copytree(full / "checkpoint-20", interrupted / "checkpoint-20")
    output = run(
        [*common, "--save_steps", "10", "--output_dir", str(interrupted), "--resume_from_checkpoint", "last"],
        cwd=tmp_path,
        both=True,
    )
    check_output(interrupted, output, depth=3)
    assert f"Resuming from {interrupted / 'checkpoint-20'} (step 20)." in output
    assert "missing keys" not in output  # lm_head.weight is tied to wte, saved once: not missing
    expected = json.loads((full / "summary.json").read_text())
    resumed = json.loads((interrupted / "summary.json").read_text())
    assert resumed["eval"]["eval_loss"] == pytest.approx(expected["eval"]["eval_loss"], abs=1e-6)
    assert resumed["growth_history"] == expected["growth_history"]

    card = (interrupted / "README.md").read_text()
    assert "progressive-training" in card and "training_curves.png" in card
    # The embedded corpus is not a Hub dataset: named in the text, not in `datasets:` (the Hub would refuse it).
    assert "Training data: `the Python standard library's source`" in card and "\ndatasets:" not in card
    assert "Final validation loss" in card


RELOAD_AND_GENERATE = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tokenizer("def main(", return_tensors="pt").input_ids
cached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True)
uncached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)
assert torch.equal(cached, uncached) and cached.shape[1] == ids.shape[1] + 6
assert not any(name.startswith("hf_progressive") for name in sys.modules)
print(type(model).__name__, model.config.num_hidden_layers)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_type, flags, checked",
    [
        ("llama", ["--n_kv_head", "2"], {"num_key_value_heads": 2, "intermediate_size": 352}),
        ("mixtral", ["--config_overrides", "num_local_experts=4,num_experts_per_tok=2"], {"num_local_experts": 4}),
        ("gpt_neox", [], {"intermediate_size": 512}),
    ],
)
def test_other_decoder_families_grow_through_the_example(tmp_path, model_type, flags, checked):
    output_dir = tmp_path / "out"
    common = [sys.executable, str(EXAMPLE), *QUICK, "--max_corpus_bytes", "200000", "--model_type", model_type]
    stdout = run([*common, *GROW, *flags, "--output_dir", str(output_dir)], cwd=tmp_path)
    assert "growth at step 24: 0 -> 3 blocks" in stdout and "final depth:           3 blocks" in stdout
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == model_type and config["num_hidden_layers"] == 3
    assert {name: config[name] for name in checked} == checked
    assert config["progressive"]["depth_schedule"] == "0@0,3@0.8"
    assert [(g["from_depth"], g["to_depth"]) for g in config["progressive"]["growth_history"]] == [(0, 3)]
    reloaded = run_command([sys.executable, "-c", RELOAD_AND_GENERATE, str(output_dir)], tmp_path, timeout=300)
    assert reloaded.stdout.split() == [config["architectures"][0], "3"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--config_overrides", "num_hidden_layers=8"], "sets num_hidden_layers: the depth of a new model comes from"),
        (["--config_overrides", "num_experts=4"], "--config_overrides 'num_experts=4': key num_experts isn't in"),
        (["--model_type", "gpt_neox", "--n_kv_head", "2"], "--n_kv_head 2: GPT-NeoX has no grouped-query attention"),
    ],
)
def test_a_bad_model_flag_fails_before_training_naming_it(tmp_path, flags, message):
    flags = ["--model_type", "llama", *flags] if "--model_type" not in flags else flags
    command = [sys.executable, str(EXAMPLE), *QUICK, "--max_corpus_bytes", "50000", *flags]
    output = run([*command, "--output_dir", str(tmp_path / "out")], cwd=tmp_path, expect_rc=1, both=True)
    assert message in output and "'loss'" not in output
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.slow
def test_run_clm_flags_dataset_name_sample_caps_and_eval_only(tmp_path):
    """--dataset_name (a local dataset folder, offline), --max_train_samples, then --do_eval alone on the result:
    evaluated, not trained, as with transformers' run_clm.py."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    rows = [{"content": f"def f{i}(x):\n    return x * {i} + {i % 7}\n"} for i in range(400)]
    for split, part in (("train", rows[:360]), ("validation", rows[360:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in part))
    common = [sys.executable, str(EXAMPLE), *QUICK, "--block_size", "32"]
    trained = tmp_path / "trained"
    data = ["--dataset_name", str(folder), "--text_column", "content", "--max_train_samples", "20"]
    stdout = run([*common, *GROW, *data, "--output_dir", str(trained)], cwd=tmp_path)
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["train"]["train_samples"] == 20 and "growth at step 24: 0 -> 3 blocks" in stdout
    assert summary["eval"]["eval_samples"] == 16  # --max_eval_samples of QUICK

    evaluated = tmp_path / "evaluated"
    only_eval = ["--model_name_or_path", str(trained), "--dataset_name", str(folder), "--text_column", "content"]
    stdout = run([*common, *only_eval, "--do_eval", "--output_dir", str(evaluated)], cwd=tmp_path)
    assert "final validation loss:" in stdout and "growth at step" not in stdout and "'loss'" not in stdout
    assert (evaluated / "eval_results.json").is_file() and not (evaluated / "train_results.json").exists()
    assert not (evaluated / "model.safetensors").exists()
    assert json.loads((evaluated / "summary.json").read_text())["eval"]["eval_loss"] > 0


@pytest.mark.slow
def test_streaming_a_dataset_folder_trains_and_grows(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    rows = [{"text": f"def f{i}(x):\n    return x * {i} + {i % 7}\n"} for i in range(400)]
    for split, part in (("train", rows[:360]), ("validation", rows[360:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in part))
    out = tmp_path / "out"
    command = [sys.executable, str(EXAMPLE), *QUICK, *GROW, "--block_size", "32", "--dataset_name", str(folder)]
    stdout = run([*command, "--streaming", "--output_dir", str(out)], cwd=tmp_path)
    assert "growth at step 24: 0 -> 3 blocks" in stdout and "final validation loss:" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval"]["eval_samples"] == 16 and "train_samples" not in summary["train"]
    # The embedded corpus is not a stream; a file stream needs a validation file: refused before training.
    refused = run([sys.executable, str(EXAMPLE), "--streaming", "--output_dir", str(tmp_path / "x")], tmp_path, 1, True)
    assert "--streaming streams --dataset_name or --train_file" in refused


TRITON_FLAGS = ["--block_size", "32", "--n_embd", "32", "--n_head", "2", "--attn_implementation", "hfp_triton"]


@pytest.mark.slow
def test_the_triton_attention_kernel_trains_grown_blocks_through_the_example(tmp_path):
    # conftest sets TRITON_INTERPRET=1 (inherited here): the kernel runs on CPU tensors in Triton's interpreter.
    pytest.importorskip("triton")
    command = [sys.executable, str(EXAMPLE), *QUICK, "--max_corpus_bytes", "200000", "--depth_schedule", "0@0,2@0.8"]
    stdout = run([*command, *TRITON_FLAGS, "--output_dir", str(tmp_path / "out")], cwd=tmp_path)
    # 6 steps after growth x 2 blocks, and one evaluation of 2 batches x 2 blocks; none before growth (0 blocks).
    assert "attention:             hfp_triton kernel on 16 calls in this process; no fallback" in stdout
    assert "growth at step 24: 0 -> 2 blocks" in stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the kernel can run here")
def test_the_triton_attention_flag_fails_before_any_work_where_the_kernel_cannot_run(tmp_path):
    command = [sys.executable, str(EXAMPLE), *QUICK, *TRITON_FLAGS, "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "TRITON_INTERPRET": "0"}
    )
    assert result.returncode == 1
    assert "--attn_implementation hfp_triton: The Triton attention kernel cannot run here" in result.stderr
    assert "Embedded default corpus" not in result.stdout + result.stderr  # refused before the data was read
