import json
import shutil

import pytest
import torch
from conftest import progressive_arguments, tiny_model, token_dataset
from transformers import GPT2LMHeadModel, TrainerCallback, get_scheduler
from transformers import Trainer as StockTrainer

import hf_progressive
from hf_progressive import ProgressiveTrainer, ProgressiveTrainingArguments
from hf_progressive.adapters.base import RESERVE_ATTRIBUTE

MAX_STEPS = 12


def arguments(tmp_path, **overrides) -> ProgressiveTrainingArguments:
    return progressive_arguments(tmp_path, **{"max_steps": MAX_STEPS, **overrides})


class Recorder(TrainerCallback):
    """Records, at the end of every optimizer step and before growth acts, what a test needs to look at."""

    def __init__(self, probe):
        self.probe = probe
        self.records = []

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        self.records.append(self.probe(state.global_step, model, optimizer, lr_scheduler))


def reserved_parameters(model):
    return [p for block in getattr(model.transformer, RESERVE_ATTRIBUTE) for p in block.parameters()]


def test_drop_in_trainer_name():
    assert hf_progressive.Trainer is ProgressiveTrainer
    assert issubclass(ProgressiveTrainer, StockTrainer)


def test_the_mixin_grows_a_user_trainer_subclass_that_overrides_compute_loss(tmp_path):
    class ScaledLossTrainer(StockTrainer):  # a user's own Trainer subclass
        calls = 0

        def compute_loss(self, model, inputs, *args, **kwargs):
            ScaledLossTrainer.calls += 1
            return super().compute_loss(model, inputs, *args, **kwargs)

    class ProgressiveScaledLossTrainer(hf_progressive.ProgressiveTrainerMixin, ScaledLossTrainer):
        pass

    model = tiny_model(0)
    trainer = ProgressiveScaledLossTrainer(model=model, args=arguments(tmp_path), train_dataset=token_dataset())
    output = trainer.train()
    assert ScaledLossTrainer.calls == MAX_STEPS and model.config.n_layer == 3
    assert [e["to_depth"] for e in trainer.growth_history] == [3]
    assert 0 < output.metrics["compute_saved"] < 1


def test_growth_at_exact_step_with_gradient_accumulation(tmp_path):
    model = tiny_model(0)
    depths = []
    model.transformer.register_forward_pre_hook(lambda module, args: depths.append(len(module.h)))
    args = arguments(tmp_path, gradient_accumulation_steps=3, per_device_train_batch_size=2)
    trainer = hf_progressive.Trainer(model=model, args=args, train_dataset=token_dataset(rows=96))
    trainer.train()
    # Growth at 0.5 * 12 = step 6: exactly 6 updates x 3 micro-batches ran at depth 0, the other 6 x 3 at depth 3.
    assert depths == [0] * 18 + [3] * 18
    (event,) = trainer.growth_history
    losses = {key: event.pop(key) for key in ("loss_before", "loss_after")}
    assert event == {"step": 6, "from_depth": 0, "to_depth": 3, "init": "random", "new_blocks": [0, 1, 2]}
    assert all(isinstance(loss, float) and loss > 0 for loss in losses.values())
    assert model.config.n_layer == 3 and len(getattr(model.transformer, RESERVE_ATTRIBUTE)) == 0


def test_optimizer_state_kept_for_old_and_fresh_for_new_parameters(tmp_path):
    model = tiny_model(0)
    trainer = ProgressiveTrainer(model=model, args=arguments(tmp_path), train_dataset=token_dataset())
    new_parameters = reserved_parameters(model)
    embedding = model.transformer.wte.weight
    initial_new = [p.detach().clone() for p in new_parameters]

    def probe(step, model, optimizer, scheduler):
        state = optimizer.state
        return {
            "step": step,
            "embedding_steps": int(state[embedding]["step"]),
            "new_have_state": any(p in state for p in new_parameters),
            "new_unchanged": all(torch.equal(p, q) for p, q in zip(new_parameters, initial_new)),
        }

    recorder = Recorder(probe)
    trainer.add_callback(recorder)
    trainer.train()
    at_growth = recorder.records[5]
    assert at_growth["step"] == 6 and at_growth["embedding_steps"] == 6
    # Before growth, reserved blocks got no state and no weight decay (weight_decay=0.1 here).
    assert all(r["new_unchanged"] and not r["new_have_state"] for r in recorder.records[:6])
    state = trainer.optimizer.state
    # The embedding's state was carried through growth, not reset: it counts every step of the run.
    assert int(state[embedding]["step"]) == MAX_STEPS
    # New parameters got fresh state at growth and were trained from then on.
    assert {int(state[p]["step"]) for p in new_parameters} == {MAX_STEPS - 6}
    assert all(not torch.equal(p, q) for p, q in zip(new_parameters, initial_new))


