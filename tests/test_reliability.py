"""Bad input and faults, tried as a user meets them through ``examples/run_clm_progressive.py``: each one fails
before training, in one line that names the bad value and the fix, and never touches a user's files.

Every case runs the example's real ``main()`` in this process (the errors come before any training step). Run this
file as a script to print README's reliability table from the same cases (and, with --readme, write it there):

    python tests/test_reliability.py --readme README.md
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from conftest import EXAMPLE, load_example, tiny_model  # noqa: E402

QUICK = [
    "--max_steps",
    "10",
    "--per_device_train_batch_size",
    "4",
    "--vocab_size",
    "300",
    "--max_corpus_bytes",
    "50000",
]


def run_example(arguments: list[str]) -> str:
    """Run the example's main() with ``arguments``; return the one-line error it exits with."""
    module = load_example()
    argv = [str(EXAMPLE), *QUICK, *arguments]
    saved, sys.argv = sys.argv, argv
    try:
        module.main()
    except SystemExit as exit_:
        return str(exit_.code)
    finally:
        sys.argv = saved
    raise AssertionError(f"the example trained with {arguments} instead of refusing")


# -- what each case sets up in a fresh folder -------------------------------------------------------------------
def saved_model(folder: Path, **config) -> Path:
    model = tiny_model(2, **config)
    model.save_pretrained(folder)
    return folder


def finished_run(folder: Path) -> Path:
    saved_model(folder)
    (folder / "all_results.json").write_text("{}")
    return folder


def checkpoint(folder: Path, step: int = 10) -> Path:
    path = folder / f"checkpoint-{step}"
    saved_model(path)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def truncate(file: Path) -> Path:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    return file


