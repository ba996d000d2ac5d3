"""FlashAttention-2 forward and backward in Triton: the kernels and their ``torch.autograd.Function``.

The algorithm (Dao, 2023): each program owns a block of queries and streams the keys and values past it in tiles,
keeping a running maximum ``m`` and normaliser ``l`` of the softmax (the online softmax), so the ``S x S`` score
matrix never exists in memory. The forward saves one number per query, the log-sum-exp of its scores; the backward
recomputes each tile's probabilities from it instead of storing them. Scores are kept in base 2 (``exp2`` is the
hardware's instruction), so the softmax scale is folded with ``log2(e)``.

What the kernels cover:

* layout ``q: (B, H, Sq, D)``, ``k, v: (B, Hkv, Sk, D)`` with ``H`` a multiple of ``Hkv`` (grouped-query attention:
  query head ``h`` reads key/value head ``h // (H / Hkv)``, no repeated copies); any strides with a contiguous last
  dimension; output ``(B, Sq, H, D)``, the layout transformers' attention functions return;
* causal or not; causal is aligned to the end (query ``i`` sees keys ``j <= i + Sk - Sq``), which is what a decoder
  with a key/value cache needs, and the usual mask when ``Sq == Sk``;
* an optional per-key keep mask ``(B, Sk)`` (padding), combined with the causal mask;
* any sequence lengths (tail tiles are masked) and head dimensions up to 256 (padded to a power of two, at least 16,
  inside the kernel);
* fp16, bf16 and fp32 inputs, fp32 accumulation; fp32 inputs multiply in IEEE fp32 (no TF32).

Backward: one kernel per key/value tile accumulates ``dK`` and ``dV`` over every query tile of every query head
that reads it (so GQA needs no atomics), one kernel per query tile accumulates ``dQ``; ``delta = rowsum(dO * O)``
comes first. A query that sees no key (a padded row) gets a zero output and zero gradients.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

#: Triton's CPU interpreter runs each program in NumPy, one at a time: for tests only. It must be set before this
#: module is imported, since ``triton.jit`` reads it when the kernels are defined.
INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"

LOG2_E = 1.4426950408889634
MAX_HEAD_DIM = 256

# Tiles under the interpreter: the smallest that tl.dot takes, so tests stay quick.
INTERPRETER_BLOCKS = {"BLOCK_M": 16, "BLOCK_N": 16}


def _configs(kind: str) -> list[triton.Config]:
    """Tile shapes tried by the autotuner on a GPU (keyed on the sequence lengths, head dim and causality)."""
    if kind == "forward":
        shapes = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 32, 4, 3), (64, 64, 4, 3), (128, 128, 8, 2)]
    else:
        shapes = [(64, 64, 4, 2), (32, 64, 4, 2), (64, 32, 4, 2), (64, 128, 8, 2), (128, 64, 8, 2)]
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=warps, num_stages=stages)
        for m, n, warps, stages in shapes
    ]


@triton.jit
def _load_rows(base, rows, stride_rows, offs_d, n_rows, head_dim):
    """The ``(len(rows), BLOCK_D)`` tile of rows ``rows`` (zeros beyond ``n_rows`` and ``head_dim``)."""
    mask = (rows[:, None] < n_rows) & (offs_d[None, :] < head_dim)
    return tl.load(base + rows[:, None] * stride_rows + offs_d[None, :], mask=mask, other=0.0)


@triton.jit
def _scores(
    q,
    K,
    k_offset,
    stride_ks,
    start_n,
    offs_m,
    offs_d,
    keep_offset,
    KEEP,
    seq_k,
    causal_shift,
    head_dim,
    qk_scale,
    CAUSAL: tl.constexpr,
    HAS_KEEP: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Scores (base 2) of the query tile ``q`` against the key tile at ``start_n``, with masked entries at -inf."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    k_t = tl.load(
        K + k_offset + offs_n[None, :] * stride_ks + offs_d[:, None],
        mask=(offs_n[None, :] < seq_k) & (offs_d[:, None] < head_dim),
        other=0.0,
    )
    s = tl.dot(q, k_t, input_precision=PRECISION) * qk_scale
    valid = offs_n[None, :] < seq_k
    if CAUSAL:
        valid = valid & (offs_n[None, :] <= offs_m[:, None] + causal_shift)
    if HAS_KEEP:
        keep = tl.load(KEEP + keep_offset + offs_n, mask=offs_n < seq_k, other=0)
        valid = valid & (keep[None, :] != 0)
    return tl.where(valid, s, float("-inf")), offs_n


@triton.jit
def _forward_kernel(
    Q,
    K,
    V,
    OUT,
    LSE,
    KEEP,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_kb,
    stride_kh,
    stride_ks,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_ob,
    stride_oh,
    stride_os,
    stride_keep,
    num_heads,
    groups,
    seq_q,
    seq_k,
    causal_shift,
    head_dim,
    qk_scale,
    q_bucket,
    k_bucket,
    CAUSAL: tl.constexpr,
    HAS_KEEP: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    batch_head = tl.program_id(1)
    # 64-bit offsets: b * stride_b overflows 32 bits beyond 2^31 elements (e.g. 64 x 32 heads x 8k x 128).
    b = (batch_head // num_heads).to(tl.int64)
    h = (batch_head % num_heads).to(tl.int64)
    kv_head = h // groups
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(Q + b * stride_qb + h * stride_qh, offs_m, stride_qs, offs_d, seq_q, head_dim)
    k_offset = b * stride_kb + kv_head * stride_kh
    v_offset = b * stride_vb + kv_head * stride_vh
    keep_offset = b * stride_keep

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    end_n = seq_k
    if CAUSAL:  # keys beyond the last query's horizon are never seen by this tile
        end_n = tl.minimum(seq_k, start_m + BLOCK_M + causal_shift)
    for start_n in range(0, end_n, BLOCK_N):
        s, offs_n = _scores(
            q, K, k_offset, stride_ks, start_n, offs_m, offs_d, keep_offset, KEEP, seq_k, causal_shift, head_dim,
            qk_scale, CAUSAL, HAS_KEEP, BLOCK_N, PRECISION,
        )  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row that has seen no key yet stays at zero
        p = tl.math.exp2(s - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = _load_rows(V + v_offset, offs_n, stride_vs, offs_d, seq_k, head_dim)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new

    empty = l_i == 0.0
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    # +inf for a row that saw no key: the backward's exp2(s - lse) is then 0 for it, not NaN.
    lse = tl.where(empty, float("inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
    o_ptrs = OUT + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :]
    tl.store(o_ptrs, out.to(OUT.dtype.element_ty), mask=(offs_m[:, None] < seq_q) & (offs_d[None, :] < head_dim))
    tl.store(LSE + batch_head * seq_q + offs_m, lse, mask=offs_m < seq_q)


@triton.jit
def _delta_kernel(
    OUT,
    DO,
    DELTA,
    stride_ob,
    stride_oh,
    stride_os,
    stride_db,
    stride_dh,
    stride_ds,
    num_heads,
    seq_q,
    head_dim,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """delta = rowsum(dO * O) per query: the softmax backward's correction term."""
    batch_head = tl.program_id(1)
    b = (batch_head // num_heads).to(tl.int64)
    h = (batch_head % num_heads).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load_rows(OUT + b * stride_ob + h * stride_oh, offs_m, stride_os, offs_d, seq_q, head_dim)
    do = _load_rows(DO + b * stride_db + h * stride_dh, offs_m, stride_ds, offs_d, seq_q, head_dim)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + batch_head * seq_q + offs_m, delta, mask=offs_m < seq_q)


