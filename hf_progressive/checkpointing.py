"""Resuming a progressive run: find a complete checkpoint, check it against the run, re-grow the model to it.

A checkpoint of a progressive run holds the model at the depth it had when it was saved (plus the reserve of
blocks still to come), the optimizer state of every parameter, and the run's growth history in
``trainer_state.json``. Resuming replays that growth history on the freshly built model, so the checkpoint's
weights load key for key and every optimizer state lands on the parameter it belongs to (see
:meth:`~hf_progressive.ProgressiveTrainer.train`).

``Trainer`` writes ``trainer_state.json`` last, after weights, optimizer, scheduler and RNG states, and deletes
older checkpoints only after a new one is complete. So a checkpoint whose ``trainer_state.json`` reads is
complete, and a save interrupted half-way leaves the previous checkpoint untouched:
:func:`last_complete_checkpoint` resumes from that one.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from transformers import PreTrainedModel
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .adapters import get_adapter, unwrap_model
from .callbacks import GrowthCallback
from .configuration import METADATA_KEY, checked_metadata, update_progressive_metadata
from .growth import current_depth, grow
from .schedule import DepthSchedule

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
CONFIG = "config.json"
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
ADAPTER_SAFE_WEIGHTS = "adapter_model.safetensors"  # what a PEFT model saves
WEIGHTS = "pytorch_model.bin"
#: Name under which ``GrowthCallback`` keeps its state in ``trainer_state.json``.
CALLBACK_STATE = "GrowthCallback"
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


@dataclass
class ProgressiveCheckpoint:
    """What a checkpoint says about the progressive run that saved it."""

    path: str
    global_step: int
    config: dict[str, Any]
    #: Growth events of the run that saved the checkpoint (the config's ``growth_history`` also lists earlier runs').
    history: list[dict] = field(default_factory=list)
    #: ``GrowthCallback`` arguments of that run (schedule, init, optimizer_state); empty if it had no schedule.
    settings: dict[str, Any] = field(default_factory=dict)
    #: ``GrowthCallback`` attributes beyond the history (compute tracker, pending growth losses).
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        return checked_metadata(self.config.get(METADATA_KEY), self.path)


def weights_problem(path: str | os.PathLike) -> str | None:
    """Why the model weights in folder ``path`` cannot load, naming the file; ``None`` when they look whole.

    A safetensors file starts with the length of its JSON header, and the header gives every tensor's byte range:
    a file cut short by an interrupted copy or save (or a full disk) is shorter than the header says, and is caught
    here without reading the tensors.
    """
    path = os.fspath(path)
    try:
        files = safetensors_files(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        index = os.path.join(path, SAFE_WEIGHTS_INDEX)
        return f"{index} is not a readable weight index ({type(error).__name__}: {error})"
    if files is not None:
        for file in files:
            problem = safetensors_problem(file) if os.path.isfile(file) else f"{file} is missing"
            if problem:
                return problem
        return None
    if os.path.isfile(os.path.join(path, WEIGHTS)):
        return None  # a torch pickle: torch.load reports its own errors, with the file name
    adapter = os.path.join(path, ADAPTER_SAFE_WEIGHTS)  # a PEFT model's checkpoint: the adapter (and grown blocks)
    if os.path.isfile(adapter):
        return safetensors_problem(adapter)
    return f"{path} holds no model weights ({SAFE_WEIGHTS}, {SAFE_WEIGHTS_INDEX}, {WEIGHTS} or {ADAPTER_SAFE_WEIGHTS})"


def safetensors_files(path: str | os.PathLike) -> list[str] | None:
    """The safetensors files holding the weights of folder ``path``: ``model.safetensors``, or the shards its index
    names; ``None`` when it has neither.

    Raises:
        OSError, ValueError, KeyError, TypeError, AttributeError: for an index that cannot be read as one.
    """
    single, index = os.path.join(path, SAFE_WEIGHTS), os.path.join(path, SAFE_WEIGHTS_INDEX)
    if os.path.isfile(single):
        return [single]
    if not os.path.isfile(index):
        return None
    with open(index, encoding="utf-8") as handle:
        shards = sorted(set(json.load(handle)["weight_map"].values()))
    return [os.path.join(path, shard) for shard in shards]


def safetensors_problem(file: str | os.PathLike) -> str | None:
    """Why the safetensors file ``file`` is not whole (truncated, or not safetensors), or ``None``."""
    file = os.fspath(file)
    try:
        size = os.path.getsize(file)
        with open(file, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{file} is truncated ({size} bytes): not even a safetensors header"
            header_length = int.from_bytes(prefix, "little")
            if header_length > size - 8:
                return f"{file} is truncated: its header alone needs {header_length + 8} bytes, the file has {size}"
            header = json.loads(handle.read(header_length))
        end = max(
            (int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__"), default=0
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        return f"{file} is not a readable safetensors file ({type(error).__name__}: {error})"
    if size < 8 + header_length + end:
        return f"{file} is truncated: {size} bytes, its header describes {8 + header_length + end}"
    return None


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a complete checkpoint that can be resumed from (naming the file), or ``None``."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return f"the checkpoint folder {path} does not exist" if not os.path.exists(path) else f"{path} is not a folder"
    try:
        with open(os.path.join(path, TRAINER_STATE), encoding="utf-8") as handle:
            json.load(handle)
    except (OSError, ValueError) as error:
        return f"{os.path.join(path, TRAINER_STATE)} is missing or unreadable ({type(error).__name__})"
    return weights_problem(path)


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The ``checkpoint-<step>`` folder of ``output_dir`` with the highest step whose save finished.

    Unlike ``transformers.trainer_utils.get_last_checkpoint`` it skips a checkpoint left half-written by an
    interrupted save (with a warning), so ``resume_from_checkpoint=True`` resumes from the last good one.
    """
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        return None
    steps = sorted(
        (int(match.group(1)), name)
        for name in os.listdir(output_dir)
        if (match := _CHECKPOINT_RE.match(name)) and os.path.isdir(os.path.join(output_dir, name))
    )
    for _, name in reversed(steps):
        path = os.path.join(output_dir, name)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("Skipping %s: its save did not finish (%s).", path, problem)
    return None


