"""train --fold-variants: each group of variant Chinese characters gets one id, the others are
aliases of it, everywhere (corpus, primes, eval, the cache), kept in the checkpoint and by
fine-tuning; refused in one line where OpenCC is missing."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.core import nearest
from charrnn.core.nearest import variant_folds
from charrnn.core.vocab import UNKNOWN, Vocab, code_points
from charrnn.errors import OptionError
from charrnn.run.progress import Reporter
from charrnn.run.training import TrainRequest, run_training
from charrnn.store.checkpoint import load_checkpoint, read_checkpoint, write_checkpoint
from charrnn.store.corpus import resolve_corpus
from charrnn.store.encoded import CorpusCache
from helpers import TINY_OPTIONS

TRADITIONAL = "牀前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。\n"
SIMPLIFIED = "床前明月光，疑是地上霜。举头望明月，低头思故乡。\n"
MIXED = (TRADITIONAL * 3 + SIMPLIFIED) * 15  # the traditional forms are the more frequent
FOLDED = {"床": "牀", "举": "舉", "头": "頭", "乡": "鄉"}
QUICK = {**TINY_OPTIONS, "max_steps": 10, "eval_every": 10, "save_every": 10}


class Messages(Reporter):
    def __init__(self):
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def train(corpus: Path, out: Path, options: dict, **request) -> list[str]:
    """Train as the API does; the lines the run said."""
    messages = Messages()
    run_training(TrainRequest((str(corpus),), out, device="cpu", options=options, **request), messages)
    return messages.lines


@pytest.fixture(scope="module")
def folded(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("fold")
    (folder / "mixed.txt").write_text(MIXED, encoding="utf-8")
    lines = train(folder / "mixed.txt", folder / "run", {**QUICK, "fold_variants": True})
    return {"folder": folder, "run": folder / "run", "lines": lines}


@pytest.fixture
def without_opencc(monkeypatch):
    monkeypatch.setitem(sys.modules, "opencc", None)
    monkeypatch.setattr(nearest, "variant_converters", functools.cache(nearest.variant_converters.__wrapped__))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_variants_fold_into_their_most_frequent_member():
    counts = {"牀": 5, "床": 2, "裏": 1, "里": 1, "裡": 1, "a": 9, "著": 3, "着": 4}
    # ties: the lowest code point (裏 U+88CF); 著 and 着 have simplified forms of their own
    assert variant_folds(counts) == {"床": "牀", "里": "裏", "裡": "裏"}
    assert variant_folds({"牀": 5}, fixed={"床"}) == {"牀": "床"}  # a fine-tuned model's character stays
    assert variant_folds({"牀": 5, "床": 1}, fixed={"床", "牀"}) == {}


def test_a_folded_vocabulary_reads_aliases_as_their_character_and_never_writes_them():
    counts = np.bincount(code_points(MIXED), minlength=0x110000)
    vocab, coverage = Vocab.from_counts(counts, folds=FOLDED)
    assert not set(FOLDED) & set(vocab.entries) and set(FOLDED.values()) <= set(vocab.entries)
    assert vocab.aliases == {alias: vocab.entries.index(into) for alias, into in FOLDED.items()}
    assert vocab.decode(vocab.encode(SIMPLIFIED)) == TRADITIONAL
    assert coverage.folded == 4 and coverage.outside == 0 and coverage.kept_chars == len(vocab)
    assert coverage.describe() == f"{len(vocab)} characters (4 variants folded into them)"
    assert vocab.unknown_chars(SIMPLIFIED) == []


@pytest.mark.parametrize(
    "aliases, problem",
    [
        ({"a": 1}, "not a single character outside the entries"),
        ({"xy": 0}, "not a single character outside the entries"),
        ({"c": 5}, "no character's id"),
        ({"c": 2}, "no character's id"),  # the unknown entry
        ({"c": True}, "no character's id"),
    ],
)
def test_aliases_are_checked(aliases, problem):
    with pytest.raises(ValueError, match=problem):
        Vocab(["a", "b", UNKNOWN], aliases)


def test_training_folds_the_variants_and_says_how_many(folded):
    vocab = read_checkpoint(folded["run"] / "latest.pt").vocab
    assert f"vocabulary: {len(vocab)} characters (4 variants folded into them)" in folded["lines"]
    assert {alias: vocab.entries[i] for alias, i in vocab.aliases.items()} == FOLDED
    info = invoke("info", folded["run"])
    assert f"vocabulary: {len(vocab)} entries (4 variants folded into them)" in info.stdout
    assert "--fold-variants True" in info.stdout


def test_the_aliases_survive_a_round_trip_and_a_resume(folded, tmp_path):
    checkpoint = read_checkpoint(folded["run"] / "latest.pt")
    assert load_checkpoint(folded["run"] / "latest.pt")["vocab_aliases"] == checkpoint.vocab.aliases
    write_checkpoint(checkpoint, tmp_path / "again.pt")
    assert read_checkpoint(tmp_path / "again.pt").vocab == checkpoint.vocab
    copy = tmp_path / "run"
    copy.mkdir()
    for path in folded["run"].iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    train(folded["folder"] / "mixed.txt", None, {"max_steps": 12}, resume=str(copy))
    resumed = read_checkpoint(copy / "latest.pt")
    assert resumed.step == 12 and resumed.vocab == checkpoint.vocab and resumed.train_config.fold_variants


def test_a_prime_in_the_other_script_is_read_as_the_folded_characters(folded):
    simplified = invoke("sample", "-c", folded["run"], "--prime", "举头", "--length", "30", "--seed", "2")
    traditional = invoke("sample", "-c", folded["run"], "--prime", "舉頭", "--length", "30", "--seed", "2")
    assert simplified.exit_code == 0, simplified.output
    assert "note:" not in simplified.stderr  # the model knows them: nothing was mapped
    assert simplified.stdout.startswith("举头") and simplified.stdout[2:] == traditional.stdout[2:]
    assert not set(simplified.stdout[2:]) & set(FOLDED)  # sampling writes only the characters kept
    refused = invoke("sample", "-c", folded["run"], "--prime", "举头", "--length", "5", "--unknown", "refuse")
    assert refused.exit_code == 0, refused.output


def test_eval_of_either_script_scores_the_same(folded):
    folder = folded["folder"]
    (folder / "s.txt").write_text(SIMPLIFIED * 4, encoding="utf-8")
    (folder / "t.txt").write_text(TRADITIONAL * 4, encoding="utf-8")
    scores = [invoke("eval", folder / name, "-c", folded["run"]).stdout for name in ("s.txt", "t.txt")]
    assert "outside the vocabulary" not in scores[0]
    assert [s.split("bits per character: ")[1] for s in scores][0] == scores[1].split("bits per character: ")[1]


def test_fine_tuning_keeps_the_aliases_and_folds_new_variants_on_request(folded, tmp_path):
    (tmp_path / "new.txt").write_text(SIMPLIFIED * 20 + "龍飛龙飞\n" * 10, encoding="utf-8")
    base = read_checkpoint(folded["run"] / "latest.pt").vocab
    for fold, out in ((False, tmp_path / "plain"), (True, tmp_path / "folding")):
        train(tmp_path / "new.txt", out, {**QUICK, "fold_variants": fold}, init_from=str(folded["run"]))
        vocab = read_checkpoint(out / "latest.pt").vocab
        assert vocab.entries[: len(base)] == base.entries and base.aliases.items() <= vocab.aliases.items()
        new = {alias: vocab.entries[i] for alias, i in vocab.aliases.items() if alias not in base.aliases}
        # 龍 and 龙 are as frequent: the lower code point, 龍, is kept; 飛 and 飞 the same way
        assert new == ({"龙": "龍", "飞": "飛"} if fold else {})


def test_the_cached_encoding_of_a_corpus_is_keyed_on_the_aliases_too(tmp_path):
    (tmp_path / "c.txt").write_text(MIXED, encoding="utf-8")
    cache = CorpusCache(resolve_corpus([str(tmp_path / "c.txt")]), root=tmp_path / "cache")
    entries = sorted(set(MIXED) - set(FOLDED)) + [UNKNOWN]
    with_aliases = Vocab(entries, {alias: entries.index(into) for alias, into in FOLDED.items()})
    first = cache.encoded(with_aliases)
    plain = cache.encoded(Vocab(entries))  # the same entries: only the aliases differ
    assert not plain.ids_reused and plain.path != first.path
    bed = MIXED.index("床")
    assert first.ids[bed] == entries.index("牀") and plain.ids[bed] == entries.index(UNKNOWN)
    assert cache.encoded(with_aliases).ids_reused


def test_without_opencc_fold_variants_is_refused_but_a_folded_run_still_works(folded, without_opencc, tmp_path):
    with pytest.raises(OptionError, match=r'--fold-variants needs OpenCC .*pip install "charrnn-tool\[chinese\]"'):
        train(folded["folder"] / "mixed.txt", tmp_path / "o", {**QUICK, "fold_variants": True})
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.pt"))
    sampled = invoke("sample", "-c", folded["run"], "--prime", "举头", "--length", "5")
    assert sampled.exit_code == 0 and sampled.stdout.startswith("举头")  # the aliases need no OpenCC
