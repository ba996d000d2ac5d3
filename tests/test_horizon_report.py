"""The growth map's report (benchmarks/horizon_report.py, run as horizon.py --report): trend fits, seeds, tables,
the cells the package's advice reads and the cells a figure reads."""

import math
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import horizon  # noqa: E402  (scripts beside the package, importable once their folder is on the path)
import horizon_checks  # noqa: E402
import horizon_figures  # noqa: E402
import horizon_report  # noqa: E402


def test_both_extrapolations_pass_through_the_measured_points_and_bracket_the_crossing():
    h1, gap1, h2, gap2 = 300.0, 0.093, 1000.0, 0.042
    reached = horizon_report.crossing(h1, gap1, h2, gap2, target=0.01)
    # Log-linear: the gap falls by (gap1 - gap2) per factor h2/h1, so 1% lies (0.042 - 0.01) / 0.051 of that
    # factor beyond h2 (~2,130 tokens/param).
    assert reached["log_linear"] == pytest.approx(1000 * (1000 / 300) ** ((0.042 - 0.01) / (0.093 - 0.042)))
    # Power law through both points, evaluated at its crossing, gives the target back.
    exponent = math.log(gap1 / gap2) / math.log(h2 / h1)
    assert gap2 * (reached["power_law"] / h2) ** -exponent == pytest.approx(0.01)
    assert h2 < reached["log_linear"] < reached["power_law"]  # the straight line in log x is the optimistic one


def test_a_gap_that_does_not_shrink_never_reaches_the_target_and_one_already_below_it_is_reached():
    assert horizon_report.crossing(30, 0.023, 100, 0.026, 0.01) == {"log_linear": None, "power_law": None}
    assert horizon_report.crossing(30, 0.02, 100, 0.004, 0.005) == {"log_linear": 100, "power_law": 100}
    # A positive gap has a power law; one already negative (the progressive run ahead) has only the line.
    assert horizon_report.crossing(30, 0.02, 100, 0.008, 0.005)["power_law"] is not None
    assert horizon_report.crossing(30, 0.02, 100, -0.001, -0.002)["power_law"] is None


def test_trends_use_the_two_longest_horizons_of_each_size_vocabulary_and_source():
    def row(horizon_, zero, one, size="small", vocab=257):
        return {
            "size": size,
            "vocab": vocab,
            "horizon": horizon_,
            "zero_gap_fixed": zero,
            "zero_flops_ratio": 0.3,
            "one_gap_fixed": one,
            "one_flops_ratio": 0.47,
        }

    rows = [row(10, 0.30, 0.05), row(1000, 0.042, 0.06), row(300, 0.093, 0.08), row(10, 0.1, 0.02, vocab=8192)]
    fitted = horizon_report.trends(rows)
    assert [(f["vocab"], f["source"]) for f in fitted] == [(257, "zero"), (257, "one")]  # 8192: one horizon only
    zero, one = fitted
    assert zero["points"] == [(300, 0.093), (1000, 0.042)]
    exponent = math.log(0.08 / 0.06) / math.log(1000 / 300)
    assert one["crossings"][0.01] == {
        "log_linear": pytest.approx(1000 * (1000 / 300) ** (0.05 / 0.02)),
        "power_law": pytest.approx(1000 * 6 ** (1 / exponent)),
    }
    text = horizon_report.trends_table(fitted)
    assert "| small | 257 | 0→L random | +9.3% at 300, +4.2% at 1000 | 2,100 / " in text
    assert text.count("| 70% |") == 1 and text.count("| 53% |") == 1


def test_the_package_map_takes_each_cell_from_its_least_repeated_complete_measurement():
    def row(corpus, epochs, vocab=8192, horizon_=300.0, equal=0.03, zero=0.036):
        fields = {name: 0.1 for name in horizon_report.ADVICE_FIELDS}
        fields.update(size="small", vocab=vocab, horizon=horizon_, corpus=corpus, epochs=epochs)
        fields.update(zero_gap_fixed=zero, zero_gap_equal=equal)
        return fields

    data_limited, larger = row("stdlib", 6.0, zero=0.029), row("stdlib_torch", 1.2)
    partial = row("stdlib_torch", 0.4, vocab=257, equal=None)  # no equal-FLOPs run yet
    complete = row("stdlib", 1.5, vocab=257)
    no_growth = row("stdlib_torch", 0.1, horizon_=10.0, zero=None)  # a fixed-depth run alone is no cell
    chosen = horizon_report.advice_cells([data_limited, complete, no_growth, larger, partial])
    assert chosen == [complete, larger]  # sorted by (size, vocab, horizon); the one with fewer passes wins
    # A cell still running stays out even where it is the only measurement: at the map's edge it would be the nearest
    # end for every run beyond it and hide what it has not measured.
    assert horizon_report.advice_cells([partial, data_limited]) == [data_limited]
    # Equally complete and equally repeated: the first one listed stays (the standard library's, in report()).
    assert horizon_report.advice_cells([data_limited, row("stdlib_torch", 6.0)]) == [data_limited]


