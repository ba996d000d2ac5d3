"""The growth advice reads the measured map: nearest vocabulary, the size measured at the run's horizon, then the
nearest size; interpolation over the horizon."""

import math

import pytest
from conftest import tiny_config

from hf_progressive import advice as advice_module
from hf_progressive import advise, advise_run, flops
from hf_progressive.advice import GrowthAdvice, SourceOutlook, load_growth_map


def cell(vocab, horizon, zero_equal, n=50_000, size="small", **gaps):
    return {
        "size": size,
        "width": 32,
        "depth": 4,
        "vocab": vocab,
        "horizon": horizon,
        "non_embedding_parameters": n,
        "zero_gap_fixed": gaps.get("zero_fixed", 0.2),
        "zero_gap_equal": zero_equal,
        "zero_gap_control": gaps.get("zero_control", -0.05),
        "zero_flops_ratio": 0.3,
        "one_gap_fixed": gaps.get("one_fixed"),
        "one_gap_equal": gaps.get("one_equal"),
        "one_gap_control": None,
        "one_flops_ratio": 0.4 if gaps.get("one_fixed") is not None else None,  # no 1 -> L runs, no ratio
    }


MAP = {
    "cells": [
        cell(257, 10, 0.10, zero_fixed=0.30),
        cell(257, 100, 0.02, zero_fixed=0.10, one_fixed=0.05, one_equal=-0.01),
        cell(8192, 10, -0.04, zero_fixed=0.12),
        cell(8192, 10, 0.5, n=500_000, size="medium"),
    ]
}


def test_interpolates_over_log_horizon_in_the_nearest_vocabulary_and_size():
    advice = advise(50_000, 300, tokens=50_000 * math.sqrt(10 * 100), growth_map=MAP)  # halfway, on a log scale
    assert advice.measured and "vocabulary 257" in advice.nearest and "10-100" in advice.nearest
    zero = advice.outlooks[0]
    assert zero.source_depth == 0 and zero.init == "random"
    assert zero.gap_fixed == pytest.approx(0.20) and zero.gap_equal_flops == pytest.approx(0.06)
    # Only one end knows the 1 -> L source: its value is used as it is, and the advice says so.
    assert advice.outlooks[1].gap_equal_flops == pytest.approx(-0.01)
    assert advice.one_ended == {"one_gap_fixed": 100, "one_gap_equal": 100, "one_flops_ratio": 100}
    assert "one cell only" in str(advice) and "1 -> L vs equal FLOPs (the 100 tokens/param cell)" in str(advice)
    assert advice.growth_pays and advice.best.source_depth == 1
    assert advice.schedule(6) == "1@0,6@0.8"


def test_a_cell_measured_on_the_larger_corpus_is_named_in_the_advice():
    assert "corpus" not in advise(50_000, 257, tokens=50_000 * 30, growth_map=MAP).nearest  # the standard library
    larger = {**cell(8192, 300, 0.029, zero_fixed=0.036), "corpus": "stdlib_torch", "passes": 1.2}
    advice = advise(50_000, 8192, tokens=50_000 * 100, growth_map={"cells": [*MAP["cells"], larger]})
    assert advice.nearest.endswith("10-300 tokens/param (corpus stdlib and stdlib_torch)")
    assert advice.outlooks[0].gap_fixed == pytest.approx(0.12 + (0.036 - 0.12) * math.log(10) / math.log(30))


def test_outside_the_measured_horizons_uses_the_nearest_end_and_says_so():
    advice = advise(50_000, 8000, tokens=50_000 * 3, growth_map=MAP)
    assert not advice.measured and advice.outlooks[0].gap_fixed == pytest.approx(0.12)
    assert "OUTSIDE" in str(advice)
    assert advice.one_ended == {} and "one cell only" not in str(advice)  # one cell read: nothing to interpolate
    # The nearest size, not the first one listed: a 400k-parameter model reads the medium cell.
    medium = advise(400_000, 8192, tokens=400_000 * 10, growth_map=MAP)
    assert "medium" in medium.nearest and not medium.growth_pays and medium.schedule(4) == "4@0"
    assert "LOSE" in str(medium)


