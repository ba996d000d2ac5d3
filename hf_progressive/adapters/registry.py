"""One registry of architecture adapters, looked up by model."""

from __future__ import annotations

from torch import nn

from .base import BlockStackAdapter

_ADAPTERS: list[type[BlockStackAdapter]] = []


def register_adapter(adapter_class: type[BlockStackAdapter]) -> type[BlockStackAdapter]:
    """Class decorator adding an adapter to the registry."""
    _ADAPTERS.append(adapter_class)
    return adapter_class


def supported_adapters() -> list[str]:
    return [adapter.name for adapter in _ADAPTERS]


def get_adapter(model: nn.Module) -> BlockStackAdapter:
    """The adapter for ``model``.

    Raises:
        ValueError: if no registered adapter handles the model's class.
    """
    for adapter_class in _ADAPTERS:
        if adapter_class.matches(model):
            return adapter_class()
    raise ValueError(
        f"hf_progressive cannot grow a {type(model).__name__}: supported architecture families are "
        f"{supported_adapters()} (e.g. transformers.GPT2LMHeadModel)."
    )
