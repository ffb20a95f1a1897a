"""Corpora: which files, in what order, decoded chunk by chunk with exact error locations."""

import pytest

import charrnn.corpus
from charrnn.corpus import builtin_corpus, resolve_corpus
from charrnn.errors import CorpusError


def _text(corpus) -> str:
    return "".join(corpus.chunks())


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 bytes, so multi-byte characters and errors fall across chunk boundaries."""
    monkeypatch.setattr(charrnn.corpus, "CHUNK_BYTES", 7)


def test_files_folders_and_patterns_are_read_in_sorted_order_with_newlines_between(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("third", encoding="utf-8")
    (tmp_path / ".hidden").write_text("never", encoding="utf-8")
    assert _text(resolve_corpus([str(tmp_path)])) == "first\nsecond\nthird\n"
    assert _text(resolve_corpus([str(tmp_path / "*.txt")])) == "first\nsecond\n"
    assert _text(resolve_corpus([str(tmp_path / "b.txt"), str(tmp_path / "a.txt")])) == "first\nsecond\n"


def test_multibyte_characters_survive_chunk_boundaries(tmp_path, small_chunks):
    text = "春眠不觉晓，处处闻啼鸟。🙂 naïve\n" * 5
    (tmp_path / "poem.txt").write_text(text, encoding="utf-8")
    assert _text(resolve_corpus([str(tmp_path / "poem.txt")])) == text


def test_a_byte_order_mark_is_dropped(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffhello\n".encode("utf-8"))
    assert _text(resolve_corpus([str(tmp_path / "bom.txt")])) == "hello\n"


def test_invalid_utf8_is_located_by_offset_and_line_across_chunks(tmp_path, small_chunks):
    (tmp_path / "bad.txt").write_bytes(b"line one\nline two\nbad \xff here\n")
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 22 \(line 3\)"):
        _text(resolve_corpus([str(tmp_path / "bad.txt")]))


def test_other_encodings_and_replacement(tmp_path):
    (tmp_path / "latin.txt").write_bytes("café crème\n".encode("latin-1"))
    assert _text(resolve_corpus([str(tmp_path / "latin.txt")], encoding="latin-1")) == "café crème\n"
    assert _text(resolve_corpus([str(tmp_path / "latin.txt")], errors="replace")) == "caf\ufffd cr\ufffdme\n"
    (tmp_path / "wide.txt").write_text("wide 文字\n", encoding="utf-16")  # holds NUL bytes, and is text
    assert _text(resolve_corpus([str(tmp_path / "wide.txt")], encoding="utf-16")) == "wide 文字\n"


def test_a_nul_byte_marks_a_binary_file_wherever_it_is(tmp_path, small_chunks):
    (tmp_path / "binary").write_bytes(b"text for a while\x00more")
    with pytest.raises(CorpusError, match="NUL byte at offset 16"):
        _text(resolve_corpus([str(tmp_path / "binary")]))


@pytest.mark.parametrize(
    "argument, message",
    [("nosuch.txt", "corpus not found"), ("empty", "holds no files"), ("*.none", "matches no files")],
)
def test_names_that_give_no_text_are_refused(tmp_path, monkeypatch, argument, message):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match=message):
        resolve_corpus([argument])


def test_the_built_in_corpus_is_deterministic_python_source():
    first, second = builtin_corpus(), builtin_corpus()
    assert first.files == second.files and first.builtin
    assert all(path.suffix == ".py" for path in first.files)
    assert 1_000_000 < first.total_bytes <= 3_000_000
