"""A character the model never saw: its nearest known form (a Chinese variant, the other width,
the other case), and the --unknown policies of sample, eval, viz and the Python API."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli.commands import main
from charrnn.core import nearest
from charrnn.core.nearest import Near, NearestForms
from charrnn.core.vocab import UNKNOWN, Vocab
from charrnn.errors import ConfigError, CorpusError, OptionError
from charrnn.inspect.viz import trace, unseen_in
from charrnn.store.loading import load_for_sampling
from helpers import TINY_OPTIONS, cli_in_fresh_process, train

# A corpus that writes 牀 (never 床), full-width punctuation and only lower-case Latin letters.
TANG = "牀前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。\nabc: x\n"
QUICK = {**TINY_OPTIONS, "max_steps": 10, "eval_every": 10, "save_every": 10}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs on TANG: `plain`, without an unknown id, and `rare`, whose --min-count gives
    its one rare character (罕) the unknown id."""
    folder = tmp_path_factory.mktemp("unknown")
    (folder / "tang.txt").write_text(TANG * 40, encoding="utf-8")
    (folder / "rare.txt").write_text(TANG * 40 + "罕\n", encoding="utf-8")
    train(folder / "tang.txt", folder / "plain", QUICK)
    train(folder / "rare.txt", folder / "rare", {**QUICK, "min_count": 2})
    return {"plain": folder / "plain", "rare": folder / "rare", "folder": folder}


@pytest.fixture
def without_opencc(monkeypatch):
    """As where OpenCC is not installed: `import opencc` fails, and no converter loaded before is kept."""
    monkeypatch.setitem(sys.modules, "opencc", None)
    monkeypatch.setattr(nearest, "variant_converters", functools.cache(nearest.variant_converters.__wrapped__))


