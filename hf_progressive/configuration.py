"""Growth plans and histories in model configs: ``ProgressiveGPT2Config`` (a ``GPT2Config`` that carries them) and
:func:`progressive_config` (the same for the config of any supported family)."""

from __future__ import annotations

import copy
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config

from .inits import get_init
from .schedule import DepthSchedule

#: Key of the block that holds growth metadata in a saved ``config.json``.
METADATA_KEY = "progressive"
_FIELDS = (
    "target_n_layer",
    "depth_schedule",
    "growth_init",
    "growth_history",
    "flops",
    "flops_fixed_equivalent",
)


@strict
class ProgressiveGPT2Config(GPT2Config):
    """GPT-2 configuration for progressive depth training.

    ``n_layer`` is the depth the model runs now; ``target_n_layer`` the depth it grows to.

    Saved checkpoints are plain GPT-2: ``config.json`` says ``"model_type": "gpt2"`` and keeps the fields below
    in a ``"progressive"`` block, which plain transformers carries along as an unused attribute. So a grown
    checkpoint loads with ``AutoModelForCausalLM.from_pretrained`` in a process that never imports
    hf_progressive, and loads back into this class (or through the Auto classes) with its metadata.

    Args:
        target_n_layer: depth the model grows to; defaults to the final depth of ``depth_schedule``, else
            ``n_layer``.
        depth_schedule: e.g. ``"0@0,12@0.8"`` (see :class:`~hf_progressive.DepthSchedule`).
        growth_init: name of the init strategy for new blocks (see :mod:`hf_progressive.inits`).
        growth_history: one dict per growth event, appended by training: step, from/to depth, init, new block
            positions, and the training loss of the step just before and just after growth.
        flops: training FLOPs spent so far (all processes), counted at the depth each step ran.
        flops_fixed_equivalent: what the same steps would have cost at the target depth throughout.
    """

    model_type = "progressive_gpt2"

    target_n_layer: int | None = None
    depth_schedule: str | None = None
    growth_init: str = "random"
    growth_history: list[dict] | None = None
    flops: float | None = None
    flops_fixed_equivalent: float | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        # A saved checkpoint keeps the fields in one block; unpack it.
        metadata = checked_metadata(
            kwargs.pop(METADATA_KEY, None), kwargs.get("name_or_path") or kwargs.get("_name_or_path")
        )
        for name in _FIELDS:
            if name in metadata:
                setattr(self, name, metadata[name])
        super().__post_init__(**kwargs)
        if self.growth_history is None:
            self.growth_history = []
        if self.depth_schedule is not None:
            schedule = DepthSchedule(self.depth_schedule, self.target_n_layer)
            self.depth_schedule = str(schedule)
            if self.target_n_layer is None:
                self.target_n_layer = schedule.final_depth
        if self.target_n_layer is None:
            self.target_n_layer = self.n_layer
        if self.n_layer > self.target_n_layer:
            raise ValueError(f"n_layer={self.n_layer} is above target_n_layer={self.target_n_layer}.")
        if self.depth_schedule is not None and not self.growth_history:
            initial = DepthSchedule(self.depth_schedule).initial_depth
            if self.n_layer != initial:
                raise ValueError(
                    f"n_layer={self.n_layer} but depth_schedule '{self.depth_schedule}' starts at {initial}: n_layer "
                    f"is the depth the model runs now; set n_layer={initial} (and target_n_layer for the final depth)."
                )
        get_init(self.growth_init)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output[METADATA_KEY] = {name: output.pop(name) for name in _FIELDS if name in output}
        # Saved as plain GPT-2 so that checkpoints load without hf_progressive.
        output["model_type"] = GPT2Config.model_type
        if output.get("architectures"):
            output["architectures"] = [a.replace("ProgressiveGPT2", "GPT2") for a in output["architectures"]]
        return output


def progressive_metadata(config: Any) -> dict[str, Any]:
    """Growth metadata of any config: a ``ProgressiveGPT2Config`` or a plain one loaded from a checkpoint.

    Raises:
        ValueError: if the config's ``progressive`` block is not what hf_progressive writes (naming the field).
    """
    if isinstance(config, ProgressiveGPT2Config):
        return {name: getattr(config, name) for name in _FIELDS}
    return checked_metadata(getattr(config, METADATA_KEY, None), getattr(config, "name_or_path", None))


