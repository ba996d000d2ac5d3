"""Muon-NSGD, the paper's main optimizer: Muon on matrices, normalised SGD on everything else, one learning rate.

``MuonNSGD`` is one ``torch.optim.Optimizer`` (so ``Trainer``'s LR scheduler, gradient clipping and checkpointing
treat it like AdamW). Its param groups carry ``algorithm="muon"`` or ``algorithm="nsgd"``; the Muon groups are
stepped by ``torch.optim.Muon`` itself (momentum, 5-step Newton-Schulz orthogonalisation, decoupled weight decay),
the others by normalised SGD: the same momentum, then the update divided by a norm (``nsgd_norm``):

* ``"tensor"`` (the paper's NSGD): by the whole tensor's Frobenius norm. Each step then has length ``lr``
  whatever the tensor's size, so each element of a ``V x d`` embedding moves by about ``lr / sqrt(V d)``: a large
  vocabulary's embedding barely learns (measured in README "When does growth pay off?").
* ``"row"`` (the default): each row of a matrix by its own norm (a vector is one row), so every token's embedding
  moves by ``lr`` per step, the same per-element scale (``lr / sqrt(d)``) as a LayerNorm gain under ``"tensor"``
  and as Muon's update of a ``d x d`` block matrix. Rows without gradient stay put.

Parameters without a gradient are skipped by both, so blocks waiting in the reserve (see
:func:`~hf_progressive.reserve_blocks`) get no state and no weight decay until growth brings them in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .adapters import get_adapter

MUON_NSGD = "muon_nsgd"
NSGD_NORMS = ("tensor", "row")


class MuonNSGD(torch.optim.Optimizer):
    """Muon on the ``algorithm="muon"`` groups, normalised SGD on the ``algorithm="nsgd"`` groups.

    Args:
        params: parameter groups (dicts) with an ``algorithm`` key; plain parameters default to ``"nsgd"``. Use
            :func:`muon_nsgd_param_groups` to build them from a model.
        lr: the learning rate shared by both algorithms (Muon scales it by its usual shape factor).
        weight_decay: decoupled weight decay, ``p <- p * (1 - lr * weight_decay)``.
        momentum: momentum of both algorithms.
        nesterov: Nesterov momentum for both algorithms.
        ns_steps: Newton-Schulz steps of Muon.
        eps: floor of the norms divided by.
        nsgd_norm: ``"row"`` (default) or ``"tensor"`` (the paper's form): what normalised SGD divides the update
            by (see the module docstring); a param group may set its own.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.02,
        weight_decay: float = 0.01,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        eps: float = 1e-7,
        nsgd_norm: str = "row",
    ):
        if lr < 0:
            raise ValueError(f"Invalid learning rate {lr}: it must be >= 0.")
        if not 0 <= momentum < 1:
            raise ValueError(f"Invalid momentum {momentum}: it must lie in [0, 1).")
        _check_nsgd_norm(nsgd_norm)
        self._muon: torch.optim.Muon | None = None
        self._ns_steps = ns_steps
        defaults = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, eps=eps, nsgd_norm=nsgd_norm
        )
        defaults["algorithm"] = "nsgd"
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        algorithm = param_group.get("algorithm", self.defaults["algorithm"])
        if algorithm not in ("muon", "nsgd"):
            raise ValueError(f"Unknown algorithm '{algorithm}' in a MuonNSGD param group: use 'muon' or 'nsgd'.")
        _check_nsgd_norm(param_group.get("nsgd_norm", self.defaults["nsgd_norm"]))
        super().add_param_group(param_group)
        if algorithm == "muon":
            self._attach_to_muon(self.param_groups[-1])

    def _attach_to_muon(self, group: dict[str, Any]) -> None:
        # torch.optim.Muon steps the very same group dicts (so the LR scheduler drives both) and shares our state.
        if self._muon is None:
            self._muon = torch.optim.Muon([group], lr=group["lr"], ns_steps=self._ns_steps)
            self._muon.state = self.state
        else:
            self._muon.add_param_group(group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # Loading replaces the group dicts and the state: point torch.optim.Muon at the new ones.
        self._muon = None
        for group in self.param_groups:
            if group["algorithm"] == "muon":
                self._attach_to_muon(group)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._muon is not None:
            self._muon.step()
        for group in self.param_groups:
            if group["algorithm"] != "nsgd":
                continue
            lr, momentum, eps = group["lr"], group["momentum"], group["eps"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                gradient = parameter.grad
                state = self.state[parameter]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(gradient)
                buffer = state["momentum_buffer"]
                buffer.lerp_(gradient, 1 - momentum)
                update = gradient.lerp(buffer, momentum) if group["nesterov"] else buffer
                parameter.mul_(1 - lr * group["weight_decay"])
                # Groups saved before nsgd_norm existed were trained with the whole-tensor norm.
                parameter.add_(normalized(update, group.get("nsgd_norm", "tensor"), eps), alpha=-lr)
        return loss


def normalized(update: torch.Tensor, norm: str, eps: float = 1e-7) -> torch.Tensor:
    """``update`` divided by its Frobenius norm (``"tensor"``) or, row by row, by each row's norm (``"row"``)."""
    # Divide on the device (no .item()): no host sync per tensor on accelerators.
    if norm == "row" and update.ndim >= 2:
        return update / update.norm(dim=-1, keepdim=True).clamp(min=eps)
    return update / update.norm().clamp(min=eps)


def _check_nsgd_norm(norm: str) -> None:
    if norm not in NSGD_NORMS:
        raise ValueError(f"Unknown nsgd_norm '{norm}': use one of {list(NSGD_NORMS)}.")


def conv1d_lr_correction(weight: torch.Tensor) -> float:
    """LR factor that makes ``torch.optim.Muon`` treat a weight stored ``(in, out)`` (an adapter's
    ``transposed_weight_types``, e.g. GPT-2's ``Conv1D``) like the ``nn.Linear`` it stands for.

    Such a layer stores ``(in, out)``, the transpose of ``nn.Linear``'s ``(out, in)``. Muon's orthogonalisation does not
    care (the orthogonalised transpose is the transpose of the orthogonalised matrix), but its LR factor
    ``sqrt(max(1, rows / cols))`` does: without correction the fused ``c_attn`` (``d x 3d``) would get 1 instead of
    ``sqrt(3)``, ``mlp.c_fc`` 1 instead of 2 and ``mlp.c_proj`` 2 instead of 1. The fused Q|K|V matrix is
    orthogonalised here as one ``3d x d`` matrix; modded-nanogpt's Muon splits it into Q, K and V first, which this
    package does not offer yet.
    """
    fan_in, fan_out = weight.shape
    return (max(1.0, fan_out / fan_in) / max(1.0, fan_in / fan_out)) ** 0.5


def _transposed_weight_types(model: nn.Module) -> tuple[type, ...]:
    """Module types of ``model``'s family that store weights ``(in, out)`` (its adapter says; none if it has none)."""
    try:
        return get_adapter(model).transposed_weight_types
    except ValueError:  # a model no adapter knows: every weight is taken as nn.Linear's (out, in)
        return ()


def muon_nsgd_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    decay_parameter_names: Iterable[str] | None = None,
    muon_embeddings: bool = False,
    transposed_weight_types: tuple[type, ...] | None = None,
) -> list[dict[str, Any]]:
    """Param groups for :class:`MuonNSGD`: every 2-D weight to Muon, everything else to normalised SGD.

    Args:
        decay_parameter_names: names that get ``weight_decay`` (``Trainer.get_decay_parameter_names``); others get
            none. Default: every parameter decays.
        muon_embeddings: whether the (tied) token embedding and the position embedding go to Muon; the paper leaves
            this open. Default: normalised SGD.
        transposed_weight_types: module types that store weights ``(in, out)``; default: what the model's adapter
            says (none for a model no adapter knows).

    The first group is an unscaled normalised-SGD group, so ``Trainer`` logs the shared learning rate.
    """
    decaying = None if decay_parameter_names is None else set(decay_parameter_names)

    def owned_by(kind: type) -> set[int]:
        # A tied weight has several owners (GPT-2's wte and lm_head): any owner of the kind counts.
        return {id(p) for module in model.modules() if isinstance(module, kind) for p in module.parameters(False)}

    if transposed_weight_types is None:
        transposed_weight_types = _transposed_weight_types(model)
    embeddings, transposed = owned_by(nn.Embedding), owned_by(transposed_weight_types)
    groups: dict[tuple[str, bool, float], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        use_muon = parameter.ndim == 2 and (muon_embeddings or id(parameter) not in embeddings)
        scale = conv1d_lr_correction(parameter) if use_muon and id(parameter) in transposed else 1.0
        decay = decaying is None or name in decaying
        groups.setdefault(("muon" if use_muon else "nsgd", decay, scale), []).append(parameter)
    ordered = sorted(groups.items(), key=lambda item: (item[0][0] != "nsgd", item[0][2] != 1.0))
    # Muon decays by lr * weight_decay: divide the scaled groups' decay back so every weight decays alike.
    return [
        {
            "params": params,
            "algorithm": algorithm,
            "lr": lr * scale,
            "weight_decay": weight_decay / scale if decay else 0.0,
        }
        for (algorithm, decay, scale), params in ordered
    ]


class UpdateRamp:
    """Scale the optimizer updates of ``parameters`` by ``1/k, 2/k, ..., 1`` over the next ``k`` optimizer steps.

    This is a linear learning-rate warmup for those parameters alone (e.g. the blocks growth just added), for any
    optimizer: each step's change of a parameter, weight decay included, is multiplied by the factor, exactly what
    a factor on the LR does to AdamW, Muon and normalised SGD (scaling gradients would not: all three are invariant
    to it). The optimizer's moments see the full gradients, as under an LR warmup. Implemented with the optimizer's
    step hooks; it removes them itself after the last ramped step.

    Args:
        optimizer: the optimizer (accelerate's ``AcceleratedOptimizer`` is unwrapped).
        parameters: the parameters to ramp.
        steps: ``k``.
        done: steps of the ramp already taken (when resuming mid-ramp).
    """

    def __init__(self, optimizer, parameters: Iterable[nn.Parameter], steps: int, done: int = 0):
        self.optimizer = getattr(optimizer, "optimizer", optimizer)
        self.parameters = list(parameters)
        self.steps, self.done = steps, done
        self._snapshot: list[torch.Tensor] = []
        self._handles = [
            self.optimizer.register_step_pre_hook(self._before_step),
            self.optimizer.register_step_post_hook(self._after_step),
        ]

    @property
    def active(self) -> bool:
        return self.done < self.steps

    def _before_step(self, optimizer, args, kwargs) -> None:
        self._snapshot = [parameter.detach().clone() for parameter in self.parameters]

    @torch.no_grad()
    def _after_step(self, optimizer, args, kwargs) -> None:
        self.done += 1
        factor = self.done / self.steps
        for parameter, before in zip(self.parameters, self._snapshot):
            parameter.lerp_(before, 1.0 - factor)  # before + factor * (after - before)
        self._snapshot = []
        if not self.active:
            self.remove()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
