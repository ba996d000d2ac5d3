"""Model cards and Hub pushes for progressively grown models.

The card is rendered from ``model_cards/progressive_causal_lm.md`` with ``huggingface_hub.ModelCard`` and
``ModelCardData``: the growth history, schedule and FLOPs go into the card's YAML metadata (under
``progressive_training``) as well as its text, with the loss-against-step plot when a training log is at hand.
:class:`~hf_progressive.ProgressiveTrainer` writes it on ``save_model`` and ``push_to_hub``;
:func:`push_to_hub` pushes any grown model with it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id
from torch import nn

from .adapters import CardSpec, get_adapter, unwrap_model
from .configuration import progressive_metadata

logger = logging.getLogger(__name__)

#: File name of the loss plot saved beside the card.
PLOT_NAME = "training_curves.png"


# huggingface_hub's HTTP errors derive from the base error of the HTTP client it uses (httpx2, httpx or requests,
# depending on its version), which also covers connection failures: take it from there instead of importing one.
_CLIENT_HTTP_ERROR = next((base for base in HfHubHTTPError.__mro__[1:] if base.__name__ == "HTTPError"), OSError)
#: What a push can raise: the Hub refusing a request or unreachable, no token found, or a local I/O error while the
#: files are prepared (caught too, so that the message says which it was; see :func:`explain_push_failure`).
HUB_ERRORS = (HfHubHTTPError, _CLIENT_HTTP_ERROR, OSError)
#: Modules whose exceptions mean the network failed, not this machine.
_NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "requests", "urllib3", "socket", "ssl")


def is_network_error(error: BaseException) -> bool:
    """Whether ``error`` (raised during a push) means the Hub could not be reached, rather than a local failure."""
    if isinstance(error, (_CLIENT_HTTP_ERROR, ConnectionError, TimeoutError)):
        return True
    return type(error).__module__.split(".")[0] in _NETWORK_MODULES


class HubPushError(RuntimeError):
    """A push to the Hub failed; the local files it was pushing are intact."""


def template_path(name: str | None = None) -> Path:
    """Path of a model-card template (``model_cards/`` of the source tree, shipped inside the package); by default
    the first registered adapter's."""
    if name is None:
        name = _default_card().template
    return Path(str(resources.files("hf_progressive.model_cards") / name))


def _default_card() -> CardSpec:
    from .adapters.registry import _ADAPTERS, list_adapters

    return _ADAPTERS[list_adapters()[0]].card


def build_model_card(
    model: nn.Module,
    *,
    log_history: list[dict] | None = None,
    plot: str | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    datasets: str | list[str] | None = None,
    base_model: str | None = None,
    license: str | None = None,
    language: str | list[str] | None = None,
    tags: list[str] | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> ModelCard:
    """Render the card of a progressively grown model.

    Args:
        model: the grown model; its config's growth metadata (see :class:`ProgressiveGPT2Config`) fills the card.
        log_history: ``trainer.state.log_history``, for the final validation loss.
        plot: relative path of the loss plot to show in the card, if one was saved beside it.
        model_name, repo_id, datasets, base_model, license, language, tags: card metadata. A ``base_model`` that
            is a Hub id is recorded with ``base_model_relation: finetune`` (the grown model continued training it).
        hyperparameters: the training hyperparameters to list, as transformers' own cards do
            (:class:`ModelCardTrainerMixin` passes ``transformers.modelcard.extract_hyperparameters_from_trainer``'s
            and the growth settings).
    """
    adapter = get_adapter(model)
    metadata = progressive_metadata(model.config)
    history = list(metadata.get("growth_history") or [])
    flops, fixed = metadata.get("flops"), metadata.get("flops_fixed_equivalent")
    compute_saved = 1.0 - flops / fixed if flops and fixed else None
    eval_loss = next((e["eval_loss"] for e in reversed(log_history or []) if "eval_loss" in e), None)
    perplexity = math.exp(eval_loss) if eval_loss is not None and eval_loss < 50 else None
    # The Hub accepts only repository ids in `datasets:` and `base_model:`; local files and folders (a text file,
    # the checkpoint a run continued from) are named in the card's text instead.
    datasets, local_datasets = split_hub_ids([datasets] if isinstance(datasets, str) else datasets)
    base_models, local_base_models = split_hub_ids([base_model] if base_model else [])
    name = model_name or (repo_id.split("/")[-1] if repo_id else None)

    eval_results = None
    if eval_loss is not None and datasets and name:
        eval_results = [
            EvalResult(
                task_type="text-generation",
                dataset_type=datasets[0],
                dataset_name=datasets[0],
                metric_type=metric,
                metric_value=round(value, 4),
            )
            for metric, value in (("loss", eval_loss), ("perplexity", perplexity))
            if value is not None
        ]
    # The same facts go into the card's YAML metadata (machine-readable) and its text.
    growth = {
        "depth_schedule": metadata.get("depth_schedule"),
        "growth_init": metadata.get("growth_init"),
        "target_n_layer": metadata.get("target_n_layer"),
        "growth_history": history,
        "flops": flops,
        "flops_fixed_equivalent": fixed,
    }
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=adapter.card.pipeline_tag,
        tags=list(dict.fromkeys([*adapter.card.tags, *(tags or [])])),
        datasets=datasets or None,
        base_model=base_models[0] if base_models else None,
        base_model_relation="finetune" if base_models else None,
        license=license,
        language=language,
        model_name=name,
        eval_results=eval_results,
        progressive_training=growth,
    )
    depth = adapter.config_depth(model.config)
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path(adapter.card.template)),
        model_name=name,
        repo_id=repo_id,
        local_datasets=local_datasets,
        local_base_model=local_base_models[0] if local_base_models else None,
        context_length=adapter.context_length(model.config),
        family=adapter.family_name(model.config),
        architecture=adapter.card.architecture or type(unwrap_model(model)).__name__,
        initial_depth=history[0]["from_depth"] if history else depth,
        final_depth=depth,
        compute_saved=compute_saved,
        eval_loss=eval_loss,
        perplexity=perplexity,
        plot=plot,
        hyperparameters=hyperparameters,
        framework_versions=framework_versions(),
        **growth,
    )


