"""Compute accounting: what a progressive run spends against the fixed-depth run.

Two conventions from PAPER.md, both reported because the paper does not say which it counts:

* parameters: ``ratio = sum_i steps_i * N(depth_i) / (T * N(target))`` with ``N`` all parameters or
  non-embedding parameters (token and position embeddings excluded);
* per-token forward cost ``2 * N_nonemb + 2 * d * V + 2 * depth * n_ctx * d`` (blocks, LM head, attention
  scores), of which training spends three times as much (forward + backward).

Parameter counts come from the family's real modules, built once per configuration on the meta device by its
adapter (:meth:`~hf_progressive.adapters.BlockStackAdapter.parameter_counts`), so the fixed-depth equivalent needs
no model of the target depth and a new family needs no closed form here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .adapters import ParameterCounts, adapter_for_config
from .schedule import DepthSchedule


def parameter_counts(config) -> ParameterCounts:
    """Parameters of one block, of the embeddings and of the rest, for the family and width of ``config``."""
    adapter = adapter_for_config(config)
    fields = {name: getattr(config, name, None) for name in adapter.architecture_fields}
    key = (adapter.name, json.dumps(fields, sort_keys=True, default=str))
    # Counting builds a model on the meta device: once per family and architecture, not once per call.
    if key not in _COUNTS:
        _COUNTS[key] = adapter.parameter_counts(config)
    return _COUNTS[key]


_COUNTS: dict[tuple[str, str], ParameterCounts] = {}


def block_parameters(config) -> int:
    """Parameters of one block of the stack."""
    return parameter_counts(config).block


def embedding_parameters(config) -> int:
    """Token and position embeddings (a tied LM head is the token embedding)."""
    return parameter_counts(config).embedding


def non_embedding_parameters(config, depth: int) -> int:
    """Parameters of ``depth`` blocks plus everything outside the stack but the embeddings (final norm)."""
    counts = parameter_counts(config)
    return depth * counts.block + counts.other


def total_parameters(config, depth: int) -> int:
    """All parameters of a model of ``depth`` blocks (a tied LM head counted once)."""
    return embedding_parameters(config) + non_embedding_parameters(config, depth)


def forward_flops_per_token(config, depth: int, context_length: int) -> int:
    """Forward FLOPs per token, as the family's adapter counts them (a decoder LM: ``2 N_nonemb + 2 d V +
    2 depth n_ctx d``, PAPER.md; see :meth:`~hf_progressive.adapters.BlockStackAdapter.forward_flops_per_token`)."""
    return adapter_for_config(config).forward_flops_per_token(config, parameter_counts(config), depth, context_length)


def training_flops_per_token(config, depth: int, context_length: int) -> int:
    """Training FLOPs per token: forward plus backward, three forwards."""
    return 3 * forward_flops_per_token(config, depth, context_length)


@dataclass
class ComputeRatios:
    """Progressive over fixed-depth compute for one schedule, in each convention (1.0 = no saving)."""

    all_parameters: float
    non_embedding: float
    forward_flops: float

    def saved(self) -> dict[str, float]:
        """``1 - ratio`` for each convention."""
        return {name: 1.0 - value for name, value in asdict(self).items()}


def schedule_compute_ratios(
    config, schedule: DepthSchedule, max_steps: int, context_length: int | None = None
) -> ComputeRatios:
    """Compute ratios of a whole run that follows ``schedule`` for ``max_steps`` equal steps."""
    if context_length is None:
        context_length = adapter_for_config(config).context_length(config)
    target = schedule.final_depth
    boundaries = schedule.resolve(max_steps) + [max_steps]
    spans = [(stage.depth, end - start) for stage, start, end in zip(schedule.stages, boundaries, boundaries[1:])]

    def ratio(cost) -> float:
        return sum(steps * cost(depth) for depth, steps in spans) / (max_steps * cost(target))

    return ComputeRatios(
        all_parameters=ratio(lambda depth: total_parameters(config, depth)),
        non_embedding=ratio(lambda depth: non_embedding_parameters(config, depth)),
        forward_flops=ratio(lambda depth: forward_flops_per_token(config, depth, context_length)),
    )


class ComputeTracker:
    """Accumulates training FLOPs actually spent and what the fixed-depth model would have spent."""

    def __init__(self, config, fixed_depth: int):
        self.config = config
        self.fixed_depth = fixed_depth
        self.flops = 0.0
        self.fixed_equivalent = 0.0
        self._cost: dict[tuple[int, int], int] = {}

    def add(self, depth: int, tokens: int, context_length: int) -> float:
        """Record ``tokens`` trained at ``depth``; return the FLOPs they cost."""
        spent = float(self._per_token(depth, context_length) * tokens)
        self.flops += spent
        self.fixed_equivalent += float(self._per_token(self.fixed_depth, context_length) * tokens)
        return spent

    def _per_token(self, depth: int, context_length: int) -> int:
        # Called every step: the cost of a (depth, context) pair never changes within a run.
        key = (depth, context_length)
        if key not in self._cost:
            self._cost[key] = training_flops_per_token(self.config, depth, context_length)
        return self._cost[key]

    @property
    def ratio(self) -> float:
        return self.flops / self.fixed_equivalent if self.fixed_equivalent else 1.0

    def metrics(self, processes: int = 1) -> dict[str, float]:
        """FLOPs so far of the whole run: this process's count times ``processes`` (data-parallel processes train
        equal batches, and ``Trainer`` sums ``total_flos`` over them the same way)."""
        return {
            "flops": self.flops * processes,
            "flops_fixed_equivalent": self.fixed_equivalent * processes,
            "compute_saved": 1.0 - self.ratio,
        }

    def state_dict(self) -> dict[str, float]:
        return {"flops": self.flops, "fixed_equivalent": self.fixed_equivalent}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.flops, self.fixed_equivalent = state["flops"], state["fixed_equivalent"]
