"""Character-level tinyshakespeare: the corpus nanoGPT's shakespeare_char example uses, read from ../shared."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


class RandomWindows(Dataset):
    """``count`` windows of ``length`` tokens at offsets drawn once from ``seed``: every run sees the same data."""

    def __init__(self, tokens: torch.Tensor, length: int, count: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.tokens, self.length = tokens, length
        self.offsets = torch.randint(0, len(tokens) - length, (count,), generator=generator)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = self.tokens[self.offsets[index] : self.offsets[index] + self.length]
        return {"input_ids": window, "labels": window}


class Blocks(Dataset):
    """Consecutive non-overlapping blocks (for validation), at most ``limit`` of them, spread over the text."""

    def __init__(self, tokens: torch.Tensor, length: int, limit: int | None = None):
        starts = list(range(0, len(tokens) - length + 1, length))
        if limit is not None and limit < len(starts):
            stride = len(starts) / limit
            starts = [starts[int(i * stride)] for i in range(limit)]
        self.tokens, self.length, self.starts = tokens, length, starts

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = self.tokens[self.starts[index] : self.starts[index] + self.length]
        return {"input_ids": window, "labels": window}


def load_characters(path: Path = DEFAULT_PATH, validation_fraction: float = 0.1):
    """Token tensors of the train text and the held-out last ``validation_fraction``, and the vocabulary size."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the benchmark reads tinyshakespeare from ../shared/data.")
    text = path.read_text()
    alphabet = sorted(set(text))
    index = {character: i for i, character in enumerate(alphabet)}
    tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(len(tokens) * (1 - validation_fraction))
    return tokens[:cut], tokens[cut:], len(alphabet)


def bigram_cross_entropy(train: torch.Tensor, validation: torch.Tensor, vocab_size: int) -> float:
    """Validation cross-entropy (nats) of the train set's bigram model, add-one smoothed: the loss a model that sees
    only the current token can reach (PAPER.md, claim 9)."""
    counts = torch.ones(vocab_size, vocab_size)
    counts.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1), accumulate=True)
    log_probabilities = (counts / counts.sum(dim=1, keepdim=True)).log()
    return -log_probabilities[validation[:-1], validation[1:]].mean().item()
