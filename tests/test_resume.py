"""Checkpoints at any depth: resume matches the uninterrupted run, mismatches fail at start, saves are safe."""

import json
import os
import shutil

import pytest
import torch
from conftest import progressive_arguments, tiny_model, token_dataset
from transformers import TrainerCallback
from transformers.trainer_pt_utils import safe_globals

from hf_progressive import ProgressiveTrainer, ProgressiveTrainingArguments
from hf_progressive.checkpointing import last_complete_checkpoint

# Resumed losses must equal the uninterrupted run's. On CPU with a fixed seed they are bitwise equal; the tolerance
# only allows for summation order differences that other BLAS builds might introduce.
TOLERANCE = 1e-6

RUNS = {
    # name: (model depth, depth schedule, init, extra arguments)
    "0->3 random, AdamW": (0, "0@0,3@0.5", "random", {}),
    "1->2->4 copy_inter, Muon-NSGD, accumulation": (
        4,
        "1@0,2@0.25,4@0.5",
        "copy_inter",
        {"optim": "muon_nsgd", "learning_rate": 0.02, "gradient_accumulation_steps": 2},
    ),
    # Growth at step 6, new blocks ramped over steps 7-10: a resume from step 7 or 8 continues mid-ramp.
    "0->3 random, AdamW, new-block LR warmup": (
        0,
        "0@0,3@0.5",
        "random",
        {"growth_lr_warmup_steps": 4, "growth_residual_scale": 0.5},
    ),
}


def arguments(output_dir, schedule="0@0,3@0.5", init="random", **overrides) -> ProgressiveTrainingArguments:
    """A 12-step run that logs and checkpoints every step."""
    settings = {"logging_steps": 1, "save_strategy": "steps", "save_steps": 1, **overrides}
    return progressive_arguments(output_dir, depth_schedule=schedule, growth_init=init, **settings)


def copy_checkpoint(output_dir, step: int, destination) -> str:
    """A copy of one checkpoint in a fresh output_dir, so a resumed run writes beside it, not into the fixture."""
    target = destination / f"checkpoint-{step}"
    shutil.copytree(output_dir / f"checkpoint-{step}", target)
    return str(target)


def step_losses(trainer, after: int = 0) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e and e["step"] > after}


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """Each run of RUNS trained once without interruption, with a checkpoint at every step."""
    runs = {}
    for name, (depth, schedule, init, extra) in RUNS.items():
        output_dir = tmp_path_factory.mktemp("run")
        trainer = ProgressiveTrainer(
            model=tiny_model(depth), args=arguments(output_dir, schedule, init, **extra), train_dataset=token_dataset()
        )
        trainer.train()
        runs[name] = (output_dir, trainer)
    return runs


@pytest.mark.parametrize("name", list(RUNS))
@pytest.mark.parametrize("where", ["before", "at", "after"])
def test_resume_matches_the_uninterrupted_run(finished_runs, tmp_path, name, where):
    output_dir, uninterrupted = finished_runs[name]
    depth, schedule, init, extra = RUNS[name]
    last_growth = uninterrupted.growth_history[-1]["step"]
    # "at": the checkpoint of the growth step itself, saved before the model grows (growth opens the next step).
    step = {"before": last_growth - 1, "at": last_growth, "after": last_growth + 2}[where]
    checkpoint = copy_checkpoint(output_dir, step, tmp_path)
    resumed = ProgressiveTrainer(
        model=tiny_model(depth), args=arguments(tmp_path, schedule, init, **extra), train_dataset=token_dataset()
    )
    resumed.train(resume_from_checkpoint=checkpoint)

    expected, got = step_losses(uninterrupted, after=step), step_losses(resumed, after=step)
    assert sorted(got) == list(range(step + 1, 13))
    assert max(abs(got[s] - expected[s]) for s in got) <= TOLERANCE
    assert resumed.growth_history == uninterrupted.growth_history
    assert resumed.model.config.progressive == uninterrupted.model.config.progressive
    for mine, theirs in zip(resumed.model.parameters(), uninterrupted.model.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=TOLERANCE)