def power_law_cell(vocab, shares, one_equal_offset=0.0, exponent=0.1):
    """A map entry whose fixed runs follow loss = share ** -exponent (a straight line on log-log axes), 0 -> L and
    1 -> L copy ending 5% and 3% above the full run; ``one_equal_offset`` moves 1 -> L's equal-FLOPs run off it."""

    def fixed(share):
        return share**-exponent

    entry = {"size": "small", "vocab": vocab, "horizon": 100.0}
    for source, gap, share in (("zero", 0.05, shares[0]), ("one", 0.03, shares[1])):
        equal = fixed(share) * (1 + (one_equal_offset if source == "one" else 0))
        entry.update(
            {
                f"{source}_gap_fixed": gap,
                f"{source}_flops_ratio": share,
                f"{source}_gap_equal": (1 + gap) / equal - 1,
                f"{source}_gap_control": (1 + gap) / fixed(0.2) - 1,
            }
        )
    return entry


def test_the_equal_flops_estimate_is_checked_by_leaving_each_equal_flops_run_out():
    # On a power law every run is predicted exactly from the others.
    exact = horizon_checks.estimate_check([power_law_cell(257, (0.3, 0.45)), power_law_cell(8192, (0.85, 0.9))])
    assert len(exact) == 4 and all(abs(c["error"]) < 1e-9 for c in exact)
    # 1 -> L's equal-FLOPs run ended 1% below the line (the curve bends below the chord): the estimate, read off the
    # line, puts the fixed run too high and 1 -> L's gap to it too low, in growth's favour.
    bent = horizon_checks.estimate_check([power_law_cell(257, (0.3, 0.45), one_equal_offset=-0.01)])
    one = next(c for c in bent if c["source"] == "one")
    assert one["estimate"] == pytest.approx(1.03 / 0.45**-0.1 - 1) and one["error"] < 0
    summary = horizon_checks.estimate_summary(bent)
    assert summary[257]["runs"] == 2 and summary[257]["favoured_growth"] >= 1
    assert summary[257]["max_abs_error"] == pytest.approx(max(abs(c["error"]) for c in bent), abs=1e-5)
    table = horizon_checks.estimate_table(summary)
    assert "| 257 | 2 |" in table and "1→L copy at 45% of the FLOPs" in table


def test_a_seed_with_only_its_fixed_run_waits_out_of_the_average_until_a_growing_run_joins_it():
    def row(seed, fixed, zero=None):
        gap = None if zero is None else zero / fixed - 1
        return {
            "size": "small",
            "vocab": 8192,
            "horizon": 300.0,
            "optim": "muon_nsgd",
            "lr": 0.02,
            "nsgd_norm": "row",
            "corpus": "stdlib_torch",
            "seed": seed,
            "fixed": fixed,
            "zero_gap_fixed": gap,
            "one_gap_fixed": None,
        }

    (merged,) = horizon_report.averaged([row(0, 3.870, zero=4.011), row(1, 3.875)])
    assert merged["seeds"] == 1 and merged["fixed"] == pytest.approx(3.870)
    (merged,) = horizon_report.averaged([row(0, 3.870, zero=4.011), row(1, 3.875, zero=4.010)])
    assert merged["seeds"] == 2 and merged["fixed"] == pytest.approx(3.8725)
    assert merged["zero_gap_spread"] == pytest.approx(4.011 / 3.870 - 4.010 / 3.875)
    # A learning-rate sweep (fixed-depth runs only) keeps every seed.
    assert horizon_report.averaged([row(0, 3.9), row(1, 4.0)])[0]["seeds"] == 2


