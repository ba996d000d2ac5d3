"""The model card template renders with huggingface_hub, from hand-written values and from a grown model."""

import torch
import transformers
from conftest import REPO_ROOT
from huggingface_hub import ModelCard, ModelCardData

TEMPLATE = REPO_ROOT / "model_cards" / "progressive_causal_lm.md"


def test_template_renders_growth_and_compute():
    data = ModelCardData(library_name="transformers", tags=["progressive-training", "gpt2"], license="apache-2.0")
    card = ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        initial_depth=0,
        final_depth=6,
        depth_schedule="0@0,6@0.8",
        growth_init="random",
        growth_history=[{"step": 1600, "from_depth": 0, "to_depth": 6, "init": "random"}],
        compute_saved=0.726,
        flops=1.911e13,
        flops_fixed_equivalent=6.970e13,
        eval_loss=3.7139,
        perplexity=41.01,
    )
    text = str(card)
    assert card.data.tags == ["progressive-training", "gpt2"]
    assert "grew to 6 blocks\nat step 1600" in text
    assert "| 1600 | 0 | 6 | random |" in text
    assert "27.4% of the FLOPs" in text
    assert "Final validation loss 3.7139 (perplexity 41.01)." in text


def test_card_of_a_grown_model_has_structured_metadata_and_the_plot(tmp_path):
    from conftest import tiny_model

    from hf_progressive.configuration import update_progressive_metadata
    from hf_progressive.hub import template_path, write_model_card

    assert template_path().read_text() == TEMPLATE.read_text()  # the packaged template is model_cards/'s
    model = tiny_model(2)
    history = [{"step": 30, "from_depth": 0, "to_depth": 2, "init": "zero", "loss_before": 2.5, "loss_after": None}]
    update_progressive_metadata(
        model.config,
        depth_schedule="0@0,2@30",
        growth_init="zero",
        target_n_layer=2,
        growth_history=history,
        flops=2.0e9,
        flops_fixed_equivalent=8.0e9,
    )
    log = [{"step": s, "loss": 3.0 - s / 100, "flops": s * 1e7} for s in range(1, 41)]
    log.append({"step": 40, "eval_loss": 2.2})
    path = write_model_card(tmp_path, model, log, model_name="tiny", datasets="tinyshakespeare", license="mit")

    card = ModelCard.load(path)
    assert card.data.progressive_training["growth_history"] == history
    assert card.data.license == "mit" and card.data.datasets == ["tinyshakespeare"]
    assert card.data.eval_results[0].metric_type == "loss" and card.data.eval_results[0].metric_value == 2.2
    assert "|---|---|---|---|---|---|\n| 30 | 0 | 2 | zero | 2.5000 | — |\n" in card.text  # one unbroken table
    assert "25.0% of the FLOPs" in card.text
    assert "(training_curves.png)" in card.text and (tmp_path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_only_hub_ids_reach_the_card_metadata(tmp_path, monkeypatch):
    """The Hub refuses local paths in `datasets:` / `base_model:` (after training, when the push fails): they go into
    the card's text, and what stays in the metadata passes huggingface_hub's own repo-id check."""
    from conftest import tiny_model
    from huggingface_hub.utils import validate_repo_id

    from hf_progressive.hub import split_hub_ids, write_model_card

    monkeypatch.chdir(tmp_path)
    local_model = tmp_path / "grown"
    local_model.mkdir()
    (tmp_path / "train.txt").write_text("text")
    values = ["../shared/data/tinyshakespeare.txt", str(tmp_path / "x.txt"), "train.txt", "a corpus", "me/corpus"]
    assert split_hub_ids([*values, "tinyshakespeare"]) == (["me/corpus", "tinyshakespeare"], values[:4])

    path = write_model_card(
        tmp_path / "card", tiny_model(1), datasets=["train.txt", "me/corpus"], base_model=str(local_model)
    )
    card = ModelCard.load(path)
    assert card.data.datasets == ["me/corpus"] and card.data.base_model is None
    assert getattr(card.data, "base_model_relation", None) is None  # no Hub base model: no relation
    for value in card.data.datasets:
        validate_repo_id(value)
    assert f"It continued training from the local checkpoint `{local_model}`." in card.text
    assert "Training data: `train.txt` (not a Hub dataset)." in card.text
    assert "The model sees at most 32 tokens" in card.text  # the context, with the pipeline call that respects it


def test_plotting_leaves_matplotlibs_backend_and_figures_alone(tmp_path):
    """The card's plot is drawn on a Figure of its own: a notebook's backend and open pyplot figures stay as they
    were (matplotlib.use('Agg') would switch a user's interactive backend)."""
    import matplotlib
    import matplotlib.pyplot as plt

    from hf_progressive.plotting import plot_training_curves

    original = matplotlib.get_backend()
    matplotlib.use("pdf")  # a user's backend other than Agg
    try:
        mine = plt.figure()
        log = [{"step": s, "loss": 3.0 - 0.1 * s, "flops": 1e9 * s} for s in range(1, 6)]
        log.insert(3, {"step": 3, "grown_from_depth": 0, "depth": 2})
        path = plot_training_curves(log, tmp_path / "curves.png")
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "pdf" and plt.get_fignums() == [mine.number]
        plt.close(mine)
    finally:
        matplotlib.use(original)


def test_a_trainer_card_lists_hyperparameters_versions_lineage_and_the_citation(tmp_path):
    """What transformers' own card has (hyperparameters, framework versions), the growth settings, the paper, and
    a Hub base model recorded the Hub way (base_model + base_model_relation)."""
    from conftest import progressive_arguments, tiny_model, token_dataset

    from hf_progressive import ProgressiveTrainer, __version__

    args = progressive_arguments(tmp_path, max_steps=6, optim="muon_nsgd", learning_rate=0.02)
    trainer = ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset())
    trainer.train()
    trainer.create_model_card(finetuned_from="someone/base-model", dataset_tags="someone/corpus")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "someone/base-model" and card.data.base_model_relation == "finetune"
    text = card.text
    for line in (
        "- learning_rate: 0.02",
        "- seed: 0",
        "- depth_schedule: 0@0,3@0.5",
        "- growth_init: random",
        "- optimizer: Muon-NSGD (torch.optim.Muon on matrices, normalised SGD on the rest), momentum 0.95",
        f"- hf_progressive {__version__}",
        f"- Transformers {transformers.__version__}",
        f"- Pytorch {torch.__version__}",
        "[arXiv 2511.04981](https://arxiv.org/abs/2511.04981)",
        "journal = {arXiv preprint arXiv:2511.04981}",
    ):
        assert line in text, line


def test_growth_reaches_tensorboard(tmp_path, monkeypatch):
    """report_to integrations get the depth on every log line and a marker at each growth (TensorBoard, offline)."""
    from conftest import progressive_arguments, tiny_model, token_dataset
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hf_progressive import ProgressiveTrainer

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    args = progressive_arguments(tmp_path, max_steps=8, logging_steps=1, report_to="tensorboard")
    ProgressiveTrainer(model=tiny_model(0), args=args, train_dataset=token_dataset()).train()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    depth = [(event.step, event.value) for event in events.Scalars("train/depth")]
    assert depth[0] == (1, 0.0) and depth[-1] == (8, 3.0) and (4, 3.0) in depth
    assert [(event.step, event.value) for event in events.Scalars("train/grown_from_depth")] == [(4, 0.0)]
    assert [(event.step, event.value) for event in events.Scalars("train/grown_blocks")] == [(4, 3.0)]
    assert all(event.value > 0 for event in events.Scalars("train/flops"))
