"""hf_progressive: zero/one-layer progressive depth training for Hugging Face Transformers."""

from . import requirements  # noqa: F401  (first: an old torch or transformers fails here, saying which)
from .adapters import get_adapter, list_adapters, register_adapter, supported_adapters
from .advice import GrowthAdvice, advise, advise_run
from .checkpointing import last_complete_checkpoint
from .configuration import ProgressiveGPT2Config, progressive_config, progressive_metadata
from .growth import GrowthEvent, block_names, current_depth, grow, reserve_blocks, train_only_new_blocks
from .hub import HubPushError, push_to_hub, write_model_card
from .inits import INIT_STRATEGIES, get_init
from .modeling import ProgressiveGPT2LMHeadModel
from .schedule import DepthSchedule, DepthStage, GrowthStep
from .trainer import GrowthCallback, ProgressiveTrainer, ProgressiveTrainerMixin, copy_optimizer_state, plan_growth
from .training_args import ProgressiveTrainingArguments

#: ``from hf_progressive import Trainer`` is a drop-in for ``transformers.Trainer``.
Trainer = ProgressiveTrainer

__version__ = "0.1.0"

__all__ = [
    "DepthSchedule",
    "GrowthAdvice",
    "DepthStage",
    "GrowthCallback",
    "GrowthEvent",
    "GrowthStep",
    "HubPushError",
    "INIT_STRATEGIES",
    "ProgressiveGPT2Config",
    "ProgressiveGPT2LMHeadModel",
    "ProgressiveTrainer",
    "ProgressiveTrainerMixin",
    "ProgressiveTrainingArguments",
    "Trainer",
    "advise",
    "advise_run",
    "block_names",
    "copy_optimizer_state",
    "current_depth",
    "get_adapter",
    "get_init",
    "grow",
    "last_complete_checkpoint",
    "list_adapters",
    "plan_growth",
    "progressive_config",
    "progressive_metadata",
    "push_to_hub",
    "register_adapter",
    "reserve_blocks",
    "supported_adapters",
    "train_only_new_blocks",
    "write_model_card",
]
