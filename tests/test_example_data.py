"""How the example reads a user's text: a .txt file keeps its line structure, documents end with <|endoftext|>."""

import contextlib
import json

from conftest import load_example

from hf_progressive.data import train_byte_level_bpe

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40


def tokenized(tmp_path, file_name: str, content: str, **overrides):
    example = load_example()
    path = tmp_path / file_name
    path.write_text(content)
    data_args = example.DataTrainingArguments(
        train_file=str(path), block_size=16, validation_split_percentage=10, **overrides
    )
    raw = example.load_raw_datasets(data_args)
    tokenizer = train_byte_level_bpe(raw["train"]["text"], vocab_size=300)
    # TrainingArguments.main_process_first, in a single process: nothing to wait for.
    groups = example.tokenize_and_group(raw, tokenizer, data_args, lambda desc=None: contextlib.nullcontext())
    ids = [token for block in groups["train"]["input_ids"] for token in block]
    return raw, tokenizer, tokenizer.decode(ids)


def test_a_text_file_round_trips_its_line_structure_through_tokenisation(tmp_path):
    raw, tokenizer, decoded = tokenized(tmp_path, "play.txt", TEXT)
    train_text = "".join(raw["train"]["text"])
    assert TEXT.startswith(train_text)  # the training split is the file's head, line breaks included
    assert decoded == train_text[: len(decoded)] and len(decoded) > len(train_text) - 16 * 4
    assert tokenizer.eos_token not in decoded and "\n\nAll:\n" in decoded


def test_without_linebreaks_the_lines_run_on(tmp_path):
    raw, _, decoded = tokenized(tmp_path, "play.txt", TEXT, keep_linebreaks=False)
    assert "\n" not in "".join(raw["train"]["text"]) and "\n" not in decoded


def test_rows_of_a_json_lines_file_are_documents_ended_by_endoftext(tmp_path):
    documents = [f"document {i}: some text of its own" for i in range(60)]
    content = "".join(json.dumps({"text": document}) + "\n" for document in documents)
    raw, tokenizer, decoded = tokenized(tmp_path, "docs.jsonl", content)
    expected = "".join(text + tokenizer.eos_token for text in raw["train"]["text"])
    assert decoded == expected[: len(decoded)] and decoded.count(tokenizer.eos_token) > 10
