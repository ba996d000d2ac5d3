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