def _require_complete(path: str) -> None:
    """Check that ``path`` is a complete checkpoint.

    Raises:
        ValueError: naming the missing folder or the incomplete file, and the last complete checkpoint beside it.
    """
    path = os.fspath(path)
    problem = checkpoint_problem(path)
    if problem is not None:
        if not os.path.isdir(path):
            raise ValueError(f"Cannot resume from {path}: {problem}.")
        hint = last_complete_checkpoint(os.path.dirname(path) or ".")
        raise ValueError(
            f"{path} is not a complete checkpoint: {problem} (an interrupted save or copy leaves it so). "
            + (f"The last complete checkpoint beside it is {hint}." if hint else "No complete checkpoint is beside it.")
        )


def read_checkpoint(path: str | os.PathLike) -> ProgressiveCheckpoint:
    """Read the progressive-training state of a checkpoint folder.

    Raises:
        ValueError: if ``path`` is not a complete checkpoint.
    """
    path = os.fspath(path)
    _require_complete(path)
    with open(os.path.join(path, TRAINER_STATE), encoding="utf-8") as handle:
        state = json.load(handle)
    config = {}
    if os.path.isfile(os.path.join(path, CONFIG)):  # a PEFT model's checkpoint holds its adapter_config.json only
        with open(os.path.join(path, CONFIG), encoding="utf-8") as handle:
            config = json.load(handle)
    saved = (state.get("stateful_callbacks") or {}).get(CALLBACK_STATE) or {}
    if isinstance(saved, list):  # Trainer's format for several callbacks of one class
        saved = saved[-1] if saved else {}
    attributes = dict(saved.get("attributes") or {})
    return ProgressiveCheckpoint(
        path=path,
        global_step=int(state.get("global_step", 0)),
        config=config,
        history=list(attributes.pop("history", None) or []),
        settings=dict(saved.get("args") or {}),
        attributes=attributes,
    )


