"""The adapter owns the architecture: the generic modules name no GPT-2 class, field or module, and the registry
is keyed by name, ordered by priority and listed."""

import ast
import io
import tokenize

import pytest
import torch
from conftest import REPO_ROOT, tiny_config, tiny_model
from transformers import GPT2LMHeadModel

import hf_progressive
from hf_progressive.adapters import adapter_for_config, get_adapter, list_adapters, register_adapter
from hf_progressive.adapters.gpt2 import GPT2Adapter
from hf_progressive.adapters.registry import unregister_adapter

GENERIC_MODULES = ["trainer.py", "planning.py", "callbacks.py", "checkpointing.py", "flops.py", "optim.py", "hub.py"]
GPT2_NAMES = {
    "GPT2LMHeadModel", "GPT2Model", "GPT2Config", "GPT2Block", "GPT2Attention", "Conv1D", "n_layer", "n_embd",
    "n_positions", "n_head", "n_inner", "c_attn", "c_proj", "c_fc", "wte", "wpe", "lm_head", "ln_f", "transformer",
}  # fmt: skip


def code_words(path) -> list[tuple[int, str]]:
    """(line, word) of every name and every word of a non-docstring string literal: comments and docstrings may
    use GPT-2 as an example, code may not."""
    source = path.read_text()
    docstrings = {
        node.body[0].value.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }
    words = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            words.append((token.start[0], token.string))
        elif token.type in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)):
            if token.start[0] not in docstrings:
                text = "".join(c if c.isalnum() or c == "_" else " " for c in token.string)
                words += [(token.start[0], word) for word in text.split()]
    return words


@pytest.mark.parametrize("module", GENERIC_MODULES)
def test_generic_modules_name_no_gpt2_class_field_or_module(module):
    found = [(line, word) for line, word in code_words(REPO_ROOT / "hf_progressive" / module) if word in GPT2_NAMES]
    assert found == [], f"{module} names GPT-2 facts (they belong in adapters/gpt2.py): {found}"


def test_the_check_catches_a_gpt2_fact(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""GPT-2\'s n_layer in a docstring is fine."""\n\ndef depth(config):\n    return config.n_layer\n'
    )
    assert [w for _, w in code_words(planted) if w in GPT2_NAMES] == ["n_layer"]


def test_registry_is_keyed_by_name_ordered_by_priority_and_listed():
    assert "gpt2" in list_adapters() and hf_progressive.list_adapters() == list_adapters()
    assert type(get_adapter(tiny_model(1))) is GPT2Adapter
    assert type(adapter_for_config(tiny_config(1))) is GPT2Adapter

    class TinyGPT2(GPT2LMHeadModel):
        pass

    class TinyGPT2Adapter(GPT2Adapter):
        name = "tiny_gpt2"
        priority = 10  # tried before the generic GPT-2 adapter

        @classmethod
        def matches(cls, model):
            return isinstance(model, TinyGPT2)

    register_adapter(TinyGPT2Adapter)
    try:
        assert list_adapters()[0] == "tiny_gpt2"
        assert type(get_adapter(TinyGPT2(tiny_config(1)))) is TinyGPT2Adapter
        assert type(get_adapter(tiny_model(1))) is GPT2Adapter
    finally:
        assert unregister_adapter("tiny_gpt2") is TinyGPT2Adapter
    assert "tiny_gpt2" not in list_adapters()


def test_parameter_counts_come_from_the_real_modules():
    config = tiny_config(3, n_inner=48, tie_word_embeddings=False)
    model = GPT2LMHeadModel(config)
    counts = GPT2Adapter().parameter_counts(config)
    assert counts.block == sum(p.numel() for p in model.transformer.h[0].parameters())
    embeddings = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    assert counts.embedding == embeddings
    assert counts.embedding + counts.other + 3 * counts.block == model.num_parameters()  # untied head in "other"


