"""What keeps the reserve out of ``Trainer``'s per-step bookkeeping.

The reserved blocks are registered submodules (so they are saved, moved to the device and synchronised by DDP
like any weight), which makes every ``model.parameters()`` walk visit them. ``Trainer`` walks the whole model
twice per optimizer step, to clip gradients and in ``model.zero_grad()``: during a zero-layer phase with six blocks
in reserve that walk is several times the size of the model that trains, and it was most of the shallow phase's
overhead over a plain ``Trainer`` (see README "Scaling out"). Reserved blocks never have gradients, so both need
only the parameters outside the reserve, listed once per depth.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from torch import nn
from transformers import TrainerCallback

from .adapters import get_adapter, unwrap_model
from .growth import active_parameters


class ActiveParameters:
    """The parameters of a model (or of its training wrapper) outside the reserve, listed once per depth.

    The depth is read off the model's block list, found once per model: growth refills that same ``ModuleList``
    (so references to it stay valid), and a lookup through the wrappers and the adapter registry on every call
    would itself be a measurable part of a shallow step.
    """

    def __init__(self) -> None:
        self._stacks: dict[int, tuple[nn.Module, nn.ModuleList]] = {}  # id(model) -> (model, its block list)
        self._listed: tuple[int, int, list[nn.Parameter]] | None = None  # (id of the model, depth, parameters)

    def depth(self, model: nn.Module) -> int:
        """The number of blocks ``model`` runs (as :func:`~hf_progressive.growth.current_depth`)."""
        known = self._stacks.get(id(model))
        if known is None or known[0] is not model:
            inner = unwrap_model(model)
            known = self._stacks[id(model)] = (model, get_adapter(inner).blocks(inner))
        return len(known[1])

    def __call__(self, model: nn.Module) -> list[nn.Parameter]:
        depth = self.depth(model)
        if self._listed is None or self._listed[:2] != (id(model), depth):
            self._listed = (id(model), depth, active_parameters(model))
        return self._listed[2]


class ZeroGradOutsideReserve(TrainerCallback):
    """Makes ``zero_grad()`` of the model that ``Trainer`` steps skip the reserve, from ``on_train_begin`` to
    ``on_train_end`` (and :meth:`restore`, which the trainer calls however training ended).

    ``Trainer`` calls ``model.zero_grad()`` on its wrapped model (the DDP wrapper, or the model itself), which
    exists only once training has begun; the method is shadowed on that one instance, and the instance's own
    comes back afterwards. ``zero_grad(set_to_none=False)`` keeps ``nn.Module``'s behaviour.

    Args:
        wrapped_model: returns the trainer's wrapped model (``trainer.model_wrapped``).
        parameters: the per-depth list of parameters outside the reserve, shared with gradient clipping.
    """

    def __init__(self, wrapped_model: Callable[[], nn.Module | None], parameters: ActiveParameters):
        self._wrapped_model = wrapped_model
        self._parameters = parameters
        self._patched: list[nn.Module] = []

    def on_train_begin(self, args, state, control, **kwargs):
        model = self._wrapped_model()
        if model is None or "zero_grad" in vars(model):
            return
        parameters = self._parameters

        def zero_grad(self: nn.Module, set_to_none: bool = True) -> None:
            if not set_to_none:
                return nn.Module.zero_grad(self, set_to_none=False)
            for parameter in parameters(self):
                parameter.grad = None

        model.zero_grad = types.MethodType(zero_grad, model)
        self._patched.append(model)

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Give every patched model its own ``zero_grad`` back."""
        while self._patched:
            vars(self._patched.pop()).pop("zero_grad", None)