def test_every_checkpoint_carries_growth_metadata(finished_runs):
    output_dir, trainer = finished_runs["0->3 random, AdamW"]
    logged = step_losses(trainer)
    for step in (5, 6, 7, 12):
        config = json.loads((output_dir / f"checkpoint-{step}" / "config.json").read_text())
        metadata = config["progressive"]
        assert config["n_layer"] == (0 if step <= 6 else 3)
        assert metadata["depth_schedule"] == "0@0,3@0.5" and metadata["growth_init"] == "random"
        assert metadata["flops"] > 0 and metadata["flops_fixed_equivalent"] > metadata["flops"]
        history = metadata["growth_history"]
        if step <= 6:  # growth at step 6 happens when step 7 begins
            assert history == []
            continue
        (event,) = history
        assert (event["step"], event["from_depth"], event["to_depth"], event["init"]) == (6, 0, 3, "random")
        # Loss just before growth is step 6's training loss, loss just after is step 7's.
        assert event["loss_before"] == pytest.approx(logged[6], rel=1e-6)
        assert event["loss_after"] == pytest.approx(logged[7], rel=1e-6)
    flops = [
        json.loads((output_dir / f"checkpoint-{s}" / "config.json").read_text())["progressive"]["flops"]
        for s in (5, 12)
    ]
    assert flops[1] > flops[0]
    state = json.loads((output_dir / "checkpoint-12" / "trainer_state.json").read_text())
    assert state["total_flos"] == pytest.approx(flops[1])


def test_checkpoints_are_safetensors_and_state_loads_weights_only(finished_runs):
    for output_dir, _ in finished_runs.values():
        checkpoint = output_dir / "checkpoint-8"
        assert (checkpoint / "model.safetensors").is_file() and not (checkpoint / "pytorch_model.bin").exists()
        optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
        assert optimizer["state"]  # the real optimizer state, not an empty shell
        torch.load(checkpoint / "scheduler.pt", weights_only=True)
        with safe_globals():  # RNG states hold numpy arrays: Trainer allowlists exactly these numpy types
            torch.load(checkpoint / "rng_state.pth", weights_only=True)


class InterruptSaveAt(TrainerCallback):
    """Kills the run while the checkpoint of ``step`` is half-written (weights saved, trainer state not yet)."""

    def __init__(self, trainer, step):
        self.step = step
        original = trainer._save_rng_state

        def save_rng_state(output_dir):
            if trainer.state.global_step == self.step:
                raise KeyboardInterrupt("simulated interruption during the save")
            original(output_dir)

        trainer._save_rng_state = save_rng_state


def test_interrupted_save_keeps_the_previous_checkpoint_usable(tmp_path, finished_runs):
    _, uninterrupted = finished_runs["0->3 random, AdamW"]
    args = arguments(tmp_path, save_steps=4, save_total_limit=1)
    trainer = ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset())
    InterruptSaveAt(trainer, 8)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert (tmp_path / "checkpoint-8" / "model.safetensors").is_file()  # half-written
    assert not (tmp_path / "checkpoint-8" / "trainer_state.json").exists()
    assert last_complete_checkpoint(tmp_path) == os.path.join(tmp_path, "checkpoint-4")
    with pytest.raises(ValueError, match="checkpoint-8 is not a complete checkpoint.*checkpoint-4"):
        ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset()).train(
            resume_from_checkpoint=str(tmp_path / "checkpoint-8")
        )

    resumed = ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset())
    resumed.train(resume_from_checkpoint=True)
    expected, got = step_losses(uninterrupted, after=4), step_losses(resumed, after=4)
    assert max(abs(got[s] - expected[s]) for s in got) <= TOLERANCE and len(got) == 8