def test_parameter_roles_come_from_the_modules_and_route_the_optimizer():
    from hf_progressive.optim import muon_nsgd_param_groups

    model = tiny_model(1, tie_word_embeddings=False)
    roles = GPT2Adapter().parameter_roles(model)
    assert roles["transformer.wte.weight"] == roles["transformer.wpe.weight"] == "embedding"
    assert roles["lm_head.weight"] == "head"
    assert roles["transformer.h.0.attn.c_attn.weight"] == roles["transformer.h.0.mlp.c_proj.weight"] == "matrix"
    assert roles["transformer.h.0.ln_1.weight"] == roles["transformer.h.0.attn.c_attn.bias"] == "vector"
    assert GPT2Adapter().parameter_roles(tiny_model(1))["transformer.wte.weight"] == "embedding"  # tied head

    class RoutedGPT2Adapter(GPT2Adapter):  # pretend the MLP input is a router and its output 3-D experts
        router_suffixes = ("mlp.c_fc.weight",)
        expert_suffixes = ("mlp.c_proj.weight",)

    routed = RoutedGPT2Adapter().parameter_roles(model)
    assert routed["transformer.h.0.mlp.c_fc.weight"] == "router"
    assert routed["transformer.h.0.mlp.c_proj.weight"] == "expert"
    register_adapter(type("RoutedGPT2", (RoutedGPT2Adapter,), {"name": "routed", "priority": 10}))
    try:
        groups = muon_nsgd_param_groups(model, lr=1.0, weight_decay=0.0)
    finally:
        unregister_adapter("routed")
    algorithm = {id(p): g["algorithm"] for g in groups for p in g["params"]}
    parameters = dict(model.named_parameters())
    assert algorithm[id(parameters["transformer.h.0.mlp.c_fc.weight"])] == "nsgd"  # routers: normalised SGD
    assert algorithm[id(parameters["transformer.h.0.mlp.c_proj.weight"])] == "muon"  # experts: Muon, one by one
    assert algorithm[id(parameters["lm_head.weight"])] == "muon"  # an untied head: Muon, as always here
    assert algorithm[id(parameters["transformer.h.0.attn.c_attn.weight"])] == "muon"


def test_per_layer_config_fields_follow_the_depth():
    class LayerTypedGPT2Adapter(GPT2Adapter):
        per_layer_fields = ("layer_types",)

    adapter = LayerTypedGPT2Adapter()
    model = tiny_model(2)
    model.config.layer_types = ["full_attention", "full_attention"]
    adapter.set_config_depth(model, 4)
    assert model.config.layer_types == ["full_attention"] * 4 and model.config.n_layer == 4
    adapter.set_config_depth(model, 1)
    assert model.config.layer_types == ["full_attention"]
    model.config.layer_types = ["sliding_attention", "full_attention"]
    with pytest.raises(ValueError, match="layer_types=.*'sliding_attention', 'full_attention'.* per_layer_value"):
        adapter.set_config_depth(model, 3)


def test_growth_zeroes_and_scales_the_residual_output_parameters_the_adapter_names():
    class AttentionOnlyResidualAdapter(GPT2Adapter):  # a family whose residual output is one parameter per block
        name = "attention_only_residual"
        priority = 10

        def residual_output_parameters(self, block):
            return [block.attn.c_proj.weight]

    register_adapter(AttentionOnlyResidualAdapter)
    try:
        model = tiny_model(1)
        hf_progressive.grow(model, 2, init="zero")
    finally:
        unregister_adapter("attention_only_residual")
    new = model.transformer.h[1]
    assert torch.count_nonzero(new.attn.c_proj.weight) == 0
    assert torch.count_nonzero(new.mlp.c_proj.weight) > 0 and torch.count_nonzero(new.attn.c_proj.bias) == 0


def test_every_adapter_lists_its_single_stack_among_its_stacks():
    model = tiny_model(2)
    adapter = get_adapter(model)
    assert adapter.stacks(model) == {"blocks": adapter.stack_owner(model)}
