import numpy as np
import pytest

from charrnn.core.vocab import CODE_POINTS, UNKNOWN, Vocab, code_points, smallest_id_dtype
from charrnn.errors import CorpusError, OptionError
from helpers import mixed_script_text, vocab_of


def test_vocabulary_is_code_points_in_code_point_order():
    vocab = vocab_of("banana 🙂 世")
    assert vocab.chars == [" ", "a", "b", "n", "世", "🙂"]


def test_cjk_emoji_and_astral_characters_round_trip():
    text = mixed_script_text() * 3
    vocab = vocab_of(text)
    ids = vocab.encode(text)
    assert len(ids) == len(text)  # one id per code point, not per UTF-8 byte
    assert vocab.decode(ids) == text
    assert "𥫗" in vocab and "🚀" in vocab


def test_order_does_not_depend_on_first_appearance():
    assert vocab_of("cab").chars == vocab_of("bca").chars


def test_encode_works_for_any_character_order():
    vocab = Vocab(["z", "a", "世"])  # not sorted, as a fine-tuned vocabulary may be
    assert vocab.encode("a世z").tolist() == [1, 2, 0]
    assert vocab.decode([2, 1]) == "世a"


def test_unknown_characters_are_named():
    vocab = vocab_of("abc")
    assert vocab.unknown_chars("abXcYX") == ["X", "Y"]
    with pytest.raises(CorpusError, match="'XY'"):
        vocab.encode("abXcY")


def test_id_dtype_is_the_narrowest_that_fits():
    assert smallest_id_dtype(65) == np.uint8 and smallest_id_dtype(256) == np.uint8
    assert smallest_id_dtype(9589) == np.uint16
    assert smallest_id_dtype(70000) == np.uint32
    assert vocab_of(mixed_script_text()).encode("a").dtype == np.uint8


@pytest.mark.parametrize("chars", [[], ["ab"], ["a", "a"], [1], ["", "a", ""]])
def test_malformed_vocabularies_are_refused(chars):
    with pytest.raises(ValueError):
        Vocab(chars)


def test_rare_characters_share_one_unknown_id_and_coverage_is_reported():
    text = "aaaabbbbccccd" * 10 + "xyz"
    counts = np.bincount(code_points(text), minlength=CODE_POINTS)
    vocab, coverage = Vocab.from_counts(counts, min_count=5)
    assert vocab.entries == ["a", "b", "c", "d", UNKNOWN]
    assert vocab.decode(vocab.encode("abxd")) == "ab\ufffdd"
    assert (coverage.kept_chars, coverage.dropped_chars, coverage.outside) == (4, 3, 3)
    assert coverage.covered == pytest.approx(1 - 3 / len(text))
    assert "3 rare characters map to unknown" in coverage.describe()


def test_max_vocab_keeps_the_most_frequent_in_code_point_order():
    counts = np.bincount(code_points("zzzzyyyxxw"), minlength=CODE_POINTS)
    vocab, _ = Vocab.from_counts(counts, max_vocab=2)
    assert vocab.entries == ["y", "z", UNKNOWN]


def test_extending_keeps_every_old_id():
    old = Vocab(["b", UNKNOWN, "d"])
    grown = old.extended(np.bincount(code_points("abcde"), minlength=CODE_POINTS))
    assert grown.entries[:3] == old.entries and grown.entries[3:] == ["a", "c", "e"]


def test_a_min_count_that_leaves_no_character_its_own_id_is_refused():
    counts = np.bincount(code_points("aaab"), minlength=CODE_POINTS)
    with pytest.raises(OptionError, match=r"4 leaves no character .* appears 3 times \(give at most 3\)") as caught:
        Vocab.from_counts(counts, min_count=4)
    assert caught.value.option == "--min-count"
    assert Vocab.from_counts(counts, min_count=3)[0].entries == ["a", UNKNOWN]  # the most frequent alone is enough
