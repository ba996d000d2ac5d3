"""Architecture adapters: where the block stack lives and how to add to it. One file per family."""

from . import gpt2, hf_decoder  # noqa: F401  (register their adapters)
from .base import BlockStackAdapter, CardSpec, ParameterCounts
from .registry import (
    adapter_for_config,
    get_adapter,
    list_adapters,
    register_adapter,
    supported_adapters,
    unregister_adapter,
    unwrap_model,
)

__all__ = [
    "BlockStackAdapter",
    "CardSpec",
    "ParameterCounts",
    "adapter_for_config",
    "get_adapter",
    "list_adapters",
    "register_adapter",
    "supported_adapters",
    "unregister_adapter",
    "unwrap_model",
]
