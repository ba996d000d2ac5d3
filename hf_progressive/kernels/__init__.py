"""A vendored FlashAttention-2 kernel in Triton, registered with transformers' attention interface.

    import hf_progressive.kernels

    name = hf_progressive.kernels.register()            # "hfp_triton"
    model = GPT2LMHeadModel(config, attn_implementation=name)  # or from_pretrained(..., attn_implementation=name)

Every block the model has or grows then runs its attention through :func:`attention_forward`: the Triton kernel
(:mod:`hf_progressive.kernels.flash_triton`) where it computes exactly what the model asks for, and otherwise
transformers' SDPA (or, for ``output_attentions``, a plain softmax that returns the weights), each fallback counted
by reason in :func:`usage` and logged at DEBUG level — never a silently different result. The kernel runs:

* causal attention (aligned to the end, as a key/value cache needs) or bidirectional, with padding through the
  registered mask function (transformers passes the attention function only what the mask function returns);
* grouped-query attention (Llama, Mistral, Qwen...) without repeating keys and values;
* fp16, bf16 and fp32, any sequence length, head dims up to 256.

It falls back for: attention dropout > 0 (GPT-2's default ``attn_pdrop=0.1`` in training: set it to 0 to use the
kernel), any other 4-D mask (sliding windows that bite, packed sequences, static caches: the mask function lets
transformers build SDPA's mask for those), ``output_attentions``, soft-capping / attention sinks / position bias,
float64, and CPU tensors outside Triton's interpreter. On CPU the kernel runs only under ``TRITON_INTERPRET=1``
(set before this package's kernels are first imported; for tests). SDPA stays transformers' default.

Importing this package needs no Triton; :func:`register` does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections import Counter
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: The name models are given as ``attn_implementation``. It must not contain "flash", "sdpa" or "flex" (transformers
#: branches on those substrings) nor "/" (taken for a Hub kernel repository).
DEFAULT_NAME = "hfp_triton"
_RESERVED_SUBSTRINGS = ("flash", "sdpa", "flex", "/", "|")

_usage: Counter[str] = Counter()


def usage() -> dict[str, int]:
    """How many attention calls ran the kernel (``"kernel"``) and how many fell back, by reason
    (``"sdpa: dropout"``, ``"eager: output_attentions"``, ...), since the process started or :func:`reset_usage`."""
    return dict(_usage)


def reset_usage() -> None:
    """Start :func:`usage` from zero."""
    _usage.clear()


def is_available() -> tuple[bool, str]:
    """Whether the kernel can run here, and if not, why."""
    if importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed (`pip install triton`, or `pip install hf_progressive[kernels]`)"
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") != "1":
        return False, (
            "no CUDA GPU is visible, and Triton's CPU interpreter (TRITON_INTERPRET=1, for tests only) is not enabled"
        )
    return True, ""


def register(name: str = DEFAULT_NAME) -> str:
    """Register the kernel with transformers' ``AttentionInterface`` and its mask function with
    ``AttentionMaskInterface`` under ``name``, and return ``name`` (for ``attn_implementation=``).

    Raises:
        ValueError: a name transformers would misread.
        RuntimeError: Triton is missing, or there is neither a GPU nor the interpreter.
    """
    if not name or any(part in name for part in _RESERVED_SUBSTRINGS):
        raise ValueError(
            f"attention name {name!r}: transformers treats names containing {_RESERVED_SUBSTRINGS} specially "
            f"(flash/sdpa/flex code paths, Hub kernels, paged attention); choose another, e.g. {DEFAULT_NAME!r}."
        )
    available, why = is_available()
    if not available:
        raise RuntimeError(f"The Triton attention kernel cannot run here: {why}. SDPA stays the default.")
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    from . import flash_triton  # noqa: F401  (compiles nothing yet; fails here, not mid-training, if Triton is broken)

    AttentionInterface.register(name, attention_forward)
    AttentionMaskInterface.register(name, attention_mask)
    return name


def attention_mask(**kwargs: Any) -> torch.Tensor | None:
    """The mask function registered with the kernel (called by transformers' ``create_causal_mask`` and friends).

    For the masks the kernel computes itself it returns ``None`` (plain causal, or no mask) or the ``(B, Sk)``
    boolean padding mask; for every other mask SDPA's own 4-D mask, which :func:`attention_forward` hands to SDPA.
    """
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    padding = kwargs.get("attention_mask")
    kv_length, q_length = kwargs["kv_length"], kwargs["q_length"]
    plain_causal = (
        kwargs.get("mask_function", causal_mask_function) is causal_mask_function
        and kwargs.get("kv_offset", 0) == 0
        and kwargs.get("q_offset", 0) + q_length == kv_length  # the kernel's end-aligned causal mask
        and kwargs.get("local_size") is None
    )
    if plain_causal and (padding is None or (padding.dim() == 2 and padding.shape[-1] >= kv_length)):
        if padding is None:
            return None
        keep = padding[:, :kv_length].bool()
        return None if bool(keep.all()) else keep
    return sdpa_mask(**kwargs)


def attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """transformers' attention-function contract: ``query (B, H, Sq, D)``, ``key``/``value (B, Hkv, Sk, D)``;
    returns ``(output (B, Sq, H, D), weights or None)``."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    key_keep = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
    reason = _fallback_reason(query, key, attention_mask, dropout, kwargs)
    if reason is None:
        from .flash_triton import flash_attention

        _usage["kernel"] += 1
        return flash_attention(query, key, value, causal=causal, scale=scaling, key_keep=key_keep), None

    if reason == "output_attentions":
        _count("eager: output_attentions")
        given = attention_mask if attention_mask is not None and attention_mask.dim() == 4 else None
        return reference_attention(query, key, value, causal, scaling, key_keep, dropout, module.training, given)
    _count(f"sdpa: {reason}")
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    seq_q, seq_k = query.shape[2], key.shape[2]
    if (attention_mask is not None and attention_mask.dim() == 2) or (causal and 1 < seq_q != seq_k):
        # The kernel's forms (a padding mask; end-aligned causal without a mask): SDPA needs them spelt out in 4-D.
        attention_mask = dense_mask(query, key, key_keep, causal)
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
    )