def test_the_size_measured_at_the_run_horizon_is_read_before_the_nearest_size():
    # The medium model was measured only at 10 tokens/param, the small one up to 300: a far larger model at 300
    # tokens/param must read the small model's 300 cell (the gaps move most along the horizon), not medium's 10.
    grid = {
        "cells": [
            cell(8192, 10, 0.05, n=500_000, size="medium", zero_fixed=0.12),
            cell(8192, 10, 0.04, zero_fixed=0.11),
            cell(8192, 300, 0.01, zero_fixed=0.03),
        ]
    }
    far = advise(85_000_000, 8192, tokens=85_000_000 * 300, growth_map=grid)
    assert "small" in far.nearest and "300 tokens/param" in far.nearest
    assert far.outlooks[0].gap_fixed == pytest.approx(0.03)
    assert far.outside == ["non-embedding parameters 85M, measured 50k-500k"]
    # Beyond every size's horizons, the size that reaches nearest: at 3,000 the small model's 300 cell.
    assert "small" in advise(85_000_000, 8192, tokens=85_000_000 * 3000, growth_map=grid).nearest
    # Where both sizes were measured at the run's horizon, the nearer size still decides.
    near = advise(400_000, 8192, tokens=400_000 * 10, growth_map=grid)
    assert "medium" in near.nearest and near.outlooks[0].gap_fixed == pytest.approx(0.12)


def test_advise_run_reports_only_the_measured_quantities_as_one_ended(monkeypatch):
    # advise_run replaces the cells' FLOP ratios by the config's own: those are no longer read from one cell.
    monkeypatch.setattr(advice_module, "load_growth_map", lambda: MAP)
    config = tiny_config(0, vocab_size=257, n_embd=32)
    advice = advise_run(config, 4, tokens=30 * flops.non_embedding_parameters(config, 4))
    assert advice.one_ended == {"one_gap_fixed": 100, "one_gap_equal": 100}
    assert "1 -> L FLOPs" not in str(advice) and "1 -> L vs fixed (the 100 tokens/param cell)" in str(advice)
    zero_layer, full = (flops.forward_flops_per_token(config, depth, config.n_positions) for depth in (0, 4))
    assert advice.outlooks[0].flops_ratio == pytest.approx(0.8 * zero_layer / full + 0.2)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="tokens=0"):
        advise(1000, 257, tokens=0, growth_map=MAP)
    with pytest.raises(ValueError, match="no measured cells"):
        advise(1000, 257, tokens=10, growth_map={"cells": []})


def test_the_shipped_map_covers_the_measured_vocabularies_and_advises_a_config():
    shipped = load_growth_map()
    vocabs = {c["vocab"] for c in shipped["cells"]}
    assert {257, 8192} <= vocabs
    for entry in shipped["cells"]:
        assert entry["zero_gap_fixed"] is not None and entry["horizon"] > 0
    config = tiny_config(0, vocab_size=8000, n_embd=32)
    tokens = 30 * flops.non_embedding_parameters(config, 4)
    advice = advise_run(config, 4, tokens)
    assert advice.tokens_per_parameter == pytest.approx(30) and "vocabulary 8192" in advice.nearest
    # FLOP ratios are the config's own: 0.8 of the steps at the zero-layer cost, 0.2 at full depth.
    zero_layer, full = (flops.forward_flops_per_token(config, depth, config.n_positions) for depth in (0, 4))
    assert advice.outlooks[0].flops_ratio == pytest.approx(0.8 * zero_layer / full + 0.2)


def test_a_run_outside_the_map_on_any_axis_says_which_and_carries_the_share_of_the_control():
    grid = {
        "cells": [
            {**cell(8192, 10, 0.02, zero_fixed=0.10), "zero_share_of_control": 0.55},
            {**cell(8192, 100, 0.01, zero_fixed=0.05), "zero_share_of_control": 0.50},
        ]
    }
    inside = advise(50_000, 8192, tokens=50_000 * 30, growth_map=grid)
    assert inside.measured and inside.outside == [] and "inside the measured range" in str(inside)
    assert inside.outlooks[0].share_of_control == pytest.approx(0.55 - 0.05 * math.log(3) / math.log(10))
    assert "Beyond the map" not in str(inside)  # inside it, the gaps themselves are the measurement
    # The horizon is inside the measured ones, but the model and its vocabulary are not: the advice must not say
    # "inside" (it did, judging the horizon alone), and it names each axis it left.
    large = advise(85_000_000, 50257, tokens=85_000_000 * 30, growth_map=grid)
    assert not large.measured
    assert large.outside == ["non-embedding parameters 85M, measured 50k", "vocabulary 50257, measured 8192"]
    text = str(large)
    assert "OUTSIDE the measured range (non-embedding parameters 85M, measured 50k; vocabulary 50257" in text
    assert "0 -> L ended 0.53 of the way from the fixed-depth run to the control" in text
    longer = advise(50_000, 8192, tokens=50_000 * 3000, growth_map=grid)
    assert longer.outside == ["tokens/param 3k, measured 10-100"]
    assert str(longer).startswith("Growth map: 3k tokens per non-embedding parameter")  # not "3e+03"
    assert [advice_module._count(v) for v in (6.88, 999.7, 50_900, 85.1e6)] == ["6.88", "1k", "50.9k", "85.1M"]


