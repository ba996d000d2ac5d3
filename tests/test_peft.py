"""PEFT with grown models: LoRA fine-tuning of a grown checkpoint, and depth up-scaling of a pretrained model
(LLaMA-Pro: identity copies interleaved, then only the new blocks train, or the new blocks plus LoRA on the old)."""

import shutil

import pytest
import torch
from conftest import progressive_arguments, token_dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from hf_progressive import ProgressiveTrainer, current_depth, grow, train_only_new_blocks
from hf_progressive import reserve_blocks as hf_reserve_blocks
from hf_progressive.adapters.hf_decoder import example_decoder
from hf_progressive.peft_support import expansion_lora_config


def tokens() -> torch.Tensor:
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(3))


def plain_arguments(output_dir, steps: int = 10) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-2,
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, seed=0,
    )  # fmt: skip


def pretrained_llama(tmp_path, depth: int = 4):
    """A tiny Llama 'pretrained' here (20 steps of the stock Trainer), standing in for a Hub checkpoint."""
    torch.manual_seed(0)
    model = example_decoder("llama", depth).train()
    Trainer(model=model, args=plain_arguments(tmp_path / "pretrain", 20), train_dataset=token_dataset()).train()
    return model.eval()


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("trainer_class", [Trainer, ProgressiveTrainer])
def test_lora_fine_tunes_a_grown_llama_checkpoint(tmp_path, trainer_class):
    model = example_decoder("llama", 1)
    args = progressive_arguments(tmp_path / "grow", depth_schedule="1@0,3@0.5", growth_init="copy", max_steps=6)
    grower = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    grower.train()
    grower.save_model()
    grown = AutoModelForCausalLM.from_pretrained(tmp_path / "grow")
    assert current_depth(grown) == 3
    lora = get_peft_model(grown, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    frozen = {n: p.detach().clone() for n, p in lora.named_parameters() if "lora_" not in n}
    tuner = trainer_class(model=lora, args=plain_arguments(tmp_path / "tune", 6), train_dataset=token_dataset())
    tuner.train()
    assert all(torch.equal(p, frozen[n]) for n, p in lora.named_parameters() if "lora_" not in n)
    trained = [p for n, p in lora.named_parameters() if "lora_B" in n]
    assert len(trained) == 6 and all(p.abs().sum() > 0 for p in trained)  # 3 blocks x (q, v), all trained
    tuner.save_model()
    assert (tmp_path / "tune" / "adapter_model.safetensors").is_file()


def test_llama_pro_interleaves_identity_copies_and_keeps_the_function(tmp_path):
    model = pretrained_llama(tmp_path)
    before = model(tokens()).logits
    old_blocks = list(model.model.layers)
    event = grow(model, 6, init="llama_pro")
    assert event.new_blocks == [2, 5] and event.copied_from == {2: 1, 5: 4}  # grown positions
    assert list(model.model.layers)[:2] == old_blocks[:2] and list(model.model.layers)[3:5] == old_blocks[2:]
    assert [block.self_attn.layer_idx for block in model.model.layers] == list(range(6))
    assert torch.allclose(model(tokens()).logits, before, atol=1e-5)
    for position in event.new_blocks:
        new, source = model.model.layers[position], model.model.layers[event.copied_from[position]]
        assert torch.equal(new.self_attn.q_proj.weight, source.self_attn.q_proj.weight)
        assert not new.self_attn.o_proj.weight.any() and not new.mlp.down_proj.weight.any()


def test_llama_pro_then_only_the_new_blocks_train(tmp_path):
    model = pretrained_llama(tmp_path)
    event = grow(model, 6, init="llama_pro")
    trainable = train_only_new_blocks(model, event)
    assert trainable == sum(p.numel() for i in event.new_blocks for p in model.model.layers[i].parameters())
    before = snapshot(model)
    Trainer(model=model.train(), args=plain_arguments(tmp_path / "expand"), train_dataset=token_dataset()).train()
    new = set(event.new_parameter_names)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]) != (name in new), name  # only the new blocks moved
    with pytest.raises(ValueError, match="None of the event's new parameters"):
        train_only_new_blocks(example_decoder("gpt_neox", 2), event)


def test_llama_pro_with_lora_on_the_old_blocks_merges_into_a_plain_grown_checkpoint(tmp_path):
    model = pretrained_llama(tmp_path)
    event = grow(model, 6, init="llama_pro")
    config = expansion_lora_config(model, event, r=4, target_modules=["q_proj", "v_proj"])
    assert config.layers_to_transform == [0, 1, 3, 4] and config.layers_pattern == "layers"
    assert config.modules_to_save == ["model.layers.2", "model.layers.5"]
    lora = get_peft_model(model, config)
    before = snapshot(lora)
    tuner = ProgressiveTrainer(
        model=lora.train(), args=plain_arguments(tmp_path / "lora"), train_dataset=token_dataset()
    )
    tuner.train()
    changed = {name for name, parameter in lora.named_parameters() if not torch.equal(parameter, before[name])}
    # LoRA trained on the old blocks only, the new blocks in full (PEFT's trainable copies), nothing else.
    assert {n.split(".layers.")[1].split(".")[0] for n in changed if "lora_B" in n} == {"0", "1", "3", "4"}
    assert any(".layers.2.modules_to_save." in n and "o_proj" in n for n in changed)
    assert all("lora_" in n or "modules_to_save" in n for n in changed)
    tuner.save_model()  # the adapter holds the new blocks too
    assert (tmp_path / "lora" / "adapter_model.safetensors").is_file()

    lora.eval()
    expected = lora(tokens()).logits
    merged = lora.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert reloaded.config.num_hidden_layers == 6
    assert torch.allclose(reloaded(tokens()).logits, expected, atol=1e-5)
    with pytest.raises(ValueError, match="sets \\['layers_to_transform'\\]"):
        expansion_lora_config(reloaded, event, layers_to_transform=[0])