@pytest.mark.parametrize(
    "model_overrides, arg_overrides, message",
    [
        ({"n_embd": 48}, {}, r"does not match the model's architecture: n_embd: checkpoint 32, model 48"),
        ({}, {"schedule": "0@0,3@0.25"}, r"trained with depth_schedule '0@0,3@0.5', this run has '0@0,3@0.25'"),
        ({}, {"schedule": "0@0,3@0.5", "init": "zero"}, r"trained with growth_init 'random', this run has 'zero'"),
        ({}, {"max_steps": 20}, r"grew to 3 blocks at step 6, but .* max_steps=20 grows to 3 at step 10"),
    ],
)
def test_mismatched_checkpoint_fails_at_start(finished_runs, tmp_path, model_overrides, arg_overrides, message):
    output_dir, _ = finished_runs["0->3 random, AdamW"]
    steps_run = []

    class CountSteps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps_run.append(state.global_step)

    settings = {"schedule": "0@0,3@0.5", "init": "random", **arg_overrides}
    args = arguments(tmp_path, settings.pop("schedule"), settings.pop("init"), **settings)
    with pytest.raises(ValueError, match=message):
        trainer = ProgressiveTrainer(
            model=tiny_model(0, **model_overrides), args=args, train_dataset=token_dataset(), callbacks=[CountSteps()]
        )
        trainer.train(resume_from_checkpoint=str(output_dir / "checkpoint-8"))
    assert steps_run == []


def test_checkpoint_of_a_run_without_schedule_is_refused(tmp_path):
    plain = ProgressiveTrainer(
        model=tiny_model(3), args=arguments(tmp_path / "plain", schedule=None), train_dataset=token_dataset()
    )
    plain.train()
    trainer = ProgressiveTrainer(model=tiny_model(0), args=arguments(tmp_path / "grow"), train_dataset=token_dataset())
    with pytest.raises(ValueError, match="saved by a run without a depth_schedule"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "plain" / "checkpoint-4"))


def test_restored_callback_states_keep_the_trainer_growth_hooks(finished_runs, tmp_path):
    output_dir, uninterrupted = finished_runs["0->3 random, AdamW"]
    checkpoint = copy_checkpoint(output_dir, 5, tmp_path)
    args = arguments(tmp_path, restore_callback_states_from_checkpoint=True)
    resumed = ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset())
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.growth_history == uninterrupted.growth_history
    assert [e for e in resumed.state.log_history if "grown_from_depth" in e][0]["step"] == 6


def test_pre_growth_checkpoint_loads_with_its_reserve_and_with_plain_transformers(finished_runs):
    from transformers import AutoModelForCausalLM

    from hf_progressive import ProgressiveGPT2LMHeadModel

    output_dir, _ = finished_runs["0->3 random, AdamW"]
    checkpoint = output_dir / "checkpoint-5"  # 0 blocks active, 3 in reserve
    progressive = ProgressiveGPT2LMHeadModel.from_pretrained(checkpoint)
    assert progressive.config.n_layer == 0 and progressive.config.target_n_layer == 3
    saved = set(safe_open_keys(checkpoint / "model.safetensors"))
    assert {k for k in progressive.state_dict() if k != "lm_head.weight"} == saved  # reserve included, exactly
    plain = AutoModelForCausalLM.from_pretrained(checkpoint)  # ignores the reserve, runs the 0-block model
    tokens = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(plain(tokens).logits, progressive(tokens).logits)


