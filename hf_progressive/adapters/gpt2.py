"""GPT-2 (`transformers.GPT2LMHeadModel` and `GPT2Model`)."""

from __future__ import annotations

from torch import nn
from transformers import GPT2LMHeadModel, GPT2Model
from transformers.models.gpt2.modeling_gpt2 import GPT2Block
from transformers.pytorch_utils import Conv1D

from .base import BlockStackAdapter, CardSpec
from .registry import register_adapter


@register_adapter
class GPT2Adapter(BlockStackAdapter):
    """Blocks live in ``transformer.h``; residual outputs are ``attn.c_proj`` and ``mlp.c_proj``."""

    name = "gpt2"
    model_types = ("gpt2", "progressive_gpt2")
    depth_field = "n_layer"
    architecture_fields = (
        "vocab_size",
        "n_positions",
        "n_embd",
        "n_head",
        "n_inner",
        "activation_function",
        "scale_attn_by_inverse_layer_idx",
        "reorder_and_upcast_attn",
        "tie_word_embeddings",
        "add_cross_attention",
    )
    # GPT-2's Conv1D stores (in, out): Muon's LR rule must read it transposed.
    transposed_weight_types = (Conv1D,)
    # c_attn holds Q|K|V side by side.
    fused_projections = {"attn.c_attn.weight": (1, 1, 1)}
    card = CardSpec(
        tags=("progressive-training", "hf_progressive", "gpt2", "text-generation"),
        pipeline_tag="text-generation",
        template="progressive_causal_lm.md",
        family="GPT-2",
        architecture="GPT2LMHeadModel",
    )

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return isinstance(model, (GPT2LMHeadModel, GPT2Model))

    def stack_owner(self, model: nn.Module) -> tuple[nn.Module, str]:
        return (model.transformer if isinstance(model, GPT2LMHeadModel) else model), "h"

    def build_block(self, model: nn.Module, position: int, init_depth: int) -> nn.Module:
        reference = next(model.parameters())
        block = GPT2Block(model.config, layer_idx=position).to(device=reference.device, dtype=reference.dtype)
        self.initialize_block(model, block, init_depth)
        return block

    def position_dependent(self, model: nn.Module) -> bool:
        # scale_attn_by_inverse_layer_idx divides attention scores by the block's position + 1.
        return bool(getattr(model.config, "scale_attn_by_inverse_layer_idx", False))

    def renumber(self, model: nn.Module) -> None:
        # Reserved blocks are numbered for the position they will take when they enter the stack.
        for index, block in enumerate(list(self.blocks(model)) + self.reserved_blocks(model)):
            # Self-attention, and cross-attention when the config adds it: both hold a layer_idx (the KV-cache slot)
            # and precompute their inverse-layer-index scaling from it at construction.
            for attention in filter(None, (block.attn, getattr(block, "crossattention", None))):
                attention.layer_idx = index
                if attention.scale_attn_by_inverse_layer_idx:
                    scaling = attention.head_dim**-0.5 if attention.scale_attn_weights else 1.0
                    attention.scaling = scaling / float(index + 1)

    def residual_output_projections(self, block: nn.Module) -> list[nn.Module]:
        return [block.attn.c_proj, block.mlp.c_proj]

    def hidden_size(self, config) -> int:
        return config.n_embd

    def context_length(self, config) -> int | None:
        return config.n_positions

    def model_from_config(self, config) -> nn.Module:
        return GPT2LMHeadModel(config)

    def block_from_config(self, config) -> nn.Module:
        return GPT2Block(config, layer_idx=0)

    def example_model(self, depth: int, variant: str = "") -> nn.Module:
        from transformers import GPT2Config

        config = GPT2Config(
            n_layer=depth, n_embd=32, n_head=4, vocab_size=64, n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
            attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, scale_attn_by_inverse_layer_idx=True,
        )  # fmt: skip
        return GPT2LMHeadModel(config).eval()
