"""Pushing grown models to the Hub and loading them back, against a Hub stand-in on loopback (tests/fake_hub.py).

Every scenario runs in its own process, configured through the environment exactly as a user's would be.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT
from fake_hub import FakeHub
from huggingface_hub.utils import validate_repo_id

pytestmark = pytest.mark.slow  # each scenario starts a Python process that imports torch and transformers

SCENARIOS = REPO_ROOT / "tests" / "hub_scenarios.py"
EXAMPLE = REPO_ROOT / "examples" / "run_clm_progressive.py"
QUICK = ["--max_steps", "10", "--eval_steps", "5", "--logging_steps", "2", "--per_device_train_batch_size", "4"]
QUICK += ["--max_eval_samples", "8", "--vocab_size", "300", "--max_corpus_bytes", "150000"]


@pytest.fixture(scope="module")
def hub():
    with FakeHub() as server:
        yield server


def hub_environment(tmp_path, endpoint: str, token: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_XET="1",  # the stand-in serves the LFS protocol, not Xet
        HF_HOME=str(tmp_path / "hf_home"),  # no cached token or files from elsewhere
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_scenario(tmp_path, endpoint: str, *arguments, token: str | None) -> dict:
    env = hub_environment(tmp_path, endpoint, token)
    result = subprocess.run(
        [sys.executable, str(SCENARIOS), *arguments], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def front_matter(card: bytes) -> dict:
    return yaml.safe_load(card.decode().split("---")[1])


def test_trainer_push_to_hub_and_load_back_with_plain_transformers(hub, tmp_path):
    output_dir = tmp_path / "run"
    pushed = run_scenario(tmp_path, hub.endpoint, "train_and_push", str(output_dir), "alice/grown", token=hub.token)
    files = hub.repos["alice/grown"]
    assert pushed["commit"] == hub.head_commit("alice/grown")
    # Weights went through LFS as safetensors, byte for byte what was saved locally.
    assert files["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()
    assert ("PUT", "/lfs-upload/" + hashlib.sha256(files["model.safetensors"]).hexdigest()) in hub.requests
    assert not any(name.endswith(".bin") and name != "training_args.bin" for name in files)

    config = json.loads(files["config.json"])
    assert config["model_type"] == "gpt2" and config["n_layer"] == 2
    (event,) = config["progressive"]["growth_history"]
    assert (event["step"], event["from_depth"], event["to_depth"]) == (4, 0, 2)
    assert event["loss_before"] > 0 and event["loss_after"] > 0
    assert config["progressive"]["flops"] < config["progressive"]["flops_fixed_equivalent"]

    card = files["README.md"]
    metadata = front_matter(card)
    assert "progressive-training" in metadata["tags"] and metadata["library_name"] == "transformers"
    assert metadata["datasets"] == ["tinyshakespeare"]
    assert metadata["progressive_training"]["growth_history"][0]["to_depth"] == 2
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["type"] == "loss"
    assert "![Training loss against step" in card.decode() and "(training_curves.png)" in card.decode()
    assert files["training_curves.png"].startswith(b"\x89PNG")

    loaded = run_scenario(tmp_path, hub.endpoint, "load", "alice/grown", token=None)
    assert loaded["class"] == "GPT2LMHeadModel" and loaded["n_layer"] == 2
    assert loaded["progressive"]["growth_history"] == config["progressive"]["growth_history"]
    assert not loaded["hf_progressive_imported"]
    assert loaded["same_as_model"] and loaded["generated"] == pushed["generated"]


def test_model_push_to_hub_carries_the_progressive_card(hub, tmp_path):
    output_dir = str(tmp_path / "run")
    pushed = run_scenario(tmp_path, hub.endpoint, "push_model", output_dir, "alice/model-push", token=hub.token)
    assert pushed["class"] == "ProgressiveGPT2LMHeadModel"
    files = hub.repos["alice/model-push"]
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    assert front_matter(files["README.md"])["progressive_training"]["growth_history"][0]["step"] == 4
    assert json.loads(files["config.json"])["progressive"]["growth_history"][0]["step"] == 4


@pytest.mark.parametrize(
    "token, endpoint, reason",
    [
        (None, None, "refused the token"),
        ("hf_wrong", None, "refused the token"),
        ("hf_test_token", "http://127.0.0.1:9", "could not be reached"),
    ],
)
def test_failed_push_says_why_and_keeps_the_local_model(hub, tmp_path, token, endpoint, reason):
    output_dir = tmp_path / "run"
    result = run_scenario(
        tmp_path, endpoint or hub.endpoint, "train_and_push", str(output_dir), "alice/refused", token=token
    )
    assert reason in result["error"] and "alice/refused" in result["error"]
    assert f"local files in {output_dir} are saved and unchanged" in result["error"]
    assert {"model.safetensors", "config.json", "README.md"} <= set(result["files"])
    assert "alice/refused" not in hub.repos


def run_example(tmp_path, hub, *arguments):
    env = hub_environment(tmp_path, hub.endpoint, hub.token)
    command = [sys.executable, str(EXAMPLE), *QUICK, *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def test_example_push_carries_only_hub_ids_in_the_card_metadata(hub, tmp_path):
    """A run on a local text file, then one that keeps growing a local checkpoint: the real Hub refuses local paths
    in `datasets:` / `base_model:` (the stand-in too), so the card names them in its text instead."""
    text = tmp_path / "data" / "train.txt"
    text.parent.mkdir()
    text.write_text("".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(3000)))
    first = tmp_path / "first"
    result = run_example(tmp_path, hub, "--train_file", str(text), "--output_dir", str(first))
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_example(
        tmp_path,
        hub,
        *["--train_file", str(text), "--model_name_or_path", str(first), "--depth_schedule", "6@0,8@0.5"],
        *["--output_dir", str(tmp_path / "deeper"), "--push_to_hub", "--hub_model_id", "alice/deeper"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = hub.repos["alice/deeper"]
    card = files["README.md"].decode()
    metadata = front_matter(files["README.md"])
    assert "datasets" not in metadata and "base_model" not in metadata
    assert f"from the local checkpoint `{first}`" in card and f"Training data: `{text}` (not a Hub dataset)" in card
    # huggingface_hub's own check of what the Hub will accept, on every id the card carries
    for value in metadata.get("datasets", []) + [metadata.get("base_model")] * ("base_model" in metadata):
        validate_repo_id(value)
    assert not any(name.startswith(("tokenizer/", "_", "checkpoint-")) for name in files)  # no leftover folders
    assert {"tokenizer.json", "config.json", "model.safetensors", "training_curves.png"} <= set(files)
    assert not (first / "tokenizer").exists() and not (tmp_path / "deeper" / "tokenizer").exists()


def test_a_push_that_fails_at_the_end_loses_nothing(hub, tmp_path):
    output_dir = tmp_path / "out"
    hub.refuse_commits = 403
    try:
        result = run_example(
            tmp_path, hub, "--output_dir", str(output_dir), "--push_to_hub", "--hub_model_id", "alice/late"
        )
    finally:
        hub.refuse_commits = None
    assert result.returncode == 1
    # Every local result is there, and the summary was printed before the push was tried.
    for name in ("model.safetensors", "eval_results.json", "all_results.json", "trainer_state.json", "summary.json"):
        assert (output_dir / name).is_file(), name
    assert "final validation loss:" in result.stdout
    assert "Training data: `the Python standard library's source`" in (output_dir / "README.md").read_text()
    # The error comes last, once, in one line, with the command that retries the push alone.
    assert "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Could not push to the Hub repository 'alice/late'")
    assert f"hf upload alice/late {output_dir} . --exclude 'checkpoint-*'" in last
    assert (result.stderr + result.stdout).count("Could not push") == 1
