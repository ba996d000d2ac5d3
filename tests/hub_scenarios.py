"""What a user runs against the Hub, one scenario per process (test_hub.py starts them against a FakeHub).

    python tests/hub_scenarios.py train_and_push OUTPUT_DIR REPO_ID
    python tests/hub_scenarios.py push_model OUTPUT_DIR REPO_ID
    python tests/hub_scenarios.py load REPO_ID          # plain transformers: never imports hf_progressive

Each prints one JSON line with what the test checks. The Hub endpoint and token come from the environment
(HF_ENDPOINT, HF_TOKEN), as for any user.
"""

import json
import sys
from pathlib import Path

import torch

PROMPT = "to be or not"


def _train(output_dir: str, repo_id: str | None):
    from datasets import Dataset

    from hf_progressive import (
        ProgressiveGPT2Config,
        ProgressiveGPT2LMHeadModel,
        ProgressiveTrainer,
        ProgressiveTrainingArguments,
    )
    from hf_progressive.data import train_byte_level_bpe

    text = "to be or not to be, that is the question " * 200
    tokenizer = train_byte_level_bpe([text], vocab_size=300)
    ids = tokenizer(text)["input_ids"]
    rows = [ids[i : i + 16] for i in range(0, len(ids) - 16, 16)]
    torch.manual_seed(0)
    config = ProgressiveGPT2Config(
        n_layer=0, target_n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=len(tokenizer)
    )
    model = ProgressiveGPT2LMHeadModel(config)
    args = ProgressiveTrainingArguments(
        output_dir=output_dir,
        max_steps=8,
        per_device_train_batch_size=4,
        depth_schedule="0@0,2@0.5",
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        hub_model_id=repo_id,
    )
    dataset = Dataset.from_dict({"input_ids": rows, "labels": rows})
    trainer = ProgressiveTrainer(
        model=model, args=args, train_dataset=dataset, eval_dataset=dataset.select(range(8)), processing_class=tokenizer
    )
    trainer.train()
    return trainer, tokenizer


def train_and_push(output_dir: str, repo_id: str) -> dict:
    from hf_progressive.hub import HubPushError

    trainer, _ = _train(output_dir, repo_id)
    try:
        commit = trainer.push_to_hub(dataset_tags="tinyshakespeare")
    except HubPushError as error:
        return {"error": str(error), "files": sorted(p.name for p in Path(output_dir).iterdir())}
    return {"commit": commit.oid, "generated": _generate(trainer.model, trainer.processing_class)}


def push_model(output_dir: str, repo_id: str) -> dict:
    trainer, tokenizer = _train(output_dir, None)
    commit = trainer.model.push_to_hub(repo_id)
    return {"commit": commit.oid, "class": type(trainer.model).__name__}


def load(repo_id: str) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    model = AutoModelForCausalLM.from_pretrained(repo_id)
    generator = pipeline("text-generation", model=repo_id)
    generated = generator(PROMPT, max_new_tokens=8, do_sample=False)[0]["generated_text"]
    return {
        "class": type(model).__name__,
        "n_layer": model.config.n_layer,
        "progressive": getattr(model.config, "progressive", None),
        "generated": generated,
        "same_as_model": generated == _generate(model, AutoTokenizer.from_pretrained(repo_id)),
        "hf_progressive_imported": "hf_progressive" in sys.modules,
    }


def _generate(model, tokenizer) -> str:
    model.eval()
    inputs = tokenizer(PROMPT, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(output[0], skip_special_tokens=True)


if __name__ == "__main__":
    scenario, *arguments = sys.argv[1:]
    print(json.dumps(globals()[scenario](*arguments)))