@pytest.mark.parametrize("scheduler", ["warmup_stable_decay", "cosine"])
def test_lr_of_new_parameters_follows_the_schedule(tmp_path, scheduler):
    model = tiny_model(0)
    trainer = ProgressiveTrainer(
        model=model, args=arguments(tmp_path, lr_scheduler_type=scheduler), train_dataset=token_dataset()
    )
    new_parameter = reserved_parameters(model)[0]

    def probe(step, model, optimizer, lr_scheduler):
        group = next(g for g in optimizer.param_groups if any(p is new_parameter for p in g["params"]))
        return group["lr"]

    recorder = Recorder(probe)
    trainer.add_callback(recorder)
    trainer.train()
    # An independent scheduler on a dummy optimizer, stepped the same number of times.
    reference_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    kwargs = {"num_decay_steps": round(0.1 * MAX_STEPS)} if scheduler == "warmup_stable_decay" else None
    reference = get_scheduler(
        scheduler,
        reference_optimizer,
        num_warmup_steps=2,
        num_training_steps=MAX_STEPS,
        scheduler_specific_kwargs=kwargs,
    )
    expected = []
    for _ in range(MAX_STEPS):
        reference_optimizer.step()
        reference.step()
        expected.append(reference.get_last_lr()[0])
    assert recorder.records == pytest.approx(expected)
    assert recorder.records[-1] < recorder.records[6]  # decays after growth too


