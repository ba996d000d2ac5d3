import os
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
VOCAB = 64


def tiny_config(n_layer: int = 0, **overrides) -> GPT2Config:
    settings = dict(
        n_layer=n_layer,
        n_embd=32,
        n_head=4,
        vocab_size=VOCAB,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    settings.update(overrides)
    return GPT2Config(**settings)


def tiny_model(n_layer: int = 0, seed: int = 0, **overrides) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(tiny_config(n_layer, **overrides)).eval()


def token_dataset(rows: int = 64, length: int = 16, seed: int = 0) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    # A learnable pattern (each token predicts the next) so losses move.
    starts = torch.randint(0, VOCAB, (rows, 1), generator=generator)
    ids = ((starts + torch.arange(length)) % VOCAB).tolist()
    return Dataset.from_dict({"input_ids": ids, "labels": ids})


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))
