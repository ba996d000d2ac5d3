"""The benchmark scripts run end to end (tiny settings; the real measurements are in README's Results)."""

import json
import sys

import pytest
import torch
import transformers
from conftest import REPO_ROOT, needs_shared, outputs, run_command, run_side_by_side

pytestmark = [
    pytest.mark.slow,
    needs_shared,
]


def run(script, *arguments, cwd):
    return run_command([sys.executable, str(REPO_ROOT / "benchmarks" / script), *arguments], cwd).stdout


def test_reproduction_writes_table_json_and_plot(tmp_path):
    stdout = run(
        "reproduce.py",
        "--steps",
        "20",
        "--context",
        "32",
        "--only",
        "fixed",
        "0→6 random",
        "--output",
        str(tmp_path),
        cwd=tmp_path,
    )
    tag = "full-adamw_torch-20-ctx32"
    results = json.loads((tmp_path / f"{tag}.json").read_text())
    names = [(r["spec"]["name"], r["spec"]["scheduler"]) for r in results]
    assert names == [
        ("fixed", "warmup_stable_decay"),
        ("0→6 random", "warmup_stable_decay"),
        ("fixed", "cosine"),
        ("0→6 random", "cosine"),
    ]
    progressive = results[1]
    assert progressive["growth"][0]["step"] == 16 and progressive["ratios"]["non_embedding"] == pytest.approx(
        0.2, abs=0.001
    )
    assert (tmp_path / f"{tag}.png").stat().st_size > 10_000
    assert "| 0→6 random (WSD) |" in stdout and "| fixed (cosine) |" in stdout

    # Another seed's runs, merged with these: seeds are averaged, nothing is trained again.
    other = [
        dict(r, settings=dict(r["settings"], seed=1), final_eval_loss=r["final_eval_loss"] + 0.02) for r in results
    ]
    (tmp_path / "seed1.json").write_text(json.dumps(other))
    inputs = [str(tmp_path / f"{tag}.json"), str(tmp_path / "seed1.json")]
    settings = ["--steps", "20", "--context", "32", "--output", str(tmp_path)]
    merged = run("reproduce.py", *settings, "--merge", *inputs, cwd=tmp_path)
    fixed = results[0]["final_eval_loss"]
    assert f"| fixed (WSD) | {fixed + 0.01:.4f} ± 0.010 |" in merged
    assert (tmp_path / f"merged-{tag}.md").exists()


def test_calibration_prints_a_growth_step(tmp_path):
    stdout = run(
        "calibrate_growth.py",
        "--calibration_steps",
        "60",
        "--steps",
        "1000",
        "--source_depth",
        "1",
        "--init",
        "copy",
        "--tolerance",
        "0.5",
        "--context",
        "32",
        "--evaluations",
        "6",
        cwd=tmp_path,
    )
    assert "t_mix = " in stdout and "--depth_schedule 1@0,6@" in stdout


def test_calibration_advises_a_planned_run_from_the_map_without_training(tmp_path):
    from transformers import GPT2Config

    from hf_progressive import advise_run

    # The default width (128) is not a multiple of GPT-2's default 12 heads: the advice picked a head count of its
    # own after this crashed in transformers' attention constructor.
    stdout = run("calibrate_growth.py", "--advise", "--vocab", "2048", "--depth", "4", "--steps", "3874", cwd=tmp_path)
    config = GPT2Config(n_embd=128, n_head=2, vocab_size=2048, n_positions=64)
    advice = advise_run(config, 4, 3874 * 32 * 64, 64)
    assert stdout.startswith(str(advice)) and f"recommended: --depth_schedule {advice.schedule(4)}" in stdout
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "calibrate_growth.py"), "--advise", "--heads", "3"]
    refused = run_command(command, tmp_path, expect_rc=2)
    assert "--width 128 is not divisible by --heads 3" in refused.stderr


