"""The API as a notebook uses it: reprs that say what a model and a run are, generate with
textgenrnn's shapes, samples written to a file, training on strings in memory and further
training; and every message in Python words (`max_steps=`, never `--max-steps`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn
import charrnn.api
from charrnn.cli.commands import main
from charrnn.errors import CharRNNError, ConfigError
from helpers import PANGRAM

OPTIONS = dict(hidden_size=16, layers=1, seq_len=16, batch_size=4, eval_every=10, warmup_steps=1, preview_chars=0)
TEXTS = [PANGRAM * 30, "pack my box with five dozen liquor jugs\n" * 30]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on texts in memory, and its result."""
    folder = tmp_path_factory.mktemp("notebook")
    result = charrnn.train(texts=TEXTS, out=folder / "run", progress=False, max_steps=20, **OPTIONS)
    return folder, result


@pytest.fixture
def model(trained):
    return charrnn.load(trained[0] / "run")


# --- training on texts in memory ---------------------------------------------------------------


def test_texts_train_as_the_same_documents_in_files_do(trained, tmp_path):
    folder, result = trained
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, text in enumerate(TEXTS, 1):
        (corpus / f"{number}.txt").write_text(text, encoding="utf-8")
    from_files = charrnn.train(corpus, out=tmp_path / "files", progress=False, max_steps=20, **OPTIONS)
    assert from_files.best_val_loss == result.best_val_loss  # the same text, the same run
    assert charrnn.load(folder / "run").describe() != []


def test_a_run_on_texts_resumes_from_the_cache_copy_without_them(tmp_path):
    charrnn.train(texts=TEXTS, out=tmp_path / "run", progress=False, max_steps=10, **OPTIONS)
    result = charrnn.train(out=tmp_path / "run", resume=True, progress=False, max_steps=20)
    assert result.step == 20


def test_without_the_cache_copy_a_resume_asks_for_the_texts_again(trained, tmp_path):
    import shutil

    shutil.copytree(trained[0] / "run", tmp_path / "run")
    for copy in (Path(os.environ["CHARRNN_CACHE"]) / "spooled").iterdir():
        copy.unlink()  # a cache cleared since
    with pytest.raises(CharRNNError, match="the cache no longer holds <text 1, sha256 .*give them again with texts"):
        charrnn.train(out=tmp_path / "run", resume=True, progress=False, max_steps=30)
    assert charrnn.train(texts=TEXTS, out=tmp_path / "run", resume=True, progress=False, max_steps=30).step == 30


@pytest.mark.parametrize("texts", ["one string", [], ["a", 3], ["a", ""], ("a", None)])
def test_texts_must_be_a_list_of_strings(texts, tmp_path):
    with pytest.raises(ConfigError, match="texts must be a non-empty list or tuple of non-empty strings"):
        charrnn.train(texts=texts, out=tmp_path / "o", progress=False)


def test_texts_and_corpus_paths_are_not_both_given(tmp_path):
    with pytest.raises(ConfigError, match="give corpus paths or texts, not both"):
        charrnn.train(tmp_path / "a.txt", texts=["abc"], out=tmp_path / "o", progress=False)


# --- reprs ------------------------------------------------------------------------------------


def test_a_train_result_shows_its_summary_in_python_words(trained):
    folder, result = trained
    shown = repr(result)
    assert shown.startswith("Finished at step 20 after ")
    assert f"best validation {result.best_val_bpc:.4f} bpc ({result.best_val_loss:.4f} nats)" in shown
    assert result.best_val_bpc == pytest.approx(result.best_val_loss / 0.6931471805599453)
    assert result.last_val_bpc is not None and f"Checkpoints are in {folder / 'run'}/" in shown
    assert all(line in shown for line in result.advice(python=True)) and "--" not in shown
    assert f"Sample with: charrnn.load({str(folder / 'run')!r}).generate()" in shown


def test_train_with_progress_ends_with_the_summary_in_python_words(tmp_path, capsys):
    result = charrnn.train(texts=TEXTS, out=tmp_path / "run", max_steps=20, threads=1, **OPTIONS)
    err = capsys.readouterr().err
    assert err.rstrip().endswith(repr(result).rstrip())
    assert "--" not in repr(result)


def test_the_command_still_ends_with_flags(tmp_path):
    (tmp_path / "c.txt").write_text(PANGRAM * 60, encoding="utf-8")
    args = "--hidden-size 16 --layers 1 --seq-len 16 --batch-size 4 --max-steps 40 --eval-every 5 --threads 1 -q"
    result = CliRunner().invoke(main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "r"), *args.split()])
    assert result.exit_code == 0, result.output
    assert "Next: charrnn train " in result.stderr and "Sample with: charrnn sample --checkpoint" in result.stderr


