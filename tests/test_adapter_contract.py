"""One battery over every registered adapter and every init that applies (as Composer runs one battery over all
its algorithms): an adapter joins it by registering, with an ``example_model``."""

import json
import subprocess
import sys

import pytest
import torch

from hf_progressive import INIT_STRATEGIES, current_depth, get_adapter, grow, reserve_blocks
from hf_progressive.adapters import list_adapters
from hf_progressive.adapters.registry import _ADAPTERS


def enrolled() -> list[str]:
    names = []
    for name in list_adapters():
        try:
            _ADAPTERS[name]().example_model(1)
        except NotImplementedError:
            continue
        names.append(name)
    return names


ADAPTERS = enrolled()
CASES = [(name, init) for name in ADAPTERS for init in sorted(INIT_STRATEGIES)]


def example(name: str, depth: int, seed: int = 0):
    torch.manual_seed(seed)
    return _ADAPTERS[name]().example_model(depth)


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(seed))


def test_every_shipped_adapter_is_in_the_battery():
    assert "gpt2" in ADAPTERS


@pytest.mark.parametrize("name, init", CASES)
def test_growth_gives_the_depth_the_config_and_a_finite_forward(name, init):
    source = 0 if not INIT_STRATEGIES[init].copies else 2
    model = example(name, source)
    event = grow(model, 5, init=init)
    adapter = get_adapter(model)
    assert current_depth(model) == 5 == adapter.config_depth(model.config)
    assert event.from_depth == source and event.to_depth == 5 and len(event.new_blocks) == 5 - source
    assert torch.isfinite(model(tokens()).logits).all()


@pytest.mark.parametrize("name, init", [(n, i) for n, i in CASES if INIT_STRATEGIES[i].zero_residual])
def test_zero_residual_inits_preserve_the_function(name, init):
    model = example(name, 2)
    before = model(tokens()).logits
    grow(model, 5, init=init)
    assert torch.allclose(model(tokens()).logits, before, atol=1e-5)


@pytest.mark.parametrize("name", ADAPTERS)
def test_cached_generation_equals_a_full_forward_after_growth_that_moves_blocks(name):
    model = example(name, 2)
    grow(model, 5, init="copy_inter")  # trained blocks 0, 1 move to new positions
    prompt = tokens()
    generated = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
    uncached = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(generated, uncached)


@pytest.mark.parametrize("name", ADAPTERS)
def test_reserved_blocks_take_no_gradient_and_keep_their_identity(name):
    model = example(name, 0)
    reserve_blocks(model, final_depth=3)
    reserved = get_adapter(model).reserved_blocks(model)
    model(tokens(), labels=tokens()).loss.backward()
    assert all(p.grad is None for block in reserved for p in block.parameters())
    identities = [id(p) for block in reserved for p in block.parameters()]
    grow(model, 3, init="random")
    assert [id(p) for block in get_adapter(model).blocks(model) for p in block.parameters()] == identities


@pytest.mark.slow
@pytest.mark.parametrize("name", ADAPTERS)
def test_a_grown_model_reloads_in_a_process_that_never_imports_hf_progressive(name, tmp_path):
    model = example(name, 1)
    grow(model, 3, init="copy")
    model.save_pretrained(tmp_path)
    expected = model(tokens()).logits[0, -1, :4].tolist()
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        f"model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}).eval()\n"
        f"ids = torch.tensor({tokens().tolist()})\n"
        "print(json.dumps({'logits': model(ids).logits[0, -1, :4].tolist(),\n"
        "                  'imported': 'hf_progressive' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert not reloaded["imported"]
    assert reloaded["logits"] == pytest.approx(expected, abs=1e-5)