def check_resumable(
    checkpoint: ProgressiveCheckpoint,
    model: nn.Module,
    schedule: DepthSchedule,
    init: str,
    optimizer_state: str | None = None,
    max_steps: int | None = None,
) -> None:
    """Check that ``model``, about to train under ``schedule`` with ``init``, can resume from ``checkpoint``.

    ``model`` is the model the run starts from (at the schedule's first depth, with its reserve). Schedules are
    compared as the optimizer steps they grow at when ``max_steps`` is known (``'0@0,3@0.5'`` and ``'0@0,3@6'`` are
    the same plan at 12 steps), else as written. ``optimizer_state`` is the new-parameter optimizer-state policy.

    Raises:
        ValueError: naming what differs — architecture fields, depth schedule, init, or depths.
    """
    adapter = get_adapter(model)
    config = model.config.to_dict()
    differences = [
        f"{name}: checkpoint {checkpoint.config.get(name)!r}, model {config.get(name)!r}"
        for name in adapter.architecture_fields
        if name in checkpoint.config and checkpoint.config.get(name) != config.get(name)
    ]
    if differences:
        raise ValueError(
            f"Checkpoint {checkpoint.path} does not match the model's architecture: " + "; ".join(differences) + "."
        )
    if not checkpoint.settings:
        raise ValueError(
            f"Checkpoint {checkpoint.path} was saved by a run without a depth_schedule, but this run grows with "
            f"'{schedule}': resume it without depth_schedule, or start the progressive run from step 0."
        )
    saved_schedule = DepthSchedule(checkpoint.settings["schedule"])
    if not _same_plan(saved_schedule, schedule, max_steps):
        raise ValueError(
            f"Checkpoint {checkpoint.path} was trained with depth_schedule '{saved_schedule}', this run has "
            f"'{schedule}': resume with --depth_schedule '{saved_schedule}'."
        )
    saved_init = checkpoint.settings.get("init", "random")
    if saved_init != init:
        raise ValueError(
            f"Checkpoint {checkpoint.path} was trained with growth_init '{saved_init}', this run has '{init}': "
            f"resume with --growth_init {saved_init}."
        )
    saved_policy = checkpoint.settings.get("optimizer_state", "fresh")
    if optimizer_state is not None and saved_policy != optimizer_state:
        raise ValueError(
            f"Checkpoint {checkpoint.path} was trained with new_params_optimizer_state '{saved_policy}', this run has "
            f"'{optimizer_state}': resume with --new_params_optimizer_state {saved_policy}."
        )
    replayed = checkpoint.history[-1]["to_depth"] if checkpoint.history else current_depth(model)
    # A PEFT model's checkpoint has no config.json: its depth is what its growth history reached.
    saved_depth = adapter.config_depth(checkpoint.config) if checkpoint.config else replayed
    depth, field = current_depth(model), adapter.depth_field
    start = checkpoint.history[0]["from_depth"] if checkpoint.history else saved_depth
    if start != depth:
        raise ValueError(
            f"Checkpoint {checkpoint.path} comes from a run that started at {start} blocks, but the model has "
            f"{depth}: build the model as that run did ({field}={start}, or the target depth)."
        )
    if replayed != saved_depth:
        raise ValueError(
            f"Checkpoint {checkpoint.path} is inconsistent: its growth history ends at {replayed} blocks but its "
            f"config.json says {field}={saved_depth}."
        )


def _same_plan(saved: DepthSchedule, planned: DepthSchedule, max_steps: int | None) -> bool:
    if saved == planned:
        return True
    if not max_steps or max_steps <= 0:
        return False
    try:
        return saved.growth_steps(max_steps) == planned.growth_steps(max_steps)
    except ValueError:  # a stage beyond max_steps: not the same plan (on_train_begin says why)
        return False


def regrow_to_checkpoint(model: nn.Module, checkpoint: ProgressiveCheckpoint) -> None:
    """Replay the checkpoint's growth events on ``model`` so that its structure is the checkpoint's.

    The same blocks move from the reserve into the stack as in the run that saved the checkpoint, so parameters
    keep the identity (and optimizer slot) they had there. Their values do not matter: the checkpoint's weights
    are loaded next.
    """
    for event in checkpoint.history:
        grow(unwrap_model(model), event["to_depth"], init=event["init"])  # inside a PEFT wrapper, as in training


def check_weights_match(checkpoint: ProgressiveCheckpoint, model: nn.Module) -> None:
    """Check that the checkpoint's weight names are exactly those of ``model`` (tied weights aside).

    ``Trainer`` loads checkpoint weights non-strictly; a mismatch would otherwise leave parameters untrained
    with only a log warning.

    Raises:
        ValueError: listing missing and unexpected weights.
    """
    saved = _saved_weight_names(checkpoint.path)
    if saved is None:
        return  # not a safetensors checkpoint: Trainer's own loading reports mismatches
    expected = set(model.state_dict())
    # A weight tied to another one (GPT-2's lm_head and wte) is saved once, under one of its names.
    tied = (expected - saved) & tied_weight_names(model)
    missing, unexpected = sorted(expected - saved - tied), sorted(saved - expected)
    if (missing or unexpected) and saves_converted_names(model):
        load_converted_weights(checkpoint.path, model)
        return
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint {checkpoint.path} does not match the model at {current_depth(model)} blocks: "
            f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}."
        )