def test_growth_map_runs_skips_what_exists_and_reports(tmp_path):
    results = tmp_path / "map"
    unfinished = tmp_path / "unfinished"
    arguments = ["--vocabs", "257", "--horizons", "1", "--corpus_bytes", "300000", "--results", str(results)]
    arguments += ["--checkpoints", str(unfinished)]
    # Two workers share the queue, as the map's workers do: each run is trained once, by one of them.
    worker = [sys.executable, str(REPO_ROOT / "benchmarks" / "horizon.py"), *arguments]
    first = "".join(outputs(run_side_by_side([worker, worker], cwd=tmp_path)))
    runs = {p.stem.split("-")[3]: json.loads(p.read_text()) for p in results.glob("*.json")}
    assert set(runs) == {"fixed", "zero", "one", "control", "equal_zero", "equal_one"}
    full = runs["fixed"]["full_steps"]
    # 0.8T at depth 0 (1) plus 0.2T at depth 4: the equal-FLOPs runs train as many steps as those FLOPs buy.
    assert runs["control"]["settings"]["steps"] == full - round(0.8 * full)
    assert runs["equal_zero"]["settings"]["steps"] == round(full * runs["zero"]["ratios"]["forward_flops"])
    assert runs["equal_one"]["settings"]["steps"] == round(full * runs["one"]["ratios"]["forward_flops"])
    assert runs["one"]["growth"][0]["init"] == "copy" and runs["zero"]["growth"][0]["from_depth"] == 0
    assert all(set(r["final_losses"]) == {"validation", "train"} for r in runs.values())
    # Each run says what trained it (runs are deterministic on one machine and library set only).
    environment = runs["fixed"]["environment"]
    assert environment["torch"] == torch.__version__ and environment["transformers"] == transformers.__version__
    assert environment["cpu"]
    assert first.count("steps, val") == 6
    # While a run trains, its worker's log shows where it stands: a line per evaluation, with the depth and the time to
    # growth, then the time left.
    (zero,) = (path.stem for path in results.glob("*-zero-*.json"))
    progress = [line for line in first.splitlines() if line.startswith(f"{zero}: step ")]
    steps = runs["zero"]["settings"]["steps"]
    assert len(progress) >= 10 and "depth 0" in progress[0] and progress[0].endswith("to growth")
    assert progress[-1].startswith(f"{zero}: step {steps}/{steps} (100%), depth 4, val ")
    assert progress[-1].endswith("left")
    assert not [line for line in progress if "~?" in line]  # the line after growth paces the deep steps before it
    assert runs["fixed"]["resumed_from_step"] is None
    assert unfinished.is_dir() and not list(unfinished.iterdir())  # each run's checkpoints go once its JSON is written

    # Interleaved step times of the three phases feed the report's time ratios instead of the runs' own seconds
    # (timed alone: nothing else runs beside it).
    timing = ["--timing", "--timed_steps", "3", "--rounds", "1"]
    timed = run("horizon.py", *arguments, *timing, cwd=tmp_path)
    assert "steps, val" not in timed and "time ratio 0->L" in timed
    record = json.loads((results / "timing" / "small-v257-muon_nsgd-row.json").read_text())
    assert record["timed_steps"] == {"fixed": 4, "zero": 3, "one": 3}
    ms = record["ms_per_step"]
    assert 0 < ms["zero"] < ms["fixed"]  # no block runs in the 0-block phase: less work per step, whatever the noise
    assert record["time_ratio"]["zero"] == pytest.approx(0.8 * ms["zero"] / ms["fixed"] + 0.2)
    assert record["time_ratio"]["one"] == pytest.approx(0.8 * ms["one"] / ms["fixed"] + 0.2)

    # Then, side by side: the same map again (every run exists: nothing is trained again); a fixed-depth run of
    # another optimizer setting alone (a learning-rate sweep), which goes to a table of its own; a cell on another
    # corpus (its own tokenizer and losses), reported apart from the map; and the same tokens at another batch (more,
    # smaller steps): a cell of its own, beside the map, not in it.
    again, _, _, _ = outputs(
        run_side_by_side(
            [
                worker,
                [*worker, "--kinds", "fixed", "--optim", "adamw_torch", "--lr", "0.004"],
                [*worker, "--kinds", "fixed", "zero", "--corpus", "stdlib_torch"],
                [*worker, "--kinds", "fixed", "control", "one", "--batch", "8"],
            ],
            cwd=tmp_path,
        )
    )
    assert "steps, val" not in again
    swept = json.loads((results / "small-v257-h1-fixed-adamw_torch-lr0.004-s0.json").read_text())
    other_corpus = {
        kind: json.loads((results / f"small-v257-h1-{kind}-muon_nsgd-row-lr0.02-stdlib_torch-s0.json").read_text())
        for kind in ("fixed", "zero")
    }
    assert other_corpus["fixed"]["train_tokens_available"] > runs["fixed"]["train_tokens_available"]
    at_batch_8 = {
        kind: json.loads((results / f"small-v257-h1-{kind}-muon_nsgd-row-lr0.02-b8-s0.json").read_text())
        for kind in ("fixed", "control", "one")
    }
    steps_8 = at_batch_8["fixed"]["full_steps"]
    assert at_batch_8["fixed"]["settings"]["batch"] == 8 and at_batch_8["fixed"]["tokens"] == steps_8 * 8 * 64
    assert steps_8 > runs["fixed"]["full_steps"]  # (both at least 50 steps: not 4 times as many at this horizon)

    readme = tmp_path / "README.md"
    readme.write_text(
        "x\n<!-- horizon:map -->\nold\n<!-- /horizon:map -->\n<!-- horizon:other -->\n"
        "<!-- /horizon:other -->\n<!-- horizon:sweep -->\n<!-- /horizon:sweep -->\n"
        "<!-- horizon:levers -->\n<!-- /horizon:levers -->\n<!-- horizon:trends -->\n<!-- /horizon:trends -->\n"
        "<!-- horizon:corpora -->\n<!-- /horizon:corpora -->\n<!-- horizon:shares -->\n<!-- /horizon:shares -->\n"
        "<!-- horizon:estimate -->\n<!-- /horizon:estimate -->\n<!-- horizon:advice_check -->\n"
        "<!-- /horizon:advice_check -->\n<!-- horizon:share_reading -->\n<!-- /horizon:share_reading -->\n"
        "<!-- horizon:steps -->\n<!-- /horizon:steps -->\ny\n"
    )
    run(
        "horizon.py",
        "--report",
        "--results",
        str(results),
        "--curves",
        "small:257:1",
        "small:257:1:stdlib_torch",
        "--readme",
        str(readme),
        cwd=tmp_path,
    )
    text = readme.read_text()
    fixed = runs["fixed"]["final_losses"]["validation"]
    gap = runs["zero"]["final_losses"]["validation"] / fixed - 1
    passes = runs["fixed"]["epochs"]  # how often the fixed run read the training split
    assert "old" not in text and f"| small | 257 | 1 | Muon-NSGD row 0.02 | {full} | {passes:.1f} |" in text
    assert f"{gap:+.1%}" in text and text.startswith("x\n") and text.endswith("y\n")
    sweep = text.split("<!-- horizon:sweep -->")[1].split("<!-- /horizon:sweep -->")[0]
    versus = swept["final_losses"]["validation"] / fixed - 1
    assert f"| small | 257 | 1 | adamw 0.004 | {swept['final_losses']['validation']:.3f}" in sweep
    assert f"{versus:+.1%} |" in sweep
    other = text.split("<!-- horizon:other -->")[1].split("<!-- /horizon:other -->")[0]
    assert "adamw" not in other  # no growth run at that setting: it is not a row of the optimizer comparison
    trends = text.split("<!-- horizon:trends -->")[1].split("<!-- /horizon:trends -->")[0]
    assert "| size | vocab | source |" in trends  # the table's head: one horizon here, so no fitted row
    ratios = record["time_ratio"]
    assert f"| {ratios['zero']:.2f} / {ratios['one']:.2f} | 1 |" in text  # measured: no "~"
    corpora = text.split("<!-- horizon:corpora -->")[1].split("<!-- /horizon:corpora -->")[0]
    fixed_there = other_corpus["fixed"]["final_losses"]["validation"]
    gap_there = other_corpus["zero"]["final_losses"]["validation"] / fixed_there - 1
    assert "Corpus `stdlib_torch`" in corpora and f"| {fixed_there:.3f} (" in corpora and f"{gap_there:+.1%}" in corpora
    shares = text.split("<!-- horizon:shares -->")[1].split("<!-- /horizon:shares -->")[0]
    control_gap = runs["control"]["final_losses"]["validation"] / fixed - 1
    assert control_gap > 0  # a fifth of the steps: the control ends above the fixed run, so there is a share to show
    share = f"{gap / control_gap:.2f} / {(runs['one']['final_losses']['validation'] / fixed - 1) / control_gap:.2f}"
    assert f"| stdlib | small | 257 | {share} ({control_gap:+.1%}) |" in shares
    steps = text.split("<!-- horizon:steps -->")[1].split("<!-- /horizon:steps -->")[0]
    losses_8 = {kind: r["final_losses"]["validation"] for kind, r in at_batch_8.items()}
    share_8 = (losses_8["one"] / losses_8["fixed"] - 1) / (losses_8["control"] / losses_8["fixed"] - 1)
    assert f"| bytes 257 | {at_batch_8['fixed']['full_steps']:,} | 8 |" in steps and f"| — | {share_8:.2f} |" in steps
    the_map = text.split("<!-- horizon:map -->")[1].split("<!-- /horizon:map -->")[0]
    assert the_map.count("| small | 257 | 1 |") == 1  # the other corpus's cell is not a second row of the map
    growth_map = json.loads((results / "growth_map.json").read_text())
    # One entry per cell: the other corpus read its data fewer times, but it has no 1 -> L, control or equal-FLOPs
    # run, so the package's advice keeps the standard library's complete measurement.
    assert other_corpus["fixed"]["epochs"] < passes and len(growth_map["cells"]) == 1
    (entry,) = growth_map["cells"]
    assert entry["zero_gap_fixed"] == pytest.approx(gap) and entry["corpus"] == "stdlib"
    assert entry["passes"] == pytest.approx(passes, abs=0.01)
    # Its two equal-FLOPs runs, each predicted from the cell's other fixed runs: the check the advice quotes.
    assert growth_map["estimate_check"]["257"]["runs"] == 2
    estimate = text.split("<!-- horizon:estimate -->")[1].split("<!-- /horizon:estimate -->")[0]
    assert "| 257 | 2 |" in estimate
    readings = text.split("<!-- horizon:share_reading -->")[1].split("<!-- /horizon:share_reading -->")[0]
    assert "| source | share read by |" in readings  # a one-cell map leaves no cell to predict from the others
    for figure in ("gaps.png", "curves-small-v257-h1.png", "pareto-small-v257-h1.png", "shares-by-tokens.png"):
        assert (results / figure).stat().st_size > 10_000
    # The other corpus gets its own gap figure, and its cell's curves when asked for (the corpus in the name).
    for figure in (
        "gaps-stdlib_torch.png",
        "curves-small-v257-h1-stdlib_torch.png",
        "pareto-small-v257-h1-stdlib_torch.png",
    ):
        assert (results / figure).stat().st_size > 10_000


