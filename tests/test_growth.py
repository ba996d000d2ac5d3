import pytest
import torch
from conftest import tiny_config, tiny_model
from torch import nn
from transformers import GPT2LMHeadModel

from hf_progressive import ProgressiveGPT2Config, grow, reserve_blocks
from hf_progressive.adapters.base import RESERVE_ATTRIBUTE


def blocks(model):
    return model.transformer.h


def train_a_little(model, tokens, steps=3):
    """Make trained weights differ from their init (LayerNorms included), so copies are meaningful."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        model(tokens, labels=tokens).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def assert_blocks_equal(a: nn.Module, b: nn.Module):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def assert_consistent(model, depth):
    assert len(blocks(model)) == depth
    assert model.config.n_layer == depth
    assert [block.attn.layer_idx for block in blocks(model)] == list(range(depth))
    assert model.lm_head.weight is model.transformer.wte.weight


@pytest.mark.parametrize("init", ["random", "zero"])
@pytest.mark.parametrize("from_depth, to_depth", [(0, 4), (1, 4)])
def test_grow_from_zero_and_one_layer(init, from_depth, to_depth, tokens):
    model = tiny_model(from_depth)
    event = grow(model, to_depth, init=init)
    assert_consistent(model, to_depth)
    assert event.from_depth == from_depth and event.to_depth == to_depth
    assert event.new_blocks == list(range(from_depth, to_depth))
    assert len(event.new_parameter_names) == 12 * (to_depth - from_depth)
    assert torch.isfinite(model(tokens, labels=tokens).loss)


@pytest.mark.parametrize(
    "init, from_depth", [("zero", 0), ("zero", 1), ("zero", 2), ("copy_zero", 1), ("copy_zero", 2)]
)
def test_function_preserving_inits_keep_logits(init, from_depth, tokens):
    model = tiny_model(from_depth)
    if from_depth:
        train_a_little(model, tokens)
    before = model(tokens).logits
    grow(model, 5, init=init)
    assert torch.allclose(model(tokens).logits, before, atol=1e-6)


def test_random_growth_changes_function(tokens):
    model = tiny_model(1)
    before = model(tokens).logits
    grow(model, 3, init="random")
    assert not torch.allclose(model(tokens).logits, before, atol=1e-4)


def test_copy_from_one_layer_copies_the_trained_block(tokens):
    model = tiny_model(1)
    train_a_little(model, tokens)
    trained = {k: v.clone() for k, v in blocks(model)[0].state_dict().items()}
    event = grow(model, 4, init="copy")
    assert event.copied_from == {1: 0, 2: 0, 3: 0}
    for block in blocks(model):
        for name, value in block.state_dict().items():
            assert torch.equal(value, trained[name]), name
    # Copies are independent tensors, not shared ones.
    assert blocks(model)[1].attn.c_attn.weight.data_ptr() != blocks(model)[0].attn.c_attn.weight.data_ptr()


@pytest.mark.parametrize(
    "init, sources",
    [
        ("copy_stack", [0, 1, 0, 1, 0]),
        ("copy_inter", [0, 0, 0, 1, 1]),
        ("copy_last", [0, 1, 1, 1, 1]),
    ],
)
def test_multi_layer_copy_layouts(init, sources, tokens):
    model = tiny_model(2)
    train_a_little(model, tokens)
    originals = [b for b in blocks(model)]
    trained = [{k: v.clone() for k, v in b.state_dict().items()} for b in originals]
    grow(model, 5, init=init)
    for position, source in enumerate(sources):
        for name, value in blocks(model)[position].state_dict().items():
            assert torch.equal(value, trained[source][name]), (position, name)
    # Trained blocks keep their Parameter objects (their optimizer state stays attached to them).
    assert originals[0] is blocks(model)[0]
    assert any(block is originals[1] for block in blocks(model))
    assert_consistent(model, 5)


def test_random_init_scales_residual_projections_for_target_depth():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_config(0, n_embd=256, n_head=4))
    grow(model, 8, init="random")
    std = torch.stack([b.attn.c_proj.weight.std() for b in blocks(model)]).mean().item()
    assert std == pytest.approx(0.02 / (2 * 8) ** 0.5, rel=0.05)
    assert blocks(model)[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("start, init", [(1, "copy"), (2, "copy_inter")])
def test_cached_generation_matches_full_forward(tokens, start, init):
    # copy_inter MOVES the trained blocks (2 -> 5: positions 0, 1 become 0, 2): each block's KV-cache slot must
    # follow its new position, or cached generation reads another block's keys.
    model = tiny_model(start)
    grow(model, 4 if init == "copy" else 5, init=init)
    generated = model.generate(tokens, max_new_tokens=8, do_sample=False, use_cache=True, pad_token_id=0)
    uncached = model.generate(tokens, max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(generated, uncached)
    # Logits of the last step with a cache equal those of a full forward over the whole sequence.
    prefix, last = generated[:, :-1], generated[:, -1:]
    cache = model(prefix, use_cache=True).cache
    assert torch.allclose(model(last, cache=cache).logits[:, -1], model(generated).logits[:, -1], atol=1e-5)


def test_dtype_and_device_follow_the_model(tokens):
    model = tiny_model(1).to(torch.bfloat16)
    grow(model, 3, init="random")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.device for p in model.parameters()} == {model.transformer.wte.weight.device}
    assert torch.isfinite(model(tokens).logits.float()).all()


def test_reserved_blocks_keep_parameter_identity(tokens):
    model = tiny_model(0)
    reserve_blocks(model, final_depth=3)
    reserved = list(getattr(model.transformer, RESERVE_ATTRIBUTE))
    identities = [id(p) for block in reserved for p in block.parameters()]
    parameters_before = {id(p) for p in model.parameters()}
    # The forward pass does not run reserved blocks: no gradient reaches them.
    model(tokens, labels=tokens).loss.backward()
    assert all(p.grad is None for block in reserved for p in block.parameters())
    grow(model, 3, init="random")
    assert [id(p) for block in blocks(model) for p in block.parameters()] == identities
    assert {id(p) for p in model.parameters()} == parameters_before
    assert len(getattr(model.transformer, RESERVE_ATTRIBUTE)) == 0
    assert_consistent(model, 3)


def test_reserve_takes_surplus_blocks_of_a_target_depth_model():
    model = tiny_model(4)
    originals = list(blocks(model))
    before = [block.mlp.c_fc.weight.detach().clone() for block in originals]
    reserve_blocks(model, final_depth=4, initial_depth=1)
    assert list(blocks(model)) == originals[:1] and model.config.n_layer == 1
    # Blocks moved to the reserve are re-initialised (fresh whatever they held), the active one is untouched.
    assert torch.equal(originals[0].mlp.c_fc.weight, before[0])
    assert not any(torch.equal(b.mlp.c_fc.weight, w) for b, w in zip(originals[1:], before[1:]))
    grow(model, 4, init="random")
    assert list(blocks(model)) == originals


def test_growth_does_not_change_other_models_sharing_the_config():
    config = tiny_config(1)
    model, sibling = GPT2LMHeadModel(config), GPT2LMHeadModel(config)
    grow(model, 3)
    assert model.config.n_layer == 3
    assert sibling.config.n_layer == 1 and config.n_layer == 1
    assert all(block.attn.config is model.config for block in blocks(model))


def test_layer_index_and_its_scaling_follow_moved_blocks_in_self_and_cross_attention():
    # copy_inter moves trained blocks to new positions (2 -> 5); self- and cross-attention both precompute their
    # inverse-layer-index scaling from layer_idx at construction.
    model = tiny_model(2, scale_attn_by_inverse_layer_idx=True, add_cross_attention=True)
    moved = blocks(model)[1]
    grow(model, 5, init="copy_inter")
    assert list(blocks(model)).index(moved) != 1
    head_dim = 32 // 4
    for index, block in enumerate(blocks(model)):
        for attention in (block.attn, block.crossattention):
            assert attention.layer_idx == index
            assert attention.scaling == pytest.approx(head_dim**-0.5 / (index + 1))


def test_progressive_config_model_reserves_blocks_and_respects_target(tokens):
    from transformers import AutoModelForCausalLM

    config = ProgressiveGPT2Config(**{**tiny_config(0).to_dict(), "model_type": None}, target_n_layer=3)
    model = AutoModelForCausalLM.from_config(config)
    assert len(blocks(model)) == 0 and len(getattr(model.transformer, RESERVE_ATTRIBUTE)) == 3
    with pytest.raises(ValueError, match="above the target depth 3"):
        grow(model, 4)
    grow(model, 3)
    assert_consistent(model, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: grow(m, 3, init="sideways"), r"Unknown growth_init 'sideways': valid inits are \["),
        (lambda m: grow(m, 3, init="copy"), "growth_init='copy' copies trained blocks, but the model has 0 blocks"),
        (lambda m: grow(m, 0), "to_depth=0 must be greater than the current depth 0"),
    ],
)
def test_bad_growth_requests(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model(0))


def test_unsupported_model_is_refused():
    families = r"supported architecture families are \['gpt2', 'hf_decoder'\]"
    with pytest.raises(ValueError, match=rf"cannot grow a Sequential: {families}, for the model types \[.*'llama'"):
        grow(nn.Sequential(nn.Linear(2, 2)), 2)


@pytest.mark.parametrize("init", ["random", "copy"])
def test_residual_scale_shrinks_only_the_new_blocks_residual_outputs(init):
    grown = {}
    for scale in (1.0, 0.25):
        model = tiny_model(1)
        grow(model, 3, init=init, residual_scale=scale)
        grown[scale] = dict(model.named_parameters())
    for name, parameter in grown[0.25].items():
        expected = grown[1.0][name]
        new_block = name.startswith(("transformer.h.1.", "transformer.h.2."))
        if new_block and (".attn.c_proj." in name or ".mlp.c_proj." in name):
            expected = expected * 0.25
        assert torch.equal(parameter, expected), name
    with pytest.raises(ValueError, match="residual_scale=-1"):
        grow(tiny_model(1), 2, residual_scale=-1)
