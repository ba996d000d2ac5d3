"""``grow(model, to_depth, init=...)``: the one operation that adds blocks to a model.

It knows nothing of ``Trainer``: use it in a hand-written loop, a notebook or offline surgery. Inside a
training run, call :func:`reserve_blocks` before the optimizer is built, so that the blocks growth will add
already exist (as parameters no forward pass uses) and stay the same ``Parameter`` objects when they enter the
stack. The optimizer, the LR scheduler and a DDP wrapper then never see a parameter appear. (FSDP and DeepSpeed
shard parameters at wrap time; growing under them is refused by ProgressiveTrainer.)
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .adapters import get_adapter, unwrap_model
from .adapters.base import is_tuner_layer, remove_tuner_layers, replace_contents, trainable_block
from .adapters.registry import is_peft_wrapped
from .inits import Copy, Fresh, Keep, get_init

logger = logging.getLogger(__name__)


@dataclass
class GrowthEvent:
    """What one call of :func:`grow` did. Positions are positions in the grown stack."""

    from_depth: int
    to_depth: int
    init: str
    new_blocks: list[int]
    #: For new blocks that copy a trained one: new position -> position of the block it copies.
    copied_from: dict[int, int] = field(default_factory=dict)
    #: Names (as in ``model.named_parameters()``) of the parameters of the new blocks.
    new_parameter_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def target_depth_of(model: nn.Module) -> int | None:
    """The target depth recorded in ``model.config`` by :class:`ProgressiveGPT2Config`, if any."""
    target = getattr(model.config, "target_n_layer", None)
    if target is None:
        target = (getattr(model.config, "progressive", None) or {}).get("target_n_layer")
    return target


def current_depth(model: nn.Module) -> int:
    """Number of blocks the model runs (the model inside a PEFT, DDP or ``torch.compile`` wrapper)."""
    return get_adapter(model).depth(unwrap_model(model))


def active_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` (or of the model inside its wrappers) outside its reserve: those that can have a
    gradient now."""
    inner = unwrap_model(model)
    reserved = {id(p) for block in get_adapter(inner).reserved_blocks(inner) for p in block.parameters()}
    return [p for p in model.parameters() if id(p) not in reserved]


def reserve_blocks(model: nn.Module, final_depth: int, initial_depth: int | None = None) -> int:
    """Allocate now every block that growth up to ``final_depth`` will add.

    Blocks beyond ``initial_depth`` that the model already has move from the stack to the reserve (so a model
    built at the target depth can start shallow) and are re-initialised, so that they enter the stack as fresh
    blocks whatever the model held before; missing ones are built. Both are initialised as in a model of
    ``final_depth`` blocks. Idempotent.

    Returns:
        The number of reserved blocks.
    """
    _refuse_peft(model)
    adapter = get_adapter(model)
    depth = adapter.depth(model)
    initial_depth = depth if initial_depth is None else initial_depth
    if not 0 <= initial_depth <= final_depth:
        raise ValueError(f"initial depth {initial_depth} must lie in [0, final depth {final_depth}].")
    total = depth + len(adapter.reserved_blocks(model))
    if total > final_depth:
        raise ValueError(
            f"The model already has {total} blocks (active and reserved), more than the final depth {final_depth}."
        )
    reserve = adapter.reserve(model)
    if depth > initial_depth:
        _detach_config(model)
        stack = adapter.blocks(model)
        moved = list(stack)[initial_depth:]
        for block in moved:
            adapter.initialize_block(model, block, init_depth=final_depth)
        replace_contents(stack, list(stack)[:initial_depth])
        replace_contents(reserve, moved + list(reserve))
        adapter.set_config_depth(model, initial_depth)
        logger.info(
            "Blocks %d..%d re-initialised and moved into the reserve; they re-enter the stack at growth.",
            initial_depth,
            depth - 1,
        )
    for position in range(total, final_depth):
        reserve.append(adapter.build_block(model, position, init_depth=final_depth))
    adapter.renumber(model)
    return len(reserve)