def _count(reason: str) -> None:
    _usage[reason] += 1
    logger.debug("Triton attention falls back (%s).", reason)


def _fallback_reason(query, key, attention_mask, dropout: float, kwargs: dict) -> str | None:
    """Why the kernel cannot compute this call exactly, or ``None`` when it can."""
    if kwargs.get("output_attentions") or _attention_weights_requested():
        return "output_attentions"
    if dropout and dropout > 0.0:
        return "dropout"
    if attention_mask is not None and attention_mask.dim() != 2:
        return "4-D mask"
    for unsupported in ("softcap", "s_aux", "sinks", "position_bias"):
        if kwargs.get(unsupported) is not None:
            return unsupported
    window = kwargs.get("sliding_window")
    if window is not None and key.shape[2] > window:
        return "sliding window"
    if query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"dtype {query.dtype}"
    if query.shape[-1] > 256:
        return "head dim above 256"
    if query.shape[0] * query.shape[1] > 65535:  # the kernels' second grid axis, a CUDA limit
        return "batch x heads above 65535"
    if query.device.type == "cpu":
        if os.environ.get("TRITON_INTERPRET", "0") != "1":
            return "CPU tensors"
        if query.dtype == torch.bfloat16:  # Triton's interpreter multiplies bf16 tiles wrongly (triton 3.9)
            return "bf16 under the interpreter"
    return None


def _attention_weights_requested() -> bool:
    """Whether the model was called with ``output_attentions=True``. transformers 5 does not pass it to attention
    functions: it records each attention module's returned weights through hooks, while a collector (a private
    context variable, read defensively here) lists what was asked for."""
    try:
        from transformers.utils.output_capturing import _active_collector
    except ImportError:
        return False
    try:
        collected = _active_collector.get()
    except LookupError:
        return False
    return isinstance(collected, dict) and "attentions" in collected


def dense_mask(
    query: torch.Tensor, key: torch.Tensor, key_keep: torch.Tensor | None, causal: bool
) -> torch.Tensor | None:
    """The ``(B, 1, Sq, Sk)`` boolean mask (``True``: attend) of the kernel's semantics: end-aligned causal and/or
    key padding; ``None`` when nothing is masked."""
    seq_q, seq_k = query.shape[2], key.shape[2]
    mask = None
    if causal:
        rows = torch.arange(seq_q, device=query.device)[:, None] + (seq_k - seq_q)
        mask = (torch.arange(seq_k, device=query.device)[None, :] <= rows)[None, None]
    if key_keep is not None:
        keep = key_keep.to(device=query.device, dtype=torch.bool)[:, None, None, :]
        mask = keep if mask is None else mask & keep
    return mask


def reference_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    key_keep: torch.Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention with the kernel's semantics, in PyTorch: ``(output (B, Sq, H, D), weights)``.

    The reference the kernel is tested against, and the fallback that returns attention weights. A 4-D
    ``attention_mask`` (boolean, ``True`` to attend, or additive) replaces ``causal`` and ``key_keep``, as in SDPA.
    Rows that see no key (padding) get zero weights.
    """
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        scores = scores + attention_mask
    else:
        mask = attention_mask if attention_mask is not None else dense_mask(query, key, key_keep, causal)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).nan_to_num(0.0).to(value.dtype)
    if dropout > 0.0 and training:
        weights = torch.nn.functional.dropout(weights, p=dropout)
    return torch.matmul(weights, value).transpose(1, 2), weights


__all__ = [
    "DEFAULT_NAME",
    "attention_forward",
    "attention_mask",
    "dense_mask",
    "is_available",
    "reference_attention",
    "register",
    "reset_usage",
    "usage",
]