def test_a_model_repr_says_what_it_is(model, trained):
    checkpoint = model.loaded.checkpoint
    bpc = checkpoint.last_val_loss / 0.6931471805599453
    assert repr(model) == (
        f"<charrnn Model: LSTM 1x16, {checkpoint.num_parameters:,} parameters, {len(model.loaded.vocab)} characters, "
        f"step 20, validation {bpc:.3f} bpc ({checkpoint.last_val_loss:.3f} nats), {trained[0] / 'run' / 'best.pt'}>"
    )


# --- generate ----------------------------------------------------------------------------------


def test_generate_gives_one_string_or_a_list_by_the_documented_rule(model):
    one = model.generate(length=30, seed=1)
    assert isinstance(one, str) and len(one) == 30
    assert model.generate(length=30, seed=1) == one  # a seed makes it reproducible
    assert model.generate(1, 30, seed=1, temperature=[1.0]) == [one]  # a list: always a list
    several = model.generate(3, 20, prime="the ", seed=2)
    assert isinstance(several, list) and len(several) == 3 and all(s.startswith("the ") for s in several)
    by_temperature = model.generate(2, 20, temperature=[1.0, 0.5, 0.2], seed=4)
    assert len(by_temperature) == 6
    # n samples for each temperature, in order: each group as that temperature alone gives it
    for index, temperature in enumerate([1.0, 0.5, 0.2]):
        assert by_temperature[2 * index : 2 * index + 2] == model.generate(2, 20, temperature=temperature, seed=4)
    assert model.generate(2, 20, seed=4) == model.samples(2, 20, seed=4)  # the same sampling rules


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"temperature": []}, "temperature must be a number or a non-empty list"),
        ({"temperature": [1.0, -1]}, "temperature must be a number > 0"),
        ({"n": 0}, "n must be an integer >= 1"),
        ({"n": 3, "length": 2**27}, "with n=3 would hold"),
    ],
)
def test_generate_refuses_bad_arguments_by_their_python_names(model, arguments, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        model.generate(**arguments)


# --- generate_to_file --------------------------------------------------------------------------


def test_generate_to_file_writes_every_sample_under_its_heading(model, tmp_path):
    path = model.generate_to_file(tmp_path / "s.txt", 3, 20, temperature=[1.0, 0.5], seed=5)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"--- charrnn sample of {model.path}, step 20, seed 5 ---\n")
    made = model.generate(3, 20, temperature=[1.0, 0.5], seed=5)
    headings = [f"--- sample {i} of 3 (temperature {t}) ---" for t in ("1", "0.5") for i in (1, 2, 3)]
    assert text.count("--- sample ") == 6
    for heading, sample in zip(headings, made):
        assert f"\n{heading}\n{sample}\n" in text


def test_generate_to_file_holds_one_batch_at_a_time(model, tmp_path, monkeypatch):
    monkeypatch.setattr(charrnn.api, "MAX_HELD", 50)  # batches of 50 // 20 = 2 samples
    counts = []
    real = charrnn.api.Model.samples

    def counted(self, count, *args, **kwargs):
        counts.append(count)
        return real(self, count, *args, **kwargs)

    monkeypatch.setattr(charrnn.api.Model, "samples", counted)
    text = model.generate_to_file(tmp_path / "s.txt", 5, 20, seed=6).read_text(encoding="utf-8")
    assert counts == [2, 2, 1] and text.count("--- sample ") == 5
    first = model.generate(2, 20, seed=6)  # the first batch is what generate makes
    assert all(f"\n{sample}\n" in text for sample in first)


def test_generate_to_file_replaces_its_own_file_but_not_a_foreign_one(model, tmp_path):
    path = tmp_path / "s.txt"
    model.generate_to_file(path, 1, 10, seed=1)
    model.generate_to_file(path, 2, 10, seed=1)  # its own: replaced
    assert path.read_text(encoding="utf-8").count("--- sample ") == 2
    mine = tmp_path / "mine.txt"
    mine.write_text("my notes", encoding="utf-8")
    with pytest.raises(ConfigError, match="not written by charrnn.*give overwrite=True to replace it, or another path"):
        model.generate_to_file(mine, 1, 10)
    assert mine.read_text(encoding="utf-8") == "my notes"
    model.generate_to_file(mine, 1, 10, overwrite=True)
    assert mine.read_text(encoding="utf-8").startswith("--- charrnn sample of ")


def test_generate_to_file_leaves_the_old_file_when_sampling_fails(model, tmp_path):
    path = model.generate_to_file(tmp_path / "s.txt", 1, 10, seed=1)
    before = path.read_text(encoding="utf-8")
    with pytest.raises(CharRNNError):
        model.generate_to_file(path, 1, 10, prime="\u00fc", unknown="refuse")
    assert path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.txt"]