def text_file(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@dataclass
class Case:
    """A bad input or fault: what the user does (``arguments`` from a folder set up by ``setup``), and a fragment
    of the one-line error it must get."""

    name: str
    setup: Callable[[Path], list[str]]
    expected: str


CASES = [
    Case(
        "output_dir holds a finished model (second run with the same folder)",
        lambda tmp: ["--output_dir", str(finished_run(tmp / "out"))],
        "already holds a model or results",
    ),
    Case(
        "output_dir holds checkpoints of an unfinished run",
        lambda tmp: ["--output_dir", str(checkpoint(tmp / "out").parent)],
        "--resume_from_checkpoint last to continue its run, or --overwrite_output_dir",
    ),
    Case(
        "output_dir is the model the run continues from, even with --overwrite_output_dir",
        lambda tmp: [
            *["--model_name_or_path", str(saved_model(tmp / "grown")), "--output_dir", str(tmp / "grown")],
            "--overwrite_output_dir",
        ],
        "saving would replace the source model",
    ),
    Case(
        "--resume_from_checkpoint names a folder that does not exist",
        lambda tmp: ["--output_dir", str(tmp / "out"), "--resume_from_checkpoint", "runs/checkpoint-20"],
        "the checkpoint folder runs/checkpoint-20 does not exist",
    ),
    Case(
        "--resume_from_checkpoint names a checkpoint whose model.safetensors is cut short",
        lambda tmp: [
            "--output_dir",
            str(tmp / "out"),
            "--resume_from_checkpoint",
            str(truncate(checkpoint(tmp / "out") / "model.safetensors").parent),
        ],
        "model.safetensors is truncated",
    ),
    Case(
        "--model_name_or_path folder with a truncated model.safetensors",
        lambda tmp: [
            *["--model_name_or_path", str(truncate(saved_model(tmp / "grown") / "model.safetensors").parent)],
            *["--output_dir", str(tmp / "out")],
        ],
        "model.safetensors is truncated",
    ),
    Case(
        "--model_name_or_path that is neither a folder nor a Hub id",
        lambda tmp: ["--model_name_or_path", "../models/grown/", "--output_dir", str(tmp / "out")],
        "no such folder (and not a Hub model id)",
    ),
    Case(
        "config.json whose progressive block is not hf_progressive's",
        lambda tmp: [
            "--model_name_or_path",
            str(edit_config(saved_model(tmp / "grown"), progressive=[1, "garbage"])),
            *["--output_dir", str(tmp / "out")],
        ],
        "config.json: \"progressive\" is [1, 'garbage']",
    ),
    Case(
        "config.json with a growth history entry that is not an event",
        lambda tmp: [
            "--model_name_or_path",
            str(edit_config(saved_model(tmp / "grown"), progressive={"growth_history": ["grew"]})),
            *["--output_dir", str(tmp / "out")],
        ],
        "\"progressive.growth_history[0]\" is 'grew'",
    ),
    Case(
        "--block_size above the loaded model's context",
        lambda tmp: [
            *["--model_name_or_path", str(saved_model(tmp / "grown")), "--block_size", "64"],
            *["--output_dir", str(tmp / "out"), "--tokenizer_name", str(tokenizer_folder(tmp))],
        ],
        "--block_size 64 is above the context",
    ),
    Case(
        "--train_file does not exist",
        lambda tmp: ["--train_file", str(tmp / "missing.txt"), "--output_dir", str(tmp / "out")],
        "missing.txt does not exist",
    ),
    Case(
        "--train_file is empty",
        lambda tmp: ["--train_file", str(text_file(tmp, "empty.txt", "\n\n")), "--output_dir", str(tmp / "out")],
        "empty.txt is empty",
    ),
    Case(
        "--train_file is binary",
        lambda tmp: [
            *["--train_file", str(text_file(tmp, "weights.txt", bytes(range(256)) * 64))],
            *["--output_dir", str(tmp / "out")],
        ],
        "weights.txt is not UTF-8 text",
    ),
    Case(
        "--train_file CSV without the text column",
        lambda tmp: [
            *["--train_file", str(text_file(tmp, "data.csv", "code,label\nprint(1),a\nx = 2,b\n"))],
            *["--output_dir", str(tmp / "out")],
        ],
        "data.csv has no column 'text' (its columns: code, label): name the text column with --text_column",
    ),
    Case(
        "--train_file JSON that does not parse",
        lambda tmp: [
            *["--train_file", str(text_file(tmp, "data.json", '{"text": "a"\n{"text": '))],
            *["--output_dir", str(tmp / "out")],
        ],
        "Could not read",
    ),
    Case(
        "--train_file of one line: nothing to hold out for validation",
        lambda tmp: [
            *["--train_file", str(text_file(tmp, "one.txt", "print('hello')\n"))],
            *["--output_dir", str(tmp / "out")],
        ],
        "too little to hold out validation",
    ),
    Case(
        "--train_file whose held-out tail is shorter than one block",
        lambda tmp: [
            *["--train_file", str(text_file(tmp, "short.txt", "x = 1\n" * 300))],
            *["--output_dir", str(tmp / "out"), "--block_size", "128", "--vocab_size", "260"],
        ],
        "The validation text (the held-out 5% of /",
    ),
    Case(
        "malformed --depth_schedule",
        lambda tmp: ["--depth_schedule", "0@0,6@0.8,4@0.9", "--output_dir", str(tmp / "out")],
        "4@0.9",
    ),
    Case(
        "unknown --growth_init",
        lambda tmp: ["--growth_init", "copy_everything", "--output_dir", str(tmp / "out")],
        "copy_everything",
    ),
]


def edit_config(folder: Path, **fields) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def tokenizer_folder(tmp: Path) -> Path:
    from hf_progressive.data import train_byte_level_bpe

    tokenizer = train_byte_level_bpe(["def f(x):\n    return x\n"] * 20, vocab_size=280)
    tokenizer.save_pretrained(tmp / "tokenizer")
    return tmp / "tokenizer"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_fails_before_training_in_one_line(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = case.setup(tmp_path)
    before = snapshot(tmp_path)
    message = run_example(arguments)
    assert message.startswith("error: ") and "\n" not in message, message
    assert case.expected in message, message
    # Nothing the user had was changed, and nothing was trained.
    after = snapshot(tmp_path)
    assert {name: data for name, data in after.items() if name in before} == before
    assert not any(name.endswith(("model.safetensors", "trainer_state.json")) for name in set(after) - set(before))


def test_last_with_nothing_to_resume_starts_from_scratch_and_says_so(tmp_path, caplog):
    from hf_progressive import ProgressiveTrainingArguments

    module = load_example()
    args = ProgressiveTrainingArguments(output_dir=str(tmp_path / "new"), resume_from_checkpoint="last")
    with caplog.at_level("INFO"):
        assert module.resolve_checkpoint(args) is None
    assert "no complete checkpoint in" in caplog.text and "starting from scratch" in caplog.text


def test_last_skips_a_checkpoint_whose_weights_are_cut_short(tmp_path, caplog):
    from hf_progressive import last_complete_checkpoint

    good = checkpoint(tmp_path, 10)
    truncate(checkpoint(tmp_path, 20) / "model.safetensors")
    assert last_complete_checkpoint(tmp_path) == str(good)
    assert "checkpoint-20/model.safetensors is truncated" in caplog.text


def test_help_documents_last_and_overwrite_output_dir():
    from transformers import HfArgumentParser

    from hf_progressive import ProgressiveTrainingArguments

    text = " ".join(HfArgumentParser(ProgressiveTrainingArguments).format_help().split())
    assert "or 'last' for the last checkpoint of --output_dir whose save finished" in text
    assert "--overwrite_output_dir" in text


def test_a_json_arguments_file_keeps_the_demo_defaults(tmp_path, monkeypatch):
    module = load_example()
    arguments = tmp_path / "args.json"
    arguments.write_text(json.dumps({"max_steps": 7, "depth_schedule": "0@0,3@0.5"}))
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(arguments)])
    _, _, training_args, _ = module.parse_arguments()
    assert training_args.max_steps == 7 and training_args.depth_schedule == "0@0,3@0.5"
    assert training_args.output_dir.endswith("outputs/run_clm_progressive")  # the demo's, not a required field
    assert training_args.lr_scheduler_type == "warmup_stable_decay" and training_args.learning_rate == 2e-3