def checked_metadata(block: Any, source: str | None = None) -> dict[str, Any]:
    """The ``progressive`` block of a config, checked field by field; ``{}`` when there is none.

    A hand-edited or foreign ``config.json`` can hold anything under that key: say which file and field is wrong
    instead of failing later with a bare ``TypeError`` or dropping it silently.

    Args:
        block: the value stored under ``"progressive"``.
        source: the folder (or file) the config came from, for the message.
    """
    if block is None:
        return {}
    where = _config_file(source)

    def bad(field: str, value: Any, expected: str) -> ValueError:
        return ValueError(f'{where}: "{METADATA_KEY}.{field}" is {value!r}, expected {expected}.')

    if not isinstance(block, dict):
        raise ValueError(
            f'{where}: "{METADATA_KEY}" is {block!r}, expected the growth metadata hf_progressive writes: an '
            f'object with the fields {list(_FIELDS)} (or no "{METADATA_KEY}" key at all).'
        )
    unknown = sorted(set(block) - set(_FIELDS))
    if unknown:
        raise ValueError(f'{where}: unknown fields {unknown} in "{METADATA_KEY}"; valid fields: {list(_FIELDS)}.')
    target = block.get("target_n_layer")
    if target is not None and (not _is_int(target) or target < 0):
        raise bad("target_n_layer", target, "a non-negative integer")
    for name in ("depth_schedule", "growth_init"):
        if block.get(name) is not None and not isinstance(block[name], str):
            raise bad(name, block[name], "a string")
    for name in ("flops", "flops_fixed_equivalent"):
        value = block.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise bad(name, value, "a non-negative number")
    history = block.get("growth_history")
    if history is not None:
        if not isinstance(history, list):
            raise bad("growth_history", history, "a list of growth events")
        for index, event in enumerate(history):
            # step is None for growth outside training (`hf-progressive grow`).
            if (
                not isinstance(event, dict)
                or not all(_is_int(event.get(key)) for key in ("from_depth", "to_depth"))
                or not (event.get("step") is None or _is_int(event["step"]))
            ):
                raise bad(
                    f"growth_history[{index}]",
                    event,
                    "an object with integer step (null: offline growth), from_depth and to_depth",
                )
    return dict(block)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _config_file(source: str | None) -> str:
    if not source:
        return "config.json"
    return source if str(source).endswith(".json") else f"{str(source).rstrip('/')}/config.json"


def update_progressive_metadata(config: Any, **fields: Any) -> None:
    """Write growth metadata into ``config`` so that ``save_pretrained`` stores it.

    A :class:`ProgressiveGPT2Config` keeps the fields as attributes; any other config (a plain ``GPT2Config``)
    gets them in its ``progressive`` attribute, which ``to_dict`` saves as the same ``"progressive"`` block.
    """
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise ValueError(f"Unknown growth metadata {sorted(unknown)}: valid fields are {list(_FIELDS)}.")
    if isinstance(config, ProgressiveGPT2Config):
        for name, value in fields.items():
            setattr(config, name, value)
    else:
        config.progressive = {**progressive_metadata(config), **fields}


def progressive_config(
    config: Any, depth_schedule: str, growth_init: str = "random", target_depth: int | None = None
) -> Any:
    """A copy of ``config`` (of any supported family: ``LlamaConfig``, ``Qwen2Config``, ``GPT2Config``, ...) that
    describes the schedule's first depth and records the growth plan, as :class:`ProgressiveGPT2Config` does for
    GPT-2. A model built from it starts shallow; ``ProgressiveTrainer`` grows it by the recorded plan without a
    ``depth_schedule`` argument, and every checkpoint keeps plan and history in ``config.json`` (under
    ``"progressive"``) while staying a plain checkpoint of the family::

        config = progressive_config(LlamaConfig(hidden_size=512, num_hidden_layers=12), "0@0,12@0.8")
        model = AutoModelForCausalLM.from_config(config)  # a LlamaForCausalLM running 0 blocks

    Args:
        config: the architecture at any depth; only its depth (and per-layer fields such as ``layer_types``)
            changes.
        depth_schedule: e.g. ``"0@0,12@0.8"`` (see :class:`~hf_progressive.DepthSchedule`).
        growth_init: the init of new blocks (see :mod:`hf_progressive.inits`).
        target_depth: the depth the model may grow to; defaults to the schedule's final depth.

    Raises:
        ValueError: for a family without an adapter (naming the supported ones), a malformed schedule, one deeper
            than ``target_depth`` or than the config's per-layer fields can describe, an unknown init, or one that
            cannot carry out the schedule (copying from 0 blocks).
    """
    from .adapters import adapter_for_config
    from .training_args import check_init_for_schedule

    adapter = adapter_for_config(config)
    schedule = DepthSchedule(depth_schedule, target_depth)
    check_init_for_schedule(growth_init, schedule)
    adapter.check_depth(config, schedule.final_depth, start=schedule.initial_depth)
    planned = copy.deepcopy(config)
    adapter.write_depth(planned, schedule.initial_depth)
    update_progressive_metadata(
        planned,
        depth_schedule=str(schedule),
        growth_init=growth_init,
        target_n_layer=target_depth if target_depth is not None else schedule.final_depth,
        growth_history=[],  # a plan for a new model: nothing of an earlier run's record carries over
        flops=None,
        flops_fixed_equivalent=None,
    )
    return planned
