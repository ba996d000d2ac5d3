"""``ProgressiveTrainingArguments``: ``TrainingArguments`` plus the growth plan, parsable from the CLI."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.training_args import OptimizerNames

from .inits import INIT_STRATEGIES, get_init
from .optim import MUON_NSGD, NSGD_NORMS
from .schedule import DepthSchedule

OPTIMIZER_STATE_POLICIES = ("fresh", "copy")

logger = logging.getLogger(__name__)


@dataclass
class ProgressiveTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the fields that control depth growth.

    Every field is parsed by ``HfArgumentParser`` (``--depth_schedule 0@0,12@0.8 --growth_init random``) and
    validated here, so a bad value fails when the arguments are built, not mid-run. Stages given as fractions
    are checked against ``max_steps`` here when it is set, else when training starts.
    """

    depth_schedule: str | None = field(
        default=None,
        metadata={
            "help": "Depth schedule as comma-separated 'depth@step' stages, e.g. '0@0,12@0.8': 0 blocks from step "
            "0, 12 blocks from 80%% of max_steps. A step is an int (optimizer step) or a float below 1 (fraction "
            "of max_steps). The first stage must be at step 0. A Python list of (depth, at) pairs is accepted too. "
            "Unset: the model config's depth_schedule if it has one, else no growth."
        },
    )
    growth_init: str | None = field(
        default=None,
        metadata={
            "help": "How new blocks are initialised; one of "
            + ", ".join(sorted(INIT_STRATEGIES))
            + ". Unset: the model config's growth_init if it has one, else 'random'."
        },
    )
    new_params_optimizer_state: str = field(
        default="fresh",
        metadata={
            "help": "Optimizer state of new parameters at growth: 'fresh' (empty, as for a new parameter) or 'copy' "
            "(copied from the block a new block copies; needs a copying growth_init). Existing parameters always "
            "keep their state.",
            "choices": list(OPTIMIZER_STATE_POLICIES),
        },
    )
    growth_residual_scale: float = field(
        default=1.0,
        metadata={
            "help": "Factor on the residual output projections of new blocks after their init: below 1 a new block "
            "starts closer to an identity (0 makes it one). 1 keeps the init as it is."
        },
    )
    growth_lr_warmup_steps: float = field(
        default=0,
        metadata={
            "help": "Linear learning-rate warmup of the new blocks alone after each growth, in optimizer steps (an "
            "int, or a float below 1 for a fraction of max_steps). 0: new blocks get the full learning rate at once."
        },
    )

    optim: str = field(
        default=TrainingArguments.__dataclass_fields__["optim"].default,
        metadata={
            "help": "The optimizer: transformers' choices, or 'muon_nsgd' for the paper's Muon-NSGD (Muon on block "
            "matrices, normalised SGD on the rest, one learning rate).",
            "choices": [name.value for name in OptimizerNames] + [MUON_NSGD],
        },
    )
    muon_embeddings: bool = field(
        default=False,
        metadata={
            "help": "With --optim muon_nsgd: whether the (tied) token and the position embeddings use Muon "
            "rather than normalised SGD."
        },
    )
    muon_split_fused: bool = field(
        default=False,
        metadata={
            "help": "With --optim muon_nsgd: orthogonalise each part of a fused projection (GPT-2's Q|K|V c_attn) "
            "as its own matrix, as modded-nanogpt does, rather than the fused matrix as one."
        },
    )
    muon_momentum: float = field(default=0.95, metadata={"help": "With --optim muon_nsgd: momentum of both parts."})
    nsgd_norm: str = field(
        default="row",
        metadata={
            "help": "With --optim muon_nsgd: what normalised SGD divides an update by: 'row' (each row by its own "
            "norm: every token embedding moves by the learning rate; measured better at every vocabulary tried) or "
            "'tensor' (the whole tensor's Frobenius norm, the paper's NSGD; a large embedding then learns slowly).",
            "choices": list(NSGD_NORMS),
        },
    )

    # transformers 5 dropped this flag from TrainingArguments; its example scripts used it to guard output_dir.
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Allow training into an --output_dir that already holds a model, checkpoints or results (files "
            "this run rewrites are replaced, others stay). Without it such a folder is refused, unless the run "
            "resumes from a checkpoint in it."
        },
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "A checkpoint folder (output_dir/checkpoint-<step>) to resume from, or 'last' for the last "
            "checkpoint of --output_dir whose save finished; 'last' starts from scratch (and says so) when there "
            "is none yet, so one command serves the first run and every restart."
        },
    )

    def __post_init__(self):
        # TrainingArguments only knows transformers' optimizers; muon_nsgd is built by ProgressiveTrainer.
        muon = self.optim == MUON_NSGD
        if muon:
            self.optim = "adamw_torch"
        super().__post_init__()
        if muon:
            self.optim = MUON_NSGD
        if not 0 <= self.muon_momentum < 1:
            raise ValueError(f"muon_momentum={self.muon_momentum} must lie in [0, 1).")
        if self.growth_residual_scale < 0:
            raise ValueError(f"growth_residual_scale={self.growth_residual_scale} must be >= 0.")
        if self.growth_lr_warmup_steps < 0 or (self.growth_lr_warmup_steps > 1 and self.growth_lr_warmup_steps % 1):
            raise ValueError(
                f"growth_lr_warmup_steps={self.growth_lr_warmup_steps} must be a number of steps (an int >= 0) or "
                "a fraction of max_steps in [0, 1)."
            )
        if self.nsgd_norm not in NSGD_NORMS:
            raise ValueError(f"nsgd_norm='{self.nsgd_norm}' is not one of {list(NSGD_NORMS)}.")
        if self.depth_schedule is not None:
            schedule = DepthSchedule(self.depth_schedule)
            self.depth_schedule = str(schedule)
            if self.max_steps > 0:
                schedule.resolve(self.max_steps)
            if self.growth_init is not None:
                check_init_for_schedule(get_init(self.growth_init).name, schedule)
            allow_unused_parameters(self)
        if self.growth_init is not None:
            get_init(self.growth_init)
        if self.new_params_optimizer_state not in OPTIMIZER_STATE_POLICIES:
            raise ValueError(
                f"new_params_optimizer_state='{self.new_params_optimizer_state}' is not one of "
                f"{list(OPTIMIZER_STATE_POLICIES)}."
            )
        if self.growth_init is not None:
            check_optimizer_state_policy(self.new_params_optimizer_state, self.growth_init)

    def get_warmup_steps(self, num_training_steps: int) -> int:
        # Every Trainer asks this when it builds the LR schedule at the start of train(): the moment to say, once,
        # that a Trainer which is not hf_progressive's will never act on depth_schedule.
        if self.depth_schedule is not None and not getattr(self, "_read_by_progressive_trainer", False):
            warn_nothing_grows(
                f"ProgressiveTrainingArguments(depth_schedule='{self.depth_schedule}') are used by a Trainer that is "
                "not hf_progressive's: the schedule is ignored and the model trains at its starting depth for the "
                "whole run."
            )
        return super().get_warmup_steps(num_training_steps)


