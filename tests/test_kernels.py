"""The vendored Triton FlashAttention kernel, run on CPU through Triton's interpreter (TRITON_INTERPRET=1, set by
conftest.py before the kernels are imported): outputs and gradients against a float64 reference, the registered
models against SDPA, growth, and every fallback. Speed is measured on a GPU by benchmarks/attention.py."""

import copy
import os

import pytest
import torch
from conftest import progressive_arguments, tiny_config, token_dataset
from transformers import GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

import hf_progressive
from hf_progressive import ProgressiveTrainer

if not os.environ.get("CI"):
    pytest.importorskip("triton", reason="the kernel tests need triton (pip install -e '.[dev]')")
kernels = pytest.importorskip("hf_progressive.kernels")

NAME = kernels.register()


@pytest.fixture(autouse=True)
def _fresh_usage():
    kernels.reset_usage()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected.double()).norm() / expected.double().norm().clamp_min(1e-12)).item()


def random_attention_inputs(batch, heads, kv_heads, seq_q, seq_k, head_dim, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, seq_q, head_dim), (batch, kv_heads, seq_k, head_dim), (batch, kv_heads, seq_k, head_dim)]
    return [torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype).requires_grad_() for shape in shapes]


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float16, 3e-3)])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "batch, heads, kv_heads, seq_q, seq_k, head_dim",
    [
        (2, 2, 2, 37, 37, 16),  # tails: 37 is not a multiple of the tile
        (1, 4, 2, 20, 45, 32),  # grouped-query attention; fewer queries than keys (a key/value cache)
        (1, 2, 1, 1, 23, 16),  # one query: decoding
        (1, 2, 2, 33, 33, 24),  # a head dim that is not a power of two (padded inside the kernel)
        (1, 1, 1, 17, 17, 64),
    ],
)
def test_outputs_and_gradients_match_a_float64_reference(
    dtype, tolerance, causal, batch, heads, kv_heads, seq_q, seq_k, head_dim
):
    from hf_progressive.kernels.flash_triton import flash_attention

    q, k, v = random_attention_inputs(batch, heads, kv_heads, seq_q, seq_k, head_dim, dtype)
    keep = torch.ones(batch, seq_k, dtype=torch.bool)
    keep[0, :3] = False  # padding on the left: with a causal mask the first queries then see nothing
    out = flash_attention(q, k, v, causal=causal, key_keep=keep, scale=0.3)
    assert out.shape == (batch, seq_q, heads, head_dim) and out.dtype == dtype
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out.backward(grad_out.to(dtype))

    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
    expected, _ = kernels.reference_attention(*exact, causal=causal, scale=0.3, key_keep=keep)
    expected.backward(grad_out)
    assert relative_error(out, expected) < tolerance
    for name, computed, reference in zip("qkv", (q, k, v), exact):
        assert relative_error(computed.grad, reference.grad) < tolerance, f"d{name}"
    if causal:  # rows that see no key are zeros, not NaN
        assert torch.isfinite(out).all() and out[0, : 3 - (seq_k - seq_q)].abs().sum() == 0


def pair(model_class, config, **overrides):
    """The same weights twice: with SDPA, and with the kernel."""
    torch.manual_seed(0)
    reference = model_class(copy.deepcopy(config)).eval()
    config = copy.deepcopy(config)
    config._attn_implementation = NAME
    for key, value in overrides.items():
        setattr(config, key, value)
    model = model_class(config).eval()
    model.load_state_dict(reference.state_dict())
    return reference, model


