"""PEFT and growth: LoRA on the blocks a model had, the blocks growth added trained in full (LLaMA-Pro with LoRA).

Needs ``peft`` (``pip install hf_progressive[peft]``); nothing else in hf_progressive imports it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .adapters import get_adapter, unwrap_model
from .adapters.base import remove_tuner_layers
from .growth import GrowthEvent, block_names


def expansion_lora_config(model: nn.Module, event: GrowthEvent, **lora_kwargs: Any):
    """A ``peft.LoraConfig`` for a model that ``event`` grew: LoRA on the blocks it had before
    (``layers_to_transform``), the new blocks trained in full and saved with the adapter (``modules_to_save``)::

        event = grow(model, 40, init="llama_pro")  # identity copies after every 4th block of a 32-block model
        model = get_peft_model(model, expansion_lora_config(model, event, r=16, target_modules=["q_proj", "v_proj"]))

    ``merge_and_unload()`` then gives a plain checkpoint of the grown depth. The adapter alone (``save_pretrained``
    of the PEFT model) loads onto the base model grown the same way (``grow`` with the same depth and init) first.

    Args:
        lora_kwargs: the rest of the ``LoraConfig`` (``r``, ``target_modules``, ...); ``layers_to_transform``,
            ``layers_pattern`` and ``modules_to_save`` are set here (``modules_to_save`` given here is kept too).

    Raises:
        ValueError: if ``lora_kwargs`` sets ``layers_to_transform`` or ``layers_pattern``, or the event added no
            block to this model's depth.
    """
    from peft import LoraConfig

    clash = sorted({"layers_to_transform", "layers_pattern"} & set(lora_kwargs))
    if clash:
        raise ValueError(f"expansion_lora_config sets {clash} from the growth event; do not pass them.")
    inner = unwrap_model(model)
    depth = get_adapter(inner).depth(inner)
    if event.to_depth != depth or not event.new_blocks:
        raise ValueError(
            f"The event grew a model to {event.to_depth} blocks, this one has {depth}: pass the event of this model."
        )
    kept = [position for position in range(depth) if position not in set(event.new_blocks)]
    _, attribute = get_adapter(inner).stack_owner(inner)
    extra = list(lora_kwargs.pop("modules_to_save", None) or [])
    return LoraConfig(
        layers_to_transform=kept,
        layers_pattern=attribute,
        modules_to_save=[*block_names(inner, event.new_blocks), *extra],
        **lora_kwargs,
    )


def prepare_reserve_for_peft(peft_model: nn.Module) -> int:
    """Make the reserve of a PEFT-wrapped model ready to grow under PEFT (``ProgressiveTrainer`` calls this).

    Each reserved block leaves LoRA out (tuner layers that ``get_peft_model`` put into blocks of a model built at the
    target depth are removed: the reserve is re-initialised anyway) and is wrapped in PEFT's
    ``ModulesToSaveWrapper``: once grown in, the block trains in full and is saved with the adapter, resumes with it,
    and ``merge_and_unload()`` keeps it. The wrapper's frozen original doubles the reserve's weight memory. Returns
    the number of blocks prepared.
    """
    from peft.utils import ModulesToSaveWrapper

    inner = unwrap_model(peft_model)
    adapter = get_adapter(inner)
    reserve = adapter.reserve(inner)
    name = _adapter_name(peft_model)
    for index, block in enumerate(list(reserve)):
        if isinstance(block, ModulesToSaveWrapper):
            continue
        remove_tuner_layers(block, merge=False)
        for parameter in block.parameters():
            parameter.requires_grad_(True)
        wrapper = ModulesToSaveWrapper(block, name)
        wrapper.set_adapter(name)
        reserve[index] = wrapper
    adapter.renumber(inner)
    return len(reserve)


def register_grown_blocks(peft_model: nn.Module, event: GrowthEvent) -> None:
    """Name the blocks ``event`` added in the adapter config's ``modules_to_save``, so that the saved adapter loads
    onto a base model grown the same way (``PeftModel.from_pretrained`` wraps and fills them)."""
    config = peft_model.peft_config[_adapter_name(peft_model)]
    names = block_names(unwrap_model(peft_model), event.new_blocks)
    config.modules_to_save = [
        *(config.modules_to_save or []),
        *(n for n in names if n not in (config.modules_to_save or [])),
    ]


def _adapter_name(peft_model: nn.Module) -> str:
    active = getattr(peft_model, "active_adapter", None)
    if isinstance(active, str):
        return active
    raise ValueError(f"Growing under PEFT needs one active adapter; this model has {active!r}.")
