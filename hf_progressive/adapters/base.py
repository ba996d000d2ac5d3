"""What growth needs to know about an architecture family, and nothing else."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

from torch import nn

RESERVE_ATTRIBUTE = "progressive_reserve"


class BlockStackAdapter(ABC):
    """Adapter between :func:`hf_progressive.grow` and one architecture family.

    An adapter says where the stack of repeated blocks lives, how to build and initialise one more block, how
    to renumber blocks after the stack changed, and which weights write into the residual stream.

    Blocks that are allocated before they enter the stack (see :func:`hf_progressive.reserve_blocks`) live in
    a ``ModuleList`` called ``progressive_reserve`` beside the stack. The forward pass never runs them, so they
    receive no gradient and no optimizer state until growth moves them into the stack.
    """

    #: Short name used in messages and metadata, e.g. ``"gpt2"``.
    name: str = ""

    @classmethod
    @abstractmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether this adapter handles ``model``."""

    @abstractmethod
    def stack_owner(self, model: nn.Module) -> tuple[nn.Module, str]:
        """The module that holds the block stack, and the attribute name of the stack on it."""

    @abstractmethod
    def build_block(self, model: nn.Module, position: int, init_depth: int) -> nn.Module:
        """A new block for ``position``, initialised by :meth:`initialize_block`, on the device and dtype of
        ``model``."""

    @abstractmethod
    def initialize_block(self, model: nn.Module, block: nn.Module, init_depth: int) -> None:
        """Re-initialise ``block`` in place as a model with ``init_depth`` blocks initialises its blocks."""

    @abstractmethod
    def renumber(self, model: nn.Module) -> None:
        """Make every block (and reserved block) know its position, e.g. for its KV-cache slot."""

    @abstractmethod
    def set_config_depth(self, model: nn.Module, depth: int) -> None:
        """Record the number of active blocks in ``model.config``."""

    @abstractmethod
    def residual_output_projections(self, block: nn.Module) -> list[nn.Module]:
        """The layers whose output is added to the residual stream; zeroing them makes ``block`` an identity."""

    # Shared behaviour ---------------------------------------------------------------------------------------

    def blocks(self, model: nn.Module) -> nn.ModuleList:
        owner, attribute = self.stack_owner(model)
        return getattr(owner, attribute)

    def depth(self, model: nn.Module) -> int:
        return len(self.blocks(model))

    def reserve(self, model: nn.Module) -> nn.ModuleList:
        """The reserve of pre-allocated blocks, created empty on first use."""
        owner, _ = self.stack_owner(model)
        if not hasattr(owner, RESERVE_ATTRIBUTE):
            owner.add_module(RESERVE_ATTRIBUTE, nn.ModuleList())
        return getattr(owner, RESERVE_ATTRIBUTE)

    def reserved_blocks(self, model: nn.Module) -> list[nn.Module]:
        """The reserved blocks, in the order they will enter the stack (empty if the model has no reserve)."""
        owner, _ = self.stack_owner(model)
        return list(getattr(owner, RESERVE_ATTRIBUTE, ()))


def replace_contents(module_list: nn.ModuleList, modules: list[nn.Module]) -> None:
    """Refill ``module_list`` in place, so that references to the list itself stay valid."""
    del module_list[:]
    module_list.extend(modules)


@contextlib.contextmanager
def config_depth(config, attribute: str, depth: int) -> Iterator[None]:
    """Temporarily set ``config.<attribute>`` to ``depth``, e.g. so a model's own ``_init_weights`` scales
    residual projections for the target depth rather than the current one."""
    saved = getattr(config, attribute)
    setattr(config, attribute, depth)
    try:
        yield
    finally:
        setattr(config, attribute, saved)
