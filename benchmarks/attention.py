#!/usr/bin/env python
"""Speed of hf_progressive's Triton FlashAttention kernel on a GPU, against torch's SDPA backends and eager attention.

One prepared script for a GPU machine (it exits with a message on a machine without one). In order:

1. **correctness on this GPU**: the kernel's bf16 output and gradients against an fp32 reference (relative error),
   causal and not, with grouped-query attention and a padding mask: a kernel that is wrong here is not timed;
2. **attention alone**: forward and forward+backward TFLOP/s at head dims 64 and 128 and sequence lengths 1k-8k,
   bf16, causal (``--non_causal`` adds bidirectional), 16k tokens per batch and 2,048 channels of heads; FLOPs are
   ``4 B H S^2 D`` (half of it when causal), the backward 2.5x the forward; the median time of warmed-up runs
   (``triton.testing.do_bench``) for the kernel, SDPA's flash, memory-efficient and cuDNN backends where torch has
   them, and eager attention (matmul, softmax, matmul);
3. **end to end**: GPT-2 124M training tokens/s (bf16 autocast, AdamW, batch 8 x 1024, no dropout so that the
   kernel runs) with ``attn_implementation`` eager, sdpa and the kernel.

    python benchmarks/attention.py                       # everything, about 5 minutes on an H100
    python benchmarks/attention.py --skip_end_to_end --lengths 1024 2048
    python benchmarks/attention.py --output docs/benchmarks   # writes attention-<gpu>.json there

Target (issue 14): forward+backward at least as fast as SDPA's flash backend at D = 64, S >= 2k.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch


def attention_flops(batch: int, heads: int, length: int, head_dim: int, causal: bool, backward: bool) -> float:
    flops = 4 * batch * heads * length * length * head_dim * (0.5 if causal else 1.0)
    return flops * (3.5 if backward else 1.0)  # forward + backward (2.5x the forward)


def check_correctness(flash_attention, reference_attention) -> list[dict]:
    """The kernel in bf16 against an fp32 reference, on this GPU."""
    rows = []
    for causal in (True, False):
        for heads, kv_heads, length, head_dim in ((8, 8, 1000, 64), (8, 2, 777, 128)):
            generator = torch.Generator(device="cuda").manual_seed(0)
            shapes = [(2, heads, length, head_dim), (2, kv_heads, length, head_dim), (2, kv_heads, length, head_dim)]
            exact = [torch.randn(s, device="cuda", generator=generator).requires_grad_() for s in shapes]
            fast = [t.detach().bfloat16().requires_grad_() for t in exact]
            keep = torch.ones(2, length, dtype=torch.bool, device="cuda")
            keep[1, :100] = False
            grad = torch.randn(2, length, heads, head_dim, device="cuda", generator=generator)
            out = flash_attention(*fast, causal=causal, key_keep=keep)
            out.backward(grad.bfloat16())
            expected, _ = reference_attention(*exact, causal=causal, key_keep=keep)
            expected.backward(grad)
            errors = {
                name: ((a.float() - b).norm() / b.norm()).item()
                for name, a, b in [("out", out, expected)]
                + [(f"d{n}", f.grad, e.grad) for n, f, e in zip("qkv", fast, exact)]
            }
            rows.append({"causal": causal, "heads": heads, "kv_heads": kv_heads, "length": length, **errors})
    return rows


def sdpa_backends() -> dict:
    from torch.nn.attention import SDPBackend

    backends = {"sdpa-flash": SDPBackend.FLASH_ATTENTION, "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION}
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        backends["sdpa-cudnn"] = SDPBackend.CUDNN_ATTENTION
    return backends


def implementations(q, k, v, causal: bool, flash_attention) -> dict:
    """What is timed: name -> (function returning the (B, S, H, D) output, SDPA backend or None)."""
    length, head_dim = q.shape[2], q.shape[3]

    def kernel():
        return flash_attention(q, k, v, causal=causal)

    def eager():
        scores = (q @ k.transpose(-1, -2)) * head_dim**-0.5
        if causal:
            future = torch.ones(length, length, dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        return (torch.softmax(scores.float(), -1).to(v.dtype) @ v).transpose(1, 2)

    def sdpa():
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2)

    return {
        "hfp_triton": (kernel, None),
        **{name: (sdpa, backend) for name, backend in sdpa_backends().items()},
        "eager": (eager, None),
    }


def median_ms(function, backend, grad: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[float, float]:
    """Median milliseconds of the forward, and of forward + backward, after warm-up."""
    from torch.nn.attention import sdpa_kernel
    from triton.testing import do_bench

    def forward_backward():
        function().backward(grad)

    with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
        forward = do_bench(function, warmup=25, rep=100, return_mode="median")
        both = do_bench(forward_backward, warmup=25, rep=100, return_mode="median", grad_to_none=inputs)
    return forward, both


def time_attention(lengths: list[int], head_dims: list[int], causal_modes: list[bool], flash_attention) -> list[dict]:
    rows = []
    for head_dim in head_dims:
        for length in lengths:
            for causal in causal_modes:
                batch, heads = max(1, 16384 // length), 2048 // head_dim
                shape = (batch, heads, length, head_dim)
                inputs = [torch.randn(shape, device="cuda", dtype=torch.bfloat16).requires_grad_() for _ in range(3)]
                grad = torch.randn(batch, length, heads, head_dim, device="cuda", dtype=torch.bfloat16)
                for name, (function, backend) in implementations(*inputs, causal, flash_attention).items():
                    row = {"impl": name, "head_dim": head_dim, "length": length, "causal": causal, "batch": batch}
                    try:
                        forward, both = median_ms(function, backend, grad, inputs)
                    except (RuntimeError, torch.OutOfMemoryError) as error:  # a backend that does not take this case
                        row["error"] = str(error).splitlines()[0][:120]
                        torch.cuda.empty_cache()
                    else:
                        row["forward_tflops"] = attention_flops(*shape, causal, False) / (forward * 1e9)
                        row["forward_backward_tflops"] = attention_flops(*shape, causal, True) / (both * 1e9)
                    rows.append(row)
                    print(_row_text(row), flush=True)
    return rows


def _row_text(row: dict) -> str:
    what = f"D={row['head_dim']:>3} S={row['length']:>5} {'causal' if row['causal'] else 'full  '} {row['impl']:<15}"
    if "error" in row:
        return f"{what} n/a ({row['error']})"
    return f"{what} fwd {row['forward_tflops']:6.1f} TFLOP/s  fwd+bwd {row['forward_backward_tflops']:6.1f} TFLOP/s"


def time_end_to_end(name: str, steps: int = 20, warmup: int = 5) -> list[dict]:
    from transformers import GPT2Config, GPT2LMHeadModel

    rows = []
    for implementation in ("eager", "sdpa", name):
        torch.manual_seed(0)
        config = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # GPT-2 124M, context 1024
        config._attn_implementation = implementation
        model = GPT2LMHeadModel(config).cuda().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        ids = torch.randint(0, config.vocab_size, (8, 1024), device="cuda")
        times = []
        for step in range(warmup + steps):
            torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if step >= warmup:
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        rows.append({"impl": implementation, "tokens_per_second": ids.numel() / seconds, "loss": loss.item()})
        print(f"GPT-2 124M training, {implementation:<10}: {ids.numel() / seconds:9.0f} tokens/s", flush=True)
        del model, optimizer
        torch.cuda.empty_cache()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--head_dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--non_causal", action="store_true", help="also time bidirectional attention")
    parser.add_argument("--skip_end_to_end", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="folder for attention-<gpu>.json")
    options = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/attention.py times the Triton kernel on a CUDA GPU; none is visible here.", file=sys.stderr)
        return 2

    from hf_progressive import kernels
    from hf_progressive.kernels.flash_triton import flash_attention

    name = kernels.register()
    gpu = torch.cuda.get_device_name()
    print(f"{gpu}, torch {torch.__version__}, triton {__import__('triton').__version__}", flush=True)
    checks = check_correctness(flash_attention, kernels.reference_attention)
    worst = max(max(v for k, v in row.items() if k.startswith(("out", "d"))) for row in checks)
    print(f"correctness (bf16 kernel vs fp32 reference): worst relative error {worst:.2e}", flush=True)
    result = {"gpu": gpu, "torch": torch.__version__, "correctness": checks, "worst_relative_error": worst}
    if not math.isfinite(worst) or worst > 2e-2:
        print("The kernel is wrong on this GPU: not timed.", file=sys.stderr)
        _write(result, options.output, gpu)
        return 1
    modes = [True, False] if options.non_causal else [True]
    result["attention"] = time_attention(options.lengths, options.head_dims, modes, flash_attention)
    if not options.skip_end_to_end:
        result["end_to_end"] = time_end_to_end(name)
    _write(result, options.output, gpu)
    return 0


def _write(result: dict, folder: Path | None, gpu: str) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"attention-{gpu.lower().replace(' ', '-')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
