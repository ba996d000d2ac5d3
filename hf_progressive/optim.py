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

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# torch.optim.Muon's Newton-Schulz iteration and its defaults (torch keeps them in a private module), for the parts
# of a fused matrix; tests check the split step against torch.optim.Muon on separate matrices.
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz
from torch.optim._muon import EPS as MUON_EPS
from transformers.optimization import get_scheduler
from transformers.trainer_utils import SchedulerType

from .adapters import get_adapter
from .adapters.base import classify_parameters, has_suffix

logger = logging.getLogger(__name__)

MUON_NSGD = "muon_nsgd"
#: Share of the steps that ``warmup_stable_decay`` decays over when ``num_decay_steps`` is not given (PAPER.md).
DEFAULT_WSD_DECAY_FRACTION = 0.1
MUON_NS_COEFFICIENTS = (DEFAULT_A, DEFAULT_B, DEFAULT_C)
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
        # Groups of split fused matrices are stepped here (see _split_muon_step).
        if "split" in group:
            return
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
            if group["algorithm"] == "nsgd":
                for parameter, update in self._momentum_updates(group):
                    parameter.mul_(1 - group["lr"] * group["weight_decay"])
                    # Groups saved before nsgd_norm existed were trained with the whole-tensor norm.
                    parameter.add_(
                        normalized(update, group.get("nsgd_norm", "tensor"), group["eps"]), alpha=-group["lr"]
                    )
            elif "split" in group:
                self._split_muon_step(group)
        return loss

    def _momentum_updates(self, group: dict[str, Any]) -> Iterator[tuple[nn.Parameter, torch.Tensor]]:
        """Each parameter of ``group`` that has a gradient, with its (Nesterov) momentum update, as
        ``torch.optim.Muon`` forms it."""
        momentum = group["momentum"]
        for parameter in group["params"]:
            if parameter.grad is None:
                continue
            gradient = parameter.grad
            state = self.state[parameter]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(gradient)
            buffer = state["momentum_buffer"]
            buffer.lerp_(gradient, 1 - momentum)
            yield parameter, gradient.lerp(buffer, momentum) if group["nesterov"] else buffer

    def _split_muon_step(self, group: dict[str, Any]) -> None:
        # torch.optim.Muon's step on each part of a fused matrix, and on each expert's matrix of a 3-D expert
        # weight, as if it were its own parameter: one momentum buffer for the whole (momentum is elementwise),
        # Newton-Schulz and Muon's shape factor per part.
        parts, dim = group["split"]["parts"], group["split"]["dim"]
        for parameter, update in self._momentum_updates(group):
            parameter.mul_(1 - group["lr"] * group["weight_decay"])
            # unbind() gives views: updating an expert's matrix updates the parameter.
            pairs = (
                zip(parameter.unbind(0), update.unbind(0)) if group["split"].get("experts") else [(parameter, update)]
            )
            for matrix, matrix_update in pairs:
                self._split_matrix_step(group, matrix, matrix_update, parts, dim)

    def _split_matrix_step(
        self, group: dict[str, Any], matrix: torch.Tensor, update: torch.Tensor, parts: list[int], dim: int
    ) -> None:
        unit = matrix.shape[dim] // sum(parts)
        sizes = [unit * part for part in parts]
        for piece, piece_update in zip(matrix.split(sizes, dim), update.split(sizes, dim)):
            # In nn.Linear's (out, in) layout, as Muon would see the part as a layer of its own (Newton-Schulz
            # runs in bfloat16: the transposed layout would round differently).
            linear_update = piece_update if dim == 0 else piece_update.T
            orthogonal = _zeropower_via_newtonschulz(linear_update, MUON_NS_COEFFICIENTS, self._ns_steps, MUON_EPS)
            out_features, in_features = linear_update.shape
            scale = max(1.0, out_features / in_features) ** 0.5
            piece.add_(orthogonal if dim == 0 else orthogonal.T, alpha=-group["lr"] * scale)


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
    orthogonalised as one ``3d x d`` matrix unless ``split_fused`` (:func:`muon_nsgd_param_groups`) splits it into Q,
    K and V first, as modded-nanogpt does.
    """
    fan_in, fan_out = weight.shape
    return (max(1.0, fan_out / fan_in) / max(1.0, fan_in / fan_out)) ** 0.5


#: Roles (see :data:`hf_progressive.adapters.PARAMETER_ROLES`) whose weights Muon orthogonalises:
#:
#: * hidden ``matrix`` weights, as in the paper;
#: * an untied LM ``head``, as it always has here (so earlier runs resume with the same groups; modded-nanogpt and
#:   Moonlight keep Adam there instead -- not measured here);
#: * MoE ``expert`` weights, each expert's matrix orthogonalised on its own (a 3-D ``(experts, out, in)`` weight as
#:   that many ``nn.Linear`` weights; ``split_fused`` also splits Mixtral's gate|up): every expert is a hidden MLP
#:   like a dense model's, and orthogonalising the stack as one matrix would mix experts that never see the same
#:   tokens.
#:
#: MoE ``router`` weights go to normalised SGD (row-wise by default: each expert's logit vector moves by ``lr``): a
#: router has one row per expert, no hidden matrix, and its rows' scale sets the routing softmax's temperature,
#: which orthogonalisation would reset every step.
MUON_ROLES = ("matrix", "head", "expert")


@dataclass(frozen=True)
class _FamilyFacts:
    roles: dict[str, str]
    transposed: set[int]  # ids of weights stored (in, out)
    fused: Mapping[str, tuple[int, ...]]  # fused projections by name suffix


def _family_facts(model: nn.Module, transposed_weight_types: tuple[type, ...] | None) -> _FamilyFacts:
    """What the model's adapter says about its parameters; for a model no adapter knows, roles from its modules,
    every weight taken as ``nn.Linear``'s ``(out, in)`` and nothing fused."""
    try:
        adapter = get_adapter(model)
    except ValueError:
        adapter = None
    if transposed_weight_types is None:
        transposed_weight_types = adapter.transposed_weight_types if adapter is not None else ()
    transposed = {
        id(p)
        for module in model.modules()
        if isinstance(module, transposed_weight_types)
        for p in module.parameters(False)
    }
    if adapter is None:
        return _FamilyFacts(classify_parameters(model), transposed, {})
    return _FamilyFacts(adapter.parameter_roles(model), transposed, adapter.fused_projections)