def outlook(gap_equal, own, measured, depth=0, gap_fixed=0.03, gap_control=-0.02):
    return SourceOutlook(depth, "random", gap_fixed, gap_equal, gap_control, own, measured_flops_ratio=measured)


def test_the_fixed_runs_of_a_cell_give_the_loss_curve_the_equal_flops_gap_is_read_from():
    # A cell's fixed runs of 100%, its growth's share (96%) and 20% (the control) of the tokens, relative to the full
    # run: 1, 1.03 / 1.033 and 1.03 / 0.98.
    cell_outlook = outlook(0.033, 0.96, 0.96)
    assert cell_outlook.fixed_loss_at(1.0) == 1.0
    assert cell_outlook.fixed_loss_at(0.96) == pytest.approx(1.03 / 1.033)
    assert cell_outlook.fixed_loss_at(0.2) == pytest.approx(1.03 / 0.98)
    # Halfway between 20% and 96% on a log scale, the loss is the geometric mean of theirs (a power law's shape).
    middle = math.sqrt(0.2 * 0.96)
    assert cell_outlook.fixed_loss_at(middle) == pytest.approx(math.sqrt(1.03 / 1.033 * 1.03 / 0.98))
    assert cell_outlook.fixed_loss_at(0.1) is None  # below the control: not measured
    # At the cells' own FLOPs ratio the gap is the measured one, not an estimate.
    assert cell_outlook.gap_equal_flops == pytest.approx(0.033) and not cell_outlook.equal_flops_estimated
    # A map without the cells' FLOPs ratio: the measured gap as it is, not called an estimate.
    unplaced = SourceOutlook(0, "random", 0.03, 0.02, -0.02, 0.4)
    assert unplaced.gap_equal_flops == 0.02 and not unplaced.equal_flops_estimated
    # Without the control the curve ends at the equal-FLOPs run.
    assert outlook(0.033, 0.5, 0.96, gap_control=None).gap_equal_flops is None


def test_a_run_saving_more_compute_than_the_cells_is_compared_with_a_fixed_run_of_its_own_flops():
    # GPT-2 124M at 616 tokens/param reads the small 32k cell at 300: growth there used 96% of the FLOPs, this run's
    # 0 -> 12 uses 43%, so its equal-FLOPs run trains on 43% of the tokens and ends well above the cell's 96% run.
    own = outlook(0.033, 0.43, 0.96, gap_fixed=0.0303, gap_control=-0.021)
    weight = math.log(0.43 / 0.2) / math.log(0.96 / 0.2)
    fixed_43 = (1.0303 / 0.979) ** (1 - weight) * (1.0303 / 1.033) ** weight
    assert own.gap_equal_flops == pytest.approx(1.0303 / fixed_43 - 1)
    assert 0 < own.gap_equal_flops < 0.033 and own.equal_flops_estimated and own.beats_equal_flops is False
    advice = GrowthAdvice(616, 50257, 85_000_000, False, "cells", [own])
    text = str(advice)
    assert "(43% of the FLOPs; estimated from +3.3% where the cells' growth used 96%)" in text
    assert "LOSE" in text and "(by the estimate above)" in text and advice.schedule(12) == "12@0"
    # Where the cells' fixed runs fall steeply (a short horizon), the same saving beats a fixed run of its FLOPs,
    # though the cells' growth did not beat theirs.
    steep = outlook(0.01, 0.43, 0.96, gap_fixed=0.10, gap_control=-0.20)
    winning = GrowthAdvice(10, 257, 50_000, True, "cells", [steep])
    assert steep.gap_equal_flops < 0 and winning.growth_pays and winning.schedule(12) == "0@0,12@0.8"
    assert "expected to beat" in str(winning)
    # A run saving less than the cells faces a fixed run of more tokens: a larger gap.
    assert outlook(0.01, 0.99, 0.96).gap_equal_flops > 0.01


