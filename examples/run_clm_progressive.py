#!/usr/bin/env python
"""Causal language modelling with progressive depth growth: a GPT-2 trains with one block (or zero) and grows to
full depth late in a warmup-stable-decay schedule.

Shaped like transformers' ``examples/pytorch/language-modeling/run_clm.py``: ``HfArgumentParser`` over model,
data and training arguments, ``datasets`` for text, ``Trainer`` for the loop.

    python examples/run_clm_progressive.py                      # offline default: the Python stdlib as corpus
    accelerate launch examples/run_clm_progressive.py --train_file my.txt --depth_schedule 0@0,12@0.8 --output_dir a
    accelerate launch --config_file examples/accelerate/ddp_2_processes.yaml examples/run_clm_progressive.py  # DDP
    python examples/run_clm_progressive.py args.json            # all arguments from a JSON file
    python examples/run_clm_progressive.py --save_strategy steps --output_dir b --resume_from_checkpoint last
    python examples/run_clm_progressive.py --push_to_hub --hub_model_id me/grown-gpt2 --output_dir c  # pushed last

With no arguments, it trains on the embedded default: the source of the Python standard library (a real code
corpus on every machine), a byte-level BPE tokenizer of 1,024 tokens trained on it, and a GPT-2 of width 128
growing from 1 to 6 blocks (copying the trained block) at 80% of 2,000 steps. About 6 minutes on 2 CPU cores. It
prints its result beside a stored fixed-depth run of the same configuration and FLOPs, and what the measured growth
map expects at its horizon (README "When does growth pay off?").

It never writes over a folder that holds a model, checkpoints or results unless told (--overwrite_output_dir, or a
resume), never into the folder it loads --model_name_or_path from, and fails before training, in one line, on bad
input (README "Reliability").
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from itertools import chain

import datasets
import torch
import transformers
from datasets import Dataset, DatasetDict, load_dataset
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    HfArgumentParser,
    default_data_collator,
    set_seed,
)

from hf_progressive import (
    ProgressiveGPT2Config,
    ProgressiveTrainer,
    ProgressiveTrainingArguments,
    current_depth,
    flops,
    progressive_config,
    progressive_metadata,
)
from hf_progressive.adapters import adapter_for_config
from hf_progressive.adapters.hf_decoder import FAMILIES
from hf_progressive.advice import GrowthAdvice, advise_run
from hf_progressive.checkpointing import checkpoint_problem, last_complete_checkpoint, weights_problem
from hf_progressive.data import python_stdlib_corpus, split_documents, train_byte_level_bpe
from hf_progressive.hub import PLOT_NAME, HubPushError, is_hub_id
from hf_progressive.kernels import DEFAULT_NAME as TRITON_ATTENTION
from hf_progressive.outputs import check_output_dir
from hf_progressive.schedule import DepthSchedule
from hf_progressive.threads import configure_torch_threads

logger = logging.getLogger(__name__)

#: Depth schedule (and init) of a new model when --depth_schedule is not given (a loaded checkpoint then just trains
#: on). One block grown by copying: on the growth map's short budgets (about 10 tokens per parameter, where this
#: demo lies) it beats a fixed-depth run of the same FLOPs (README "When does growth pay off?").
DEFAULT_DEPTH_SCHEDULE = "1@0,6@0.8"
DEFAULT_GROWTH_INIT = "copy"
#: A fixed-depth run of the demo's configuration and FLOPs, stored by the command it records (see --fixed_reference).
DEMO_REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "demo_fixed_equal_flops.json")
#: Training defaults of the embedded demo; every one can be overridden on the command line.
DEMO_TRAINING_DEFAULTS = {
    "output_dir": "outputs/run_clm_progressive",
    "max_steps": 2000,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 2e-3,
    "weight_decay": 0.01,
    "lr_scheduler_type": "warmup_stable_decay",
    "warmup_steps": 0.02,
    "logging_steps": 50,
    "eval_strategy": "steps",
    "eval_steps": 250,
    "save_strategy": "no",
    "report_to": "none",
    "seed": 42,
}


#: Families a new model can be built of (--model_type): GPT-2 and every row of the HF-decoder adapter's table.
MODEL_TYPES = ("gpt2", *FAMILIES)


@dataclass
class ModelArguments:
    """Which model to grow. Without ``model_name_or_path`` a new model of ``model_type`` is built from the fields
    below (the names are GPT-2's; they set the matching fields of the other families)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Local checkpoint to continue from (e.g. a grown GPT-2). Default: a new model."},
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "Local tokenizer directory. Default: the checkpoint's, else a BPE trained on the data."},
    )
    model_type: str = field(
        default="gpt2",
        metadata={"help": "Family of a new model (its depth comes from --depth_schedule).", "choices": MODEL_TYPES},
    )
    vocab_size: int = field(default=1024, metadata={"help": "Vocabulary of the tokenizer trained on the data."})
    n_embd: int = field(default=128, metadata={"help": "Width of a new model (hidden_size)."})
    n_head: int = field(default=4, metadata={"help": "Attention heads of a new model (num_attention_heads)."})
    n_kv_head: int | None = field(
        default=None,
        metadata={"help": "Key/value heads of a new non-GPT-2 model (num_key_value_heads; grouped-query attention)."},
    )
    intermediate_size: int | None = field(
        default=None,
        metadata={
            "help": "MLP width of a new model. Default: 4 x width for GPT-2 and GPT-NeoX, 8/3 x width rounded up to a "
            "multiple of 32 for the gated (SwiGLU) MLPs of the other families, about the same parameters."
        },
    )
    activation_function: str = field(default="gelu", metadata={"help": "Activation of a new GPT-2."})
    dropout: float = field(default=0.0, metadata={"help": "Residual, embedding and attention dropout (GPT-2)."})
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "As in transformers' run_clm.py: settings of a new model's config, e.g. "
            "'num_local_experts=4,num_experts_per_tok=2' (Mixtral) or 'resid_pdrop=0.1'. The depth is the schedule's."
        },
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Attention of the model and of every block it grows: 'sdpa' (transformers' default), 'eager', "
            f"'flash_attention_2' (needs flash-attn), or '{TRITON_ATTENTION}': hf_progressive's Triton "
            "FlashAttention kernel (needs a GPU and triton; falls back to SDPA where it does not apply, e.g. with "
            "--dropout > 0)."
        },
    )


