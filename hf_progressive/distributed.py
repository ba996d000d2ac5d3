"""Data parallelism through growth: replica checks, and no all-reduce for the reserve's empty gradients.

Under DDP every process holds a full copy of the model. Growth is deterministic and DDP registered the reserved
blocks when it wrapped the model, so new blocks should receive synchronised gradients and stay identical on every
process. :class:`ReplicaCheckCallback` verifies that where it matters, at the cost of one small collective per
check: the first update after each growth (gradients of the new parameters present and equal everywhere, then the
updated parameters equal everywhere) and the end of training (every parameter equal everywhere). A mismatch raises
on every process at once, so a broken run stops instead of training diverged replicas.

Reserved blocks are registered with DDP but get no gradient until growth. DDP (with
``find_unused_parameters=True``) still all-reduces their gradient buckets every step: during the shallow phase
that is the communication of the whole target-depth model, for a model that computes almost nothing. The
communication hook of :func:`register_reserve_aware_comm_hook` all-reduces only the gradients of parameters in the
stack (the reserved ones are zero on every process, so their mean is known) and leaves buckets without reserved
parameters to DDP's default all-reduce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel
from transformers import TrainerCallback

from .adapters import get_adapter

logger = logging.getLogger(__name__)


def checksums(tensors: list[torch.Tensor | None]) -> torch.Tensor:
    """One row per tensor: (sum, sum of squares) in float64; NaN for a missing tensor (e.g. a gradient)."""
    rows = []
    for tensor in tensors:
        if tensor is None:
            rows.append(torch.full((2,), float("nan"), dtype=torch.float64))
        else:
            values = tensor.detach().to(torch.float64)
            rows.append(torch.stack([values.sum(), values.square().sum()]).cpu())
    return torch.stack(rows) if rows else torch.zeros((0, 2), dtype=torch.float64)


def mismatches_across_processes(names: list[str], tensors: list[torch.Tensor | None]) -> list[str]:
    """Names of the tensors that are missing on some process or differ between processes (a collective: every
    process must call it with the same names)."""
    local = checksums(tensors)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [name for name, row in zip(names, local) if torch.isnan(row).any()]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    local = local.to(device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    stacked = torch.stack(gathered).cpu()  # (processes, tensors, 2)
    missing = torch.isnan(stacked).any(dim=(0, 2))
    differ = (stacked != stacked[:1]).any(dim=(0, 2))
    return [name for name, bad in zip(names, (missing | differ).tolist()) if bad]


class ReplicaCheckCallback(TrainerCallback):
    """Verifies, under data parallelism, that growth keeps replicas identical (see the module docstring).

    Args:
        growth_history: returns the growth events of the run so far (``GrowthCallback.history``).
    """

    def __init__(self, growth_history: Callable[[], list[dict]]):
        self._growth_history = growth_history

    @property
    def growth_history(self) -> list[dict]:
        return self._growth_history()

    def _new_parameters(self, model: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
        event = self.growth_history[-1]
        blocks = get_adapter(model).blocks(model)
        named = [
            (f"block {position}.{name}", parameter)
            for position in event["new_blocks"]
            for name, parameter in blocks[position].named_parameters()
        ]
        return [name for name, _ in named], [parameter for _, parameter in named]

    def _just_grew(self, state) -> bool:
        return bool(self.growth_history) and self.growth_history[-1]["step"] == state.global_step

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        # The first update after growth, gradients reduced, optimizer not yet stepped.
        if model is None or not self._just_grew(state):
            return
        names, parameters = self._new_parameters(model)
        bad = mismatches_across_processes(names, [p.grad for p in parameters])
        if bad:
            raise RuntimeError(
                f"After growth at step {state.global_step}, new parameters have missing or unsynchronised gradients "
                f"across processes: {bad[:6]}{' ...' if len(bad) > 6 else ''}."
            )
        logger.info(
            "Step %d: the %d new parameters received gradients, identical on all %d processes.",
            state.global_step + 1,
            len(parameters),
            args.world_size,
        )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or not self.growth_history or self.growth_history[-1]["step"] != state.global_step - 1:
            return
        names, parameters = self._new_parameters(model)
        bad = mismatches_across_processes(names, list(parameters))
        if bad:
            raise RuntimeError(f"After growth, new parameters differ between processes: {bad[:6]}.")

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        names, parameters = zip(*model.named_parameters())
        bad = mismatches_across_processes(list(names), list(parameters))
        if bad:
            raise RuntimeError(f"At the end of training, parameters differ between processes: {bad[:6]}.")
        logger.info("All %d parameters are identical on the %d processes.", len(names), args.world_size)


def register_reserve_aware_comm_hook(wrapped: nn.Module, model: nn.Module) -> bool:
    """Make DDP all-reduce only the gradients of parameters in the stack, not those of reserved blocks.

    ``wrapped`` is the DDP module, ``model`` the model it wraps. Reserve membership is read at every step, so a
    block's parameters are reduced again from the first update after it enters the stack. Returns whether the hook
    was registered (``wrapped`` is not DDP, or already has a hook, e.g. accelerate's: nothing is done, with a
    warning for a foreign hook).
    """
    if not isinstance(wrapped, DistributedDataParallel) or getattr(wrapped, "_progressive_comm_hook", False):
        return False
    adapter = get_adapter(model)
    # The hook runs for every bucket of every step, the reserve changes only at growth: what to reduce in each bucket
    # is worked out once per reserve state (walking a bucket's parameters cost more than the reduction itself).
    cache: dict = {"blocks": None, "ids": frozenset(), "runs": {}}

    def reserved_ids() -> frozenset[int]:
        blocks = tuple(adapter.reserved_blocks(model))
        if blocks != cache["blocks"]:
            cache["blocks"], cache["runs"] = blocks, {}
            cache["ids"] = frozenset(id(p) for block in blocks for p in block.parameters())
        return cache["ids"]

    # No annotations: DDP checks them against dist.GradBucket, and postponed annotations are strings.
    def hook(state, bucket):
        reserved = reserved_ids()
        if not reserved:  # fully grown: DDP's own all-reduce
            return allreduce_hook(state, bucket)
        buffer = bucket.buffer()
        # DDP never rebuilds buckets under find_unused_parameters=True; the key still tells a new buffer apart.
        key = (bucket.index(), buffer.data_ptr(), buffer.numel())
        runs = cache["runs"].get(key)
        if runs is None:
            runs = cache["runs"][key] = active_runs(bucket, reserved)
        if runs == [(0, buffer.numel())]:
            return allreduce_hook(state, bucket)
        # No process computed a gradient for a reserved parameter: DDP leaves their .grad untouched (None) as
        # globally unused, so their slots in the bucket need no communication.
        if not runs:
            future = torch.futures.Future()
            future.set_result(buffer)
            return future
        compact = torch.cat([buffer[start:end] for start, end in runs]).div_(dist.get_world_size())

        def write_back(reduced_future):
            reduced = reduced_future.value()[0]
            offset = 0
            for start, end in runs:
                buffer[start:end].copy_(reduced[offset : offset + end - start])
                offset += end - start
            return buffer

        return dist.all_reduce(compact, async_op=True).get_future().then(write_back)

    try:
        wrapped.register_comm_hook(state=None, hook=hook)
    except RuntimeError as error:  # DDP takes one hook, and accelerate may have registered its own (compression)
        logger.warning(
            "DDP already has a communication hook (%s); keeping it. Reserved blocks' empty gradients are then "
            "all-reduced every step too, which costs bandwidth, not correctness.",
            error,
        )
        return False
    wrapped._progressive_comm_hook = True
    return True


def active_runs(bucket, reserved: frozenset[int]) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges of a DDP bucket's flat buffer that hold gradients of parameters outside
    ``reserved`` (ids), adjacent ranges merged."""
    base = bucket.buffer().storage_offset()
    spans = sorted(
        (gradient.storage_offset() - base, gradient.storage_offset() - base + gradient.numel())
        for parameter, gradient in zip(bucket.parameters(), bucket.gradients())
        if id(parameter) not in reserved
    )
    runs: list[tuple[int, int]] = []
    for start, end in spans:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


class ReserveCommHookCallback(TrainerCallback):
    """Registers :func:`register_reserve_aware_comm_hook` on the trainer's DDP model when training begins.

    Args:
        wrapped_model: returns the trainer's wrapped model (``trainer.model_wrapped``), known once training starts.
    """

    def __init__(self, wrapped_model: Callable[[], nn.Module]):
        self._wrapped_model = wrapped_model

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and register_reserve_aware_comm_hook(self._wrapped_model(), model):
            logger.info("DDP all-reduces only the gradients of blocks in the stack; reserved blocks stay off the wire.")