# --- train_more --------------------------------------------------------------------------------


def test_train_more_continues_the_run_and_the_model_takes_the_new_weights(trained, tmp_path):
    import shutil

    shutil.copytree(trained[0] / "run", tmp_path / "run")
    model = charrnn.load(tmp_path / "run")
    before = model.generate(length=40, seed=1)
    result = model.train_more(max_steps=40, progress=False)
    assert result.step == 40 and result.out_dir == tmp_path / "run" and model.step == 40
    assert model.generate(length=40, seed=1) != before


def test_train_more_into_a_new_folder_fine_tunes_on_a_new_text(model, tmp_path):
    origin = model.path
    result = model.train_more(
        texts=["sphinx of black quartz, judge my vow\n" * 30],
        out=tmp_path / "ft",
        max_steps=10,
        seq_len=16,
        batch_size=4,
        progress=False,
    )
    assert result.out_dir == tmp_path / "ft" and model.path == tmp_path / "ft" / "best.pt"
    assert model.loaded.checkpoint.record.init_from.path == str(origin)
    with pytest.raises(ConfigError, match="fine-tunes on a new text: give corpus paths or texts"):
        model.train_more(out=tmp_path / "ft2", max_steps=10)
    assert "Diagnosis" not in repr(model) and repr(model).endswith(f"{tmp_path / 'ft' / 'best.pt'}>")


# --- every refusal in Python words -------------------------------------------------------------


def _sweep(folder: Path, model) -> dict:
    corpus = folder / "corpus.txt"
    corpus.write_text(PANGRAM * 30, encoding="utf-8")
    (folder / "mine.txt").write_text("mine", encoding="utf-8")
    run = folder / "sweep-run"
    charrnn.train(corpus, out=run, progress=False, max_steps=10, **OPTIONS)
    tiny = dict(out=folder / "o", progress=False, max_steps=10)
    return {
        "load-missing": lambda: charrnn.load(folder / "nothing"),
        "load-device": lambda: charrnn.load(run, device="gpu"),
        "sample-prime-unseen": lambda: model.sample(10, prime="\u00fc", unknown="refuse"),
        "samples-count": lambda: model.samples(0),
        "stream-temperature": lambda: model.stream(10, temperature=0),
        "generate-temperature": lambda: model.generate(temperature=["hot"]),
        "generate-prime": lambda: model.generate(prime=3),
        "generate-top-k": lambda: model.generate(top_k=0),
        "generate-to-file-foreign": lambda: model.generate_to_file(folder / "mine.txt"),
        "generate-to-file-no-folder": lambda: model.generate_to_file(folder / "no" / "s.txt"),
        "score-nothing": lambda: model.score(),
        "score-encoding": lambda: model.score(corpus, encoding="bogus"),
        "train-option": lambda: charrnn.train(corpus, hidden_size="big", **tiny),
        "train-texts": lambda: charrnn.train(texts="abc", **tiny),
        "train-no-length": lambda: charrnn.train(corpus, **{**tiny, "max_steps": None}),
        "train-too-short": lambda: charrnn.train(texts=["abc"], **{**tiny, "seq_len": 64}),
        "train-min-count": lambda: charrnn.train(corpus, min_count=10**6, **tiny),
        "train-embed-dropout": lambda: charrnn.train(corpus, input_mode="one-hot", embed_dropout=0.1, **tiny),
        "train-device": lambda: charrnn.train(corpus, device="mps", **tiny),
        "train-run-exists": lambda: charrnn.train(corpus, out=run, progress=False, max_steps=10, hidden_size=17),
        "resume-architecture": lambda: charrnn.train(out=run, resume=True, progress=False, seq_len=8),
        "resume-complete": lambda: repr(charrnn.train(out=run, resume=True, progress=False)),
    }


def test_no_api_refusal_names_a_command_line_flag(tmp_path, model):
    cases = _sweep(tmp_path, model)
    for name, call in cases.items():
        if name == "resume-complete":
            message = call()  # not a refusal: the run has nothing left to do
            assert "add resume=True with a larger max_steps or max_time" in message
        else:
            with pytest.raises(CharRNNError) as raised:
                call()
            message = str(raised.value)
        assert "--" not in message, (name, message)


def test_the_same_refusal_on_the_command_line_names_the_flag(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc", encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(tmp_path / "o"), "--seq-len", "64"])
    assert result.exit_code == 1 and "a smaller --batch-size or a smaller --seq-len" in result.stderr
    with pytest.raises(CharRNNError, match="a smaller batch_size or a smaller seq_len"):
        charrnn.train(corpus, out=tmp_path / "p", progress=False, seq_len=64, max_steps=10)