@dataclass
class DataTrainingArguments:
    """Which text to train on. Without files, the Python standard library's source (offline, on every machine)."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A dataset for datasets.load_dataset, as in run_clm.py: a Hub dataset id (needs the Hub) or a "
            "local dataset folder (its data files by split name, e.g. train.jsonl and validation.jsonl)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The configuration of --dataset_name."})
    train_file: str | None = field(default=None, metadata={"help": "A .txt, .json/.jsonl or .csv file with text."})
    validation_file: str | None = field(default=None, metadata={"help": "Same format as train_file."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text in json/csv files."})
    keep_linebreaks: bool = field(
        default=True,
        metadata={
            "help": "Keep the line breaks of a .txt file (as transformers' run_clm.py): a .txt file is one text, read "
            "line by line; --keep_linebreaks False joins its lines without them."
        },
    )
    validation_split_percentage: int = field(
        default=5, metadata={"help": "Share of the training data held out when no validation_file is given."}
    )
    block_size: int = field(default=128, metadata={"help": "Tokens per training sequence (and context length)."})
    max_corpus_bytes: int = field(default=6_000_000, metadata={"help": "Size of the embedded default corpus."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training sequences (blocks)."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream --dataset_name or --train_file instead of loading it (datasets' IterableDataset), as in "
            "run_clm.py: needs --max_steps and a validation split (the dataset's, or --validation_file); the tokenizer "
            "is trained on the first --max_corpus_bytes of the stream."
        },
    )
    max_eval_samples: int | None = field(default=256, metadata={"help": "Cap on validation sequences."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})


@dataclass
class ComparisonArguments:
    """A stored fixed-depth reference to print the run's result against (the run itself trains one model)."""

    fixed_reference: str | None = field(
        default=DEMO_REFERENCE,
        metadata={
            "help": "JSON written by --write_fixed_reference: a fixed-depth run of the same configuration. Its loss "
            "is printed beside this run's when the configurations match. Default: the demo's stored reference."
        },
    )
    write_fixed_reference: str | None = field(
        default=None,
        metadata={"help": "Write this run's configuration, final validation loss and FLOPs to this JSON file."},
    )


def parse_arguments() -> tuple[
    ModelArguments, DataTrainingArguments, ProgressiveTrainingArguments, ComparisonArguments
]:
    parser = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, ProgressiveTrainingArguments, ComparisonArguments)
    )
    defaults = dict(DEMO_TRAINING_DEFAULTS)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Several processes on a machine without GPUs: data parallel over CPU processes (gloo). accelerate forms
        # that process group only when told to use the CPU.
        defaults["use_cpu"] = True
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        # A JSON file overrides the same demo defaults the command line does (parse_json_file alone would drop them).
        with open(os.path.abspath(sys.argv[1]), encoding="utf-8") as handle:
            given = json.load(handle)
        parsed = parser.parse_dict({**defaults, **given})
        named = set(given)
    else:
        parser.set_defaults(**defaults)
        parsed = parser.parse_args_into_dataclasses()
        named = {argument[2:].split("=")[0] for argument in sys.argv[1:] if argument.startswith("--")}
    training_args = parsed[2]
    if not named & {"do_train", "do_eval"}:
        # Neither asked for: train and evaluate (the demo). Asked for: as run_clm.py, only what was asked (do_eval
        # also follows from an --eval_strategy other than "no", as in TrainingArguments).
        training_args.do_train = training_args.do_eval = True
    return parsed


