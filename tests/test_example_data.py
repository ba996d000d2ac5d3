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


def dataset_folder(tmp_path, with_validation: bool = True):
    """A local dataset folder as a user would keep one (or the Hub would hold): data files named by split."""
    folder = tmp_path / "code_dataset"
    folder.mkdir(parents=True)
    rows = [{"content": f"def f{i}(x):\n    return x * {i}\n", "path": f"f{i}.py"} for i in range(80)]
    splits = {"train": rows[:70], "validation": rows[70:]} if with_validation else {"train": rows}
    for split, split_rows in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in split_rows))
    return folder


def test_dataset_name_loads_a_local_dataset_folder_like_run_clm(tmp_path):
    example = load_example()
    folder = dataset_folder(tmp_path)
    data_args = example.DataTrainingArguments(dataset_name=str(folder), text_column="content")
    raw = example.load_raw_datasets(data_args)
    assert raw["train"].column_names == ["text"] and len(raw["train"]) == 70 and len(raw["validation"]) == 10
    assert raw["train"][3]["text"] == "def f3(x):\n    return x * 3\n"
    assert example.rows_are_documents(data_args)  # each row a document, ended by <|endoftext|>
    # Without a validation split, the tail of train is held out, as for files.
    held_out = example.DataTrainingArguments(
        dataset_name=str(dataset_folder(tmp_path / "b", with_validation=False)), text_column="content"
    )
    raw = example.load_raw_datasets(held_out)
    assert len(raw["train"]) == 76 and raw["validation"][0]["text"].startswith("def f76(")


def test_dataset_name_refuses_what_it_cannot_load_naming_it(tmp_path):
    import pytest

    example = load_example()
    folder = dataset_folder(tmp_path)
    cases = [
        (dict(dataset_name=str(folder)), "has no column 'text' (its columns: content, path)"),
        (dict(dataset_name=str(folder), train_file="x.txt"), "give one source of text"),
        (dict(dataset_name=str(tmp_path / "nothing" / "here")), "no such folder (and not a Hub dataset id)"),
        (dict(dataset_name=str(folder / "train.jsonl")), "is a file: pass it as --train_file"),
    ]
    for overrides, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            example.load_raw_datasets(example.DataTrainingArguments(**overrides))