def test_thread_count_leaves_busy_cores_alone():
    from hf_progressive.threads import sane_thread_count

    assert sane_thread_count(cpus=2, load=0.0) == 2
    assert sane_thread_count(cpus=2, load=0.6) == 2  # the tail of a job that just ended
    assert sane_thread_count(cpus=2, load=1.0) == 1  # another run keeps one core busy
    assert sane_thread_count(cpus=2, load=3.0) == 1
    assert sane_thread_count(cpus=16, load=0.0, local_processes=4) == 4  # DDP ranks share the machine
    assert sane_thread_count(cpus=16, load=8.2, local_processes=2) == 4


def reliability_table() -> str:
    """README's table: each case and the error it gets, from running the cases now."""
    import tempfile

    rows = ["| bad input or fault | what the user gets |", "|---|---|"]
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            message = run_example(case.setup(tmp)).replace(str(tmp), "…").replace("|", "\\|")
        rows.append(f"| {case.name} | `{message}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    import logging
    import re

    logging.disable(logging.CRITICAL)  # the table only: the cases' own log lines are not part of it
    table = reliability_table()
    if sys.argv[1:2] == ["--readme"]:  # rewrite the table between README's reliability markers
        readme = Path(sys.argv[2])
        marked = re.compile(r"<!-- reliability -->.*<!-- /reliability -->", re.S)
        text = marked.sub(lambda _: f"<!-- reliability -->\n{table}\n<!-- /reliability -->", readme.read_text())
        readme.write_text(text)
    print(table)


def test_a_run_too_short_to_plot_says_so_not_that_matplotlib_is_missing(tmp_path, monkeypatch, caplog):
    pytest.importorskip("matplotlib")
    module = load_example()
    arguments = ["--max_steps", "2", "--eval_steps", "2", "--max_eval_samples", "4", "--output_dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), *QUICK, *arguments, "--depth_schedule", "0@0,2@0.5"])
    with caplog.at_level("INFO"):
        module.main()
    assert "No loss plot: the run logged no training loss" in caplog.text
    assert "matplotlib is not installed" not in caplog.text