def saves_converted_names(model: nn.Module) -> bool:
    """Whether transformers saves ``model``'s weights under other names than the model holds (GPT-NeoX's head as
    ``embed_out``, Mixtral's fused experts expert by expert) and converts them back only in ``from_pretrained``."""
    inner = unwrap_model(model)
    return isinstance(inner, PreTrainedModel) and bool(get_model_conversion_mapping(inner, add_legacy=False))


def load_converted_weights(path: str, model: nn.Module) -> None:
    """Load the weights of checkpoint folder ``path`` into ``model``, converting the names transformers saved them
    under back to the model's, as ``from_pretrained`` does (GPT-NeoX's ``embed_out``, Mixtral's experts one by one,
    reserved blocks included). ``Trainer``'s resume loads checkpoints with plain ``load_state_dict``, which would
    leave exactly those weights at their init; what it loads after this finds the same values.

    Raises:
        ValueError: naming the weights that did not convert or load.
    """
    # transformers' own conversion (core_model_loading is internal; tests/test_adapter_contract.py resumes GPT-NeoX
    # and Mixtral exactly through it, so a change there fails a test rather than a user's resume).
    from transformers.core_model_loading import convert_and_load_state_dict_in_model
    from transformers.modeling_utils import LoadStateDictConfig

    inner = unwrap_model(model)
    state = {name: tensor for file in safetensors_files(path) for name, tensor in load_file(file).items()}
    config = LoadStateDictConfig(weight_mapping=get_model_conversion_mapping(inner))
    # transformers' loading puts new Parameter objects into the model it loads; the optimizer already holds ours
    # (built before re-growing). Convert into a copy, then copy the values into the model's own tensors.
    shadow = copy.deepcopy(inner)
    info, _ = convert_and_load_state_dict_in_model(shadow, state, config)
    missing = sorted(set(info.missing_keys) - tied_weight_names(inner))
    problems = [
        f"{what} {sorted(names)[:4]}"
        for what, names in (
            ("missing", missing),
            ("unexpected", info.unexpected_keys),
            ("mismatched", info.mismatched_keys),
            ("not converted", info.conversion_errors),
        )
        if names
    ] + list(info.error_msgs)
    if problems:
        raise ValueError(f"Checkpoint {path} does not load into the model even with name conversion: {problems}.")
    inner.load_state_dict(shadow.state_dict())
    logger.info("Loaded %s converting transformers' saved weight names back, as from_pretrained does.", path)


def tied_weight_names(model: nn.Module) -> set[str]:
    """Names of the state-dict entries that share their tensor with another entry (e.g. GPT-2's ``lm_head.weight``
    and ``transformer.wte.weight``): a checkpoint holds each such tensor once, under one of its names."""
    pointers: dict[int, list[str]] = {}
    for name, tensor in model.state_dict().items():
        pointers.setdefault(tensor.data_ptr(), []).append(name)
    return {name for names in pointers.values() if len(names) > 1 for name in names}


def _saved_weight_names(path: str) -> set[str] | None:
    single, index = os.path.join(path, SAFE_WEIGHTS), os.path.join(path, SAFE_WEIGHTS_INDEX)
    if os.path.isfile(single):
        with safe_open(single, framework="pt") as handle:
            return set(handle.keys())
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            return set(json.load(handle)["weight_map"])
    return None


