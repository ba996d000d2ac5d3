"""What the growth map expects of GPT-2 124M, horizon by horizon, beside Chinchilla's fitted law for that model.

The map's cells are 50k-200k-parameter models; GPT-2 124M with its 50k vocabulary is three orders of magnitude larger
and saves far more of its FLOPs by growing (its blocks, not its embedding, dominate them), so the comparison that
decides is against a fixed run of about half its tokens. The advice (``hf_progressive.advise_run``) reads that run's
loss off the nearest cells' fixed runs; Chinchilla's fitted law (Hoffmann et al. 2022, fitted to cosine schedules at
larger scale) gives a second reading for the 124M model itself. Where the two agree, the carry from the small cells
is less of a guess. Prints a markdown table (README "When does growth pay off?"); no training, a second::

    python benchmarks/gpt2_outlook.py
"""

from __future__ import annotations

import argparse

from transformers import GPT2Config

from hf_progressive.advice import CONTROL_SHARE, advise_run
from hf_progressive.flops import non_embedding_parameters

GPT2_SMALL = {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024}
#: Chinchilla's N for GPT-2 small: all its parameters, as README's reading of the paper's run counts them.
PARAMETERS = 124e6
#: The paper's GPT-2 124M run (PAPER.md): 264B tokens, growth at 0.91T.
PAPER_TOKENS, PAPER_GROWTH_AT = 264e9, 0.91


def chinchilla_loss(tokens: float, parameters: float = PARAMETERS) -> float:
    """Hoffmann et al. (2022), approach 3: L(N, D) = 1.69 + 406.4 / N^0.34 + 410.7 / D^0.28."""
    return 1.69 + 406.4 / parameters**0.34 + 410.7 / tokens**0.28


def law_gap(share: float, tokens: float) -> float:
    """How far above the full run the law puts a fixed run (its own schedule) on ``share`` of the tokens."""
    return chinchilla_loss(share * tokens) / chinchilla_loss(tokens) - 1


def outlook_rows(horizons: list[float]) -> list[dict]:
    """One row per horizon (tokens per non-embedding parameter) and source depth."""
    config = GPT2Config(**GPT2_SMALL)
    depth = config.n_layer
    parameters = non_embedding_parameters(config, depth)
    rows = []
    for horizon in horizons:
        tokens = horizon * parameters
        advice = advise_run(config, depth, tokens, config.n_positions)
        law_control = law_gap(CONTROL_SHARE, tokens)
        for outlook in advice.outlooks:
            law_equal = law_gap(outlook.flops_ratio, tokens)
            # README's rule of thumb: the cells' share of the control's gap, applied to the law's control.
            share_rule = outlook.share_of_control * law_control
            rows.append(
                {
                    "horizon": horizon,
                    "source": outlook.source_depth,
                    "init": outlook.init,
                    "flops_ratio": outlook.flops_ratio,
                    "gap_fixed": outlook.gap_fixed,
                    "gap_equal_map": outlook.gap_equal_flops,
                    # The same progressive loss against the law's fixed run of the same FLOPs.
                    "gap_equal_law": (1 + outlook.gap_fixed) / (1 + law_equal) - 1,
                    "control_law": law_control,
                    "share_rule_fixed": share_rule,
                    "share_rule_equal": (1 + share_rule) / (1 + law_equal) - 1,
                    "recommended": advice.schedule(depth),
                    "cells": advice.nearest,
                }
            )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| tokens/param | source | FLOPs | vs fixed, same steps (map) | vs fixed, same FLOPs: map / law | "
        "law's control | share rule: vs same steps / same FLOPs (law) | recommended |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['horizon']:,.0f} | {row['source']} → 12 {row['init']} | {row['flops_ratio']:.0%} | "
            f"{row['gap_fixed']:+.1%} | {row['gap_equal_map']:+.1%} / {row['gap_equal_law']:+.1%} | "
            f"{row['control_law']:+.1%} | {row['share_rule_fixed']:+.1%} / {row['share_rule_equal']:+.1%} | "
            f"`{row['recommended']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--horizons", type=float, nargs="+", default=[10, 30, 100, 300, 616, 2000])
    rows = outlook_rows(parser.parse_args().horizons)
    print(table(rows))
    print("\ncells read: " + "; ".join(dict.fromkeys(f"{r['horizon']:,.0f}: {r['cells']}" for r in rows)))
    paper = ", ".join(f"{law_gap(1 - at, PAPER_TOKENS):+.1%} with growth at {at:g}T" for at in (PAPER_GROWTH_AT, 0.8))
    print(f"the paper's run ({PAPER_TOKENS:.3g} tokens): the law's control ends {paper}")


if __name__ == "__main__":
    main()
