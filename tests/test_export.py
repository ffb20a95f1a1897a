"""`charrnn export`: the model alone (weights, vocabulary, configs), in the checkpoint's format
without the training state, read by every command that reads a model and refused by resume."""

import hashlib
import json

import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli.commands import main
from charrnn.errors import ConfigError
from charrnn.store.checkpoint import load_checkpoint, read_checkpoint
from charrnn.store.checkpoint_file import save_checkpoint
from helpers import PANGRAM, TINY_OPTIONS, fast_args, train

HELD_OUT = "the lazy dog jumps over the quick brown fox\n" * 12


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trained run, its model exported in float32 and in float16, and a held-out text."""
    folder = tmp_path_factory.mktemp("export")
    corpus = folder / "corpus.txt"
    corpus.write_text(PANGRAM * 40, encoding="utf-8")
    train(corpus, folder / "run", {**TINY_OPTIONS, "max_steps": 60})
    runner = CliRunner()
    for name, extra in (("full.model", []), ("half.model", ["--half"])):
        result = runner.invoke(main, ["export", str(folder / name), "-c", str(folder / "run"), *extra])
        assert result.exit_code == 0, result.output
        assert f"wrote {folder / name}: the model of {folder / 'run' / 'best.pt'}" in result.output
    (folder / "held_out.txt").write_text(HELD_OUT, encoding="utf-8")
    return folder


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_file_is_a_third_of_the_checkpoint_and_float16_halves_its_weights(exported):
    """(This model is tiny: its vocabulary and configs are much of any file. The default
    model's sizes are in docs/benchmarks.md.)"""
    checkpoint = (exported / "run" / "best.pt").stat().st_size
    full, half = ((exported / name).stat().st_size for name in ("full.model", "half.model"))
    assert full <= checkpoint / 3
    parameters = read_checkpoint(exported / "full.model").num_parameters
    assert abs((full - half) - 2 * parameters) < 100  # two bytes fewer a weight, nothing else
    stored = load_checkpoint(exported / "half.model")
    assert stored["weights_only"] is True and not {"optimizer", "hidden", "rng"} & set(stored)
    assert {str(weight.dtype) for weight in stored["model"].values()} == {"torch.float16"}


def test_the_float32_model_file_samples_and_scores_exactly_as_its_checkpoint(exported):
    source, model_file = charrnn.load(exported / "run"), charrnn.load(exported / "full.model")
    settings = {"length": 300, "prime": "the ", "temperature": 0.9, "seed": 5}
    assert model_file.generate(**settings) == source.generate(**settings)
    assert model_file.score(exported / "held_out.txt").nats == source.score(exported / "held_out.txt").nats
    runner = CliRunner()
    lines = [
        runner.invoke(main, ["sample", "-c", str(where), "--seed", "3", "--length", "200"]).stdout
        for where in (exported / "run", exported / "full.model")
    ]
    assert lines[0] == lines[1] and len(lines[0]) >= 200


def test_the_float16_model_file_scores_within_a_rounding_of_float32(exported):
    full = charrnn.load(exported / "full.model").score(exported / "held_out.txt").nats
    half = charrnn.load(exported / "half.model").score(exported / "held_out.txt").nats
    assert half != full and abs(half - full) < 0.002


def test_info_eval_viz_and_adapting_read_a_model_file(exported, tmp_path):
    runner = CliRunner()
    info = runner.invoke(main, ["info", str(exported / "half.model")])
    assert info.exit_code == 0 and "model file: weights (float16)" in info.output and "cannot be resumed" in info.output
    scored = runner.invoke(main, ["eval", str(exported / "held_out.txt"), "-c", str(exported / "half.model")])
    assert scored.exit_code == 0 and "bits per character" in scored.output
    page = tmp_path / "page.html"
    viz = runner.invoke(
        main, ["viz", str(exported / "held_out.txt"), "-c", str(exported / "full.model"), "-o", str(page)]
    )
    assert viz.exit_code == 0 and page.stat().st_size > 0
    # No optimizer moments: adapting gathers its gradient scale from the text's first segments.
    assert charrnn.load(exported / "full.model").score(exported / "held_out.txt", adapt=True).nats > 0


def test_a_model_file_cannot_be_resumed_but_can_be_fine_tuned(exported, tmp_path):
    runner = CliRunner()
    before = _digest(exported / "full.model")
    corpus = tmp_path / "more.txt"
    corpus.write_text(PANGRAM * 20, encoding="utf-8")
    resumed = runner.invoke(main, ["train", str(corpus), "--resume", str(exported / "full.model")])
    assert resumed.exit_code == 1
    assert "is a model file (charrnn export), which keeps no training state" in resumed.output
    assert "Traceback" not in resumed.output
    tuned = runner.invoke(
        main,
        [
            "train",
            str(corpus),
            "--init-from",
            str(exported / "half.model"),
            "--out",
            str(tmp_path / "tuned"),
            *fast_args(layers=None, hidden_size=None),
        ],
    )
    assert tuned.exit_code == 0, tuned.output
    assert read_checkpoint(tmp_path / "tuned" / "latest.pt").record.init_from.path == str(exported / "half.model")
    assert _digest(exported / "full.model") == before


def test_export_never_writes_over_a_file(exported):
    target = exported / "half.model"
    before = _digest(target)
    result = CliRunner().invoke(main, ["export", str(target), "-c", str(exported / "run")])
    assert result.exit_code == 2 and "already exists: give a new file name" in result.output
    assert _digest(target) == before


def test_a_damaged_or_crafted_model_file_is_refused_in_one_line(exported, tmp_path):
    runner = CliRunner()
    damaged = tmp_path / "damaged.model"
    data = bytearray((exported / "full.model").read_bytes())
    data[-10] ^= 0xFF
    damaged.write_bytes(bytes(data))
    stored = load_checkpoint(exported / "full.model")
    crafted = {
        "no weights": {key: value for key, value in stored.items() if key != "model"},
        "a flag that is not one": {**stored, "weights_only": "yes"},
        "no training state, not marked": {key: value for key, value in stored.items() if key != "weights_only"},
    }
    paths = [damaged]
    for number, state in enumerate(crafted.values()):
        paths.append(tmp_path / f"crafted-{number}.model")
        save_checkpoint(state, paths[-1])
    for path in paths:
        result = runner.invoke(main, ["sample", "-c", str(path), "--length", "10"])
        assert result.exit_code == 1, (path, result.output)
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output


def test_a_model_file_keeps_where_it_came_from(exported):
    model_file, source = read_checkpoint(exported / "full.model"), read_checkpoint(exported / "run" / "best.pt")
    assert model_file.step == source.step and model_file.vocab == source.vocab
    assert model_file.record.run.forked_from["path"] == str(exported / "run" / "best.pt")
    assert json.dumps(model_file.record.run.forked_from)  # plain data, as run.json keeps it


def test_the_api_exports_what_the_command_writes_and_refuses_an_adapted_model(exported, tmp_path):
    """Model.export writes a model file that samples as the one `charrnn export` writes, and a
    page where the name ends .html; a model made by adapt() is sent to save() first, since its
    checkpoint does not hold the weights it learned."""
    model = charrnn.load(exported / "run")
    assert model.export(tmp_path / "api.model", half=True) == tmp_path / "api.model"
    assert (
        read_checkpoint(tmp_path / "api.model").weights.keys()
        == read_checkpoint(exported / "half.model").weights.keys()
    )
    exported_text = charrnn.load(tmp_path / "api.model").sample(200, seed=4)
    assert exported_text == charrnn.load(exported / "half.model").sample(200, seed=4)
    page = model.export(tmp_path / "page.HTML").read_text(encoding="utf-8")
    assert '<pre id="output"' in page and "charrnn-weights" in page
    adapted = model.adapt(texts=[HELD_OUT], adapt_segment=32)
    with pytest.raises(ConfigError, match=r"made by adapt\(\) is exported from its own file: save\(path\)"):
        adapted.export(tmp_path / "adapted.model")
    assert not (tmp_path / "adapted.model").exists()