def framework_versions() -> dict[str, str]:
    """The versions a card lists (as transformers' own cards do, with hf_progressive's first)."""
    import importlib.metadata

    versions = {}
    for display, distribution in (
        ("hf_progressive", "hf_progressive"),
        ("Transformers", "transformers"),
        ("Pytorch", "torch"),
        ("Datasets", "datasets"),
        ("Tokenizers", "tokenizers"),
        ("PEFT", "peft"),
    ):
        try:
            versions[display] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def is_hub_id(value: str) -> bool:
    """Whether ``value`` can stand in a card's ``datasets:`` / ``base_model:`` field: a valid Hub repository id
    (``name`` or ``namespace/name``) that is not a file or folder on this machine."""
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return not os.path.exists(value)


def split_hub_ids(values: list[str] | None) -> tuple[list[str], list[str]]:
    """``(hub_ids, local_names)``: the values that are Hub repository ids, and the others (paths, free text)."""
    values = [str(value) for value in values or [] if value]
    return [v for v in values if is_hub_id(v)], [v for v in values if not is_hub_id(v)]


def write_model_card(
    output_dir: str | os.PathLike, model: nn.Module, log_history: list[dict] | None = None, **card_kwargs: Any
) -> Path:
    """Write ``README.md`` (the card) into ``output_dir``, with the loss plot beside it when ``log_history`` has
    training losses and matplotlib is installed. Returns the card's path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plot = card_kwargs.pop("plot", None)
    if plot is None and log_history and any("loss" in e and "flops" in e for e in log_history):
        try:
            from .plotting import plot_training_curves

            plot_training_curves(log_history, output_dir / PLOT_NAME, title=card_kwargs.get("model_name") or "Training")
            plot = PLOT_NAME
        except ImportError:
            logger.info("matplotlib is not installed: the model card has no loss plot.")
    if plot is None and (output_dir / PLOT_NAME).is_file():
        plot = PLOT_NAME
    card = build_model_card(model, log_history=log_history, plot=plot, **card_kwargs)
    path = output_dir / "README.md"
    card.save(path)
    return path


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    tokenizer: Any = None,
    log_history: list[dict] | None = None,
    commit_message: str = "Upload progressively grown model",
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    **card_kwargs: Any,
):
    """Push a grown model (weights as safetensors, ``config.json`` with its growth metadata, the card, and the
    tokenizer if given) through huggingface_hub's normal upload path.

    A loss plot saved beside a card in the folder the model was loaded from (``model.name_or_path``) is reused.

    Returns:
        The ``CommitInfo`` of the upload.

    Raises:
        HubPushError: when the repository cannot be created or the upload fails (no token, Hub unreachable, no
            write access). Nothing local is written or removed.
    """
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as staging:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        source = Path(str(getattr(model, "name_or_path", "") or ""))
        if source.is_dir() and (source / PLOT_NAME).is_file():
            shutil.copy(source / PLOT_NAME, Path(staging) / PLOT_NAME)
        write_model_card(staging, model, log_history, repo_id=repo_id, **card_kwargs)
        try:
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                commit_message=commit_message,
                revision=revision,
                create_pr=create_pr,
            )
        except HUB_ERRORS as error:
            raise HubPushError(explain_push_failure(repo_id, error, None)) from error


def explain_push_failure(repo_id: str | None, error: BaseException, local_dir: str | None) -> str:
    """A message that says why a push failed, what to do, and where the local files are."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status == 401:
        reason = "the Hub refused the token (missing or invalid): run `hf auth login` or pass `token=` / --hub_token"
    elif status == 403:
        reason = "the token has no write access to this repository"
    elif status is None and not is_network_error(error):
        reason = f"it failed on this machine, not at the Hub ({type(error).__name__}: {error})"
    elif status is None:
        reason = f"the Hub could not be reached ({type(error).__name__}: {error})"
    else:
        reason = f"the Hub answered {status}: {error}"
    where = ""
    if local_dir:
        where = (
            f" The local files in {local_dir} are saved and unchanged; push them alone, without training again: "
            f"{retry_command(repo_id, local_dir)}"
        )
    return f"Could not push to the Hub repository {repo_id!r}: {reason}.{where}"