def test_a_source_measured_on_fewer_seeds_than_its_cell_says_so_in_the_seeds_column():
    def row(seed, zero, one):
        return {
            "size": "small",
            "vocab": 32768,
            "horizon": 100.0,
            "optim": "muon_nsgd",
            "lr": 0.02,
            "nsgd_norm": "row",
            "corpus": "stdlib_torch",
            "seed": seed,
            "fixed": 4.2,
            "zero_gap_fixed": zero,
            "one_gap_fixed": one,
        }

    (merged,) = horizon_report.averaged([row(0, 0.05, 0.028), row(1, 0.04, None)])  # seed 1's 1 -> L runs not trained
    assert (merged["seeds"], merged["zero_seeds"], merged["one_seeds"]) == (2, 2, 1)
    assert merged["one_gap_fixed"] == pytest.approx(0.028) and merged["one_gap_spread"] == 0.0
    assert horizon_report.seed_count(merged) == "2 (1→L copy: 1)"
    (complete,) = horizon_report.averaged([row(0, 0.05, 0.028), row(1, 0.04, 0.03)])
    assert horizon_report.seed_count(complete) == "2"
    # Seed 1 trained its fixed run, 0 -> L and the control only: 0 -> L's equal-FLOPs gap is seed 0's.
    full = {**row(0, 0.05, 0.028), "control": 4.4, "zero_gap_equal": 0.02, "one_gap_equal": -0.01}
    (partial,) = horizon_report.averaged([full, {**row(1, 0.04, None), "control": 4.45}])
    assert partial["zero_gap_equal"] == pytest.approx(0.02) and partial["zero_gap_fixed"] == pytest.approx(0.045)
    assert horizon_report.seed_count(partial) == "2 (0→L random equal FLOPs: 1; 1→L copy: 1)"
    (no_control,) = horizon_report.averaged([full, {**row(1, 0.04, 0.03), "control": None, "zero_gap_equal": 0.01}])
    assert horizon_report.seed_count(no_control) == "2 (1→L copy equal FLOPs: 1; control: 1)"


def test_each_seed_of_a_lever_is_its_own_row_measured_against_its_own_seeds_runs():
    def run(kind, seed, validation, lever="none"):
        job = dict(size="small", vocab=8192, horizon=30.0, optim="muon_nsgd", lr=0.02, nsgd_norm="row", seed=seed)
        job.update(kind=kind, lever=lever, tau=horizon.TAU, corpus="stdlib_torch")
        return {
            "job": job,
            "final_losses": {"validation": validation, "train": validation - 0.1},
            "ratios": {"forward_flops": 0.4},
        }

    runs = [run("fixed", 0, 4.0), run("one", 0, 4.1), run("one", 0, 4.04, "residual_0")]
    runs += [run("fixed", 1, 5.0), run("one", 1, 5.2), run("one", 1, 5.1, "residual_0")]
    text = horizon_report.variants_table({str(number): r for number, r in enumerate(runs)})
    rows = [line for line in text.splitlines() if "residual_0" in line]
    assert len(rows) == 2  # the plain runs of the recipe are the map's, not rows here
    assert rows[0].startswith(
        "| small v8192 h30 stdlib_torch | one | residual_0 | 0.8 | 4.0400 (3.9400) | +1.0% | +2.5% |"
    )
    assert rows[1].startswith(
        "| small v8192 h30 stdlib_torch s1 | one | residual_0 | 0.8 | 5.1000 (5.0000) | +2.0% | +4.0% |"
    )


def test_a_curves_cell_names_its_corpus_and_bad_specs_say_what_is_valid():
    assert horizon.parse_cell("small:8192:30") == ("small", 8192, 30.0, 0, horizon.DEFAULT_CORPUS)
    cell = horizon.parse_cell("medium:8192:100:stdlib_torch")
    assert cell == ("medium", 8192, 100.0, 0, "stdlib_torch")
    assert horizon_figures.cell_figure_name("curves", cell) == "curves-medium-v8192-h100-stdlib_torch.png"
    pareto = horizon_figures.cell_figure_name("pareto", horizon.parse_cell("small:257:100"))
    assert pareto == "pareto-small-v257-h100.png"
    for bad in ("huge:8192:30", "small:8k:30", "small:8192", "small:8192:30:wikipedia", "small:8192:30:stdlib:x"):
        with pytest.raises(ValueError, match=r"size:vocab:horizon\[:corpus\].*stdlib_torch"):
            horizon.parse_cell(bad)