def safe_open_keys(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return list(handle.keys())


def test_best_checkpoint_shallower_than_the_grown_model_is_not_loaded(tmp_path, caplog):
    args = arguments(
        tmp_path,
        eval_strategy="steps",
        eval_steps=2,
        save_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=True,  # the worst loss comes early, before growth: the best checkpoint is shallow
    )
    trainer = ProgressiveTrainer(
        model=tiny_model(0), args=args, train_dataset=token_dataset(), eval_dataset=token_dataset(8)
    )
    final = {}

    class SnapshotLastStep(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == state.max_steps:  # before Trainer would load the best checkpoint
                final.update({name: p.detach().clone() for name, p in model.named_parameters()})

    trainer.add_callback(SnapshotLastStep())
    with caplog.at_level("WARNING", logger="hf_progressive"):
        trainer.train()
    best = json.loads((tmp_path / os.path.basename(trainer.state.best_model_checkpoint) / "config.json").read_text())
    assert best["n_layer"] == 0 and trainer.model.config.n_layer == 3
    assert "cannot load into the grown model, keeping the final model" in caplog.text
    assert all(torch.equal(p, final[n]) for n, p in trainer.model.named_parameters())


def test_checkpoint_with_missing_weights_is_refused(finished_runs, tmp_path):
    from safetensors.torch import load_file, save_file

    output_dir, _ = finished_runs["0->3 random, AdamW"]
    checkpoint = copy_checkpoint(output_dir, 8, tmp_path)
    weights = load_file(os.path.join(checkpoint, "model.safetensors"))
    del weights["transformer.ln_f.weight"]
    save_file(weights, os.path.join(checkpoint, "model.safetensors"), metadata={"format": "pt"})
    trainer = ProgressiveTrainer(model=tiny_model(0), args=arguments(tmp_path), train_dataset=token_dataset())
    message = r"does not match the model at 3 blocks: missing \['transformer.ln_f.weight'\]"
    with pytest.raises(ValueError, match=message):
        trainer.train(resume_from_checkpoint=checkpoint)


def test_a_failing_model_card_does_not_stop_training(tmp_path, monkeypatch, caplog):
    import hf_progressive.hub

    def broken_card(*args, **kwargs):
        raise RuntimeError("no card today")

    monkeypatch.setattr(hf_progressive.hub, "write_model_card", broken_card)
    trainer = ProgressiveTrainer(
        model=tiny_model(0), args=arguments(tmp_path, save_steps=6), train_dataset=token_dataset()
    )
    with caplog.at_level("WARNING", logger="hf_progressive"):
        trainer.train()
    assert trainer.state.global_step == 12 and (tmp_path / "checkpoint-12" / "model.safetensors").is_file()
    assert "Could not write the model card" in caplog.text and "no card today" in caplog.text


def test_resume_compares_the_plan_not_how_it_is_written(finished_runs, tmp_path):
    """'0@0,3@6' at 12 steps is the plan '0@0,3@0.5' was: it resumes to the same losses. A different policy for
    the new parameters' optimizer state is a different run: refused before any step."""
    output_dir, uninterrupted = finished_runs["0->3 random, AdamW"]
    checkpoint = copy_checkpoint(output_dir, 4, tmp_path)
    resumed = ProgressiveTrainer(
        model=tiny_model(0), args=arguments(tmp_path, "0@0,3@6"), train_dataset=token_dataset()
    )
    resumed.train(resume_from_checkpoint=checkpoint)
    expected, got = step_losses(uninterrupted, after=4), step_losses(resumed, after=4)
    assert max(abs(got[s] - expected[s]) for s in got) <= TOLERANCE and len(got) == 8

    name = "1->2->4 copy_inter, Muon-NSGD, accumulation"
    output_dir, _ = finished_runs[name]
    depth, schedule, init, extra = RUNS[name]
    args = arguments(tmp_path / "b", schedule, init, new_params_optimizer_state="copy", **extra)
    run = ProgressiveTrainer(model=tiny_model(depth), args=args, train_dataset=token_dataset())
    with pytest.raises(ValueError, match="trained with new_params_optimizer_state 'fresh', this run has 'copy'"):
        run.train(resume_from_checkpoint=str(output_dir / "checkpoint-8"))


def test_a_checkpoint_written_by_an_earlier_version_still_resumes(finished_runs, tmp_path):
    """tests/data holds what commit 4fa5d5c (before trainer.py was split into planning, callbacks, resume and
    optimizer modules) wrote as the metadata of checkpoint-8 of this 0 -> 3 run: config.json (growth metadata),
    trainer_state.json (GrowthCallback state) and generation_config.json, with the losses that run logged after
    step 8. The weights, optimizer, scheduler and RNG states (standard safetensors / torch files, not committed)
    come from the same run trained here; with the old metadata in place it must resume to the old losses."""
    from conftest import REPO_ROOT

    stored = REPO_ROOT / "tests" / "data" / "checkpoint_4fa5d5c_0to3"
    expected = {int(k): v for k, v in json.loads((stored / "expected.json").read_text())["losses_after_resume"].items()}
    output_dir, _ = finished_runs["0->3 random, AdamW"]
    checkpoint = copy_checkpoint(output_dir, 8, tmp_path)
    for metadata in (stored / "checkpoint-8").iterdir():
        shutil.copy(metadata, os.path.join(checkpoint, metadata.name))
    args = arguments(tmp_path, save_steps=4)
    resumed = ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset())
    resumed.train(resume_from_checkpoint=checkpoint)
    got = step_losses(resumed, after=8)
    assert got.keys() == expected.keys()
    assert max(abs(got[s] - expected[s]) for s in got) <= TOLERANCE