def test_a_cell_without_equal_flops_runs_reads_the_gap_off_its_control_or_says_it_is_unknown():
    with_control = outlook(None, 0.5, 0.5)
    assert with_control.gap_equal_flops is not None and with_control.equal_flops_estimated
    alone = GrowthAdvice(300, 8192, 50_000, True, "cells", [outlook(None, 0.5, 0.5, gap_control=None)])
    assert alone.best is None and "unknown" in str(alone) and "LOSE" not in str(alone) and alone.schedule(4) == "4@0"


def test_advise_run_estimates_the_equal_flops_gap_at_the_runs_own_flops_ratio(monkeypatch):
    far = {"cells": [{**cell(257, 10, 0.05, zero_fixed=0.1), "zero_flops_ratio": 0.95}]}
    monkeypatch.setattr(advice_module, "load_growth_map", lambda: far)
    config = tiny_config(0, vocab_size=257, n_embd=32)
    advice = advise_run(config, 4, tokens=10 * flops.non_embedding_parameters(config, 4))
    zero = advice.outlooks[0]
    assert zero.measured_flops_ratio == pytest.approx(0.95) and zero.flops_ratio < 0.9
    assert zero.gap_equal_flops == pytest.approx(1.1 / zero.fixed_loss_at(zero.flops_ratio) - 1)
    assert zero.gap_equal_flops < 0.05 and "estimated from +5.0%" in str(advice)  # saves more: a weaker rival
    # The example's summary.json keeps the derived gap that dataclasses.asdict would drop.
    assert advice.to_dict()["outlooks"][0]["gap_equal_flops"] == pytest.approx(zero.gap_equal_flops)


def test_each_source_reads_the_fixed_runs_of_both_and_the_advice_quotes_the_maps_own_check():
    # One cell: 0 -> L's equal-FLOPs run trained 30% of the tokens, 1 -> L copy's 50%; both compare with the control.
    entry = {
        **cell(257, 10, 0.02, zero_fixed=0.30, zero_control=-0.05, one_fixed=0.10, one_equal=-0.02),
        "one_gap_control": 1.10 * 0.95 / 1.30 - 1,  # the same control run as 0 -> L's
        "one_flops_ratio": 0.5,
    }
    check = {"runs": 18, "mean_abs_error": 0.007, "max_abs_error": 0.0184, "favoured_growth": 14}
    advice = advise(50_000, 257, tokens=50_000 * 10, growth_map={"cells": [entry], "estimate_check": {"257": check}})
    zero, one = advice.outlooks
    assert zero.fixed_runs is one.fixed_runs and sorted(zero.fixed_runs) == [0.2, 0.3, 0.5, 1.0]
    # The control is the same run for both sources: both place it at the same loss.
    assert zero.fixed_runs[0.2] == pytest.approx(1.30 / 0.95)
    assert (1 + one.gap_fixed) / (1 + one.gap_control) == pytest.approx(1.30 / 0.95)
    # A run whose 1 -> L growth uses 40% of the FLOPs reads its fixed run between 0 -> L's (30%) and 1 -> L's (50%).
    one.flops_ratio = 0.4
    weight = math.log(0.4 / 0.3) / math.log(0.5 / 0.3)
    between = (1.30 / 1.02) ** (1 - weight) * (1.10 / 0.98) ** weight
    assert one.gap_equal_flops == pytest.approx(1.10 / between - 1)
    text = str(advice)
    assert "the map's 18 equal-FLOPs runs at this vocabulary were estimated within 0.7% on average and 1.8% at" in text
    assert "14 of the 18 estimates favoured growth" in text
    # A map without the check says nothing of it.
    unchecked = advise(50_000, 257, tokens=50_000 * 10, growth_map={"cells": [entry]})
    unchecked.outlooks[1].flops_ratio = 0.4
    assert "Estimated:" in str(unchecked) and "Left out" not in str(unchecked)


