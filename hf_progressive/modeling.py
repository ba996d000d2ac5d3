"""``ProgressiveGPT2LMHeadModel`` and the Auto-class registration."""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM, GPT2LMHeadModel

from .adapters import get_adapter
from .adapters.base import config_depth
from .configuration import ProgressiveGPT2Config
from .growth import reserve_blocks
from .training_args import warn_nothing_grows


class ProgressiveGPT2LMHeadModel(GPT2LMHeadModel):
    """A ``GPT2LMHeadModel`` whose blocks up to ``config.target_n_layer`` are allocated at construction.

    The model runs ``config.n_layer`` blocks; the others wait in a reserve that the forward pass does not use,
    so an optimizer built now already holds every parameter growth will bring in. Apart from that it *is* a
    ``GPT2LMHeadModel``; once fully grown its checkpoint is a plain GPT-2 checkpoint.

    Every block, active or reserved, is initialised for the target depth (GPT-2 scales residual projections by
    ``1/sqrt(2 * n_layer)``): the source model shares the target's parameterisation, as in the paper.
    """

    config_class = ProgressiveGPT2Config

    def __init__(self, config: ProgressiveGPT2Config):
        super().__init__(config)
        if config.target_n_layer > config.n_layer:
            reserve_blocks(self, config.target_n_layer)
            get_adapter(self).reserve(self).awaiting_trainer = True  # until ProgressiveTrainer claims it
            self._nobody_grows_hook = self.register_forward_pre_hook(_warn_if_nobody_grows)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        tags: list[str] | None = None,
        **card_kwargs,
    ):
        """Upload the model with its growth metadata and the progressive model card (see
        :func:`hf_progressive.hub.push_to_hub`, which does the same for a plain ``GPT2LMHeadModel``)."""
        from .hub import push_to_hub

        return push_to_hub(
            self,
            repo_id,
            commit_message=commit_message or "Upload progressively grown model",
            private=private,
            token=token,
            revision=revision,
            create_pr=create_pr,
            tags=tags,
            **card_kwargs,
        )

    def _init_weights(self, module):
        with config_depth(self.config, "n_layer", max(self.config.target_n_layer, 1)):
            super()._init_weights(module)


def _warn_if_nobody_grows(model: ProgressiveGPT2LMHeadModel, args) -> None:
    # The first training-mode forward: has a ProgressiveTrainer claimed the reserve? (If not: transformers.Trainer
    # or another loop that will not grow it.) Checked once, then the hook is gone: no cost per step.
    if not model.training:
        return
    model._nobody_grows_hook.remove()
    reserve = get_adapter(model).reserve(model)
    if reserve.awaiting_trainer:
        warn_nothing_grows(
            f"{type(model).__name__} holds {len(reserve)} reserved blocks (target depth "
            f"{model.config.target_n_layer}) but is trained without hf_progressive's trainer: nothing will grow it, "
            f"and it trains at {model.config.n_layer} blocks for the whole run."
        )


AutoConfig.register(ProgressiveGPT2Config.model_type, ProgressiveGPT2Config, exist_ok=True)
AutoModelForCausalLM.register(ProgressiveGPT2Config, ProgressiveGPT2LMHeadModel, exist_ok=True)