def test_logs_carry_depth_growth_events_and_compute(tmp_path):
    trainer = ProgressiveTrainer(model=tiny_model(0), args=arguments(tmp_path), train_dataset=token_dataset())
    metrics = trainer.train().metrics
    history = trainer.state.log_history
    training_logs = [e for e in history if "loss" in e]
    assert [e["depth"] for e in training_logs] == [0, 0, 0, 3, 3, 3]
    growth = [e for e in history if "grown_from_depth" in e]
    assert growth == [{"grown_from_depth": 0, "grown_blocks": 3, "depth": 3, "epoch": growth[0]["epoch"], "step": 6}]
    assert training_logs[0]["compute_saved"] > training_logs[-1]["compute_saved"] > 0
    assert 0 < metrics["compute_saved"] < 1
    # Absolute FLOPs, from the formula written out here (PAPER.md: 3 x (2 N_nonemb + 2 d V + 2 depth n_ctx d) per
    # token; width 32, vocabulary 64, context 16, batch 4 x 16 tokens): 6 steps at 0 blocks, then 6 at 3.
    d, vocab, context, tokens = 32, 64, 16, 4 * 16
    block = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d

    def per_token(depth):
        return 3 * (2 * (depth * block + 2 * d) + 2 * d * vocab + 2 * depth * context * d)

    assert metrics["flops"] == 6 * tokens * per_token(0) + 6 * tokens * per_token(3)
    assert metrics["flops_fixed_equivalent"] == 12 * tokens * per_token(3)
    # And within 10% of what torch counts for the real forward and backward passes (matrix products only).
    from torch.utils.flop_counter import FlopCounterMode

    counted = 0
    for depth in (0, 3):
        model, batch = tiny_model(depth).train(), torch.randint(0, vocab, (4, context))
        with FlopCounterMode(display=False) as counter:
            model(batch, labels=batch).loss.backward()
        counted += 6 * counter.get_total_flops()
    assert metrics["flops"] == pytest.approx(counted, rel=0.10)
    trainer.save_state()
    saved = json.loads((tmp_path / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"]["GrowthCallback"]["attributes"]["history"] == trainer.growth_history


def test_growth_history_is_saved_in_checkpoints_and_config(tmp_path):
    args = arguments(tmp_path, save_strategy="steps", save_steps=8)
    trainer = ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset())
    trainer.train()
    checkpoint = tmp_path / "checkpoint-8"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["stateful_callbacks"]["GrowthCallback"]["attributes"]["history"][0]["step"] == 6
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["n_layer"] == 3 and config["progressive"]["growth_history"][0]["to_depth"] == 3


def test_copy_optimizer_state_policy(tmp_path):
    model = tiny_model(1)
    args = arguments(tmp_path, depth_schedule="1@0,3@0.5", growth_init="copy", new_params_optimizer_state="copy")
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    source = list(model.transformer.h[0].parameters())
    copies = [list(block.parameters()) for block in getattr(model.transformer, RESERVE_ATTRIBUTE)]
    snapshots = {}

    class AfterGrowth(TrainerCallback):
        def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
            if state.global_step == 6:  # growth before update 7; this callback runs after the growth callback
                snapshots["source"] = [optimizer.state[p]["exp_avg"].clone() for p in source]
                snapshots["copies"] = [[optimizer.state[p]["exp_avg"].clone() for p in c] for c in copies]
                snapshots["weights"] = [[p.detach().clone() for p in c] for c in copies]
                snapshots["source_weights"] = [p.detach().clone() for p in source]

    trainer.add_callback(AfterGrowth())
    trainer.train()
    for copy_state, copy_weights in zip(snapshots["copies"], snapshots["weights"]):
        assert all(torch.equal(a, b) for a, b in zip(copy_state, snapshots["source"]))
        assert all(torch.equal(a, b) for a, b in zip(copy_weights, snapshots["source_weights"]))
    assert int(trainer.optimizer.state[copies[0][0]]["step"]) == MAX_STEPS  # step count copied too


def test_target_depth_model_starts_shallow(tmp_path):
    model = tiny_model(3)
    trainer = ProgressiveTrainer(
        model=model, args=arguments(tmp_path, depth_schedule="1@0,3@0.5"), train_dataset=token_dataset()
    )
    assert model.config.n_layer == 1 and len(getattr(model.transformer, RESERVE_ATTRIBUTE)) == 2
    trainer.train()
    assert model.config.n_layer == 3


def test_schedule_from_the_model_config(tmp_path):
    model = tiny_model(0)
    model.config.progressive = {"depth_schedule": "0@0,2@0.25", "growth_init": "zero"}
    trainer = ProgressiveTrainer(
        model=model, args=arguments(tmp_path, depth_schedule=None), train_dataset=token_dataset()
    )
    assert trainer.args.ddp_find_unused_parameters is True  # set for config schedules too (DDP needs it)
    trainer.train()
    assert trainer.growth_history[0]["step"] == 3 and trainer.growth_history[0]["init"] == "zero"


def test_without_schedule_it_is_the_stock_trainer(tmp_path):
    losses = []
    for trainer_class in (StockTrainer, ProgressiveTrainer):
        args = arguments(tmp_path / trainer_class.__name__, depth_schedule=None, lr_scheduler_type="cosine")
        trainer = trainer_class(model=tiny_model(1), args=args, train_dataset=token_dataset())
        trainer.train()
        losses.append([e["loss"] for e in trainer.state.log_history if "loss" in e])
    assert losses[0] == losses[1]


def test_the_shallow_phase_trains_and_clips_exactly_like_the_stock_trainer(tmp_path):
    # The trainer clips only the parameters outside the reserve (Trainer's walk of every reserved module was the
    # shallow phase's largest overhead): the clipped norm and the updates must be the stock Trainer's.
    logs = []
    for trainer_class, schedule in ((StockTrainer, None), (ProgressiveTrainer, "1@0,3@11")):
        args = arguments(
            tmp_path / trainer_class.__name__,
            depth_schedule=schedule,
            lr_scheduler_type="cosine",
            max_grad_norm=0.05,
            logging_steps=1,
        )
        trainer = trainer_class(model=tiny_model(1), args=args, train_dataset=token_dataset())
        trainer.train()
        logs.append([value for e in trainer.state.log_history[:11] for value in (e["loss"], e["grad_norm"])])
    assert all(norm > 0.05 for norm in logs[0][1::2])  # clipping acted on every step
    assert logs[1] == pytest.approx(logs[0], rel=1e-6)


def test_zero_grad_skips_the_reserve_only_while_training(tmp_path):
    # Trainer's model.zero_grad() walks every reserved module on every step; the trainer shadows it on the model it
    # steps with one that walks the parameters outside the reserve, and gives the model its own method back after
    # training, also when training fails. Equal losses with the stock Trainer: the test above.
    seen = []

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            model.transformer.wte.weight.grad = torch.ones_like(model.transformer.wte.weight)
            model.zero_grad()
            reserved = reserved_parameters(model)
            seen.append(("zero_grad" in vars(model), model.transformer.wte.weight.grad is None, len(reserved)))
            if state.global_step == 10:
                raise RuntimeError("interrupted")

    model = tiny_model(1)
    trainer = ProgressiveTrainer(model=model, args=arguments(tmp_path, depth_schedule="1@0,3@6"))
    trainer.train_dataset = token_dataset()
    trainer.add_callback(Probe())
    with pytest.raises(RuntimeError, match="interrupted"):
        trainer.train()
    assert all(patched and zeroed for patched, zeroed, _ in seen) and len(seen) == 10
    assert [reserved for *_, reserved in seen] == [24] * 6 + [0] * 4
    assert "zero_grad" not in vars(model)


def test_blocks_enter_the_stack_without_gradients():
    # zero_grad skips the reserve while training: a stray gradient there must not reach the first update.
    model = tiny_model(1)
    hf_progressive.reserve_blocks(model, 3)
    for parameter in reserved_parameters(model):
        parameter.grad = torch.ones_like(parameter)
    hf_progressive.grow(model, 3)
    assert all(p.grad is None for block in model.transformer.h[1:] for p in block.parameters())


def test_reserved_blocks_take_the_mode_of_the_stack_when_they_enter_it():
    model = tiny_model(0).train()
    hf_progressive.reserve_blocks(model, 3)
    model.eval()  # Trainer switches modes every step; the reserve does not follow (its blocks never run)
    reserve = getattr(model.transformer, RESERVE_ATTRIBUTE)
    assert all(module.training for module in reserve[0].modules())
    hf_progressive.grow(model, 2)
    assert not any(module.training for module in model.modules() if module not in set(reserve.modules()))
    model.train()
    hf_progressive.grow(model, 3)
    assert all(module.training for module in model.modules())


@pytest.mark.parametrize(
    "model_depth, overrides, message",
    [
        (0, dict(depth_schedule="0@0,3@0.5", growth_init="copy"), "has 0 blocks"),
        (4, dict(depth_schedule="0@0,3@0.5"), "The model has 4 blocks .* ends at 3"),
        (0, dict(depth_schedule="1@0,3@0.5"), "The model has 0 blocks but depth_schedule '1@0,3@0.5' starts at 1"),
    ],
)
def test_bad_plans_fail_before_training(tmp_path, model_depth, overrides, message):
    with pytest.raises(ValueError, match=message):
        ProgressiveTrainer(
            model=tiny_model(model_depth), args=arguments(tmp_path, **overrides), train_dataset=token_dataset()
        )


def test_stage_beyond_the_run_fails_at_train_start(tmp_path):
    # With epochs instead of max_steps the run length is only known at train start: 64 rows / 4 = 16 steps.
    model = tiny_model(0)
    args = arguments(tmp_path, max_steps=-1, num_train_epochs=1, depth_schedule="0@0,3@40")
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    with pytest.raises(ValueError, match="at or beyond max_steps=16"):
        trainer.train()
    assert trainer.state.global_step == 0 and model.config.n_layer == 0


def test_unsupported_model_fails_at_construction(tmp_path):
    class NotGPT2(torch.nn.Module):
        config = GPT2LMHeadModel.config_class()

    with pytest.raises(ValueError, match="cannot grow a NotGPT2"):
        ProgressiveTrainer(model=NotGPT2(), args=arguments(tmp_path))


def grown_checkpoint(tmp_path):
    """A model grown 0 -> 3 by a finished run, saved and loaded back as a plain GPT-2."""
    trainer = ProgressiveTrainer(model=tiny_model(0), args=arguments(tmp_path / "first"), train_dataset=token_dataset())
    trainer.train()
    trainer.save_model(tmp_path / "grown")
    return GPT2LMHeadModel.from_pretrained(tmp_path / "grown")


def test_recorded_schedule_of_a_finished_run_is_not_reapplied(tmp_path):
    model = grown_checkpoint(tmp_path)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = ProgressiveTrainer(
        model=model, args=arguments(tmp_path / "again", depth_schedule=None, max_steps=2), train_dataset=token_dataset()
    )
    assert trainer.growth_plan is None
    assert model.config.n_layer == 3 and not hasattr(model.transformer, RESERVE_ATTRIBUTE)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_schedule_that_would_discard_trained_blocks_is_refused(tmp_path):
    model = grown_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="already grew to 3 blocks .* start the schedule at 3, e.g. '3@0,6@0.8'"):
        ProgressiveTrainer(model=model, args=arguments(tmp_path / "again"), train_dataset=token_dataset())