def test_a_cells_figures_read_only_its_own_corpus_optimizer_and_recipe():
    def run(kind, corpus="stdlib_torch", optim="muon_nsgd", lever="none"):
        job = dict(size="medium", vocab=8192, horizon=100.0, optim=optim, lr=0.02, nsgd_norm="row", seed=0)
        job.update(kind=kind, lever=lever, tau=horizon.TAU, corpus=corpus)
        return {"job": job}

    mine = [run("fixed"), run("zero"), run("one")]
    others = [run("fixed", corpus="stdlib"), run("fixed", optim="adamw_torch"), run("one", lever="residual_0")]
    runs = {str(number): r for number, r in enumerate(others + mine)}
    assert horizon.cell_runs(runs, horizon.parse_cell("medium:8192:100:stdlib_torch")) == mine
    assert horizon.cell_runs(runs, horizon.parse_cell("medium:8192:100")) == [others[0]]


def test_each_sources_gap_is_read_as_a_share_of_the_controls_averaged_over_seeds():
    def run(kind, seed, validation, horizon_=100.0):
        job = dict(size="small", vocab=8192, horizon=horizon_, optim="muon_nsgd", lr=0.02, nsgd_norm="row", seed=seed)
        job.update(kind=kind, lever="none", tau=horizon.TAU, corpus="stdlib_torch")
        return {
            "job": job,
            "final_losses": {"validation": validation, "train": validation - 0.1},
            "ratios": {"forward_flops": 0.8, "non_embedding": 0.3},
            "full_steps": 1000,
            "embedding_parameters": 300,
            "non_embedding_parameters": 100,
            "epochs": 0.5,
            "train_seconds": 10.0,
        }

    # Seed 0: 0 -> L ends half way from fixed to the control, 1 -> L copy a tenth of the way; seed 1: 0.6 and 0.2.
    runs = [run("fixed", 0, 4.0), run("control", 0, 4.4), run("zero", 0, 4.2), run("one", 0, 4.04)]
    runs += [run("fixed", 1, 4.0), run("control", 1, 4.2), run("zero", 1, 4.12), run("one", 1, 4.04)]
    # At 300 the control ends level with fixed (no deficit to share) and 1 -> L copy has not run; at 1,000 no control.
    runs += [run("fixed", 0, 3.5, 300.0), run("control", 0, 3.5, 300.0), run("zero", 0, 3.6, 300.0)]
    runs += [run("fixed", 0, 3.4, 1000.0), run("zero", 0, 3.5, 1000.0)]
    rows = horizon_report.cells({str(number): r for number, r in enumerate(runs)})
    assert [r.get("zero_share_of_control") for r in rows] == [pytest.approx(0.5), pytest.approx(0.6), None, None]
    assert rows[0]["one_share_of_control"] == pytest.approx(0.1)
    text = horizon_report.shares_table(horizon_report.averaged(rows))
    header, _, line = text.splitlines()  # neither 300 nor 1,000 has a share to show: no column of their own
    assert header == "| corpus | size | vocab | 100 tokens/param |"
    assert line == "| stdlib_torch | small | 8192 | 0.55 / 0.15 (+7.5%) |"
    seed_1_copy_missing = [r for r in rows if not (r["seed"] == 1 and r["horizon"] == 100.0)]
    seed_1_copy_missing.append({**rows[1], "one_share_of_control": None})
    text = horizon_report.shares_table(horizon_report.averaged(seed_1_copy_missing))
    assert text.splitlines()[2] == "| stdlib_torch | small | 8192 | 0.55 / 0.10 (+7.5%) |"  # each source's own seeds


def test_the_large_size_puts_growth_in_gpt2_124ms_regime():
    # With a 2,048-token vocabulary the large model's embedding and FLOPs shares match GPT-2 124M's (31% of the
    # parameters; growth from 0 blocks at 43% of the FLOPs): the cell that tests what gpt2_outlook.py reads off
    # the small cells.
    fixed = horizon.Job("large", 2048, 10, "fixed")
    config = fixed.config()
    embedding = config.vocab_size * config.n_embd
    assert 0.2 < embedding / (embedding + horizon.flops.non_embedding_parameters(config, 4)) < 0.35
    for kind, low, high in (("equal_zero", 0.35, 0.45), ("equal_one", 0.5, 0.6)):
        assert low < horizon.Job("large", 2048, 10, kind).steps / fixed.steps < high