def llama_config(**overrides):
    settings = dict(
        vocab_size=64, hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaConfig(**{**settings, **overrides})


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_registered_models_give_sdpas_logits_loss_and_gradients_with_padding(family):
    reference, model = (
        pair(GPT2LMHeadModel, tiny_config(2)) if family == "gpt2" else pair(LlamaForCausalLM, llama_config())
    )
    ids = torch.randint(0, 64, (2, 21), generator=torch.Generator().manual_seed(0))
    padding = torch.ones_like(ids)
    padding[1, :5] = 0  # left padding: through the registered mask function
    for attention_mask in (None, padding):
        outputs = []
        for m in (reference, model):
            m.zero_grad()
            out = m(ids, attention_mask=attention_mask, labels=ids)
            out.loss.backward()
            outputs.append((out, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}))
        (expected, expected_grads), (actual, grads) = outputs
        seen = (attention_mask if attention_mask is not None else torch.ones_like(ids)).bool()
        assert torch.allclose(actual.logits[seen], expected.logits[seen], atol=1e-5)
        assert actual.loss.item() == pytest.approx(expected.loss.item(), rel=1e-6)
        assert grads.keys() == expected_grads.keys()
        assert max(relative_error(grads[n], expected_grads[n]) for n in grads) < 1e-4
    assert kernels.usage() == {"kernel": 2 * model.config.num_hidden_layers}  # per mask and layer; backward: autograd


def test_generation_with_a_cache_matches_sdpa():
    # Decoding attends one query (then a few) to a longer cache: the kernel's end-aligned causal mask.
    reference, model = pair(LlamaForCausalLM, llama_config())
    prompt = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(2))
    expected = reference.generate(prompt, max_new_tokens=6, do_sample=False)
    assert torch.equal(model.generate(prompt, max_new_tokens=6, do_sample=False), expected)
    assert kernels.usage() == {"kernel": 6 * 2}


def test_grown_blocks_run_the_kernel_and_training_matches_sdpa(tmp_path):
    # A 0 -> 3 run inside ProgressiveTrainer: the blocks growth adds use the model's attention implementation.
    losses = []
    for implementation in ("sdpa", NAME):
        torch.manual_seed(0)
        config = tiny_config(0)
        config._attn_implementation = implementation
        args = progressive_arguments(
            tmp_path / implementation, max_steps=8, depth_schedule="0@0,3@0.5", logging_steps=1
        )
        trainer = ProgressiveTrainer(model=GPT2LMHeadModel(config), args=args, train_dataset=token_dataset(32))
        trainer.train()
        losses.append([entry["loss"] for entry in trainer.state.log_history if "loss" in entry])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert kernels.usage() == {"kernel": 4 * 3}  # 4 steps after growth x 3 blocks (none before growth: 0 blocks)

    config = tiny_config(1)
    config._attn_implementation = NAME
    model = GPT2LMHeadModel(config)
    hf_progressive.reserve_blocks(model, 4)
    hf_progressive.grow(model, 4, init="copy")
    kernels.reset_usage()
    model(torch.zeros(1, 5, dtype=torch.long))
    assert kernels.usage() == {"kernel": 4}


def test_attention_dropout_falls_back_to_sdpa_and_is_counted():
    reference, model = pair(GPT2LMHeadModel, tiny_config(2, attn_pdrop=0.5))
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    reference.train(), model.train()
    torch.manual_seed(3)
    expected = reference(ids).logits
    torch.manual_seed(3)
    assert torch.equal(model(ids).logits, expected)  # the fallback is SDPA itself, same dropout draws
    assert kernels.usage() == {"sdpa: dropout": 2}
    model.eval()(ids)
    assert kernels.usage()["kernel"] == 2  # no dropout in evaluation: the kernel


def test_output_attentions_returns_the_weights_through_a_counted_fallback():
    reference, model = pair(GPT2LMHeadModel, tiny_config(2))
    reference.config._attn_implementation = "eager"
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    expected = reference(ids, output_attentions=True).attentions
    actual = model(ids, output_attentions=True).attentions
    assert len(actual) == 2 and all(torch.allclose(a, e, atol=1e-6) for a, e in zip(actual, expected))
    assert kernels.usage() == {"eager: output_attentions": 2}
    # With a 4-D mask of the user's own (two documents in one row; additive, as eager attention takes it), the
    # weights follow that mask.
    document = torch.tensor([0] * 4 + [1] * 5)
    allowed = (document[:, None] == document[None, :]) & torch.ones(9, 9, dtype=torch.bool).tril()
    mask = torch.zeros(1, 1, 9, 9).masked_fill(~allowed, torch.finfo(torch.float32).min)
    expected = reference(ids, attention_mask=mask, output_attentions=True).attentions
    actual = model(ids, attention_mask=mask, output_attentions=True).attentions
    assert all(torch.allclose(a, e, atol=1e-6) for a, e in zip(actual, expected))
    assert actual[0][0, 0, 5, :4].abs().sum() == 0  # the second document does not see the first