def load_raw_datasets(data_args: DataTrainingArguments) -> DatasetDict:
    """Text datasets with one column, ``text``.

    Raises:
        ValueError: naming the file and the fix, for a missing, empty or binary file, a file of another format, a
            table without the text column, or too little text to hold out a validation split.
    """
    if data_args.dataset_name is not None:
        return _load_named_dataset(data_args)
    if data_args.streaming and data_args.train_file is None:
        raise ValueError("--streaming streams --dataset_name or --train_file; the embedded corpus is loaded whole.")
    if data_args.train_file is None:
        if data_args.validation_file is not None:
            raise ValueError("--validation_file needs --train_file.")
        documents = python_stdlib_corpus(data_args.max_corpus_bytes)
        train, validation = split_documents(documents, data_args.validation_split_percentage / 100)
        logger.info(
            "Embedded default corpus: %d Python stdlib files (%d bytes).", len(documents), sum(map(len, documents))
        )
        return DatasetDict(train=Dataset.from_dict({"text": train}), validation=Dataset.from_dict({"text": validation}))

    files = {"train": data_args.train_file}
    if data_args.validation_file is not None:
        files["validation"] = data_args.validation_file
    extension = data_args.train_file.rsplit(".", 1)[-1]
    builder = {"txt": "text", "jsonl": "json"}.get(extension, extension)
    if builder not in ("text", "json", "csv"):
        raise ValueError(f"--train_file '{data_args.train_file}' must be a .txt, .json, .jsonl or .csv file.")
    for split, path in files.items():
        check_text_file(path, f"--{split}_file")
    # A .txt file is one text read line by line: keep its line breaks, as run_clm.py does (datasets drops them).
    options = {"keep_linebreaks": data_args.keep_linebreaks} if builder == "text" else {}
    if data_args.streaming and "validation" not in files:
        raise ValueError("--streaming needs a --validation_file: a stream has no tail to hold out.")
    try:
        raw = load_dataset(builder, data_files=files, streaming=data_args.streaming, **options)
    except Exception as error:  # datasets wraps parse errors in several types; one line names the file instead
        raise ValueError(f"Could not read {', '.join(files.values())} as {builder}: {_first_line(error)}") from error
    for split, dataset in raw.items():
        columns = _column_names(dataset)
        if builder != "text" and data_args.text_column not in columns:
            raise ValueError(
                f"{files[split]} has no column '{data_args.text_column}' (its columns: "
                f"{', '.join(columns)}): name the text column with --text_column."
            )
    if builder != "text" and data_args.text_column != "text":
        raw = raw.rename_column(data_args.text_column, "text")
    if "validation" not in raw:
        if len(raw["train"]) < 2:
            raise ValueError(
                f"{data_args.train_file} holds {len(raw['train'])} row(s) of text: too little to hold out "
                "validation from. Give more text, or a --validation_file."
            )
        raw = _hold_out_tail(raw["train"], data_args)
    return raw


def _hold_out_tail(train: Dataset, data_args: DataTrainingArguments) -> DatasetDict:
    # A contiguous tail, so validation text is not interleaved with training text.
    split = train.train_test_split(test_size=data_args.validation_split_percentage / 100, shuffle=False)
    return DatasetDict(train=split["train"], validation=split["test"])


def _first_line(error: Exception) -> str:
    """The first line of what went wrong inside datasets (which wraps the cause), for a one-line message."""
    return str(error.__cause__ or error).strip().splitlines()[0][:200]


def _column_names(dataset) -> list[str]:
    # A stream may not know its columns up front: read them off its first row.
    return dataset.column_names or list(next(iter(dataset)))


def _load_named_dataset(data_args: DataTrainingArguments) -> DatasetDict:
    """``load_dataset(--dataset_name, --dataset_config_name)``, its text column renamed ``text``; a validation split
    held out when it has none (as for files)."""
    name = data_args.dataset_name
    if data_args.train_file is not None or data_args.validation_file is not None:
        raise ValueError(f"--dataset_name {name} and --train_file/--validation_file: give one source of text.")
    if os.path.isfile(name):
        raise ValueError(f"--dataset_name {name} is a file: pass it as --train_file (a dataset name or folder here).")
    if not os.path.isdir(name) and not is_hub_id(name):
        raise ValueError(f"--dataset_name {name}: no such folder (and not a Hub dataset id).")
    try:
        raw = load_dataset(name, data_args.dataset_config_name, streaming=data_args.streaming)
    except Exception as error:  # offline Hub, unknown config, unreadable files: one line that names the dataset
        raise ValueError(f"--dataset_name {name}: could not load it ({_first_line(error)}).") from error
    if "train" not in raw:
        raise ValueError(f"--dataset_name {name} has no 'train' split (its splits: {', '.join(raw)}).")
    columns = _column_names(raw["train"])
    if data_args.text_column not in columns:
        raise ValueError(
            f"--dataset_name {name} has no column '{data_args.text_column}' (its columns: {', '.join(columns)}): "
            "name the text column with --text_column."
        )
    raw = type(raw)({split: raw[split] for split in ("train", "validation") if split in raw})
    raw = raw.select_columns([data_args.text_column])
    if data_args.text_column != "text":
        raw = raw.rename_column(data_args.text_column, "text")
    if "validation" not in raw:
        if data_args.streaming:
            raise ValueError(f"--streaming: --dataset_name {name} has no validation split to evaluate on.")
        raw = _hold_out_tail(raw["train"], data_args)
    return raw


def check_text_file(path: str, flag: str) -> None:
    """Refuse, in one line, a data file that is missing, empty or not text."""
    if not os.path.isfile(path):
        raise ValueError(f"{flag} {path} does not exist.")
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip():
        raise ValueError(f"{flag} {path} is empty: give a file with text in it.")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if len(head) - error.start > 4:  # not just a character cut at the end of the sample
            raise ValueError(
                f"{flag} {path} is not UTF-8 text (byte {error.start} is {head[error.start]:#04x}): give a "
                ".txt, .json, .jsonl or .csv file of text."
            ) from None
        text = head[: error.start].decode("utf-8")
    if "\x00" in text:
        raise ValueError(
            f"{flag} {path} looks binary (it holds NUL bytes), not text: give a .txt, .json, .jsonl or .csv file."
        )