def retry_command(repo_id: str | None, local_dir: str) -> str:
    """The ``hf upload`` command that pushes a saved output folder as the failed push would have (checkpoints and
    private ``_*`` files left out, as ``Trainer.push_to_hub`` leaves them)."""
    return f"hf upload {repo_id or '<your-name>/<repo>'} {local_dir} . --exclude 'checkpoint-*' --exclude '_*'"


class ModelCardTrainerMixin:
    """``Trainer`` methods that write the progressive model card and report a failed push (mixed into
    :class:`~hf_progressive.ProgressiveTrainer`). Without a depth schedule (``growth_plan is None``) the card is
    ``Trainer``'s own; a failed push is reported the same way either way."""

    #: What create_model_card was told (data, base model, license...), kept for every later rewrite of the card.
    _card_details: dict[str, Any] = {}
    #: save_model calls, so a failed push saves the model only if Trainer had not yet.
    _saves: int = 0

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        self._saves += 1
        if self.growth_plan is not None and self.args.should_save:
            try:
                write_model_card(
                    output_dir or self.args.output_dir, self.model, self.state.log_history, **self._card_details
                )
            except Exception as error:  # a card is documentation: it must never stop training at a checkpoint
                logger.warning("Could not write the model card to %s: %r", output_dir or self.args.output_dir, error)

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Write the progressive model card (growth history, compute, loss plot) to ``output_dir/README.md``.

        Without a depth schedule this is ``Trainer.create_model_card``.
        """
        if self.growth_plan is None:
            return super().create_model_card(
                language, license, tags, model_name, finetuned_from, tasks, dataset_tags, dataset, dataset_args
            )
        self._card_details = dict(
            hyperparameters=self._card_hyperparameters(),
            model_name=model_name or Path(self.args.output_dir).name,  # as Trainer names its cards
            repo_id=self.hub_model_id,
            datasets=dataset_tags or dataset,
            base_model=finetuned_from,
            license=license,
            language=language,
            tags=[tags] if isinstance(tags, str) else tags,
        )
        if not self.is_world_process_zero():
            return
        write_model_card(self.args.output_dir, self.model, self.state.log_history, **self._card_details)

    def _card_hyperparameters(self) -> dict[str, Any]:
        # What transformers' own card lists, plus the growth settings (and Muon's, when it is the optimizer).
        from transformers.modelcard import extract_hyperparameters_from_trainer

        hyperparameters = extract_hyperparameters_from_trainer(self)
        if getattr(self.args, "optim", None) == "muon_nsgd":
            hyperparameters["optimizer"] = (
                f"Muon-NSGD (torch.optim.Muon on matrices, normalised SGD on the rest), momentum "
                f"{self.args.muon_momentum}, nsgd_norm {self.args.nsgd_norm}"
            )
        plan = self.growth_plan
        hyperparameters.update(depth_schedule=str(plan.schedule), growth_init=plan.init)
        if plan.residual_scale != 1.0:
            hyperparameters["growth_residual_scale"] = plan.residual_scale
        if plan.lr_warmup_steps:
            hyperparameters["growth_lr_warmup_steps"] = plan.lr_warmup_steps
        return hyperparameters

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        try:
            super().init_hf_repo(token=token, private=private)
        except HUB_ERRORS as error:
            raise HubPushError(explain_push_failure(self.args.hub_model_id, error, None)) from error

    def push_to_hub(self, *positional, **kwargs):
        """``Trainer.push_to_hub``: saves the model, writes the progressive card and uploads ``output_dir``.

        Raises:
            HubPushError: when the Hub cannot be reached or refuses the push (e.g. no token). The model is then
                saved in ``output_dir`` all the same, and earlier checkpoints are untouched.
        """
        saves_before = self._saves
        try:
            return super().push_to_hub(*positional, **kwargs)
        except (HubPushError, *HUB_ERRORS) as error:
            # Trainer creates the repository before it saves: if that failed, the model is not on disk yet.
            if self._saves == saves_before:
                try:
                    self.save_model(_internal_call=True)
                except OSError:
                    logger.exception("Saving the model to %s after the failed push failed too.", self.args.output_dir)
            repo_id = self.hub_model_id or self.args.hub_model_id
            cause = error.__cause__ if isinstance(error, HubPushError) else error
            raise HubPushError(explain_push_failure(repo_id, cause, self.args.output_dir)) from error