def test_continue_growing_a_grown_model(tmp_path):
    model = grown_checkpoint(tmp_path)
    trained = [p.detach().clone() for p in model.transformer.h.parameters()]
    trainer = ProgressiveTrainer(
        model=model, args=arguments(tmp_path / "deeper", depth_schedule="3@0,5@0.5"), train_dataset=token_dataset()
    )
    assert [torch.equal(p, q) for p, q in zip(model.transformer.h.parameters(), trained)] == [True] * len(trained)
    trainer.train()
    assert model.config.n_layer == 5
    lineage = model.config.progressive["growth_history"]
    assert [(g["from_depth"], g["to_depth"]) for g in lineage] == [(0, 3), (3, 5)]
    assert model.config.progressive["target_n_layer"] == 5


def test_flops_are_counted_for_batch_encoding_inputs(tmp_path):
    # With a tokenizer as processing_class, Trainer's collator yields a BatchEncoding (a Mapping, not a dict).
    from transformers import BatchEncoding

    trainer = ProgressiveTrainer(model=tiny_model(0), args=arguments(tmp_path), train_dataset=token_dataset())
    batch = BatchEncoding({"input_ids": torch.zeros(2, 16, dtype=torch.long)})
    spent = trainer.floating_point_ops(batch)
    assert spent > 0 and trainer.compute.flops == spent
    assert trainer.compute.fixed_equivalent > spent  # counted at depth 0 against the target depth 3