def test_the_advice_is_checked_by_predicting_each_cell_from_the_others():
    def entry(horizon_, zero_fixed, zero_equal):
        cell = power_law_cell(8192, (0.8, 0.9))
        cell.update(horizon=horizon_, non_embedding_parameters=50_000, width=32, depth=4, zero_gap_fixed=zero_fixed)
        cell.update(zero_gap_equal=zero_equal)
        return cell

    entries = [entry(10, 0.12, 0.10), entry(100, 0.06, 0.05), entry(1000, 0.02, -0.01)]
    rows = horizon_checks.advice_check(entries)
    middle = next(r for r in rows if r["horizon"] == 100 and r["source"] == "zero")
    # Left out, the 100 cell is read halfway (log scale) between 10 and 1,000: 0.07 predicted, 0.06 measured.
    assert middle["inside"] and middle["fixed"] == pytest.approx((0.07, 0.06))
    last = next(r for r in rows if r["horizon"] == 1000 and r["source"] == "zero")
    assert not last["inside"] and last["fixed"] == pytest.approx((0.06, 0.02))  # the nearest cell, as it is
    # The 1,000 cell's growth beat its equal-FLOPs run; the advice, reading the 100 cell, said it would not.
    assert last["equal"][1] < 0 < last["equal"][0]
    table = horizon_checks.advice_check_table(rows)
    # Both ends are left out beyond the others: errors 6 and 4 points, one verdict of two right.
    assert "| 0→L random | 2 | outside them (nearest cells) | 5.00% |" in table
    assert "| 0→L random | 1 | inside the others (interpolated) | 1.00% |" in table


def test_another_batch_is_a_cell_of_its_own_beside_the_map_not_in_it():
    # The same tokens in four times the steps, and a name of its own (the map's runs keep theirs).
    plain, small_batch = horizon.Job("medium", 2048, 10, "fixed"), horizon.Job("medium", 2048, 10, "fixed", batch=8)
    assert small_batch.steps == pytest.approx(4 * plain.steps, abs=2)
    assert plain.name == "medium-v2048-h10-fixed-muon_nsgd-row-lr0.02-s0"
    assert small_batch.name == "medium-v2048-h10-fixed-muon_nsgd-row-lr0.02-b8-s0"
    assert small_batch.settings(small_batch.steps, evaluations=0).batch == 8

    def run(kind, validation, batch=None, steps=1000):
        job = dict(size="medium", vocab=2048, horizon=10.0, optim="muon_nsgd", lr=0.02, nsgd_norm="row", seed=0)
        job.update(kind=kind, lever="none", tau=horizon.TAU, corpus="stdlib_torch")
        if batch is not None:  # runs written before the batch was a choice carry none: the map's
            job["batch"] = batch
        return {
            "job": job,
            "final_losses": {"validation": validation, "train": validation - 0.1},
            "ratios": {"forward_flops": 0.5, "non_embedding": 0.3},
            "full_steps": steps,
            "embedding_parameters": 100,
            "non_embedding_parameters": 100,
            "epochs": 0.1,
            "train_seconds": 10.0,
        }

    runs = [run("fixed", 4.0), run("control", 5.0), run("zero", 4.6), run("one", 4.1)]
    runs += [run(k, v, batch=8, steps=4000) for k, v in (("fixed", 3.8), ("control", 4.6), ("zero", 4.2), ("one", 4.2))]
    runs = {str(number): r for number, r in enumerate(runs)}
    (row,) = horizon_report.cells(runs)  # the map: batch 32 only
    assert row["fixed"] == 4.0 and row["one_share_of_control"] == pytest.approx(0.1)
    (other,) = horizon_report.cells(runs, select=horizon_report.at_another_batch)
    assert other["batch"] == 8 and other["one_share_of_control"] == pytest.approx(0.5)
    assert "b8" not in horizon_report.variants_table(runs)  # not a lever either
    text = horizon_report.steps_table(horizon_report.averaged([row, other]))
    lines = text.splitlines()[2:]
    assert lines == [
        "| BPE 2048 | 1,000 | 32 | 2.0M | medium | 10 | stdlib_torch | 0.60 | 0.10 | +25.0% | 1 |",
        "| BPE 2048 | 4,000 | 8 | 2.0M | medium | 10 | stdlib_torch | 0.50 | 0.50 | +21.1% | 1 |",
    ]


