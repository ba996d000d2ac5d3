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

pytestmark = pytest.mark.slow  # each scenario starts a Python process that imports torch and transformers

SCENARIOS = REPO_ROOT / "tests" / "hub_scenarios.py"


@pytest.fixture(scope="module")
def hub():
    with FakeHub() as server:
        yield server


def run_scenario(tmp_path, endpoint: str, *arguments, token: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_XET="1",  # the stand-in serves the LFS protocol, not Xet
        HF_HOME=str(tmp_path / "hf_home"),  # no cached token or files from elsewhere
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
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
