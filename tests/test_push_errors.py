"""What a failed push says and does, without a Hub: the failure is injected where huggingface_hub would raise."""

import os

import httpx2
import pytest
from conftest import progressive_arguments, tiny_model, token_dataset
from transformers import Trainer

from hf_progressive import HubPushError, ProgressiveTrainer
from hf_progressive.hub import explain_push_failure


@pytest.fixture
def trainer(tmp_path):
    trainer = ProgressiveTrainer(
        model=tiny_model(0), args=progressive_arguments(tmp_path, max_steps=2), train_dataset=token_dataset()
    )
    trainer.train()
    saves = []
    original = trainer._save
    trainer._save = lambda *a, **k: (saves.append(1), original(*a, **k))[1]
    trainer.saves = saves
    return trainer


def failing_push(error, saves_first: bool):
    def push(self, *args, **kwargs):
        if saves_first:  # as Trainer does once the repository exists: save, write the card, then upload
            self.save_model(_internal_call=True)
        raise error

    return push


@pytest.mark.parametrize(
    "error, saves_first, reason",
    [
        (httpx2.ConnectError("connection refused"), False, "the Hub could not be reached (ConnectError"),
        (httpx2.ConnectError("connection refused"), True, "the Hub could not be reached (ConnectError"),
        (PermissionError(13, "Permission denied", "out/model.safetensors"), True, "it failed on this machine, not at"),
        (OSError(28, "No space left on device"), True, "it failed on this machine, not at the Hub (OSError"),
    ],
)
def test_failed_push_says_where_it_failed_and_saves_the_model_once(trainer, monkeypatch, error, saves_first, reason):
    monkeypatch.setattr(Trainer, "push_to_hub", failing_push(error, saves_first))
    with pytest.raises(HubPushError) as failure:
        trainer.push_to_hub()
    assert reason in str(failure.value) and "are saved and unchanged" in str(failure.value)
    assert len(trainer.saves) == 1  # saved once: by Trainer before the upload failed, or by us if it never got there
    assert os.path.isfile(os.path.join(trainer.args.output_dir, "model.safetensors"))


def test_a_local_os_error_is_not_called_an_unreachable_hub():
    message = explain_push_failure("me/model", FileNotFoundError(2, "No such file", "staging/README.md"), "out")
    assert "failed on this machine" in message and "could not be reached" not in message
    assert "hf upload me/model out ." in message