def test_the_advice_check_counts_withheld_copy_verdicts_apart():
    def entry(horizon_):
        cell = power_law_cell(8192, (0.8, 0.9))
        cell.update(horizon=horizon_, non_embedding_parameters=50_000, width=32, depth=4)
        return cell

    rows = horizon_checks.advice_check([entry(10), entry(100), entry(1000)])
    # Left out, the 1,000 cell (50M tokens) reads the 100 cell (5M): 1 -> L copy's verdict is withheld, 0 -> L's not.
    assert {(r["horizon"], r["source"]): r["withheld"] for r in rows if r["horizon"] == 1000} == {
        (1000, "zero"): False,
        (1000, "one"): True,
    }
    copy = [
        {"source": "one", "inside": True, "withheld": False, "fixed": (0.02, 0.03), "equal": (-0.01, -0.02)},
        {"source": "one", "inside": True, "withheld": True, "fixed": (0.02, 0.10), "equal": (-0.03, 0.04)},
    ]
    line = horizon_checks.advice_check_table(copy).splitlines()[2]
    assert line == "| 1→L copy | 2 | inside the others (interpolated) | 4.50% | 4.00% | 1 of 1 | 1 of 1 |"


def test_both_readings_of_the_share_are_checked_on_the_map_and_the_advices_own_is_marked():
    def entry(size, parameters, horizon_, share):
        # Both sources end ``share`` of the way to a control 20% above fixed; a fixed run of their 40% of the FLOPs
        # ends 5% above it.
        cell = {"size": size, "vocab": 8192, "horizon": horizon_, "non_embedding_parameters": parameters}
        cell.update(width=32, depth=4)
        for source in ("zero", "one"):
            gap = share * 0.2
            cell.update({f"{source}_gap_fixed": gap, f"{source}_share_of_control": share})
            cell.update({f"{source}_gap_control": (1 + gap) / 1.2 - 1, f"{source}_flops_ratio": 0.4})
            cell[f"{source}_gap_equal"] = (1 + gap) / 1.05 - 1
        return cell

    # The share follows the tokens (0.2 at 0.5M, 0.5 at 5M, 0.8 at 50M), whatever the size.
    entries = [entry("small", 50_000, 10, 0.2), entry("small", 50_000, 1000, 0.8), entry("medium", 500_000, 10, 0.5)]
    rows = horizon_checks.share_reading_check(entries)
    zero = {(r["size"], r["horizon"], r["reading"]): r["share"] for r in rows if r["source"] == "zero"}
    # Left out, medium/10 (5M tokens): the horizon reads small/10 (the size whose horizons cover 10), the tokens
    # read halfway between 0.5M and 50M.
    assert zero["medium", 10, "horizon"] == pytest.approx((0.2, 0.5))
    assert zero["medium", 10, "tokens"] == pytest.approx((0.5, 0.5))
    # Left out, small/1000 (50M): beyond every horizon measured; the horizon reads the small cell, the tokens the
    # cell of most tokens (medium/10, 5M).
    assert zero["small", 1000, "horizon"] == pytest.approx((0.2, 0.8))
    assert zero["small", 1000, "tokens"] == pytest.approx((0.5, 0.8))
    lines = horizon_checks.share_reading_table(rows).splitlines()[2:]
    # Share errors by horizon: 0.3 and 0.6 on the small model's cells, 0.3 on the medium one; by tokens 0.3, 0.3 and
    # 0. The gaps' errors are a fifth of them (the control's gap), over 1.05 against equal FLOPs. Copy's 50M-token
    # cell is read off 5M: its verdict withheld.
    assert lines == [
        "| 0→L random | horizon (the advice) | of the smallest model | 2 | 0.45 | 9.00% | 8.57% | 0 of 2 |",
        "| 0→L random | horizon (the advice) | of larger models | 1 | 0.30 | 6.00% | 5.71% | 0 of 1 |",
        "| 0→L random | tokens | of the smallest model | 2 | 0.30 | 6.00% | 5.71% | 1 of 2 |",
        "| 0→L random | tokens | of larger models | 1 | 0.00 | 0.00% | 0.00% | 1 of 1 |",
        "| 1→L copy | horizon | of the smallest model | 2 | 0.45 | 9.00% | 8.57% | 0 of 1 (1 withheld) |",
        "| 1→L copy | horizon | of larger models | 1 | 0.30 | 6.00% | 5.71% | 0 of 1 |",
        "| 1→L copy | tokens (the advice) | of the smallest model | 2 | 0.30 | 6.00% | 5.71% | 0 of 1 (1 withheld) |",
        "| 1→L copy | tokens (the advice) | of larger models | 1 | 0.00 | 0.00% | 0.00% | 1 of 1 |",
    ]