def test_advise_run_reads_a_config_of_another_family_through_its_adapter():
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=192,
        vocab_size=8000,
        max_position_embeddings=64,
    )
    tokens = 30 * flops.non_embedding_parameters(config, 4)
    advice = advise_run(config, 4, tokens, 64)
    assert advice.tokens_per_parameter == pytest.approx(30) and "vocabulary 8192" in advice.nearest
    # The 8k head dominates this small model's FLOPs: growth saves a little, and the ratios are this model's own.
    zero, one = advice.outlooks
    assert 0.5 < zero.flops_ratio < one.flops_ratio < 1 and zero.flops_ratio != zero.measured_flops_ratio


def test_a_run_of_far_more_tokens_than_the_cells_does_not_count_on_1_to_l_copys_head_start():
    # 1 -> L copy beats equal FLOPs in the cell (50k parameters x 100 tokens/param = 5M tokens), 0 -> L does not.
    grid = {"cells": [cell(257, 100, 0.02, zero_fixed=0.10, one_fixed=0.05, one_equal=-0.01)]}
    same_tokens = advise(50_000, 257, tokens=2 * 5e6, growth_map=grid)  # twice the cell's tokens: still read as is
    assert same_tokens.best.source_depth == 1 and same_tokens.growth_pays
    assert "head start" not in str(same_tokens)
    # The same horizon on a model 20 times larger trains 20 times the tokens: copy's head start is worn down.
    larger = advise(1_000_000, 257, tokens=1_000_000 * 100, growth_map=grid)
    copy = larger.outlooks[1]
    assert copy.head_start_worn and copy.beats_equal_flops is None and copy.gap_equal_flops == pytest.approx(-0.01)
    assert larger.best.source_depth == 0 and not larger.growth_pays and larger.schedule(4) == "4@0"
    text = str(larger)
    assert "the cells of this vocabulary trained at most 5M tokens, your run 100M" in text and "LOSE" in text
    assert not larger.outlooks[0].head_start_worn  # 0 -> L has no head start to wear down
    shares = {**grid["cells"][0], "zero_share_of_control": 0.5, "one_share_of_control": 0.2}
    beyond = str(advise(1_000_000, 257, tokens=1_000_000 * 100, growth_map={"cells": [shares]}))
    assert "0 -> L ended 0.50 of the way" in beyond and "1 -> L ended" not in beyond  # copy's share is no constant


def copy_cell(n, horizon, share, size, control_gap=0.2, fixed_at_40=1.05):
    """A cell whose 1 -> L copy ended ``share`` of the way to a control ``control_gap`` above the fixed run, and
    whose equal-FLOPs run (40% of the FLOPs) ended ``fixed_at_40`` times the fixed run's loss."""
    one_fixed = share * control_gap
    return {
        **cell(257, horizon, 0.05, n=n, size=size, zero_fixed=0.1, one_fixed=one_fixed),
        "zero_gap_control": 1.1 / (1 + control_gap) - 1,
        "zero_flops_ratio": 0.4,
        "zero_gap_equal": 1.1 / fixed_at_40 - 1,
        "one_gap_equal": (1 + one_fixed) / fixed_at_40 - 1,
        "one_gap_control": (1 + one_fixed) / (1 + control_gap) - 1,
        "one_share_of_control": share,
    }


# Copy's head start follows the tokens trained: 0.5M tokens 0.1, 5M tokens 0.2, 50M tokens 0.7 of the control's gap.
TOKENS_MAP = {
    "cells": [
        copy_cell(50_000, 10, 0.1, "small"),
        copy_cell(50_000, 1000, 0.7, "small"),
        copy_cell(500_000, 10, 0.2, "medium"),
    ]
}