def grow(model: nn.Module, to_depth: int, init: str = "random", residual_scale: float = 1.0) -> GrowthEvent:
    """Grow ``model`` in place to ``to_depth`` blocks.

    New blocks come from the model's reserve (see :func:`reserve_blocks`) when it has one, else they are built
    now. ``init`` names a strategy of :mod:`hf_progressive.inits`: ``random``, ``copy``, ``copy_stack``,
    ``copy_inter``, ``copy_last``, ``zero``, ``copy_zero``, ``llama_pro``. ``residual_scale`` multiplies the
    residual output projections of new blocks after init: below 1 a new block starts closer to an identity (0 is the
    ``zero`` init's identity; ignored by the inits that zero them anyway).

    After growth every block's position index (``attn.layer_idx`` for GPT-2) is its position, the config
    records the new depth, tied embeddings stay tied, and new blocks share the model's dtype and device.
    ``model.config`` is replaced by a copy, so other models built from the same config object keep their depth.

    Raises:
        ValueError: for an unsupported model, an unknown ``init``, a copying init on a 0-block model, or a
            ``to_depth`` not above the current depth or above the config's target depth, or a negative
            ``residual_scale``.
    """
    if residual_scale < 0:
        raise ValueError(f"residual_scale={residual_scale} must be >= 0 (1 keeps the init's scale).")
    _refuse_peft(model)
    adapter = get_adapter(model)
    strategy = get_init(init)
    from_depth = adapter.depth(model)
    target = target_depth_of(model)
    if to_depth <= from_depth:
        raise ValueError(f"to_depth={to_depth} must be greater than the current depth {from_depth}.")
    if target is not None and to_depth > target:
        raise ValueError(f"to_depth={to_depth} is above the target depth {target} in model.config.")
    slots = strategy.plan(from_depth, to_depth)
    moves = any(isinstance(slot, Keep) and slot.source != position for position, slot in enumerate(slots))
    if strategy.zero_residual and moves and adapter.position_dependent(model):
        logger.warning(
            "growth_init='%s' zeroes the new blocks' outputs, but it moves trained blocks and %s's blocks compute "
            "something else at another position: the grown model is NOT function-preserving. Use an init that keeps "
            "the trained blocks in place (copy_zero, zero) for an exact identity.",
            init,
            type(model).__name__,
        )
    # Before building blocks, so that new blocks reference the model's private config too.
    _detach_config(model)

    old_blocks = list(adapter.blocks(model))
    reserved = adapter.reserved_blocks(model)
    new_count = to_depth - from_depth
    taken, remaining = reserved[:new_count], reserved[new_count:]
    init_depth = target if target is not None else to_depth
    taken += [
        adapter.build_block(model, from_depth + len(taken) + i, init_depth) for i in range(new_count - len(taken))
    ]

    stack: list[nn.Module] = []
    new_positions: list[int] = []
    copied_from: dict[int, int] = {}
    source_position: dict[int, int] = {}  # old position -> position in the grown stack
    fresh = iter(taken)
    for position, slot in enumerate(slots):
        if isinstance(slot, Keep):
            source_position[slot.source] = position
            stack.append(old_blocks[slot.source])
            continue
        block = next(fresh)
        if isinstance(slot, Copy):
            _copy_weights(old_blocks[slot.source], trainable_block(block))
            copied_from[position] = slot.source
        else:
            assert isinstance(slot, Fresh)
        if strategy.zero_residual or residual_scale != 1.0:
            with torch.no_grad():
                for parameter in adapter.residual_output_parameters(trainable_block(block)):
                    parameter.mul_(0.0 if strategy.zero_residual else residual_scale)
        stack.append(block)
        new_positions.append(position)
    copied_from = {position: source_position[source] for position, source in copied_from.items()}

    # Reserved blocks do not follow model.train()/eval() (see BlockReserve): give them the stack's mode.
    # They enter without gradients too: per-step zero_grad skips the reserve (hf_progressive.step_overhead).
    mode = adapter.stack_owner(model)[0].training
    for block in taken:
        block.train(mode)
        for parameter in block.parameters():
            parameter.grad = None
    replace_contents(adapter.blocks(model), stack)
    if reserved:
        replace_contents(adapter.reserve(model), remaining)
    adapter.set_config_depth(model, to_depth)
    adapter.renumber(model)

    new_ids = {id(p) for position in new_positions for p in stack[position].parameters()}
    event = GrowthEvent(
        from_depth=from_depth,
        to_depth=to_depth,
        init=init,
        new_blocks=new_positions,
        copied_from=copied_from,
        new_parameter_names=[name for name, p in model.named_parameters() if id(p) in new_ids],
    )
    logger.info("Grew %s from %d to %d blocks (init=%s).", type(model).__name__, from_depth, to_depth, init)
    return event


