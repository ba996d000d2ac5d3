"""benchmarks/gpt2_outlook.py: the advice for GPT-2 124M by horizon, beside Chinchilla's law (no training)."""

import sys

import pytest
from conftest import REPO_ROOT
from transformers import GPT2Config

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import gpt2_outlook  # noqa: E402

from hf_progressive import advise_run  # noqa: E402
from hf_progressive.flops import non_embedding_parameters  # noqa: E402


def test_the_law_reproduces_the_readme_reading_of_the_papers_run():
    # README: the control of the paper's run (264B tokens) ends 9.4% above the fixed run with growth at 0.91T.
    assert gpt2_outlook.law_gap(1 - 0.91, 264e9) == pytest.approx(0.094, abs=5e-4)
    assert gpt2_outlook.law_gap(1.0, 264e9) == 0
    assert gpt2_outlook.law_gap(0.5, 1e9) > gpt2_outlook.law_gap(0.5, 1e11) > 0  # fewer tokens, a steeper curve


def test_each_row_is_the_advice_for_gpt2_and_the_same_loss_against_the_laws_equal_flops_run():
    rows = gpt2_outlook.outlook_rows([100])
    config = GPT2Config(**gpt2_outlook.GPT2_SMALL)
    tokens = 100 * non_embedding_parameters(config, 12)
    advice = advise_run(config, 12, tokens, 1024)
    assert [r["source"] for r in rows] == [o.source_depth for o in advice.outlooks] == [0, 1]
    for row, outlook in zip(rows, advice.outlooks):
        assert row["gap_equal_map"] == pytest.approx(outlook.gap_equal_flops)
        assert 0.4 < row["flops_ratio"] < 0.6  # GPT-2's blocks dominate its FLOPs: growth saves about half
        law_equal = gpt2_outlook.law_gap(row["flops_ratio"], tokens)
        assert row["gap_equal_law"] == pytest.approx((1 + outlook.gap_fixed) / (1 + law_equal) - 1)
        assert row["recommended"] == advice.schedule(12)
        # The rule of thumb: the cells' share of the control's gap, applied to the law's control.
        share_rule = outlook.share_of_control * gpt2_outlook.law_gap(0.2, tokens)
        assert row["share_rule_fixed"] == pytest.approx(share_rule)
        assert row["share_rule_equal"] == pytest.approx((1 + share_rule) / (1 + law_equal) - 1)
    text = gpt2_outlook.table(rows)
    assert text.count("\n| 100 |") == 2 and "1 → 12 copy" in text
