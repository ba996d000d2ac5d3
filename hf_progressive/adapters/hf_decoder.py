"""Hugging Face decoder-only LMs with one stack of blocks that know their position (``layer_idx``): Llama, Mistral,
Qwen2, Qwen3, Mixtral (MoE) and GPT-NeoX, as ``*ForCausalLM`` or as the bare ``*Model``.

What differs between the families is data, one row of :data:`FAMILIES` per ``config.model_type`` (as PEFT keeps its
per-model-type tables): where the stack lives, which attribute of a block holds ``layer_idx``, which weights write
into the residual stream, and the names of MoE routers and experts. Adding a family that follows the same pattern is
one row.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from .base import BlockStackAdapter, CardSpec, classify_parameters
from .registry import register_adapter, unwrap_model


@dataclass(frozen=True)
class DecoderFamily:
    """The facts of one decoder family."""

    #: Class name of a block in ``transformers.models.<model_type>.modeling_<model_type>``.
    block_class: str
    #: Attribute path of the stack on the ``*ForCausalLM`` model (the bare ``*Model`` holds it as the last part).
    stack: str = "model.layers"
    #: Attribute of a block holding ``layer_idx`` (its KV-cache slot).
    attention: str = "self_attn"
    #: Paths, inside a block, of the modules or parameters whose output is added to the residual stream.
    residual_outputs: tuple[str, ...] = ("self_attn.o_proj", "mlp.down_proj")
    router_suffixes: tuple[str, ...] = ()
    expert_suffixes: tuple[str, ...] = ()
    #: How the model card names the family.
    display_name: str = ""


FAMILIES: dict[str, DecoderFamily] = {
    "llama": DecoderFamily("LlamaDecoderLayer", display_name="Llama"),
    "mistral": DecoderFamily("MistralDecoderLayer", display_name="Mistral"),
    "qwen2": DecoderFamily("Qwen2DecoderLayer", display_name="Qwen2"),
    "qwen3": DecoderFamily("Qwen3DecoderLayer", display_name="Qwen3"),
    # Experts are two 3-D parameters per block (gate_up_proj, down_proj); zeroing every expert's down_proj zeroes
    # the MoE block's output.
    "mixtral": DecoderFamily(
        "MixtralDecoderLayer",
        residual_outputs=("self_attn.o_proj", "mlp.experts.down_proj"),
        router_suffixes=("mlp.gate.weight",),
        expert_suffixes=("mlp.experts.gate_up_proj", "mlp.experts.down_proj"),
        display_name="Mixtral",
    ),
    "gpt_neox": DecoderFamily(
        "GPTNeoXLayer",
        stack="gpt_neox.layers",
        attention="attention",
        residual_outputs=("attention.dense", "mlp.dense_4h_to_h"),
        display_name="GPT-NeoX",
    ),
}


def family_of(config: Any) -> DecoderFamily:
    return FAMILIES[config.model_type]


@register_adapter
class HFDecoderAdapter(BlockStackAdapter):
    """Every family of :data:`FAMILIES`; blocks are the family's decoder layers, depth is ``num_hidden_layers``."""

    name = "hf_decoder"
    model_types = tuple(FAMILIES)
    depth_field = "num_hidden_layers"
    # Qwen2/Qwen3 keep one attention type per layer; save_pretrained refuses a list of another length.
    per_layer_fields = ("layer_types",)
    # Mixtral's experts compute gate and up with one matrix per expert (split by muon_split_fused).
    fused_projections = {"mlp.experts.gate_up_proj": (1, 1)}
    architecture_fields = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "hidden_act",
        "max_position_embeddings",
        "rope_theta",
        "rope_parameters",
        "tie_word_embeddings",
        "num_local_experts",
        "num_experts_per_tok",
        "rotary_pct",
        "use_parallel_residual",
        "sliding_window",
    )
    card = CardSpec(
        tags=("progressive-training", "hf_progressive", "text-generation"),
        pipeline_tag="text-generation",
        template="progressive_causal_lm.md",
    )

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        config = getattr(model, "config", None)
        return isinstance(model, PreTrainedModel) and getattr(config, "model_type", None) in FAMILIES

    def stack_owner(self, model: nn.Module) -> tuple[nn.Module, str]:
        path = family_of(model.config).stack
        owner_path, attribute = path.rsplit(".", 1)
        # *ForCausalLM holds the bare model (model.layers); the bare model holds the stack itself.
        owner = model.get_submodule(owner_path) if hasattr(model, owner_path.split(".")[0]) else model
        return owner, attribute

    def build_block(self, model: nn.Module, position: int, init_depth: int) -> nn.Module:
        reference = next(model.parameters())
        with self._config_covering(model.config, position):
            block = self._block_class(model.config)(model.config, position)
        block.to(device=reference.device, dtype=reference.dtype)
        self.initialize_block(model, block, init_depth)
        return block

    def renumber(self, model: nn.Module) -> None:
        config = model.config
        family = family_of(config)
        layer_types = getattr(config, "layer_types", None)
        for index, block in enumerate(list(self.blocks(model)) + self.reserved_blocks(model)):
            attention = block.get_submodule(family.attention)
            attention.layer_idx = index
            # Qwen-style attention fixes its type (and sliding window) at construction, from its position: a block
            # that moved takes the type of its new position. Reserved blocks get theirs when they enter the stack.
            if layer_types is not None and index < len(layer_types) and hasattr(attention, "layer_type"):
                attention.layer_type = layer_types[index]
                if hasattr(attention, "sliding_window"):
                    sliding = attention.layer_type == "sliding_attention"
                    attention.sliding_window = getattr(config, "sliding_window", None) if sliding else None

    def position_dependent(self, model: nn.Module) -> bool:
        # A block takes its position's attention type (full or sliding window).
        return len(set(getattr(model.config, "layer_types", None) or [])) > 1

    def parameter_roles(self, model: nn.Module) -> dict[str, str]:
        # Routers and experts by the names of the model's own family (its row), not of every family in the table.
        family = family_of(unwrap_model(model).config)
        return classify_parameters(model, family.router_suffixes, family.expert_suffixes)

    def set_config_depth(self, model: nn.Module, depth: int) -> None:
        super().set_config_depth(model, depth)
        owner, _ = self.stack_owner(model)
        # Qwen-style models decide at construction whether to build a sliding-window mask at all.
        if hasattr(owner, "has_sliding_layers"):
            owner.has_sliding_layers = "sliding_attention" in (getattr(model.config, "layer_types", None) or [])

    def per_layer_value(self, config: Any, field_name: str, position: int) -> Any:
        """The config class's own rule: the value a config of that class, with the same settings, built for
        ``position + 1`` layers gives position ``position`` (Qwen2's sliding window from ``max_window_layers`` on).
        A list the rule does not produce (written by hand) and a class without a rule fall back to the base rule:
        a list whose entries agree continues, any other pattern is refused rather than guessed."""
        settings = {**config.to_dict(), self.depth_field: position + 1, field_name: None}
        derived = getattr(type(config).from_dict(settings), field_name, None)
        current = list(getattr(config, field_name))[:position]
        if derived is not None and len(derived) > position and list(derived[: len(current)]) == current:
            return derived[position]
        return super().per_layer_value(config, field_name, position)

    def residual_output_projections(self, block: nn.Module) -> list[nn.Module]:
        return [module for module in self._residual_outputs(block) if isinstance(module, nn.Module)]

    def residual_output_parameters(self, block: nn.Module) -> list[nn.Parameter]:
        parameters = []
        for item in self._residual_outputs(block):
            parameters += list(item.parameters()) if isinstance(item, nn.Module) else [item]
        return parameters

    def family_name(self, config: Any) -> str:
        return family_of(config).display_name or config.model_type

    def hidden_size(self, config) -> int:
        return config.hidden_size

    def context_length(self, config) -> int | None:
        return config.max_position_embeddings

    def model_from_config(self, config) -> nn.Module:
        return AutoModelForCausalLM.from_config(config)

    def block_from_config(self, config) -> nn.Module:
        with self._config_covering(config, 0):
            return self._block_class(config)(config, 0)

    example_variants = tuple(FAMILIES)

    def example_model(self, depth: int, variant: str = "llama") -> nn.Module:
        return example_decoder(variant or "llama", depth)

    # Helpers ---------------------------------------------------------------------------------------------------

    def _block_class(self, config) -> type[nn.Module]:
        module = importlib.import_module(f"transformers.models.{config.model_type}.modeling_{config.model_type}")
        return getattr(module, family_of(config).block_class)

    def _residual_outputs(self, block: nn.Module) -> list[nn.Module | nn.Parameter]:
        items = []
        for path in family_of_block(block).residual_outputs:
            module_path, _, leaf = path.rpartition(".")
            owner = block.get_submodule(module_path) if module_path else block
            items.append(getattr(owner, leaf))
        return items

    @contextlib.contextmanager
    def _config_covering(self, config, position: int) -> Iterator[None]:
        """Let ``config`` describe at least ``position + 1`` blocks while a block for ``position`` is built (layers
        read their attention type from ``config.layer_types[position]`` at construction)."""
        saved = {name: getattr(config, name, None) for name in (self.depth_field, *self.per_layer_fields)}
        if position >= saved[self.depth_field]:
            self.write_depth(config, position + 1)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is not None or hasattr(config, name):
                    setattr(config, name, value)