def block_names(model: nn.Module, positions: list[int]) -> list[str]:
    """Module names (as in ``model.named_modules()``) of the blocks at ``positions`` of the stack, e.g.
    ``["model.layers.4"]`` for a Llama: what PEFT's ``modules_to_save`` takes."""
    inner = unwrap_model(model)
    owner, attribute = get_adapter(inner).stack_owner(inner)
    prefix = next(name for name, module in inner.named_modules() if module is owner)
    stack = f"{prefix}.{attribute}" if prefix else attribute
    return [f"{stack}.{position}" for position in positions]


def train_only_new_blocks(model: nn.Module, event: GrowthEvent) -> int:
    """Freeze every parameter of ``model`` except those of the blocks ``event`` added: LLaMA-Pro's recipe after a
    ``grow(..., init="llama_pro")`` of a pretrained model (the old blocks, embeddings and head keep what they know).
    Call it before building the optimizer (``Trainer`` builds it in ``train()``). Returns the number of trainable
    parameters (elements).

    Raises:
        ValueError: if none of ``event``'s parameters is in ``model`` (an event of another model).
    """
    new = set(event.new_parameter_names)
    named = dict(unwrap_model(model).named_parameters())
    if not new & set(named):
        raise ValueError("None of the event's new parameters is in this model: pass the event grow() returned for it.")
    for name, parameter in named.items():
        parameter.requires_grad_(name in new)
    return sum(parameter.numel() for name, parameter in named.items() if name in new)


def _refuse_peft(model: nn.Module) -> None:
    if is_peft_wrapped(model):
        raise ValueError(
            f"Cannot grow a PEFT-wrapped {type(model).__name__} by hand: the new blocks would be missing from its "
            "adapter checkpoints. Give it a depth_schedule in ProgressiveTrainer (which prepares the reserve for "
            "PEFT), grow the base model before get_peft_model() (see expansion_lora_config), or merge_and_unload() "
            "first."
        )


@torch.no_grad()
def _copy_weights(source: nn.Module, destination: nn.Module) -> None:
    # Copy into the destination's own tensors: its Parameter objects (known to the optimizer) stay the same.
    values = _effective_state(trainable_block(source))
    targets = destination.state_dict(keep_vars=True)
    if list(targets) != list(values):
        raise ValueError(
            f"Cannot copy a block with parameters {list(values)[:4]}... into one with {list(targets)[:4]}..."
        )
    for target, value in zip(targets.values(), values.values()):
        target.data.copy_(value)


def _effective_state(block: nn.Module) -> dict[str, torch.Tensor]:
    """``block``'s state dict as a plain block of its class names it; a block holding PEFT tuner layers (LoRA on an
    old block of a PEFT-wrapped model) gives the weights it computes with: each adapter merged into its base layer."""
    if not any(is_tuner_layer(module) for module in block.modules()):
        return block.state_dict()
    merged = copy.deepcopy(block)
    remove_tuner_layers(merged, merge=True)
    return merged.state_dict()


def _detach_config(model: nn.Module) -> None:
    """Give ``model`` its own copy of its config, so growth does not change other models sharing it."""
    shared = model.config
    private = copy.deepcopy(shared)
    for module in model.modules():
        if getattr(module, "config", None) is shared:
            module.config = private