def test_1_to_l_copys_share_is_read_off_the_cells_nearest_in_tokens_not_in_horizon():
    # On a measured cell, the cell as it is: its horizon and its tokens point at the same cell.
    on_cell = advise(500_000, 257, tokens=500_000 * 10, growth_map=TOKENS_MAP)
    copy = on_cell.outlooks[1]
    assert on_cell.copy_share_cells is None and copy.share_of_control == pytest.approx(0.2)
    assert copy.gap_equal_flops == pytest.approx(1.04 / 1.05 - 1) and on_cell.growth_pays
    # A model ten times larger at the same horizon trains 50M tokens: the medium cell gives the horizon (and the
    # control's gap), the small cell at 50M tokens gives copy's share, and the win becomes a loss.
    larger = advise(5_000_000, 257, tokens=5_000_000 * 10, growth_map=TOKENS_MAP)
    copy = larger.outlooks[1]
    assert "medium" in larger.nearest and "10 tokens/param" in larger.nearest
    assert larger.copy_share_cells == "small 1000 tokens/param (50M tokens)"
    assert copy.share_of_control == pytest.approx(0.7) and copy.gap_fixed == pytest.approx(0.7 * 0.2)
    assert copy.gap_control == pytest.approx(1.14 / 1.2 - 1)
    assert not copy.head_start_worn and copy.equal_flops_estimated
    assert copy.gap_equal_flops == pytest.approx(1.14 / 1.05 - 1) and copy.beats_equal_flops is False
    assert larger.schedule(4) == "4@0" and "read off the cells nearest your 50M tokens" in str(larger)
    # Between two cells' tokens, the share is interpolated on log tokens (5M and 50M: halfway at 15.8M).
    between = advise(1_581_139, 257, tokens=1_581_139 * 10, growth_map=TOKENS_MAP)
    assert between.outlooks[1].share_of_control == pytest.approx(0.45, abs=1e-6)
    assert between.copy_share_cells == "medium 10 tokens/param (5M tokens) and small 1000 tokens/param (50M tokens)"
    # 0 -> L keeps its horizon reading.
    assert larger.outlooks[0].gap_fixed == pytest.approx(0.1) and between.outlooks[0].gap_fixed == pytest.approx(0.1)


def test_0_to_l_is_read_by_tokens_only_when_asked():
    # TOKENS_MAP with 0 -> L ending 0.3 (small, 0.5M tokens), 0.6 (small, 50M) and 0.4 (medium, 5M) of the way to
    # the control (20% above fixed).
    cells = [dict(c) for c in TOKENS_MAP["cells"]]
    for c, share in zip(cells, (0.3, 0.6, 0.4)):
        c.update(zero_share_of_control=share, zero_gap_fixed=share * 0.2, zero_gap_control=(1 + share * 0.2) / 1.2 - 1)
    growth_map = {"cells": cells}
    # A medium-sized model at 10 tokens/param trains 50M tokens: the horizon reads the medium cell, the tokens the
    # small cell at 1,000.
    by_horizon = advise(5_000_000, 257, tokens=5e7, growth_map=growth_map)
    assert by_horizon.outlooks[0].share_of_control == pytest.approx(0.4)
    assert by_horizon.outlooks[0].gap_fixed == pytest.approx(0.08)
    by_tokens = advise(5_000_000, 257, tokens=5e7, growth_map=growth_map, shares_by_tokens=("zero", "one"))
    zero = by_tokens.outlooks[0]
    assert zero.share_of_control == pytest.approx(0.6) and zero.gap_fixed == pytest.approx(0.12)
    assert zero.gap_control == pytest.approx(1.12 / 1.2 - 1) and zero.equal_flops_estimated
    # Copy is read as by default either way; with no source read by tokens, copy keeps the medium cell's share.
    assert by_tokens.outlooks[1].share_of_control == by_horizon.outlooks[1].share_of_control == pytest.approx(0.7)
    assert by_tokens.copy_share_cells == by_horizon.copy_share_cells == "small 1000 tokens/param (50M tokens)"
    neither = advise(5_000_000, 257, tokens=5e7, growth_map=growth_map, shares_by_tokens=())
    assert neither.outlooks[1].share_of_control == pytest.approx(0.2) and neither.copy_share_cells is None
    with pytest.raises(ValueError, match=r"unknown source\(s\) \['two'\]; valid: \['one', 'zero'\]"):
        advise(5_000_000, 257, tokens=5e7, growth_map=growth_map, shares_by_tokens=("two",))


def test_1_to_l_copy_is_left_out_of_the_verdict_only_beyond_the_most_tokens_its_vocabulary_measured():
    # 100M tokens is twice the 50M of the small cell at 1,000: still read; 101M is more.
    assert not advise(10_000_000, 257, tokens=100e6, growth_map=TOKENS_MAP).outlooks[1].head_start_worn
    beyond = advise(10_000_000, 257, tokens=101e6, growth_map=TOKENS_MAP)
    assert beyond.outlooks[1].head_start_worn and beyond.outlooks[1].share_of_control == pytest.approx(0.7)
    assert "trained at most 50M tokens, your run 101M" in str(beyond)
