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


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside the wrappers training puts around it: PEFT (``get_base_model()``), DDP and DataParallel
    (``.module``) and ``torch.compile`` (``._orig_mod``), however they are nested."""
    while True:
        if callable(getattr(model, "get_base_model", None)):  # peft.PeftModel, without importing peft
            inner = model.get_base_model()
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            inner = model._orig_mod
        else:
            return model
        if inner is model:
            return model
        model = inner


def get_adapter(model: nn.Module) -> BlockStackAdapter:
    """The adapter for ``model`` (or for the model inside its PEFT, DDP or ``torch.compile`` wrapper).

    Raises:
        ValueError: if no registered adapter handles the model's class.
    """
    inner = unwrap_model(model)
    for adapter_class in _ADAPTERS:
        if adapter_class.matches(inner):
            return adapter_class()
    raise ValueError(
        f"hf_progressive cannot grow a {type(model).__name__}: supported architecture families are "
        f"{supported_adapters()} (e.g. transformers.GPT2LMHeadModel)."
    )
