import json
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import tiny_config, tiny_model
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config

from hf_progressive import ProgressiveGPT2Config, ProgressiveGPT2LMHeadModel, grow, progressive_metadata


def plain_settings() -> dict:
    return {k: v for k, v in tiny_config(0).to_dict().items() if k not in ("model_type", "transformers_version")}


def progressive_config(**overrides) -> ProgressiveGPT2Config:
    return ProgressiveGPT2Config(**{**plain_settings(), **overrides})


def test_fields_defaults_and_validation():
    config = progressive_config(depth_schedule="0@0, 4@0.8")
    assert config.target_n_layer == 4 and config.depth_schedule == "0@0,4@0.8"
    assert config.growth_init == "random" and config.growth_history == []
    with pytest.raises(ValueError, match="above the target depth 2"):
        progressive_config(depth_schedule="0@0,4@0.8", target_n_layer=2)
    with pytest.raises(ValueError, match="Unknown growth_init 'sideways'"):
        progressive_config(growth_init="sideways")
    with pytest.raises(ValueError, match="n_layer=3 is above target_n_layer=2"):
        progressive_config(n_layer=3, target_n_layer=2)


def test_saved_config_is_plain_gpt2_with_a_progressive_block(tmp_path):
    config = progressive_config(
        depth_schedule="0@0,4@0.8", growth_history=[{"step": 8, "from_depth": 0, "to_depth": 4}]
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "gpt2"
    assert saved["progressive"] == {
        "target_n_layer": 4,
        "depth_schedule": "0@0,4@0.8",
        "growth_init": "random",
        "growth_history": [{"step": 8, "from_depth": 0, "to_depth": 4}],
        "flops": None,
        "flops_fixed_equivalent": None,
    }
    assert not {"target_n_layer", "depth_schedule", "growth_init"} & set(saved)
    reloaded = ProgressiveGPT2Config.from_pretrained(tmp_path)
    assert (reloaded.target_n_layer, reloaded.depth_schedule, reloaded.growth_history) == (
        4,
        "0@0,4@0.8",
        [{"step": 8, "from_depth": 0, "to_depth": 4}],
    )
    # Plain transformers reads the same file as GPT-2 and keeps the metadata as an attribute.
    plain = AutoConfig.from_pretrained(tmp_path)
    assert type(plain) is GPT2Config
    assert progressive_metadata(plain)["depth_schedule"] == "0@0,4@0.8"


def test_registered_with_auto_classes():
    config = AutoConfig.for_model("progressive_gpt2", **plain_settings(), target_n_layer=2)
    assert isinstance(config, ProgressiveGPT2Config)
    model = AutoModelForCausalLM.from_config(config)
    assert type(model) is ProgressiveGPT2LMHeadModel


def test_grown_checkpoint_loads_and_generates_without_hf_progressive(tmp_path):
    model = AutoModelForCausalLM.from_config(progressive_config(depth_schedule="0@0,3@0.5"))
    torch.manual_seed(0)
    grow(model, 3, init="random")
    model.save_pretrained(tmp_path)
    prompt = torch.tensor([[1, 2, 3, 4]])
    expected = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)[0].tolist()
    script = textwrap.dedent(
        f"""
        import json, sys, torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r})
        out = model.generate(torch.tensor([[1, 2, 3, 4]]), max_new_tokens=6, do_sample=False, pad_token_id=0)
        print(json.dumps({{
            "class": type(model).__name__, "n_layer": model.config.n_layer, "blocks": len(model.transformer.h),
            "tokens": out[0].tolist(), "imported": any(m.startswith("hf_progressive") for m in sys.modules),
        }}))
        """
    )
    # Run from a directory where hf_progressive is not importable by accident through the working directory.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"class": "GPT2LMHeadModel", "n_layer": 3, "blocks": 3, "tokens": expected, "imported": False}
    assert "progressive_reserve" not in result.stderr  # no unexpected-key warnings: the reserve is empty


def test_reload_into_hf_progressive_keeps_metadata(tmp_path):
    model = tiny_model(1)
    event = {"step": 5, "from_depth": 1, "to_depth": 2}
    model.config.progressive = {"depth_schedule": "1@0,2@0.5", "growth_history": [event]}
    grow(model, 2, init="copy")
    model.save_pretrained(tmp_path)
    reloaded = ProgressiveGPT2LMHeadModel.from_pretrained(tmp_path)
    assert reloaded.config.n_layer == 2 and reloaded.config.growth_history == [event]
    for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "block, fragment",
    [
        (3, '"progressive" is 3, expected the growth metadata hf_progressive writes'),
        ("0@0,4@0.8", "\"progressive\" is '0@0,4@0.8'"),
        ([1, "garbage"], "\"progressive\" is [1, 'garbage']"),
        ({"growth_history": [1]}, '"progressive.growth_history[0]" is 1, expected an object with integer step'),
        ({"growth_history": "grew"}, "\"progressive.growth_history\" is 'grew', expected a list"),
        ({"flops": "many"}, "\"progressive.flops\" is 'many', expected a non-negative number"),
        ({"target_n_layer": 2.5}, '"progressive.target_n_layer" is 2.5, expected a non-negative integer'),
        ({"depth": 4}, "unknown fields ['depth'] in \"progressive\""),
    ],
)
def test_a_foreign_progressive_block_names_config_json_and_the_field(tmp_path, block, fragment):
    """Whatever a hand-edited config.json holds under "progressive", hf_progressive says what is wrong where when it
    reads it, through a plain config (as a checkpoint loads) and through ProgressiveGPT2Config."""
    GPT2Config(n_layer=1).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "progressive": block}))
    with pytest.raises(ValueError, match=re.escape(fragment)) as plain:
        progressive_metadata(AutoConfig.from_pretrained(tmp_path))
    assert f"{tmp_path}/config.json" in str(plain.value)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        ProgressiveGPT2Config.from_pretrained(tmp_path)
