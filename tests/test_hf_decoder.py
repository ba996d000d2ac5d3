"""What only the HF-decoder table adds beyond the shared battery: bare models, per-layer attention types."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from hf_progressive import current_depth, get_adapter, grow, reserve_blocks
from hf_progressive.adapters.hf_decoder import EXAMPLE_CONFIGS, HFDecoderAdapter


def tokens() -> torch.Tensor:
    return torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("model_type", ["llama", "gpt_neox"])
def test_the_bare_model_grows_too(model_type):
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, num_hidden_layers=1, **EXAMPLE_CONFIGS[model_type])
    model = AutoModel.from_config(config).eval()
    before = model(tokens()).last_hidden_state
    grow(model, 3, init="copy_zero")
    assert isinstance(get_adapter(model), HFDecoderAdapter) and current_depth(model) == 3
    assert model.config.num_hidden_layers == 3
    assert torch.allclose(model(tokens()).last_hidden_state, before, atol=1e-5)


def sliding_qwen2(depth: int):
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "qwen2", num_hidden_layers=depth, use_sliding_window=True, sliding_window=3, max_window_layers=2,
        **EXAMPLE_CONFIGS["qwen2"],
    )  # fmt: skip
    return AutoModelForCausalLM.from_config(config).eval()


def test_moved_blocks_take_the_attention_type_of_their_new_position():
    model = sliding_qwen2(2)
    assert model.config.layer_types == ["full_attention"] * 2
    reserve_blocks(model, 4)  # blocks for positions 2 and 3 are built while the config says 2 layers
    grow(model, 4, init="copy_inter")  # the trained blocks 0, 1 move to positions 0 and 2
    # The config class's own rule continues the list: layers from max_window_layers on use the sliding window.
    assert model.config.layer_types == ["full_attention", "full_attention", "sliding_attention", "sliding_attention"]
    for index, block in enumerate(model.model.layers):
        assert block.self_attn.layer_idx == index
        assert block.self_attn.layer_type == model.config.layer_types[index]
        assert block.self_attn.sliding_window == (3 if index >= 2 else None)
    cached = model.generate(tokens(), max_new_tokens=5, do_sample=False, use_cache=True, pad_token_id=0)
    uncached = model.generate(tokens(), max_new_tokens=5, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(cached, uncached)


def test_a_grown_qwen2_saves_a_config_that_validates(tmp_path):
    model = sliding_qwen2(0)
    grow(model, 3, init="random")
    model.save_pretrained(tmp_path)  # transformers checks len(layer_types) == num_hidden_layers here
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert reloaded.config.layer_types == model.config.layer_types and len(reloaded.model.layers) == 3


def test_routers_and_experts_are_named_by_the_models_own_family():
    from hf_progressive.adapters.hf_decoder import example_decoder

    mixtral = HFDecoderAdapter().parameter_roles(example_decoder("mixtral", 1))
    assert mixtral["model.layers.0.mlp.gate.weight"] == "router"
    assert mixtral["model.layers.0.mlp.experts.gate_up_proj"] == mixtral["model.layers.0.mlp.experts.down_proj"]
    assert mixtral["model.layers.0.mlp.experts.down_proj"] == "expert"
    llama = HFDecoderAdapter().parameter_roles(example_decoder("llama", 1))
    assert set(llama.values()) == {"matrix", "vector", "embedding", "head"}


def test_progressive_config_plans_the_growth_of_any_family(tmp_path):
    """progressive_config() does for a LlamaConfig what ProgressiveGPT2Config does for GPT-2: the model starts at the
    schedule's first depth, ProgressiveTrainer grows it by the recorded plan (no depth_schedule argument), and the
    saved checkpoint is a plain Llama that carries plan and history."""
    from conftest import progressive_arguments, token_dataset
    from transformers import LlamaConfig

    from hf_progressive import ProgressiveTrainer, progressive_config, progressive_metadata

    target = LlamaConfig(num_hidden_layers=3, **EXAMPLE_CONFIGS["llama"])
    config = progressive_config(target, "1@0,3@0.5", growth_init="copy")
    assert target.num_hidden_layers == 3 and config.num_hidden_layers == 1  # a copy; the argument is untouched
    model = AutoModelForCausalLM.from_config(config)
    assert current_depth(model) == 1
    args = progressive_arguments(tmp_path, depth_schedule=None, growth_init=None, max_steps=6)
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    trainer.train()
    assert current_depth(trainer.model) == 3
    trainer.save_model()
    saved = AutoConfig.from_pretrained(tmp_path)
    assert type(saved).__name__ == "LlamaConfig" and saved.num_hidden_layers == 3
    metadata = progressive_metadata(saved)
    assert metadata["depth_schedule"] == "1@0,3@0.5" and metadata["growth_init"] == "copy"
    assert [(e["step"], e["from_depth"], e["to_depth"], e["init"]) for e in metadata["growth_history"]] == [
        (3, 1, 3, "copy")
    ]
    assert metadata["flops"] > 0


def test_progressive_config_refuses_what_it_cannot_plan():
    from transformers import BertConfig, LlamaConfig

    from hf_progressive import progressive_config

    llama = LlamaConfig(num_hidden_layers=3, **EXAMPLE_CONFIGS["llama"])
    with pytest.raises(ValueError, match="no adapter for model_type 'bert'.*registered adapters"):
        progressive_config(BertConfig(), "0@0,2@0.8")
    with pytest.raises(ValueError, match="growth_init='copy' copies trained blocks.*0 blocks"):
        progressive_config(llama, "0@0,3@0.8", growth_init="copy")
    with pytest.raises(ValueError, match="Unknown growth_init 'clone'"):
        progressive_config(llama, "1@0,3@0.8", growth_init="clone")
    with pytest.raises(ValueError, match="above the target depth 2|target"):
        progressive_config(llama, "1@0,3@0.8", target_depth=2)


def alternating_qwen2(depth: int):
    types = ["full_attention", "sliding_attention"] * (depth // 2)
    config = AutoConfig.for_model(
        "qwen2", num_hidden_layers=depth, layer_types=types, sliding_window=3, **EXAMPLE_CONFIGS["qwen2"]
    )
    return config


def test_a_layer_pattern_growth_would_not_keep_fails_before_training(tmp_path):
    """A hand-written layer_types pattern the config class's rule does not produce cannot be cut to a shallow start
    and continued at growth without changing: refused before any step, naming the field, not silently retyped."""
    from conftest import progressive_arguments, token_dataset

    from hf_progressive import ProgressiveTrainer, progressive_config

    with pytest.raises(ValueError, match=r"layer_types=\['full_attention', 'sliding_attention'.*starting at 1"):
        progressive_config(alternating_qwen2(4), "1@0,4@0.8", growth_init="copy")
    model = AutoModelForCausalLM.from_config(alternating_qwen2(4))  # built at the target depth
    args = progressive_arguments(tmp_path, depth_schedule="1@0,4@0.5", growth_init="copy", max_steps=4)
    with pytest.raises(ValueError, match="layer_types"):
        ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    assert current_depth(model) == 4  # nothing was moved into a reserve
    # A pattern the rule does produce (one type for every layer here) plans fine.
    uniform = AutoConfig.for_model("qwen2", num_hidden_layers=4, **EXAMPLE_CONFIGS["qwen2"])
    assert progressive_config(uniform, "1@0,4@0.8", growth_init="copy").layer_types == ["full_attention"]


@pytest.mark.parametrize("model_type, family", [("llama", "Llama"), ("mixtral", "Mixtral"), ("gpt_neox", "GPT-NeoX")])
def test_the_card_of_a_grown_decoder_names_its_family_and_class(tmp_path, model_type, family):
    from hf_progressive.adapters.hf_decoder import example_decoder
    from hf_progressive.hub import write_model_card

    model = example_decoder(model_type, 1)
    grow(model, 2, init="copy")
    model.config.progressive = {"growth_history": [{"step": 3, "from_depth": 1, "to_depth": 2, "init": "copy"}]}
    text = write_model_card(tmp_path, model, model_name="tiny").read_text()
    assert f"A {family} trained with" in text and f"plain `{type(model).__name__}` checkpoint" in text
    assert "started training with\n1 transformer block(s) and grew to 2 blocks" in text


@pytest.mark.parametrize("model_type", ["qwen3", "mixtral"])
def test_a_decoder_built_at_the_target_depth_starts_shallow_and_grows(tmp_path, model_type):
    """As for GPT-2: blocks beyond the schedule's first stage are re-initialised into the reserve, then come back."""
    from conftest import progressive_arguments, token_dataset

    from hf_progressive import ProgressiveTrainer
    from hf_progressive.adapters.hf_decoder import example_decoder

    torch.manual_seed(0)
    model = example_decoder(model_type, 3).train()
    third = model.model.layers[2].self_attn.q_proj.weight
    trained_value = third.detach().clone()
    args = progressive_arguments(tmp_path, depth_schedule="1@0,3@0.5", growth_init="random", max_steps=6)
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    assert current_depth(model) == 1 and model.config.num_hidden_layers == 1
    assert not torch.equal(third, trained_value)  # re-initialised in the reserve, same Parameter object
    trainer.train()
    assert current_depth(model) == 3 and model.model.layers[2].self_attn.q_proj.weight is third
    assert [block.self_attn.layer_idx for block in model.model.layers] == [0, 1, 2]
    assert [(g["from_depth"], g["to_depth"]) for g in trainer.growth_history] == [(1, 3)]
