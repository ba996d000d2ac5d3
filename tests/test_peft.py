"""PEFT with grown models: LoRA fine-tuning of a grown checkpoint, and depth up-scaling of a pretrained model
(LLaMA-Pro: identity copies interleaved, then only the new blocks train, or the new blocks plus LoRA on the old)."""

import pytest
import torch
from conftest import progressive_arguments, token_dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from hf_progressive import ProgressiveTrainer, current_depth, grow, train_only_new_blocks
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


def test_a_depth_schedule_on_a_peft_wrapped_model_is_refused_before_training(tmp_path):
    """Growth under PEFT would save adapter-only checkpoints without the new blocks: refused, saying what works."""
    model = get_peft_model(example_decoder("llama", 1), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    args = progressive_arguments(tmp_path, depth_schedule="1@0,3@0.5", growth_init="copy", max_steps=4)
    with pytest.raises(ValueError, match="PEFT-wrapped model.*Grow first, then wrap.*expansion_lora_config"):
        ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    assert current_depth(model) == 1 and not list(tmp_path.iterdir())


def test_grow_refuses_a_peft_wrapped_model_instead_of_copying_lora_layers_wrongly():
    from hf_progressive import reserve_blocks

    model = get_peft_model(example_decoder("llama", 2), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for operation in (lambda: grow(model, 4, init="copy"), lambda: reserve_blocks(model, 4)):
        with pytest.raises(ValueError, match="Cannot grow a PEFT-wrapped PeftModel.*before get_peft_model"):
            operation()
    assert current_depth(model) == 2