def test_a_lora_wrapped_grown_checkpoint_fine_tunes_and_resumes_like_with_trainer(tmp_path):
    """No growth is asked for: a PEFT model around a grown GPT-2 trains, checkpoints its adapter and resumes from
    `resume_from_checkpoint=True` as with transformers.Trainer (adapter checkpoints hold no model.safetensors)."""
    from peft import LoraConfig, get_peft_model

    from hf_progressive import current_depth, grow

    base = tiny_model(1)
    base.config.progressive = {"depth_schedule": "1@0,2@0.5", "growth_init": "copy"}
    grow(base, 2, init="copy")
    base.config.progressive["growth_history"] = [{"step": 6, "from_depth": 1, "to_depth": 2, "init": "copy"}]
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True))
    assert current_depth(model) == 2  # the model inside the wrapper
    args = progressive_arguments(tmp_path, depth_schedule=None, max_steps=4, save_strategy="steps", save_steps=2)
    ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset()).train()
    assert (tmp_path / "checkpoint-2" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "checkpoint-2" / "model.safetensors").exists()

    shutil.rmtree(tmp_path / "checkpoint-4")
    again = get_peft_model(tiny_model(2), LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True))
    resumed = ProgressiveTrainer(model=again, args=args, train_dataset=token_dataset())
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4


def test_adapters_resolve_the_model_inside_wrappers():
    from peft import LoraConfig, get_peft_model

    from hf_progressive import current_depth, get_adapter
    from hf_progressive.adapters import unwrap_model

    model = tiny_model(2)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True))
    for wrapped in (torch.compile(model), torch.nn.DataParallel(model), lora, torch.compile(lora)):
        assert unwrap_model(wrapped) is model or unwrap_model(wrapped) is lora.get_base_model()
        assert current_depth(wrapped) == 2 and get_adapter(wrapped).name == "gpt2"


def test_a_second_training_loop_after_growth_says_why_it_cannot_restart(tmp_path):
    """auto_find_batch_size restarts the inner loop from step 0 after an out-of-memory error; so does a second
    train(). The grown model cannot restart a schedule that begins shallower: say so, not 'expects 0 blocks'."""
    trainer = ProgressiveTrainer(
        model=tiny_model(0), args=progressive_arguments(tmp_path), train_dataset=token_dataset()
    )
    trainer.train()
    with pytest.raises(ValueError, match=r"already grew to 3 blocks \(at step 6\) in an earlier training loop"):
        trainer.train()


