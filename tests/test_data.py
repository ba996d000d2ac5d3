import pytest

from hf_progressive.data import python_package_corpus, python_stdlib_corpus, split_documents, train_byte_level_bpe


def test_stdlib_corpus_is_deterministic_real_code():
    documents = python_stdlib_corpus(max_bytes=300_000)
    assert documents == python_stdlib_corpus(max_bytes=300_000)
    assert 0 < sum(map(len, documents)) <= 300_000
    assert any("def " in d and '"""' in d for d in documents)


def test_package_corpus_reads_an_installed_package_s_own_code_and_names_a_missing_one():
    documents = python_package_corpus("torch", max_bytes=200_000)
    assert documents == python_package_corpus("torch", max_bytes=200_000)
    assert 0 < sum(map(len, documents)) <= 200_000
    assert any("import torch" in d for d in documents)
    assert set(documents).isdisjoint(python_stdlib_corpus(max_bytes=200_000))
    with pytest.raises(ValueError, match="'no_such_package_here' is not an installed package"):
        python_package_corpus("no_such_package_here")


def test_split_holds_out_whole_documents():
    documents = [f"doc {i}" for i in range(45)]
    train, validation = split_documents(documents, 0.1)
    assert sorted(train + validation) == sorted(documents) and not set(train) & set(validation)
    assert len(validation) == 5
    assert split_documents(["a", "b", "c"], 0.05)[1] == ["c"]  # a short list still gets a validation document
    with pytest.raises(ValueError, match="validation_fraction=1.5"):
        split_documents(documents, 1.5)


def test_bpe_tokenizer_round_trips_text():
    text = "def add(a, b):\n    return a + b  # sum\n"
    tokenizer = train_byte_level_bpe([text * 50], vocab_size=300)
    assert len(tokenizer) <= 300 and tokenizer.eos_token == "<|endoftext|>"
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids) == text and len(ids) < len(text)