def family_of_block(block: nn.Module) -> DecoderFamily:
    """The family of a decoder block, from its class."""
    name = type(block).__name__
    for family in FAMILIES.values():
        if family.block_class == name:
            return family
    raise ValueError(f"{name} is not a block of a family in hf_progressive.adapters.hf_decoder.FAMILIES.")


#: Tiny configs of each family, for tests and the contract battery (no Hub).
EXAMPLE_CONFIGS: dict[str, dict[str, Any]] = {
    family: dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        tie_word_embeddings=False,
    )  # fmt: skip
    for family in ("llama", "mistral", "qwen2", "qwen3")
}
EXAMPLE_CONFIGS["mixtral"] = {**EXAMPLE_CONFIGS["llama"], "num_local_experts": 4, "num_experts_per_tok": 2}
EXAMPLE_CONFIGS["gpt_neox"] = dict(
    vocab_size=64, hidden_size=32, intermediate_size=48, num_attention_heads=4, max_position_embeddings=32,
    bos_token_id=0, eos_token_id=0, pad_token_id=0, hidden_dropout=0.0, attention_dropout=0.0,
)  # fmt: skip


def example_decoder(model_type: str, depth: int) -> nn.Module:
    """A tiny, randomly initialised ``*ForCausalLM`` of ``model_type`` with ``depth`` blocks."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type, num_hidden_layers=depth, **EXAMPLE_CONFIGS[model_type])
    return AutoModelForCausalLM.from_config(config).eval()