def muon_nsgd_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    decay_parameter_names: Iterable[str] | None = None,
    muon_embeddings: bool = False,
    transposed_weight_types: tuple[type, ...] | None = None,
    split_fused: bool = False,
) -> list[dict[str, Any]]:
    """Param groups for :class:`MuonNSGD`: 2-D weights of the roles in :data:`MUON_ROLES` to Muon, everything else
    to normalised SGD. Roles come from the model's adapter
    (:meth:`~hf_progressive.adapters.BlockStackAdapter.parameter_roles`).

    Args:
        decay_parameter_names: names that get ``weight_decay`` (``Trainer.get_decay_parameter_names``); others get
            none. Default: every parameter decays.
        muon_embeddings: whether the (tied) token embedding and the position embedding go to Muon; the paper leaves
            this open. Default: normalised SGD.
        transposed_weight_types: module types that store weights ``(in, out)``; default: what the model's adapter
            says (none for a model no adapter knows).
        split_fused: orthogonalise each part of a fused projection (the adapter's ``fused_projections``, GPT-2's
            Q|K|V ``c_attn``, Mixtral's gate|up) as its own matrix, as modded-nanogpt does, rather than the fused
            matrix as one. Default off: the fused matrix as one, as this package always did.

    The first group is an unscaled normalised-SGD group, so ``Trainer`` logs the shared learning rate.
    """
    decaying = None if decay_parameter_names is None else set(decay_parameter_names)
    facts = _family_facts(model, transposed_weight_types)
    groups: dict[tuple[str, bool, float, tuple | None], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        role = facts.roles[name]
        per_expert = parameter.ndim == 3 and role == "expert"
        use_muon = per_expert or (
            parameter.ndim == 2 and (role in MUON_ROLES or (role == "embedding" and muon_embeddings))
        )
        split = None
        parts = None
        if use_muon and split_fused:
            parts = next((parts for suffix, parts in facts.fused.items() if has_suffix(name, (suffix,))), None)
        if per_expert:  # expert by expert, each in nn.Linear's (out, in) layout
            split = (parts or (1,), 0, True)
        elif parts is not None:
            # Split along the output dimension: columns of a weight stored (in, out), rows of nn.Linear's (out, in).
            split = (parts, 1 if id(parameter) in facts.transposed else 0, False)
        # A split matrix's parts get Muon's shape factor one by one, in the step; a whole one gets it here.
        scale = (
            conv1d_lr_correction(parameter) if use_muon and split is None and id(parameter) in facts.transposed else 1.0
        )
        decay = decaying is None or name in decaying
        groups.setdefault(("muon" if use_muon else "nsgd", decay, scale, split), []).append(parameter)
    ordered = sorted(groups.items(), key=lambda item: (item[0][0] != "nsgd", item[0][2] != 1.0))
    param_groups = []
    for (algorithm, decay, scale, split), params in ordered:
        # Muon decays by lr * weight_decay: divide the scaled groups' decay back so every weight decays alike.
        group = {
            "params": params,
            "algorithm": algorithm,
            "lr": lr * scale,
            "weight_decay": weight_decay / scale if decay else 0.0,
        }
        if split is not None:
            group["split"] = {"parts": list(split[0]), "dim": split[1]}
            if split[2]:
                group["split"]["experts"] = True
        param_groups.append(group)
    return param_groups


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


class OptimizerTrainerMixin:
    """``Trainer`` methods for the optimizer and LR schedule of a progressive run (mixed into
    :class:`~hf_progressive.ProgressiveTrainer`): ``optim="muon_nsgd"`` (which only
    :class:`~hf_progressive.ProgressiveTrainingArguments` accepts) builds :class:`MuonNSGD` from the
    :class:`~hf_progressive.ProgressiveTrainingArguments` fields ``muon_*`` and ``nsgd_norm``, and
    ``warmup_stable_decay`` decays over the last :data:`DEFAULT_WSD_DECAY_FRACTION` of the steps when
    ``lr_scheduler_kwargs`` gives no ``num_decay_steps`` (stock ``Trainer`` requires it)."""

    def create_optimizer(self, model: nn.Module | None = None):
        if self.optimizer is None and getattr(self.args, "optim", None) == MUON_NSGD:
            model = self.model if model is None else model
            groups = muon_nsgd_param_groups(
                model,
                lr=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                decay_parameter_names=self.get_decay_parameter_names(model),
                muon_embeddings=self.args.muon_embeddings,
                split_fused=self.args.muon_split_fused,
            )
            self.optimizer = MuonNSGD(
                groups, lr=self.args.learning_rate, momentum=self.args.muon_momentum, nsgd_norm=self.args.nsgd_norm
            )
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        kwargs = dict(self.args.lr_scheduler_kwargs or {})
        if (
            self.lr_scheduler is None
            and self.args.lr_scheduler_type == SchedulerType.WARMUP_STABLE_DECAY
            and "num_decay_steps" not in kwargs
        ):
            kwargs["num_decay_steps"] = max(1, round(DEFAULT_WSD_DECAY_FRACTION * num_training_steps))
            logger.info("warmup_stable_decay: decaying over the last %d steps.", kwargs["num_decay_steps"])
            self.lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=optimizer if optimizer is not None else self.optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=kwargs,
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)