def test_a_trainer_that_never_grows_warns_once_instead_of_training_shallow_in_silence(tmp_path, caplog):
    """transformers.Trainer ignores depth_schedule and reserved blocks: it says so once (a warning and a log line),
    naming what grows; ProgressiveTrainer with the same model and arguments does not warn."""
    import logging
    import warnings

    from transformers import AutoModelForCausalLM, Trainer

    from hf_progressive import ProgressiveGPT2Config

    def run(trainer_class, arguments, model):
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, "hf_progressive"):
            warnings.simplefilter("always")
            caplog.clear()
            trainer_class(model=model, args=arguments, train_dataset=token_dataset()).train()
        return [str(w.message) for w in caught if "hf_progressive.ProgressiveTrainer" in str(w.message)], caplog.text

    config = ProgressiveGPT2Config(
        n_layer=0, target_n_layer=3, depth_schedule="0@0,3@0.5", vocab_size=64, n_embd=32, n_head=4, n_positions=32
    )
    from hf_progressive import training_args

    training_args._warned.clear()  # other tests may have met these messages in this process
    args = arguments(tmp_path / "stock", max_steps=4, lr_scheduler_type="linear")  # stock WSD needs num_decay_steps
    caught, logged = run(Trainer, args, AutoModelForCausalLM.from_config(config))
    assert len(caught) == 2  # the arguments' schedule and the model's reserve, each once
    assert any("depth_schedule='0@0,3@0.5') are used by a Trainer that is not hf_progressive's" in w for w in caught)
    assert any("holds 3 reserved blocks (target depth 3)" in w and "trains at 0 blocks" in w for w in caught)
    assert "ProgressiveTrainerMixin" in logged

    again, _ = run(Trainer, args, AutoModelForCausalLM.from_config(config))  # once per message, not per run
    assert again == []
    fine, logged = run(
        ProgressiveTrainer, arguments(tmp_path / "ours", max_steps=4), AutoModelForCausalLM.from_config(config)
    )
    assert fine == [] and "nothing will grow" not in logged


def test_the_callback_only_route_grows_a_stock_trainers_model_and_lacks_what_readme_says(tmp_path):
    """transformers.Trainer + reserve_blocks() + GrowthCallback grows on schedule (README 'Your own Trainer'), but
    without the mixin the plan and the FLOPs are not recorded."""
    from transformers import Trainer, TrainingArguments

    from hf_progressive import GrowthCallback, current_depth, reserve_blocks

    model = tiny_model(0)
    reserve_blocks(model, 3)  # before the optimizer exists, as ProgressiveTrainer does
    new = [p for block in model.transformer.progressive_reserve for p in block.parameters()]
    before = [p.detach().clone() for p in new]
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=4, learning_rate=1e-2, report_to="none",
        use_cpu=True, disable_tqdm=True, save_strategy="no", logging_steps=1,
    )  # fmt: skip
    callback = GrowthCallback("0@0,3@0.5", init="random")
    Trainer(model=model, args=args, train_dataset=token_dataset(), callbacks=[callback]).train()
    assert current_depth(model) == 3 and [e["step"] for e in callback.history] == [4]
    assert all(not torch.equal(p, q) for p, q in zip(new, before))  # the optimizer held and trained them
    recorded = model.config.progressive  # the callback records the event; the plan and FLOPs only the mixin does
    assert [e["step"] for e in recorded["growth_history"]] == [4]
    assert "flops" not in recorded and "depth_schedule" not in recorded


def test_trls_sft_trainer_grows_with_the_mixin(tmp_path):
    """TRL's SFTTrainer, with its SFTConfig: the mixin goes first in both class lists."""
    from dataclasses import dataclass

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, LlamaConfig
    from trl import SFTConfig, SFTTrainer

    from hf_progressive import ProgressiveTrainerMixin, ProgressiveTrainingArguments, current_depth, progressive_config
    from hf_progressive.data import train_byte_level_bpe

    class ProgressiveSFTTrainer(ProgressiveTrainerMixin, SFTTrainer):
        pass

    @dataclass
    class ProgressiveSFTConfig(ProgressiveTrainingArguments, SFTConfig):
        pass

    texts = [f"def f{i}(x):\n    return x + {i}\n" for i in range(200)]
    tokenizer = train_byte_level_bpe(texts, vocab_size=300)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
        num_hidden_layers=3, max_position_embeddings=64,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(progressive_config(config, "1@0,3@0.5", growth_init="copy"))
    args = ProgressiveSFTConfig(
        output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=4, learning_rate=1e-2, report_to="none",
        use_cpu=True, disable_tqdm=True, save_strategy="no", logging_steps=2, max_length=64,
        lr_scheduler_type="warmup_stable_decay",
    )  # fmt: skip
    trainer = ProgressiveSFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": texts}), processing_class=tokenizer
    )
    trainer.train()
    assert current_depth(model) == 3
    assert [(g["step"], g["from_depth"], g["to_depth"]) for g in trainer.growth_history] == [(4, 1, 3)]
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert [e["depth"] for e in logged] == [1, 1, 3, 3] and all(0 < e["compute_saved"] < 1 for e in logged)
    assert "mean_token_accuracy" in logged[0]  # SFTTrainer's own metrics still logged