def resolve_checkpoint(training_args: ProgressiveTrainingArguments) -> str | None:
    """The checkpoint to resume from: ``--resume_from_checkpoint PATH``, or ``last`` for the last complete one
    (none yet: the run starts from scratch, and says so)."""
    requested = training_args.resume_from_checkpoint
    if requested is None or requested.lower() in ("false", "none", ""):
        return None
    if requested.lower() in ("last", "true"):
        checkpoint = last_complete_checkpoint(training_args.output_dir)
        if checkpoint is None:
            logger.info(
                "--resume_from_checkpoint %s: no complete checkpoint in %s yet, starting from scratch.",
                requested,
                training_args.output_dir,
            )
        return checkpoint
    problem = checkpoint_problem(requested)
    if problem is not None:
        raise ValueError(f"--resume_from_checkpoint {requested}: {problem}.")
    return requested


def build_tokenizer(
    model_args: ModelArguments,
    raw: DatasetDict,
    training_args: ProgressiveTrainingArguments,
    checkpoint: str | None,
):
    # A resumed run tokenizes with the tokenizer the checkpoint was trained with (Trainer saves it there).
    source = model_args.tokenizer_name or model_args.model_name_or_path or checkpoint
    if source is not None:
        tokenizer = AutoTokenizer.from_pretrained(source)
    elif training_args.world_size == 1:
        logger.info("Training a byte-level BPE tokenizer with %d tokens on the training text.", model_args.vocab_size)
        tokenizer = train_byte_level_bpe(raw["train"]["text"], vocab_size=model_args.vocab_size)
    else:
        tokenizer = _train_shared_tokenizer(model_args, raw, training_args)
    return tokenizer


def _train_shared_tokenizer(model_args, raw: DatasetDict, training_args: ProgressiveTrainingArguments):
    """Train once, on the main process; the others load its result, so every process tokenizes identically.

    The hand-over folder starts with ``_`` (Trainer never pushes such files) and is removed once every process has
    loaded it: the tokenizer is saved with the model anyway.
    """
    shared = os.path.join(training_args.output_dir, "_tokenizer")
    with training_args.main_process_first(local=False, desc="training the tokenizer"):
        if training_args.process_index == 0:
            logger.info(
                "Training a byte-level BPE tokenizer with %d tokens on the training text.", model_args.vocab_size
            )
            tokenizer = train_byte_level_bpe(raw["train"]["text"], vocab_size=model_args.vocab_size)
            tokenizer.save_pretrained(shared)
        else:
            tokenizer = AutoTokenizer.from_pretrained(shared)
    training_args.distributed_state.wait_for_everyone()
    if training_args.process_index == 0:
        shutil.rmtree(shared, ignore_errors=True)
    return tokenizer


def build_model(
    model_args: ModelArguments,
    training_args: ProgressiveTrainingArguments,
    tokenizer,
    block_size: int,
    attention: dict | None = None,
):
    """A new model of ``--model_type`` for the depth schedule (the default one when none is given)."""
    if training_args.depth_schedule is None:
        training_args.depth_schedule = DEFAULT_DEPTH_SCHEDULE
        training_args.growth_init = training_args.growth_init or DEFAULT_GROWTH_INIT
    schedule = DepthSchedule(training_args.depth_schedule)
    config = new_model_config(model_args, tokenizer, block_size, schedule.final_depth)
    if model_args.config_overrides:
        depth_field = adapter_for_config(config).depth_field
        if depth_field in {item.split("=")[0].strip() for item in model_args.config_overrides.split(",")}:
            raise ValueError(
                f"--config_overrides sets {depth_field}: the depth of a new model comes from --depth_schedule "
                f"('{schedule}'); drop it there."
            )
        try:
            config.update_from_string(model_args.config_overrides)
        except ValueError as error:
            raise ValueError(f"--config_overrides {model_args.config_overrides!r}: {error}.") from None
    config = progressive_config(config, str(schedule), training_args.growth_init or "random")
    model = AutoModelForCausalLM.from_config(config, **(attention or {}))
    model.generation_config.max_length = block_size  # generate() stops at the context unless told otherwise
    return model


