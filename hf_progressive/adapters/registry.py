"""One registry of architecture adapters, looked up by model."""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from .base import BlockStackAdapter

#: Adapters by name.
_ADAPTERS: dict[str, type[BlockStackAdapter]] = {}
#: The registered adapters in lookup order, sorted once per registration (lookups run several times a step).
_ORDER: list[type[BlockStackAdapter]] = []


def register_adapter(adapter_class: type[BlockStackAdapter]) -> type[BlockStackAdapter]:
    """Class decorator adding an adapter to the registry under its ``name`` (registering a name again replaces
    the earlier adapter, so a user can override a shipped one)."""
    if not adapter_class.name:
        raise ValueError(f"{adapter_class.__name__} needs a `name` to be registered.")
    _ADAPTERS[adapter_class.name] = adapter_class
    _ORDER[:] = sorted(_ADAPTERS.values(), key=lambda adapter: -adapter.priority)
    return adapter_class


def unregister_adapter(name: str) -> type[BlockStackAdapter]:
    """Remove the adapter registered under ``name`` and return it (e.g. to undo a test's registration)."""
    adapter_class = _ADAPTERS.pop(name)
    _ORDER.remove(adapter_class)
    return adapter_class


def _by_priority() -> list[type[BlockStackAdapter]]:
    return _ORDER


def list_adapters() -> list[str]:
    """Names of the registered adapters, in the order they are tried (highest priority first)."""
    return [adapter.name for adapter in _by_priority()]


def supported_model_types() -> list[str]:
    """Every ``config.model_type`` a registered adapter knows."""
    return [model_type for adapter in _by_priority() for model_type in adapter.model_types]


#: Older name of :func:`list_adapters`.
supported_adapters = list_adapters


def adapter_for_config(config) -> BlockStackAdapter:
    """The adapter of the family ``config`` describes (by ``model_type``), for accounting that has no model.

    Raises:
        ValueError: if no registered adapter knows the config's ``model_type``.
    """
    return _first_match(
        lambda adapter_class: adapter_class.matches_config(config),
        lambda: (
            f"hf_progressive has no adapter for model_type '{getattr(config, 'model_type', None)}': registered "
            f"adapters are {list_adapters()}."
        ),
    )


def _first_match(matches, refusal) -> BlockStackAdapter:
    """An instance of the highest-priority adapter class that ``matches``; ``ValueError(refusal())`` if none does
    (the message is built only then: lookups run every training step)."""
    for adapter_class in _by_priority():
        if matches(adapter_class):
            return adapter_class()
    raise ValueError(refusal())


def _wrapper_layers(model: nn.Module) -> Iterator[nn.Module]:
    """``model``, then each model inside it that training's wrappers hold: PEFT (``get_base_model()``), DDP and
    DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``), however they are nested; the last one yielded
    is the model itself."""
    while True:
        yield model
        if _is_peft(model):
            inner = model.get_base_model()
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            inner = model._orig_mod
        else:
            return
        if inner is model:
            return
        model = inner


def _is_peft(model: nn.Module) -> bool:
    return callable(getattr(model, "get_base_model", None))  # peft.PeftModel, without importing peft


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside the wrappers training puts around it: PEFT (``get_base_model()``), DDP and DataParallel
    (``.module``) and ``torch.compile`` (``._orig_mod``), however they are nested."""
    for layer in _wrapper_layers(model):
        model = layer
    return model


def is_peft_wrapped(model: nn.Module) -> bool:
    """Whether a PEFT wrapper (``peft.PeftModel``, found without importing peft) is around the model, however else
    it is wrapped (DDP, ``torch.compile``)."""
    return any(_is_peft(layer) for layer in _wrapper_layers(model))


def get_adapter(model: nn.Module) -> BlockStackAdapter:
    """The adapter for ``model`` (or for the model inside its PEFT, DDP or ``torch.compile`` wrapper).

    Raises:
        ValueError: if no registered adapter handles the model's class.
    """
    inner = unwrap_model(model)
    return _first_match(
        lambda adapter_class: adapter_class.matches(inner),
        lambda: (
            f"hf_progressive cannot grow a {type(model).__name__}: supported architecture families are "
            f"{list_adapters()}, for the model types {supported_model_types()}."
        ),
    )
