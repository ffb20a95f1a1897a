"""Encoding corpora in two streaming passes, and the cache that makes a second run start at once."""

import os

import numpy as np
import pytest
import torch

import charrnn.store.corpus
from charrnn.core.vocab import Vocab
from charrnn.store.cache import HEADER_BYTES
from charrnn.store.corpus import resolve_corpus
from charrnn.store.encoded import CorpusCache
from helpers import mixed_script_text, vocab_of


@pytest.fixture
def corpus_files(tmp_path):
    (tmp_path / "one.txt").write_text(mixed_script_text() * 30, encoding="utf-8")
    (tmp_path / "two.txt").write_text("plain ascii, no final newline", encoding="utf-8")
    return tmp_path


def test_streamed_encoding_equals_encoding_the_whole_text(corpus_files, tmp_path, monkeypatch):
    monkeypatch.setattr(charrnn.store.corpus, "CHUNK_BYTES", 5)  # a chunk boundary inside most characters
    corpus = resolve_corpus([str(corpus_files / "one.txt"), str(corpus_files / "two.txt")])
    whole = mixed_script_text() * 30 + "plain ascii, no final newline\n"
    cache = CorpusCache(corpus, root=tmp_path / "cache")
    counts, _ = cache.counts()
    vocab, _ = Vocab.from_counts(counts.counts)
    assert vocab == vocab_of(whole)
    encoded = cache.encoded(vocab)
    assert np.array_equal(encoded.ids, vocab.encode(whole)) and vocab.decode(encoded.ids) == whole


def test_ids_take_the_narrowest_type_the_vocabulary_allows(tmp_path):
    (tmp_path / "cjk.txt").write_text("".join(chr(0x4E00 + i) for i in range(600)) + "\n", encoding="utf-8")
    cache = CorpusCache(resolve_corpus([str(tmp_path / "cjk.txt")]), root=tmp_path / "cache")
    vocab, _ = Vocab.from_counts(cache.counts()[0].counts)
    encoded = cache.encoded(vocab)
    assert encoded.ids.dtype == np.uint16 and os.path.getsize(encoded.path) == HEADER_BYTES + 601 * 2


def test_a_second_run_reuses_the_cache_and_a_changed_file_is_encoded_again(corpus_files, tmp_path):
    path = corpus_files / "one.txt"
    first = CorpusCache(resolve_corpus([str(path)]), root=tmp_path / "cache")
    counts, counts_reused = first.counts()
    vocab, _ = Vocab.from_counts(counts.counts)
    built = first.encoded(vocab)
    assert not counts_reused and not built.ids_reused
    again = CorpusCache(resolve_corpus([str(path)]), root=tmp_path / "cache").encoded(vocab)
    assert again.counts_reused and again.ids_reused and again.counts.sha256 == built.counts.sha256

    path.write_text(mixed_script_text() * 31, encoding="utf-8")
    changed = CorpusCache(resolve_corpus([str(path)]), root=tmp_path / "cache").encoded(vocab)
    assert not changed.counts_reused and changed.counts.total == built.counts.total // 30 * 31
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".charrnn-tmp-" in p.name]


def test_a_damaged_cache_entry_is_rebuilt(corpus_files, tmp_path):
    cache = CorpusCache(resolve_corpus([str(corpus_files / "one.txt")]), root=tmp_path / "cache")
    counts, _ = cache.counts()
    (cache.folder / "counts.bin").write_bytes(b"not a cache entry")
    rebuilt, reused = cache.counts()
    assert not reused and np.array_equal(rebuilt.counts, counts.counts)


def test_released_pages_read_back_the_same_ids(corpus_files, tmp_path):
    cache = CorpusCache(resolve_corpus([str(corpus_files / "one.txt")]), root=tmp_path / "cache")
    vocab, _ = Vocab.from_counts(cache.counts()[0].counts)
    encoded = cache.encoded(vocab)
    as_tensor = torch.as_tensor(encoded.ids)  # shares the mapping's memory, as training's streams do
    before = as_tensor.clone()
    encoded.release_pages()
    assert torch.equal(as_tensor, before) and np.array_equal(encoded.ids, vocab.encode(mixed_script_text() * 30))