@triton.jit
def _backward_kv_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    KEEP,
    DK,
    DV,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_kb,
    stride_kh,
    stride_ks,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_db,
    stride_dh,
    stride_ds,
    stride_dkb,
    stride_dkh,
    stride_dks,
    stride_keep,
    num_heads,
    num_kv_heads,
    groups,
    seq_q,
    seq_k,
    causal_shift,
    head_dim,
    qk_scale,
    sm_scale,
    q_bucket,
    k_bucket,
    CAUSAL: tl.constexpr,
    HAS_KEEP: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """dK and dV of one key/value tile, summed over the query heads of its group and every query tile that sees it."""
    start_n = tl.program_id(0) * BLOCK_N
    batch_kv_head = tl.program_id(1)
    b = (batch_kv_head // num_kv_heads).to(tl.int64)
    kv_head = (batch_kv_head % num_kv_heads).to(tl.int64)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    kv_mask = (offs_n[:, None] < seq_k) & (offs_d[None, :] < head_dim)
    k = _load_rows(K + b * stride_kb + kv_head * stride_kh, offs_n, stride_ks, offs_d, seq_k, head_dim)
    v = _load_rows(V + b * stride_vb + kv_head * stride_vh, offs_n, stride_vs, offs_d, seq_k, head_dim)
    valid_n = offs_n < seq_k
    if HAS_KEEP:
        valid_n = valid_n & (tl.load(KEEP + b * stride_keep + offs_n, mask=offs_n < seq_k, other=0) != 0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    begin_m = 0
    if CAUSAL:  # queries before this tile's first key (shifted) do not see it
        begin_m = tl.maximum(start_n - causal_shift, 0) // BLOCK_M * BLOCK_M
    for g in range(0, groups):
        h = kv_head * groups + g
        q_base = Q + b * stride_qb + h * stride_qh
        do_base = DO + b * stride_db + h * stride_dh
        row_base = (b * num_heads + h) * seq_q
        for start_m in range(begin_m, seq_q, BLOCK_M):
            offs_m = start_m + tl.arange(0, BLOCK_M)
            q = _load_rows(q_base, offs_m, stride_qs, offs_d, seq_q, head_dim)
            do = _load_rows(do_base, offs_m, stride_ds, offs_d, seq_q, head_dim)
            lse = tl.load(LSE + row_base + offs_m, mask=offs_m < seq_q, other=float("inf"))
            delta = tl.load(DELTA + row_base + offs_m, mask=offs_m < seq_q, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
            valid = valid_n[None, :] & (offs_m[:, None] < seq_q)
            if CAUSAL:
                valid = valid & (offs_n[None, :] <= offs_m[:, None] + causal_shift)
            p = tl.where(valid, tl.math.exp2(s - lse[:, None]), 0.0)
            dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            ds = p * (dp - delta[:, None])
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    out_offset = b * stride_dkb + kv_head * stride_dkh + offs_n[:, None] * stride_dks + offs_d[None, :]
    tl.store(DK + out_offset, (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + out_offset, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _backward_q_kernel(
    Q,
    K,
    V,
    DO,
    LSE,
    DELTA,
    KEEP,
    DQ,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_kb,
    stride_kh,
    stride_ks,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_db,
    stride_dh,
    stride_ds,
    stride_dqb,
    stride_dqh,
    stride_dqs,
    stride_keep,
    num_heads,
    groups,
    seq_q,
    seq_k,
    causal_shift,
    head_dim,
    qk_scale,
    sm_scale,
    q_bucket,
    k_bucket,
    CAUSAL: tl.constexpr,
    HAS_KEEP: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """dQ of one query tile, summed over every key tile it sees."""
    start_m = tl.program_id(0) * BLOCK_M
    batch_head = tl.program_id(1)
    b = (batch_head // num_heads).to(tl.int64)
    h = (batch_head % num_heads).to(tl.int64)
    kv_head = h // groups
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(Q + b * stride_qb + h * stride_qh, offs_m, stride_qs, offs_d, seq_q, head_dim)
    do = _load_rows(DO + b * stride_db + h * stride_dh, offs_m, stride_ds, offs_d, seq_q, head_dim)
    lse = tl.load(LSE + batch_head * seq_q + offs_m, mask=offs_m < seq_q, other=float("inf"))
    delta = tl.load(DELTA + batch_head * seq_q + offs_m, mask=offs_m < seq_q, other=0.0)
    k_offset = b * stride_kb + kv_head * stride_kh
    v_offset = b * stride_vb + kv_head * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    end_n = seq_k
    if CAUSAL:
        end_n = tl.minimum(seq_k, start_m + BLOCK_M + causal_shift)
    for start_n in range(0, end_n, BLOCK_N):
        s, offs_n = _scores(
            q, K, k_offset, stride_ks, start_n, offs_m, offs_d, b * stride_keep, KEEP, seq_k, causal_shift, head_dim,
            qk_scale, CAUSAL, HAS_KEEP, BLOCK_N, PRECISION,
        )  # fmt: skip
        p = tl.math.exp2(s - lse[:, None])  # masked scores are -inf: p = 0 there
        k = _load_rows(K + k_offset, offs_n, stride_ks, offs_d, seq_k, head_dim)
        v = _load_rows(V + v_offset, offs_n, stride_vs, offs_d, seq_k, head_dim)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    tl.store(
        DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqs + offs_d[None, :],
        (dq * sm_scale).to(DQ.dtype.element_ty),
        mask=(offs_m[:, None] < seq_q) & (offs_d[None, :] < head_dim),
    )


# Tuned per power-of-two bucket of the lengths (q_bucket, k_bucket: arguments the kernels only pass to the autotuner),
# not per exact length: decoding changes the key length at every token.
_SHAPE_KEYS = ["q_bucket", "k_bucket", "head_dim", "CAUSAL"]
if INTERPRETING:  # the interpreter would run every candidate tile shape in NumPy: fixed tiles instead
    _forward, _backward_kv, _backward_q = _forward_kernel, _backward_kv_kernel, _backward_q_kernel
else:
    _forward = triton.autotune(_configs("forward"), key=_SHAPE_KEYS)(_forward_kernel)
    _backward_kv = triton.autotune(_configs("backward"), key=_SHAPE_KEYS)(_backward_kv_kernel)
    _backward_q = triton.autotune(_configs("backward"), key=_SHAPE_KEYS)(_backward_q_kernel)


def _tiles() -> dict:
    """Tile sizes to pass explicitly: the interpreter's; on a GPU the autotuner picks them."""
    return dict(INTERPRETER_BLOCKS) if INTERPRETING else {}


def _grid(length_key: str, length: int, programs: int):
    if INTERPRETING:
        return (triton.cdiv(length, INTERPRETER_BLOCKS[length_key]), programs)
    return lambda meta: (triton.cdiv(length, meta[length_key]), programs)


def _buckets(seq_q: int, seq_k: int) -> tuple[int, int]:
    return triton.next_power_of_2(seq_q), triton.next_power_of_2(seq_k)


def _last_dim_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.stride(-1) == 1 else tensor.contiguous()


def _precision(dtype: torch.dtype) -> str | None:
    # fp32 inputs multiply in full fp32 (a GPU's tl.dot would otherwise round them to TF32); fp16/bf16 keep the
    # backend's default.
    return "ieee" if dtype == torch.float32 else None


class FlashAttentionFunction(torch.autograd.Function):
    """``attention(q, k, v)`` with FlashAttention-2's forward and backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, q, k, v, key_keep, causal: bool, sm_scale: float):
        batch, heads, seq_q, head_dim = q.shape
        kv_heads, seq_k = k.shape[1], k.shape[2]
        q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
        out = torch.empty(batch, seq_q, heads, head_dim, dtype=q.dtype, device=q.device)
        lse = torch.empty(batch * heads, seq_q, dtype=torch.float32, device=q.device)
        keep = key_keep if key_keep is not None else lse  # an unused pointer when there is no mask
        common = dict(
            CAUSAL=causal,
            HAS_KEEP=key_keep is not None,
            BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
            PRECISION=_precision(q.dtype),
        )
        _forward[_grid("BLOCK_M", seq_q, batch * heads)](
            q, k, v, out, lse, keep,
            *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
            out.stride(0), out.stride(2), out.stride(1),
            keep.stride(0) if key_keep is not None else 0,
            heads, heads // kv_heads, seq_q, seq_k, seq_k - seq_q, head_dim, sm_scale * LOG2_E, *_buckets(seq_q, seq_k),
            **common, **_tiles(),
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, out, lse, key_keep)
        ctx.causal, ctx.sm_scale, ctx.common = causal, sm_scale, common
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, key_keep = ctx.saved_tensors
        batch, heads, seq_q, head_dim = q.shape
        kv_heads, seq_k = k.shape[1], k.shape[2]
        grad_out = _last_dim_contiguous(grad_out)
        delta = torch.empty_like(lse)
        block_d = ctx.common["BLOCK_D"]
        delta_rows = 64 if not INTERPRETING else INTERPRETER_BLOCKS["BLOCK_M"]
        _delta_kernel[(triton.cdiv(seq_q, delta_rows), batch * heads)](
            out, grad_out, delta,
            out.stride(0), out.stride(2), out.stride(1), grad_out.stride(0), grad_out.stride(2), grad_out.stride(1),
            heads, seq_q, head_dim, BLOCK_D=block_d, BLOCK_M=delta_rows,
        )  # fmt: skip
        dq = torch.empty_like(q, memory_format=torch.contiguous_format)
        dk = torch.empty_like(k, memory_format=torch.contiguous_format)
        dv = torch.empty_like(v, memory_format=torch.contiguous_format)
        keep = key_keep if key_keep is not None else lse
        keep_stride = keep.stride(0) if key_keep is not None else 0
        shared = (seq_q, seq_k, seq_k - seq_q, head_dim, ctx.sm_scale * LOG2_E, ctx.sm_scale, *_buckets(seq_q, seq_k))
        do_strides = (grad_out.stride(0), grad_out.stride(2), grad_out.stride(1))
        _backward_kv[_grid("BLOCK_N", seq_k, batch * kv_heads)](
            q, k, v, grad_out, lse, delta, keep, dk, dv,
            *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *do_strides, *dk.stride()[:3], keep_stride,
            heads, kv_heads, heads // kv_heads, *shared, **ctx.common, **_tiles(),
        )  # fmt: skip
        _backward_q[_grid("BLOCK_M", seq_q, batch * heads)](
            q, k, v, grad_out, lse, delta, keep, dq,
            *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *do_strides, *dq.stride()[:3], keep_stride,
            heads, heads // kv_heads, *shared, **ctx.common, **_tiles(),
        )  # fmt: skip
        return dq, dk, dv, None, None, None


def flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    key_keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax attention with the Triton kernels; differentiable in ``query``, ``key`` and ``value``.

    Args:
        query: ``(B, H, Sq, D)``.
        key, value: ``(B, Hkv, Sk, D)``, ``H`` a multiple of ``Hkv``.
        causal: query ``i`` sees keys ``j <= i + Sk - Sq``.
        scale: the softmax scale (default ``D ** -0.5``).
        key_keep: optional ``(B, Sk)`` boolean: which keys may be seen (``False`` for padding).

    Returns:
        ``(B, Sq, H, D)``, in the dtype of ``query``.
    """
    if query.shape[1] % key.shape[1] or key.shape != value.shape:
        raise ValueError(
            f"query heads {query.shape[1]} must be a multiple of key/value heads {key.shape[1]}, and key and value "
            f"must have one shape (got {tuple(key.shape)} and {tuple(value.shape)})."
        )
    if query.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(f"head dim {query.shape[-1]} is above the kernel's {MAX_HEAD_DIM}.")
    if key_keep is not None:
        key_keep = key_keep.to(device=query.device, dtype=torch.int8).contiguous()
    scale = query.shape[-1] ** -0.5 if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"softmax scale {scale} is not finite.")
    return FlashAttentionFunction.apply(query, key, value, key_keep, bool(causal), scale)
