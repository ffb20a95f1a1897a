import numpy as np
import pytest

from charrnn.errors import CorpusError
from charrnn.vocab import Vocab, smallest_id_dtype
from conftest import mixed_script_text


def test_vocabulary_is_code_points_in_code_point_order():
    vocab = Vocab.from_text("banana 🙂 世")
    assert vocab.chars == [" ", "a", "b", "n", "世", "🙂"]


def test_cjk_emoji_and_astral_characters_round_trip():
    text = mixed_script_text() * 3
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert len(ids) == len(text)  # one id per code point, not per UTF-8 byte
    assert vocab.decode(ids) == text
    assert "𥫗" in vocab and "🚀" in vocab


def test_order_does_not_depend_on_first_appearance():
    assert Vocab.from_text("cab").chars == Vocab.from_text("bca").chars


def test_encode_works_for_any_character_order():
    vocab = Vocab(["z", "a", "世"])  # not sorted, as a fine-tuned vocabulary may be
    assert vocab.encode("a世z").tolist() == [1, 2, 0]
    assert vocab.decode([2, 1]) == "世a"


def test_unknown_characters_are_named():
    vocab = Vocab.from_text("abc")
    assert vocab.unknown_chars("abXcYX") == ["X", "Y"]
    with pytest.raises(CorpusError, match="'XY'"):
        vocab.encode("abXcY")


def test_id_dtype_is_the_narrowest_that_fits():
    assert smallest_id_dtype(65) == np.uint8
    assert smallest_id_dtype(9589) == np.int16
    assert smallest_id_dtype(70000) == np.int32
    assert Vocab.from_text(mixed_script_text()).encode("a").dtype == np.uint8


@pytest.mark.parametrize("chars", [[], ["ab"], ["a", "a"], [1]])
def test_malformed_vocabularies_are_refused(chars):
    with pytest.raises(ValueError):
        Vocab(chars)
