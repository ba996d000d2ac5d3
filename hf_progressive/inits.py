"""Init strategies for new blocks, by name.

A strategy decides the layout of the grown stack: for every final position, either an existing block
(``Keep``), a new block copying an existing one (``Copy``), or a new block with fresh random weights
(``Fresh``); and whether the residual output projections of new blocks are zeroed afterwards, which makes
them identities (function-preserving growth). :func:`hf_progressive.grow` carries the layout out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple


class Keep(NamedTuple):
    """An existing block, by its position before growth."""

    source: int


class Copy(NamedTuple):
    """A new block whose weights copy the existing block at ``source`` (position before growth)."""

    source: int


class Fresh(NamedTuple):
    """A new block with fresh random weights."""


Slot = Keep | Copy | Fresh
Layout = Callable[[int, int], list[Slot]]


@dataclass(frozen=True)
class InitStrategy:
    name: str
    layout: Layout
    zero_residual: bool
    copies: bool
    description: str

    def plan(self, from_depth: int, to_depth: int) -> list[Slot]:
        if self.copies and from_depth == 0:
            creating = sorted(name for name, strategy in INIT_STRATEGIES.items() if not strategy.copies)
            raise ValueError(
                f"growth_init='{self.name}' copies trained blocks, but the model has 0 blocks: growing from 0 "
                f"layers needs an init that creates blocks, one of {creating}."
            )
        return self.layout(from_depth, to_depth)


INIT_STRATEGIES: dict[str, InitStrategy] = {}


def register_init(name: str, *, zero_residual: bool = False, copies: bool, description: str):
    """Decorator registering a layout function under ``name``."""

    def decorate(layout: Layout) -> Layout:
        INIT_STRATEGIES[name] = InitStrategy(name, layout, zero_residual, copies, description)
        return layout

    return decorate


def get_init(name: str) -> InitStrategy:
    """The strategy called ``name``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        return INIT_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"Unknown growth_init '{name}': valid inits are {sorted(INIT_STRATEGIES)}.") from None


def _keep_all(from_depth: int) -> list[Slot]:
    return [Keep(i) for i in range(from_depth)]


def _stack(from_depth: int, to_depth: int) -> list[Slot]:
    # 1..k, 1..k, ...: new block at position p copies block p mod k.
    return _keep_all(from_depth) + [Copy(p % from_depth) for p in range(from_depth, to_depth)]


@register_init("random", copies=False, description="new blocks freshly initialised as in a model of the target depth")
def _random(from_depth: int, to_depth: int) -> list[Slot]:
    return _keep_all(from_depth) + [Fresh() for _ in range(from_depth, to_depth)]


register_init("copy_stack", copies=True, description="repeat the whole trained stack on top: 1..k, 1..k, ...")(_stack)
register_init(
    "copy",
    copies=True,
    description="every new block copies a trained block; from a one-layer source all copy it (same as copy_stack)",
)(_stack)


@register_init("copy_inter", copies=True, description="repeat each trained block in place: 1, 1, ..., 2, 2, ...")
def _interleave(from_depth: int, to_depth: int) -> list[Slot]:
    slots: list[Slot] = []
    for source in range(from_depth):
        # Spread the remainder over the first blocks so every block is repeated ~to_depth/from_depth times.
        repeats = to_depth // from_depth + (1 if source < to_depth % from_depth else 0)
        slots += [Keep(source)] + [Copy(source)] * (repeats - 1)
    return slots


@register_init("copy_last", copies=True, description="every new block copies the last trained block")
def _last(from_depth: int, to_depth: int) -> list[Slot]:
    return _keep_all(from_depth) + [Copy(from_depth - 1) for _ in range(from_depth, to_depth)]


register_init(
    "zero",
    zero_residual=True,
    copies=False,
    description="random blocks with zeroed residual output projections (identity; for comparison)",
)(_random)
register_init(
    "copy_zero",
    zero_residual=True,
    copies=True,
    description="copy_stack, then zero the new blocks' residual output projections (identity; for comparison)",
)(_stack)


@register_init(
    "llama_pro",
    zero_residual=True,
    copies=True,
    description="depth up-scaling of a trained model (LLaMA-Pro): new blocks spread evenly through the stack, each "
    "an identity copy (zeroed residual outputs) of the block before it",
)
def _interleave_identity(from_depth: int, to_depth: int) -> list[Slot]:
    # LLaMA-Pro (Wu et al., 2024) expands 32 -> 40 blocks with a copy after every 4th: new block i follows block
    # ceil((i + 1) * from / new) - 1, which also spreads more new blocks than old ones (several after one block).
    new = to_depth - from_depth
    copies_after = [0] * from_depth
    for index in range(new):
        copies_after[-(-(index + 1) * from_depth // new) - 1] += 1
    slots: list[Slot] = []
    for source in range(from_depth):
        slots += [Keep(source)] + [Copy(source)] * copies_after[source]
    return slots