_warned: set[str] = set()


def warn_nothing_grows(what: str) -> None:
    """Warn, once per message, that a growth plan will not be carried out, and what to use instead."""
    if what in _warned:
        return
    _warned.add(what)
    message = (
        f"{what} Train with hf_progressive.ProgressiveTrainer, mix hf_progressive.ProgressiveTrainerMixin into your "
        "Trainer class (class MyTrainer(ProgressiveTrainerMixin, MyBaseTrainer)), or call hf_progressive.grow() "
        "yourself."
    )
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def check_init_for_schedule(init: str, schedule: DepthSchedule) -> None:
    """Fail if ``init`` cannot carry out some growth event of ``schedule`` (copying from 0 blocks)."""
    strategy = get_init(init)
    for stage, following in zip(schedule.stages, schedule.stages[1:]):
        strategy.plan(stage.depth, following.depth)


def check_optimizer_state_policy(policy: str, init: str) -> None:
    """Fail if ``policy`` is ``"copy"`` but ``init`` creates new weights (there is no source state to copy)."""
    if policy == "copy" and not get_init(init).copies:
        raise ValueError(
            f"new_params_optimizer_state='copy' needs a copying growth_init, but growth_init='{init}' creates new "
            f"weights; use one of {sorted(n for n, s in INIT_STRATEGIES.items() if s.copies)} or "
            "new_params_optimizer_state='fresh'."
        )


def allow_unused_parameters(args) -> None:
    """Set ``ddp_find_unused_parameters=True``: blocks waiting in the reserve get no gradient before growth, and DDP
    must not expect one. Fails if the user explicitly asked for ``False``."""
    if args.ddp_find_unused_parameters is False:
        raise ValueError(
            "ddp_find_unused_parameters=False cannot be used with a depth_schedule: blocks that have not entered "
            "the model yet receive no gradient. Leave it unset or set it to True."
        )
    args.ddp_find_unused_parameters = True
