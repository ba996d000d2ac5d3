"""Offline text and tokenizers for examples, tests and benchmarks: nothing here touches the network."""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

END_OF_TEXT = "<|endoftext|>"
# Parts of a source tree that are tests, vendored third-party code or generated tables rather than its own code.
_SKIPPED_DIRECTORIES = {
    "test",
    "tests",
    "testing",
    "idle_test",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "encodings",
    "generated",
    "_vendor",
}
# Single generated files of that kind (torch's tuned Triton kernel parameters: 0.5 MB of numbers).
_SKIPPED_FILES = {"_triton_ops_meta.py"}


def python_stdlib_corpus(max_bytes: int = 8_000_000) -> list[str]:
    """The Python standard library's own source files, as a list of documents.

    Every Python installation has them, so this is a real code corpus (with English docstrings and comments)
    available offline on any machine. Files are taken in sorted path order until ``max_bytes`` is reached, so
    the corpus is the same on every run of the same Python version.
    """
    return _read_sources(Path(sysconfig.get_paths()["stdlib"]), max_bytes)


def python_package_corpus(package: str, max_bytes: int = 8_000_000) -> list[str]:
    """The Python source files of an installed package (e.g. ``"torch"``), as a list of documents.

    More offline code than the standard library's 10.7 MB where a benchmark needs it: the pinned torch wheel
    holds about 40 MB of its own Python (tests, vendored code and generated tables left out). The corpus is
    fixed by the package's version; files are taken in sorted path order until ``max_bytes`` is reached.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not an installed package (a directory of modules); install it first.")
    return _read_sources(Path(next(iter(spec.submodule_search_locations))), max_bytes)


def _read_sources(root: Path, max_bytes: int) -> list[str]:
    documents, size = [], 0
    for path in _python_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if size + len(text) > max_bytes:
            break
        documents.append(text)
        size += len(text)
    if not documents:
        raise RuntimeError(f"No Python source files found under {root}.")
    return documents


def _python_files(root: Path) -> list[Path]:
    found = []
    for directory, subdirectories, files in os.walk(root):
        # Prune in place so os.walk never descends into site-packages (which can hold gigabytes).
        subdirectories[:] = sorted(d for d in subdirectories if d not in _SKIPPED_DIRECTORIES)
        found += [Path(directory) / name for name in files if name.endswith(".py") and name not in _SKIPPED_FILES]
    return sorted(found)


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE tokenizer on ``texts`` (seconds for a few MB).

    ``<|endoftext|>`` is the BOS/EOS/padding token, as in GPT-2.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT
    )


def split_documents(documents: list[str], validation_fraction: float) -> tuple[list[str], list[str]]:
    """Hold out every k-th document for validation, so both splits sample the whole corpus."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction={validation_fraction} must lie in (0, 1).")
    if len(documents) < 2:
        raise ValueError(f"Need at least 2 documents to split into train and validation, got {len(documents)}.")
    # Every k-th document, counted from the end, so even a short list gives at least one validation document.
    every = min(max(2, round(1 / validation_fraction)), len(documents))
    held_out = {i for i in range(len(documents) - 1, -1, -every)}
    train = [d for i, d in enumerate(documents) if i not in held_out]
    validation = [d for i, d in enumerate(documents) if i in held_out]
    return train, validation