def test_grow_refuses_a_peft_wrapped_model_instead_of_copying_lora_layers_wrongly():
    from hf_progressive import reserve_blocks

    model = get_peft_model(example_decoder("llama", 2), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for operation in (lambda: grow(model, 4, init="copy"), lambda: reserve_blocks(model, 4)):
        with pytest.raises(ValueError, match="Cannot grow a PEFT-wrapped PeftModel.*before get_peft_model"):
            operation()
    assert current_depth(model) == 2


def lora_llama(depth: int = 1, save_base_to=None):
    """A tiny Llama with LoRA on q and v whose LoRA already moved (lora_B no longer zero)."""
    torch.manual_seed(0)
    base = example_decoder("llama", depth)
    if save_base_to is not None:
        base.save_pretrained(save_base_to)  # the base as it is before PEFT and any training
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    return model


def test_a_peft_wrapped_model_grows_in_training_lora_stays_on_the_old_blocks_the_new_train_in_full(tmp_path):
    model = lora_llama()
    base = model.get_base_model()
    args = progressive_arguments(tmp_path, depth_schedule="1@0,3@0.5", growth_init="copy", max_steps=6)
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    reserve = [name for name, _ in model.named_parameters() if "progressive_reserve" in name]
    assert reserve and not any("lora_" in name for name in reserve)  # the reserve is excluded from LoRA
    before = {id(parameter): parameter.detach().clone() for parameter in model.parameters()}  # blocks move: by id
    trainer.train()
    assert current_depth(model) == 3
    changed = {
        name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[id(parameter)])
    }
    assert {n for n in changed if "lora_" in n} and all(".layers.0." in n for n in changed if "lora_" in n)
    assert not any(".layers.0." in n and "lora_" not in n for n in changed)  # the old block's base stays frozen
    for position in (1, 2):  # new blocks: every weight of the trainable copy trains, none of them LoRA
        trained = [n for n in changed if f".layers.{position}.modules_to_save." in n]
        assert len(trained) == 9, trained
    assert model.peft_config["default"].modules_to_save == ["model.layers.1", "model.layers.2"]
    assert [block.self_attn.layer_idx for block in base.model.layers] == [0, 1, 2]


def test_growth_under_peft_copies_what_the_old_block_computes_and_zero_inits_leave_lora_alone(tmp_path):
    from hf_progressive.adapters.base import trainable_block
    from hf_progressive.peft_support import prepare_reserve_for_peft

    model = lora_llama()
    base = model.get_base_model()
    hf_reserve_blocks(base, 3)
    prepare_reserve_for_peft(model)
    old_q = base.model.layers[0].self_attn.q_proj
    merged_q = old_q.get_base_layer().weight + old_q.get_delta_weight("default")
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    before = model(tokens()).logits
    grow(base, 3, init="copy_zero")
    assert torch.allclose(model(tokens()).logits, before, atol=1e-5)  # identities, through the wrappers
    assert all(torch.equal(p, lora[n]) for n, p in model.named_parameters() if "lora_" in n)  # LoRA untouched
    new = trainable_block(base.model.layers[1])
    assert torch.allclose(new.self_attn.q_proj.weight, merged_q, atol=1e-6)  # base + LoRA delta of the source
    assert not new.self_attn.o_proj.weight.any() and not new.mlp.down_proj.weight.any()


def test_the_adapter_of_a_grown_peft_model_loads_onto_a_base_grown_alike_and_resumes(tmp_path):
    from peft import PeftModel

    model = lora_llama(save_base_to=tmp_path / "base")
    args = progressive_arguments(
        tmp_path / "run", depth_schedule="1@0,3@0.5", growth_init="copy", max_steps=6, save_strategy="steps",
        save_steps=1, logging_steps=1,
    )  # fmt: skip
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    trainer.train()
    trainer.save_model()
    expected = model.eval()(tokens()).logits

    grown_base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    grow(grown_base, 3, init="random")  # any init: the adapter holds the grown blocks' weights
    loaded = PeftModel.from_pretrained(grown_base, tmp_path / "run").eval()
    assert torch.allclose(loaded(tokens()).logits, expected, atol=1e-5)

    # Resume after growth from an adapter checkpoint: the run ends where the uninterrupted one did.
    shutil.rmtree(tmp_path / "run" / "checkpoint-6")
    again = lora_llama()
    resumed = ProgressiveTrainer(model=again, args=args, train_dataset=token_dataset())
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-5"))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert [e["loss"] for e in resumed.state.log_history if "loss" in e][-1] == pytest.approx(losses[-1], abs=1e-5)
    assert torch.allclose(again.eval()(tokens()).logits, expected, atol=1e-5)
