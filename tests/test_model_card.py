"""The model card template renders with huggingface_hub (the Hub push that uses it is a later issue)."""

from conftest import REPO_ROOT
from huggingface_hub import ModelCard, ModelCardData

TEMPLATE = REPO_ROOT / "model_cards" / "progressive_gpt2.md"


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