def new_model_config(model_args: ModelArguments, tokenizer, block_size: int, depth: int):
    """The config of a new model of ``--model_type`` at ``depth`` blocks, from the width and head flags."""
    if model_args.model_type == "gpt2":
        return ProgressiveGPT2Config(
            vocab_size=len(tokenizer),
            n_positions=block_size,
            n_embd=model_args.n_embd,
            n_head=model_args.n_head,
            n_inner=model_args.intermediate_size,
            n_layer=depth,
            activation_function=model_args.activation_function,
            resid_pdrop=model_args.dropout,
            embd_pdrop=model_args.dropout,
            attn_pdrop=model_args.dropout,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    gated = model_args.model_type != "gpt_neox"
    intermediate = model_args.intermediate_size
    if intermediate is None:
        # SwiGLU's three matrices at 8/3 of the width hold what GELU's two hold at 4x (LLaMA's rule).
        intermediate = math.ceil(8 * model_args.n_embd / 3 / 32) * 32 if gated else 4 * model_args.n_embd
    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=model_args.n_embd,
        num_attention_heads=model_args.n_head,
        intermediate_size=intermediate,
        max_position_embeddings=block_size,
        num_hidden_layers=depth,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    if model_args.model_type != "gpt_neox":
        settings["num_key_value_heads"] = model_args.n_kv_head or model_args.n_head
    elif model_args.n_kv_head not in (None, model_args.n_head):
        raise ValueError(
            f"--n_kv_head {model_args.n_kv_head}: GPT-NeoX has no grouped-query attention; leave it unset."
        )
    return AutoConfig.for_model(model_args.model_type, **settings)


def attention_choice(model_args: ModelArguments) -> dict:
    """``attn_implementation=`` for ``from_config``/``from_pretrained`` (nothing: transformers' default); the Triton
    kernel is registered first, and fails here, before any data work, where it cannot run."""
    name = model_args.attn_implementation
    if name is None:
        return {}
    if name == TRITON_ATTENTION:
        from hf_progressive import kernels

        try:
            kernels.register(name)
        except RuntimeError as error:
            raise ValueError(f"--attn_implementation {name}: {error}") from None
    return {"attn_implementation": name}


def load_model(path: str, block_size: int, attention: dict | None = None):
    """``AutoModelForCausalLM.from_pretrained``, refusing a missing folder, a local folder whose weights are cut short
    (naming the file), growth metadata that is not hf_progressive's, and a context shorter than ``block_size`` —
    instead of failing inside safetensors, asking the Hub for a path, or mid-training."""
    if os.path.isdir(path):
        problem = weights_problem(path)
        if problem is not None:
            raise ValueError(f"--model_name_or_path {path}: {problem}.")
    elif not is_hub_id(path):
        raise ValueError(f"--model_name_or_path {path}: no such folder (and not a Hub model id).")
    model = AutoModelForCausalLM.from_pretrained(path, **(attention or {}))
    progressive_metadata(model.config)  # raises, naming config.json and the field, if it is not ours
    context = adapter_for_config(model.config).context_length(model.config)
    if context is not None and block_size > context:
        raise ValueError(
            f"--block_size {block_size} is above the context of {path} ({context} positions): "
            f"use --block_size {context} or less."
        )
    if context is not None:
        model.generation_config.max_length = context  # generate() stops at the context by default
    return model


def rows_are_documents(data_args: DataTrainingArguments) -> bool:
    """Whether each row of the raw data is a document of its own (the embedded corpus' files, json/csv rows) rather
    than a line of one text (a .txt file)."""
    return data_args.train_file is None or not data_args.train_file.endswith(".txt")


def tokenize_and_group(
    raw: DatasetDict, tokenizer, data_args: DataTrainingArguments, main_process_first
) -> DatasetDict:
    block_size = data_args.block_size
    # End every document with <|endoftext|> so sequences that span two documents see the boundary; the lines of a
    # .txt file are one text and run on into each other.
    eos = (tokenizer.eos_token or "") if rows_are_documents(data_args) else ""

    def tokenize(batch):
        return tokenizer([text + eos for text in batch["text"]])

    def group_texts(examples):
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total = (len(concatenated["input_ids"]) // block_size) * block_size
        result = {k: [t[i : i + block_size] for i in range(0, total, block_size)] for k, t in concatenated.items()}
        result["labels"] = result["input_ids"].copy()
        return result

    if data_args.streaming:  # lazily, as the stream is read (IterableDataset.map takes no workers or progress bar)
        tokenized = raw.map(tokenize, batched=True, remove_columns=["text"])
        return tokenized.map(group_texts, batched=True)
    with main_process_first(desc="tokenizing and grouping"):
        tokenized = raw.map(
            tokenize,
            batched=True,
            remove_columns=raw["train"].column_names,
            num_proc=data_args.preprocessing_num_workers,
            desc="Tokenizing",
        )
        return tokenized.map(
            group_texts,
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            desc=f"Grouping texts in blocks of {block_size}",
        )


def growth_outlook(trainer: ProgressiveTrainer, block_size: int) -> GrowthAdvice | None:
    """What the measured growth map expects of this run; warns before training when growth is expected to lose."""
    plan = trainer.growth_plan
    if plan is None or not plan.schedule.growth_steps(trainer.args.max_steps):
        return None
    args = trainer.args
    tokens = args.max_steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
    tokens *= args.world_size * block_size
    advice = advise_run(trainer.model.config, plan.schedule.final_depth, tokens, block_size)
    logger.info("%s", advice)
    mine = next((o for o in advice.outlooks if o.source_depth == plan.schedule.initial_depth), None)
    if mine is not None and mine.beats_equal_flops is False:
        best = advice.best
        instead = (
            f"grow from {best.source_depth} block(s) instead (--depth_schedule "
            f"{advice.schedule(plan.schedule.final_depth)} --growth_init {best.init}), "
            if best is not None and advice.growth_pays
            else ""
        )
        logger.warning(
            "At %.3g tokens per non-embedding parameter the growth map expects this schedule to end %s above the "
            "fixed-depth run of the same steps and %s behind a fixed-depth run of the same FLOPs. To change that: %s"
            "train the full depth for fewer steps, or give growth more tokens per parameter and a larger vocabulary "
            "(README 'When does growth pay off?').",
            advice.tokens_per_parameter,
            _percent(mine.gap_fixed),
            _percent(mine.gap_equal_flops),
            instead,
        )
    return advice


def _percent(value: float | None) -> str:
    return "an unknown amount" if value is None else f"{value:.1%}"


def summarize(trainer: ProgressiveTrainer, train_metrics: dict, eval_metrics: dict, block_size: int) -> str:
    lines = []
    if eval_metrics:
        lines += [
            f"final validation loss: {eval_metrics['eval_loss']:.4f}",
            f"perplexity:            {eval_metrics['perplexity']:.2f}",
        ]
    lines.append(f"final depth:           {current_depth(trainer.model)} blocks")
    if getattr(trainer.model.config, "_attn_implementation", None) == TRITON_ATTENTION:
        from hf_progressive import kernels

        calls = kernels.usage()
        fallbacks = ", ".join(f"{reason} x{count}" for reason, count in calls.items() if reason != "kernel")
        lines.append(
            f"attention:             {TRITON_ATTENTION} kernel on {calls.get('kernel', 0)} calls in this process"
            + (f"; fell back: {fallbacks}" if fallbacks else "; no fallback")
        )
    if not train_metrics:
        return "\n".join(lines)
    if trainer.args.world_size > 1:
        # ProgressiveTrainer stops the run if replicas differ after growth or at the end (ReplicaCheckCallback).
        lines.append(f"processes:             {trainer.args.world_size}, parameters verified identical on all of them")
    lines += [
        f"growth at step {g['step']}: {g['from_depth']} -> {g['to_depth']} blocks (init={g['init']})"
        for g in trainer.growth_history
    ]
    if trainer.growth_plan is not None:
        ratios = flops.schedule_compute_ratios(
            trainer.compute.config, trainer.growth_plan.schedule, trainer.state.max_steps, block_size
        )
        lines += [
            f"training FLOPs:        {train_metrics['flops']:.3e} vs {train_metrics['flops_fixed_equivalent']:.3e} "
            f"for the fixed-depth run ({1 - train_metrics['compute_saved']:.1%} of it)",
            "compute saved vs fixed depth: "
            f"{ratios.saved()['forward_flops']:.1%} (FLOPs incl. LM head and attention), "
            f"{ratios.saved()['all_parameters']:.1%} (all parameters), "
            f"{ratios.saved()['non_embedding']:.1%} (non-embedding parameters)",
        ]
    return "\n".join(lines)


#: Fields added to the fingerprint after the demo's reference was stored, with the value that reference ran at.
FINGERPRINT_DEFAULTS = {
    "model_type": "gpt2",
    "n_kv_head": None,
    "intermediate_size": None,
    "config_overrides": None,
    "dataset_name": None,
    "dataset_config_name": None,
    "max_train_samples": None,
    "streaming": False,
}


def reference_fingerprint(model_args, data_args, training_args, target_depth: int) -> dict:
    """What must match for a stored fixed-depth run to be this run's reference."""
    return {
        "model_name_or_path": model_args.model_name_or_path,
        "model_type": model_args.model_type,
        "n_kv_head": model_args.n_kv_head,
        "intermediate_size": model_args.intermediate_size,
        "config_overrides": model_args.config_overrides,
        "target_depth": target_depth,
        "n_embd": model_args.n_embd,
        "n_head": model_args.n_head,
        "vocab_size": model_args.vocab_size,
        "block_size": data_args.block_size,
        "train_file": data_args.train_file,
        "dataset_name": data_args.dataset_name,
        "dataset_config_name": data_args.dataset_config_name,
        "max_train_samples": data_args.max_train_samples,
        "streaming": data_args.streaming,
        "max_corpus_bytes": data_args.max_corpus_bytes
        if data_args.train_file is None and data_args.dataset_name is None
        else None,
        "batch": training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size,
        "learning_rate": training_args.learning_rate,
        "optim": training_args.optim,
        "seed": training_args.seed,
    }


def compare_with_reference(path: str | None, fingerprint: dict, eval_loss: float, flops_spent: float) -> str | None:
    """A line comparing this run with a stored fixed-depth run of the same configuration, if one matches."""
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        reference = json.load(handle)
    # A reference stored before a field existed was taken at that field's default.
    if {**FINGERPRINT_DEFAULTS, **reference.get("fingerprint", {})} != fingerprint:
        logger.info("The fixed-depth reference %s is of another configuration: no comparison.", path)
        return None
    loss, spent = reference["eval_loss"], reference["flops"]
    verdict = "growth paid" if eval_loss < loss else "growth did NOT pay"
    return (
        f"fixed-depth reference: {fingerprint['target_depth']} blocks for {reference['max_steps']} steps, its own WSD, "
        f"{spent:.3e} FLOPs ({spent / flops_spent:.0%} of this run's): final validation loss {loss:.4f} -> this run is "
        f"{eval_loss / loss - 1:+.1%} against it: {verdict} at equal compute (reference from: {reference['command']})"
    )


def setup_logging(training_args: ProgressiveTrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    # This script's and hf_progressive's own lines (data, growth, resume, replica checks) show at INFO on the main
    # process unless --log_level says otherwise; transformers' chatter stays at WARNING.
    ours = logging.INFO if training_args.log_level == "passive" and training_args.should_log else log_level
    for handle in (logger, logging.getLogger("hf_progressive")):
        handle.setLevel(ours)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(min(log_level, logging.WARNING))


def prepare(model_args, data_args, training_args) -> tuple[ProgressiveTrainer, str | None]:
    """Everything before the first step: each bad input fails here, with a message that names it."""
    if training_args.device.type == "cpu":
        configure_torch_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    set_seed(training_args.seed)
    checkpoint = resolve_checkpoint(training_args)
    check_output_dir(
        training_args.output_dir,
        overwrite=training_args.overwrite_output_dir,
        resuming=checkpoint is not None,
        sources=[model_args.model_name_or_path, model_args.tokenizer_name],
    )
    # The attention and a model to continue from are checked first: neither should wait for the data to be tokenized.
    attention = attention_choice(model_args)
    model = (
        load_model(model_args.model_name_or_path, data_args.block_size, attention)
        if model_args.model_name_or_path
        else None
    )
    raw = load_raw_datasets(data_args)
    tokenizer = build_tokenizer(
        model_args, stream_head(raw, data_args) if data_args.streaming else raw, training_args, checkpoint
    )
    lm_datasets = tokenize_and_group(raw, tokenizer, data_args, training_args.main_process_first)
    # Set after tokenizing whole documents (they are cut into blocks afterwards), so that the tokenizer does not warn
    # about them; saved with the model, it tells generation and pipelines the context (handle_long_generation="hole").
    tokenizer.model_max_length = data_args.block_size
    train_dataset, eval_dataset = lm_datasets["train"], lm_datasets["validation"]
    if data_args.streaming:
        if training_args.max_steps <= 0:
            raise ValueError("--streaming needs --max_steps: a stream has no length to count epochs by.")
        if data_args.max_train_samples is not None:
            train_dataset = train_dataset.take(data_args.max_train_samples)
        # Evaluation reads the same blocks every time: take them from the stream once.
        eval_dataset = Dataset.from_list(list(eval_dataset.take(data_args.max_eval_samples or 256)))
        lm_datasets = {"validation": eval_dataset}
    for split, dataset in lm_datasets.items():
        if len(dataset) == 0:
            raise ValueError(too_short_message(split, data_args))
    if data_args.max_train_samples is not None and not data_args.streaming:
        train_dataset = train_dataset.select(range(min(data_args.max_train_samples, len(train_dataset))))
    if data_args.max_eval_samples is not None:
        eval_dataset = eval_dataset.select(range(min(data_args.max_eval_samples, len(eval_dataset))))
    if model is None:
        model = build_model(model_args, training_args, tokenizer, data_args.block_size, attention)
    trainer = ProgressiveTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=default_data_collator,
    )
    return trainer, checkpoint


def stream_head(raw, data_args: DataTrainingArguments) -> DatasetDict:
    """The first ``--max_corpus_bytes`` of a streamed training set, in memory: what the tokenizer is trained on."""
    texts, size = [], 0
    for row in raw["train"]:
        texts.append(row["text"])
        size += len(row["text"])
        if size >= data_args.max_corpus_bytes:
            break
    return DatasetDict(train=Dataset.from_dict({"text": texts}))


def too_short_message(split: str, data_args: DataTrainingArguments) -> str:
    held_out = split == "validation" and data_args.validation_file is None
    source = data_args.validation_file if split == "validation" and not held_out else data_args.train_file
    source = source or data_args.dataset_name or "the embedded corpus"
    if held_out:
        return (
            f"The validation text (the held-out {data_args.validation_split_percentage}% of {source}) is shorter "
            f"than one block of {data_args.block_size} tokens: give a --validation_file, a larger "
            "--validation_split_percentage, more text or a smaller --block_size."
        )
    return (
        f"The {split} text ({source}) is shorter than one block of {data_args.block_size} tokens: give more text or a "
        "smaller --block_size."
    )


def main() -> dict:
    """Train, evaluate and save; print the summary. Exits with a one-line error (no traceback) for bad input, and
    for a failed push after everything is saved; on several CPU processes, exits 0 itself once everything is saved
    (:func:`leave_without_interpreter_teardown`)."""
    try:
        model_args, data_args, training_args, comparison_args = parse_arguments()
        setup_logging(training_args)
        trainer, checkpoint = prepare(model_args, data_args, training_args)
    except (ValueError, OSError) as error:
        logger.debug("Setup failed", exc_info=True)
        raise SystemExit(f"error: {error}") from None
    if comparison_args.write_fixed_reference and not (training_args.do_train and training_args.do_eval):
        raise SystemExit(
            "error: --write_fixed_reference stores a trained run's evaluation: it needs training and "
            "evaluation (leave out --do_train/--do_eval, or give both)."
        )
    outlook = growth_outlook(trainer, data_args.block_size) if training_args.do_train else None
    train_metrics: dict = {}
    if training_args.do_train:
        # Resuming re-grows the model to the checkpoint's depth before loading it (ProgressiveTrainer.train).
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        # Model, config with the growth metadata, tokenizer. With --push_to_hub, save_model() would push right away;
        # the push waits until every local result is written (below), so a Hub failure costs a retried upload only.
        trainer.save_model(_internal_call=True)
        train_metrics = dict(train_result.metrics)
        if not data_args.streaming:
            train_metrics["train_samples"] = len(trainer.train_dataset)
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
    eval_metrics: dict = {}
    if training_args.do_eval:
        eval_metrics = trainer.evaluate()
        eval_metrics["perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50))
        eval_metrics["eval_samples"] = len(trainer.eval_dataset)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    if not training_args.do_train:
        if trainer.is_world_process_zero():
            with open(os.path.join(training_args.output_dir, "summary.json"), "w") as handle:
                json.dump({"eval": eval_metrics}, handle, indent=2)
            print("\n" + summarize(trainer, train_metrics, eval_metrics, data_args.block_size))
        return {"eval": eval_metrics}
    trainer.save_state()
    # Local files and folders are named in the card's text; only Hub ids go into its metadata (hf_progressive.hub).
    source = data_args.dataset_name or data_args.train_file or "the Python standard library's source"
    card = {"tasks": "text-generation", "dataset_tags": source}
    if model_args.model_name_or_path is not None:
        card["finetuned_from"] = model_args.model_name_or_path
    trainer.create_model_card(**card)  # README.md in output_dir, ready for `hf upload`

    summary = {"train": train_metrics, "eval": eval_metrics, "growth_history": trainer.growth_history}
    target_depth = trainer.growth_plan.schedule.final_depth if trainer.growth_plan else current_depth(trainer.model)
    fingerprint = reference_fingerprint(model_args, data_args, training_args, target_depth)
    spent = train_metrics.get("flops", train_metrics.get("total_flos", 0.0))
    comparison = None
    if eval_metrics:
        comparison = compare_with_reference(
            comparison_args.fixed_reference, fingerprint, eval_metrics["eval_loss"], spent
        )
    if comparison is not None:
        summary["fixed_reference"] = comparison
    if outlook is not None:
        summary["growth_outlook"] = outlook.to_dict()
    if trainer.is_world_process_zero():
        # The model card (README.md) shows the loss plot that save_model wrote beside it (needs matplotlib).
        plot = os.path.join(training_args.output_dir, PLOT_NAME)
        if os.path.isfile(plot):
            summary["plot"] = plot
        elif importlib.util.find_spec("matplotlib") is None:
            logger.warning("matplotlib is not installed: no loss plot (pip install 'hf_progressive[examples]').")
        else:
            logger.info("No loss plot: the run logged no training loss (no depth schedule, or under --logging_steps).")
        with open(os.path.join(training_args.output_dir, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2)
        print("\n" + summarize(trainer, train_metrics, eval_metrics, data_args.block_size))
        if comparison is not None:
            print(comparison)
        if outlook is not None:
            print("what the growth map expects against fixed depth (this run trains only the progressive model):")
            print(str(outlook))
        if comparison_args.write_fixed_reference:
            write_fixed_reference(
                comparison_args.write_fixed_reference, fingerprint, training_args, eval_metrics, spent
            )
        print(
            f"model and model card saved to {training_args.output_dir}"
            + (f"; loss plot: {summary['plot']}" if "plot" in summary else "")
        )
    push_error = None
    if training_args.push_to_hub:
        # Last, after every local file is written: a Hub failure then costs a retried upload, not the run.
        try:
            trainer.push_to_hub(**card)  # model, config with growth metadata, tokenizer, card with the loss plot
        except HubPushError as error:
            push_error = error
    closed_gloo = close_process_group(training_args)
    if push_error is not None:
        raise SystemExit(f"error: {push_error}")
    if closed_gloo:
        leave_without_interpreter_teardown()
    return summary


def close_process_group(training_args) -> bool:
    """Close the process group on every rank before exit (left to interpreter shutdown, it can abort a rank after
    all the work is done: "terminate called without an active exception"); True if it was gloo's (CPU processes)."""
    if not torch.distributed.is_initialized():
        return False
    gloo = torch.distributed.get_backend() == "gloo"
    training_args.distributed_state.wait_for_everyone()
    torch.distributed.destroy_process_group()
    return gloo


def leave_without_interpreter_teardown() -> None:
    """Exit 0 at once, every file written and the process group closed. Even after ``destroy_process_group``,
    gloo's worker threads can abort the interpreter's own teardown (a tensor released without the GIL, as
    pytorch/pytorch#179291 describes): rank 1 of the 2-process CPU test died so once after a finished run, under
    load, and benchmarks/ddp_overhead.py's rank 1 in about 1 run in 6 before it left this way too."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def write_fixed_reference(path: str, fingerprint: dict, training_args, eval_metrics: dict, spent: float) -> None:
    reference = {
        "command": "python examples/run_clm_progressive.py " + " ".join(sys.argv[1:]),
        "fingerprint": fingerprint,
        "max_steps": training_args.max_steps,
        "eval_loss": eval_metrics["eval_loss"],
        "flops": spent,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(reference, handle, indent=2)
    print(f"fixed-depth reference written to {path}")


if __name__ == "__main__":
    main()