def test_step_time_against_the_stock_trainer_in_one_process(tmp_path):
    arguments = ["--processes", "1", "--steps", "10", "--rounds", "1", "--width", "32", "--output", str(tmp_path)]
    stdout = run("ddp_overhead.py", *arguments, cwd=tmp_path)
    assert "1 process(es) on CPU, no DDP" in stdout
    rows = json.loads((tmp_path / "ddp-overhead-1proc-w32.json").read_text())["rows"]
    assert [row["phase"] for row in rows] == ["deep: 6 blocks, grown", "shallow: 0 blocks, 6 reserved"]
    assert all(row["stock_ms"] > 0 and row["progressive_ms"] > 0 for row in rows)


@pytest.mark.parametrize("hook", ["ddp", "noop"])
def test_step_time_under_ddp_without_our_communication_hook(tmp_path, hook):
    arguments = ["--steps", "10", "--rounds", "1", "--width", "32", "--phases", "shallow", "--comm_hook", hook]
    stdout = run("ddp_overhead.py", *arguments, "--output", str(tmp_path), cwd=tmp_path)
    assert "2 process(es) on CPU (DDP)" in stdout and f"DDP communication hook: {hook}" in stdout
    rows = json.loads((tmp_path / f"ddp-overhead-2proc-w32-hook_{hook}.json").read_text())["rows"]
    assert [row["phase"] for row in rows] == ["shallow: 0 blocks, 6 reserved"]
    assert all(row["stock_ms"] > 0 and row["progressive_ms"] > 0 for row in rows)