class ResumeTrainerMixin:
    """``Trainer`` methods that resume a progressive run (mixed into :class:`~hf_progressive.ProgressiveTrainer`).

    Uses the trainer's ``growth_plan`` and ``growth_callback`` (``None`` without a depth schedule: then every method
    is ``Trainer``'s own).
    """

    def train(self, resume_from_checkpoint: str | bool | None = None, *positional, **kwargs):
        """``Trainer.train``; resuming a progressive run re-grows the model to the checkpoint's depth first.

        With a depth schedule, ``resume_from_checkpoint=True`` picks the last checkpoint of ``output_dir`` whose save
        finished (see :func:`last_complete_checkpoint`). Without one, this is ``Trainer.train`` unchanged (PEFT
        adapter and sharded checkpoints resume as Trainer resumes them).

        Raises:
            ValueError: before any step, if the checkpoint is missing, incomplete or does not match this run
                (architecture, depth schedule, init, optimizer-state policy, depth, weight names).
        """
        if self.growth_plan is None:
            if isinstance(resume_from_checkpoint, str):
                logger.info("Resuming from %s.", resume_from_checkpoint)
            return super().train(resume_from_checkpoint, *positional, **kwargs)
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint found in output_dir {self.args.output_dir}.")
        if resume_from_checkpoint:
            # Checked here, before Trainer reads it: a missing folder would otherwise be taken for a Hub repo id,
            # and a truncated weights file fails deep inside safetensors without its name.
            checkpoint = read_checkpoint(resume_from_checkpoint)
            logger.info("Resuming from %s (step %d).", resume_from_checkpoint, checkpoint.global_step)
            self._regrow_for_resume(checkpoint)
        return super().train(resume_from_checkpoint or None, *positional, **kwargs)

    def _regrow_for_resume(self, checkpoint: ProgressiveCheckpoint) -> None:
        plan = self.growth_plan
        check_resumable(
            checkpoint, self.model, plan.schedule, plan.init, plan.optimizer_state, max_steps=self.args.max_steps
        )
        # The optimizer must list parameters in the order of the run that saved the checkpoint, which built it
        # before any growth. Build it now, before replaying growth: parameters keep their identity through
        # growth, so each saved optimizer state then loads onto the parameter it belongs to.
        if self.optimizer is None:
            self.create_optimizer()
        regrow_to_checkpoint(self.model, checkpoint)
        check_weights_match(checkpoint, self.model)
        update_progressive_metadata(
            self.model.config, growth_history=copy.deepcopy(checkpoint.metadata.get("growth_history") or [])
        )
        self.growth_callback.restore({"history": checkpoint.history, **checkpoint.attributes})
        logger.info(
            "Re-grew the model to %d blocks (%d growth events) to resume from %s.",
            current_depth(self.model),
            len(checkpoint.history),
            checkpoint.path,
        )

    def _load_best_model(self) -> None:
        # Private override: Trainer loads the best checkpoint inside train() with no public hook before it, and a
        # checkpoint shallower than the grown model cannot load into it.
        best = self.state.best_model_checkpoint
        if self.growth_plan is not None and best and os.path.isfile(os.path.join(best, CONFIG)):
            with open(os.path.join(best, CONFIG), encoding="utf-8") as handle:
                best_depth = get_adapter(self.model).config_depth(json.load(handle))
            if best_depth != current_depth(self.model):
                logger.warning(
                    "The best checkpoint %s has %d blocks but the model has grown to %d: its weights cannot load "
                    "into the grown model, keeping the final model.",
                    best,
                    best_depth,
                    current_depth(self.model),
                )
                return
        super()._load_best_model()

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # Private override: the only place Trainer reports a checkpoint's missing keys; no hook filters them.
        # A tied weight is saved once, so transformers reports its other name (GPT-2's lm_head.weight) missing on
        # every resume; it is not, and check_weights_match has already refused real mismatches. Warn about the rest.
        if self.growth_plan is not None and saves_converted_names(self.model):
            # Trainer looked for the model's own names in a checkpoint saved under converted ones; every weight was
            # already loaded with conversion (check_weights_match -> load_converted_weights), nothing is missing.
            return
        tied = tied_weight_names(self.model)
        missing = [name for name in load_result.missing_keys if name not in tied]
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def _load_callback_state(self) -> None:
        # Private override: Trainer swaps stateful callbacks here, inside train(), with no public hook after it.
        # With restore_callback_states_from_checkpoint, Trainer replaces each stateful callback by a new one built
        # from its saved arguments. Ours was already restored (and checked against the checkpoint) in train();
        # keep it, so the growth hooks and the trainer's reference stay attached.
        super()._load_callback_state()
        if self.growth_callback is not None:
            for callback in list(self.callback_handler.callbacks):
                if isinstance(callback, GrowthCallback) and callback is not self.growth_callback:
                    self.callback_handler.remove_callback(callback)
            if self.growth_callback not in self.callback_handler.callbacks:
                self.add_callback(self.growth_callback)