def invoke(*args, input: str | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


# The nearest known character


@pytest.mark.parametrize(
    "known, unseen, near",
    [
        ("牀", "床", Near("牀", "variant")),  # no config turns 床 into 牀: found through the known 牀's t2s form
        ("床", "牀", Near("床", "variant")),  # t2s of 牀 itself
        ("為", "为", Near("為", "variant")),
        ("说", "説", Near("说", "variant")),  # a Japanese form
        ("，：", ",", Near("，", "width")),  # the known full-width form of a typed half-width one
        (",", "，", Near(",", "width")),  # and the other way
        ("z", "Z", Near("z", "case")),
        ("Z", "z", Near("Z", "case")),
        ("Zｚ", "z", Near("ｚ", "width")),  # width is looked at before case
        ("2", "²", Near("2", "form")),  # another compatibility form
        ("abc", "ë", None),
        ("牀", "月", None),
    ],
)
def test_the_nearest_known_character(known, unseen, near):
    assert NearestForms(frozenset(known)).of(unseen) == near


def test_without_opencc_variants_are_not_found_but_widths_and_cases_are(without_opencc):
    forms = NearestForms(frozenset("牀，z"))
    assert forms.of("床") is None and forms.of(",") == Near("，", "width") and forms.of("Z") == Near("z", "case")


def test_the_variant_index_is_built_once_and_only_for_a_chinese_character(monkeypatch):
    calls = []
    real = nearest.variant_converters()

    def counted(convert):
        return lambda char: calls.append(char) or convert(char)

    monkeypatch.setattr(nearest, "variant_converters", lambda: {name: counted(c) for name, c in real.items()})
    known = frozenset(chr(code) for code in range(0x4E00, 0x4E00 + 500)) | {"，", "z"}
    forms = NearestForms(known)
    assert forms.of(",") and forms.of("Z") and calls == []  # no Chinese character asked for: no OpenCC at all
    assert forms.of("牀") is None
    built = len(calls)
    assert built >= 500 * len(nearest.VARIANT_CONFIGS)  # every known Chinese character, converted each way
    assert forms.of("龍") is None and forms.of("牀") is None
    assert len(calls) == built + len(nearest.VARIANT_CONFIGS)  # only 龍's own conversions; 牀's answer is kept


# The policies, on a vocabulary


def test_each_policy_on_a_vocabulary_without_an_unknown_id():
    vocab = Vocab(list("牀前，z"))
    chars = vocab.unknown_chars("床前, Zë")
    assert chars == [" ", ",", "Z", "ë", "床"]
    refused = vocab.unseen(chars, "refuse")
    assert refused.refusal == (
        "has characters the model never saw in training: ' ', ',' (the model knows its full-width form '，'), "
        "'Z' (the model knows its other case 'z'), 'ë', '床' (the model knows its variant '牀')"
    )
    mapped = vocab.unseen(chars, "map")
    assert mapped.refusal == (
        "has characters the model never saw in training: ' ', 'ë'; it knows no character near them "
        "(--unknown skip leaves them out)"
    )
    skipped = vocab.unseen(chars, "skip")
    assert skipped.refusal is None and skipped.left_out == (" ", "ë") and set(skipped.mapped) == {",", "Z", "床"}
    assert skipped.note() == (
        "read ',' as '，', 'Z' as 'z', '床' as '牀'; left out ' ', 'ë' (characters the model never saw)"
    )
    assert vocab.read_ids("床前, Zë", skipped).tolist() == [0, 1, 2, -1, 3, -1]


def test_with_an_unknown_id_characters_with_nothing_near_are_read_as_it():
    vocab = Vocab(["牀", "前", UNKNOWN])
    for policy in ("map", "skip"):
        unseen = vocab.unseen(vocab.unknown_chars("床X"), policy)
        assert unseen.refusal is None and unseen.as_unknown == ("X",) and unseen.left_out == ()
        assert vocab.read_ids("床X", unseen).tolist() == [0, 2]
    assert vocab.unseen(["X"], "map").note() == "read 'X' as the unknown character (the model never saw 'X')"
    assert vocab.unseen(["X"], "refuse").refusal == "has characters the model never saw in training: 'X'"


def test_without_opencc_a_message_about_a_chinese_character_says_how_to_match_variants(without_opencc):
    vocab = Vocab(list("牀前"))
    hint = 'pip install "charrnn-tool[chinese]" would look for variants of its Chinese characters'
    assert vocab.unseen(["床"], "refuse").refusal.endswith(hint)
    assert vocab.unseen(["床"], "map").refusal.endswith(f"(--unknown skip leaves them out); {hint}")
    assert vocab.unseen(["床"], "skip").note().endswith(hint)
    assert "pip install" not in vocab.unseen(["ë"], "refuse").refusal  # not a Chinese character


# charrnn sample


def test_sample_reads_a_variant_as_the_known_one_and_says_so(runs):
    result = invoke("sample", "-c", runs["plain"], "--prime", "床前", "--length", "20", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "note: read '床' as '牀' (the model never saw '床')" in result.stderr.splitlines()
    known = invoke("sample", "-c", runs["plain"], "--prime", "牀前", "--length", "20", "--seed", "3")
    assert result.stdout.startswith("床前") and result.stdout[2:] == known.stdout[2:]  # the same reading
    assert "note:" not in known.stderr


@pytest.mark.parametrize("extra", [["-n", "2"], ["--beam", "2"]])
def test_every_way_of_sampling_maps_the_prime(runs, extra):
    result = invoke("sample", "-c", runs["plain"], "--prime", "床,X!", "--length", "10", "--unknown", "skip", *extra)
    assert result.exit_code == 0, result.output
    assert "note: read ',' as '，', 'X' as 'x', '床' as '牀'; left out '!'" in result.stderr


def test_sample_refuses_or_skips_as_told(runs):
    refused = invoke("sample", "-c", runs["plain"], "--prime", "床前", "--unknown", "refuse")
    assert refused.exit_code == 2 and "'床' (the model knows its variant '牀')" in refused.stderr
    nothing_near = invoke("sample", "-c", runs["plain"], "--prime", "床前!")
    assert nothing_near.exit_code == 2, nothing_near.output
    assert "never saw in training: '!'; it knows no character near them (--unknown skip" in nothing_near.stderr
    skipped = invoke("sample", "-c", runs["plain"], "--prime", "床前!", "--unknown", "skip", "--length", "5")
    assert skipped.exit_code == 0 and skipped.stdout.startswith("床前!")
    assert "left out '!'" in skipped.stderr


def test_a_model_with_an_unknown_id_reads_what_has_nothing_near_as_it(runs):
    result = invoke("sample", "-c", runs["rare"], "--prime", "床前!", "--length", "5")
    assert result.exit_code == 0, result.output
    assert (
        "note: read '床' as '牀'; read '!' as the unknown character (characters the model never saw)" in result.stderr
    )
    assert "\ufffd" not in result.stdout  # the unknown character is read, never written


def test_without_opencc_a_variant_is_refused_with_the_way_to_match_it(runs, without_opencc):
    result = invoke("sample", "-c", runs["plain"], "--prime", "床前")
    assert result.exit_code == 2
    assert 'pip install "charrnn-tool[chinese]" would look for variants' in result.stderr


def test_sampling_with_an_unseen_prime_imports_no_torch(runs):
    output, imported_torch = cli_in_fresh_process(["sample", "-c", runs["plain"], "--prime", "床前", "--length", "5"])
    assert output.startswith("床前") and not imported_torch


def test_interactive_sampling_applies_the_rule_to_each_typed_prime(runs):
    result = invoke("sample", "-c", runs["plain"], "-i", "--length", "8", "--seed", "1", input="床前\n牀前!\n明月\n")
    assert result.exit_code == 0, result.output
    texts = [text for text in result.stdout.split("\n\n") if text.strip()]
    assert [text[:2] for text in texts] == ["床前", "明月"]
    assert "note: read '床' as '牀' (the model never saw '床')" in result.stderr
    assert "that prime has characters the model never saw in training: '!'; it knows no character" in result.stderr
    skipping = invoke("sample", "-c", runs["plain"], "-i", "--length", "8", "--unknown", "skip", input="牀前!\n")
    assert skipping.stdout.startswith("牀前!") and "left out '!'" in skipping.stderr


# charrnn eval


def _eval_lines(result) -> dict[str, str]:
    assert result.exit_code == 0, result.output
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_eval_scores_variants_as_the_known_characters_and_reports_them(runs):
    folder = runs["folder"]
    (folder / "simplified.txt").write_text("床前明月光,疑是地上霜。举头望明月,低头思故乡。\n" * 3, encoding="utf-8")
    (folder / "as-known.txt").write_text("牀前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。\n" * 3, encoding="utf-8")
    mapped = _eval_lines(invoke("eval", folder / "simplified.txt", "-c", runs["plain"]))
    known = _eval_lines(invoke("eval", folder / "as-known.txt", "-c", runs["plain"]))
    assert mapped["bits per character"] == known["bits per character"]
    assert mapped["outside the vocabulary"] == (
        "21 characters (5 distinct), read as the nearest character the model knows "
        "(',' as '，', '举' as '舉', '乡' as '鄉', '头' as '頭', '床' as '牀')"
    )


def test_eval_leaves_out_what_has_nothing_near_by_default_and_refuses_when_told(runs):
    text = runs["folder"] / "mixed.txt"
    text.write_text("床前明月光!!\n" * 4, encoding="utf-8")
    lines = _eval_lines(invoke("eval", text, "-c", runs["plain"]))
    assert lines["outside the vocabulary"] == (
        "12 characters (2 distinct), of which 4 read as the nearest character the model knows ('床' as '牀'), "
        "8 left out"
    )
    refused = invoke("eval", text, "-c", runs["plain"], "--unknown", "refuse")
    assert refused.exit_code == 1 and "'!', '床' (the model knows its variant '牀')" in refused.stderr
    nothing_near = invoke("eval", text, "-c", runs["plain"], "--unknown", "map")
    assert nothing_near.exit_code == 1 and "--unknown skip leaves them out" in nothing_near.stderr
    with_unknown = _eval_lines(invoke("eval", text, "-c", runs["rare"], "--unknown", "map"))
    assert with_unknown["outside the vocabulary"].endswith("8 scored as the unknown character")


# charrnn viz


def test_viz_reads_the_text_as_the_policy_says_and_says_so(runs):
    result = invoke("viz", "--text", "床前明月光!", "-c", runs["plain"], "--ansi")
    assert result.exit_code == 0, result.output
    assert "note: read '床' as '牀'; left out '!' (characters the model never saw)" in result.stderr
    refused = invoke("viz", "--text", "床前明月光", "-c", runs["plain"], "--ansi", "--unknown", "refuse")
    assert refused.exit_code == 1 and "the text has characters the model never saw" in refused.stderr
    page = invoke("viz", "--text", "床前明月光!", "-c", runs["plain"], "-o", runs["folder"] / "page.html")
    assert page.exit_code == 0 and "read '床' as '牀'" in page.stderr
    assert "note: 1 character is outside the model's vocabulary: shown, not scored" in page.stderr  # '!' alone


def test_viz_predicts_a_mapped_character_as_the_known_one(runs):
    loaded = load_for_sampling(runs["plain"])
    mapped = trace(loaded, "床前明月光", unseen_in(loaded, "床前明月光", "skip"))
    known = trace(loaded, "牀前明月光", unseen_in(loaded, "牀前明月光", "skip"))
    assert mapped.ids.tolist() == known.ids.tolist() and (mapped.bits[1:] == known.bits[1:]).all()


# The Python API


def test_the_api_takes_the_same_policies(runs, tmp_path):
    model = charrnn.load(runs["plain"])
    assert model.sample(10, prime="床前", seed=1) == "床" + model.sample(10, prime="牀前", seed=1)[1:]
    assert model.unseen("床前").note() == "read '床' as '牀' (the model never saw '床')"
    with pytest.raises(OptionError, match="its variant '牀'"):
        model.sample(10, prime="床前", unknown="refuse")
    with pytest.raises(OptionError, match="it knows no character near them"):
        model.samples(2, 10, prime="!")
    assert model.sample(10, prime="!", unknown="skip", beam=2).startswith("!")
    assert len(list(model.stream(5, prime="床!", unknown="skip"))) == 6
    with pytest.raises(ConfigError, match="unknown must be one of map, skip, refuse, got 'guess'"):
        model.sample(10, prime="床", unknown="guess")
    text = tmp_path / "held.txt"
    text.write_text("床前明月光!\n" * 4, encoding="utf-8")
    score = model.score(text)  # skip, as charrnn eval
    assert score.mapped == 4 and score.left_out == 4 and score.outside == 8 and score.outside_distinct == 2
    with pytest.raises(CorpusError, match="never saw in training: '!'"):
        model.score(text, unknown="map")
