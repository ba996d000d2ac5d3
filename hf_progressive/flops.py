"""Compute accounting: what a progressive run spends against the fixed-depth run.

Two conventions from PAPER.md, both reported because the paper does not say which it counts:

* parameters: ``ratio = sum_i steps_i * N(depth_i) / (T * N(target))`` with ``N`` all parameters or
  non-embedding parameters (token and position embeddings excluded);
* per-token forward cost ``2 * N_nonemb + 2 * d * V + 2 * depth * n_ctx * d`` (blocks, LM head, attention
  scores), of which training spends three times as much (forward + backward).

Formulas read the GPT-2 config, so the fixed-depth equivalent needs no model of the target depth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .schedule import DepthSchedule


def block_parameters(config) -> int:
    """Parameters of one GPT-2 block: attention, MLP and two LayerNorms."""
    d = config.n_embd
    inner = config.n_inner if config.n_inner is not None else 4 * d
    attention = (d * 3 * d + 3 * d) + (d * d + d)
    mlp = (d * inner + inner) + (inner * d + d)
    layer_norms = 2 * 2 * d
    return attention + mlp + layer_norms


def embedding_parameters(config) -> int:
    """Token and position embeddings (the LM head is tied to the token embedding)."""
    return (config.vocab_size + config.n_positions) * config.n_embd


def non_embedding_parameters(config, depth: int) -> int:
    """Parameters of ``depth`` blocks plus the final LayerNorm."""
    return depth * block_parameters(config) + 2 * config.n_embd


def total_parameters(config, depth: int) -> int:
    """All parameters of a GPT-2 of ``depth`` blocks (tied LM head counted once)."""
    return embedding_parameters(config) + non_embedding_parameters(config, depth)


def forward_flops_per_token(config, depth: int, context_length: int) -> int:
    """Forward FLOPs per token: ``2 N_nonemb + 2 d V + 2 depth n_ctx d`` (PAPER.md)."""
    d = config.n_embd
    return 2 * non_embedding_parameters(config, depth) + 2 * d * config.vocab_size + 2 * depth * context_length * d


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
    context_length = config.n_positions if context_length is None else context_length
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

    def add(self, depth: int, tokens: int, context_length: int) -> float:
        """Record ``tokens`` trained at ``depth``; return the FLOPs they cost."""
        spent = float(training_flops_per_token(self.config, depth, context_length) * tokens)
        self.flops += spent
        self.fixed_equivalent += float(training_flops_per_token(self.config, self.fixed_depth, context_length) * tokens)
        return spent

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