def test_masks_the_kernel_does_not_compute_reach_sdpa_as_4d_masks():
    # A sliding window shorter than the sequence (Mistral: the mask function lets transformers build SDPA's mask),
    # and a 4-D mask of the user's own (two documents in one row), which transformers passes through as it is.
    reference, model = pair(MistralForCausalLM, MistralConfig(**llama_config().to_dict(), sliding_window=8))
    ids = torch.randint(0, 64, (1, 21), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-5)
    assert kernels.usage() == {"sdpa: 4-D mask": 2}

    kernels.reset_usage()
    reference, model = pair(LlamaForCausalLM, llama_config())
    document = torch.tensor([0] * 9 + [1] * 12)
    block_causal = (document[:, None] == document[None, :]) & torch.ones(21, 21, dtype=torch.bool).tril()
    mask = block_causal[None, None]
    expected = reference(ids, attention_mask=mask).logits
    assert torch.allclose(model(ids, attention_mask=mask).logits, expected, atol=1e-5)
    assert not torch.allclose(expected, reference(ids).logits, atol=1e-3)  # the mask mattered
    assert kernels.usage() == {"sdpa: 4-D mask": 2}


def test_cpu_tensors_outside_the_interpreter_and_bf16_in_it_fall_back(monkeypatch):
    reference, model = pair(GPT2LMHeadModel, tiny_config(1))
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(0))
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    assert torch.equal(bf16(ids).logits, copy.deepcopy(reference).to(torch.bfloat16)(ids).logits)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert torch.equal(model(ids).logits, reference(ids).logits)
    assert kernels.usage() == {"sdpa: bf16 under the interpreter": 1, "sdpa: CPU tensors": 1}


def test_register_refuses_names_transformers_would_misread_and_machines_it_cannot_run_on(monkeypatch):
    for bad in ("my_flash", "sdpa2", "flex_x", "org/kernel", ""):
        with pytest.raises(ValueError, match="choose another"):
            kernels.register(bad)
    assert kernels.register("hfp_triton_test") == "hfp_triton_test"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible.*SDPA stays the default"):
        kernels.register()
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="Triton is not installed"):
        kernels.register()


def test_the_kernel_refuses_shapes_it_cannot_take():
    from hf_progressive.kernels.flash_triton import flash_attention

    q, k, v = random_attention_inputs(1, 3, 2, 4, 4, 16, torch.float32)
    with pytest.raises(ValueError, match="query heads 3 must be a multiple of key/value heads 2"):
        flash_attention(q, k, v)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the benchmark runs")
def test_the_gpu_benchmark_says_it_needs_a_gpu_and_counts_flops_as_the_issue_states():
    import importlib.util
    import subprocess
    import sys

    from conftest import REPO_ROOT

    script = REPO_ROOT / "benchmarks" / "attention.py"
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "none is visible here" in result.stderr
    spec = importlib.util.spec_from_file_location("attention_benchmark", script)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    # 4 B H S^2 D, half of it causal, the backward 2.5x the forward.
    assert benchmark.attention_flops(2, 3, 1024, 64, causal=False, backward=False) == 4 * 2 * 3 * 1024**2 * 64
    assert benchmark.attention_flops(2, 3, 1024, 64, causal=True, backward=True) == 2 * 3 * 1024**2 * 64 * 2 * 3.5
