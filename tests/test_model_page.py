"""The web page `charrnn export --html` writes: self-contained, small, and writing exactly the text
`charrnn sample` writes for the same seed, prime and settings.

The fast tests run the page's own script outside a browser, in node (skipped where there is
none); the slow ones open the page in a real headless Chromium."""

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.core.numpy_model import NumpyCharRNN
from charrnn.core.sampling import filter_logits, generate_text
from charrnn.inspect.model_page import PageModel, render_page
from charrnn.settings.config import ModelConfig, SampleConfig
from charrnn.store.loading import load_for_sampling
from helpers import PANGRAM, TINY_OPTIONS, random_model, train, vocab_of

SAMPLER = Path(__file__).with_name("page_sampler.js")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="no node on PATH to run the page's script outside a browser")

ENGLISH = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 8
CHINESE = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n春眠不觉晓，处处闻啼鸟。𠀋𥫗\n" * 12
# The three settings of the matrix, as charrnn sample's options and as the page's.
SETTINGS = {
    "temperature 0.8": {"temperature": 0.8},
    "top-k 5": {"top_k": 5},
    "top-p 0.9 at temperature 1.2": {"top_p": 0.9, "temperature": 1.2},
}


def sample_config(length: int, settings: dict) -> SampleConfig:
    return SampleConfig(length=length, **settings)


def python_text(loaded, prime: str, length: int, settings: dict, seed: int, unknown: str = "map") -> str:
    return "".join(generate_text(loaded, prime, sample_config(length, settings), seed=seed, unknown=unknown))


def python_note(loaded, prime: str) -> str | None:
    """The line `charrnn sample --unknown skip` writes about `prime`'s unseen characters."""
    return loaded.vocab.unseen(loaded.vocab.unknown_chars(prime), "skip").note()


def in_real_time(page: Path, fragment: str, profile: Path, meanwhile: str) -> dict[str, str]:
    """The page opened in Chromium in real time (no virtual-time budget), `meanwhile` run in it as a
    person's clicks would be, and what it says when done (scripts/bench_page.py's run_page)."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
    from bench_page import chromium, run_page

    return run_page(chromium(), page, fragment, profile, meanwhile)


def page_settings(prime: str, length: int, settings: dict, seed: int) -> dict:
    names = {"temperature": "temperature", "top_k": "topK", "top_p": "topP"}
    return {"prime": prime, "length": length, "seed": str(seed), **{names[k]: v for k, v in settings.items()}}


def node_text(page: Path, settings: dict, plain: bool = False) -> dict:
    command = [NODE, str(SAMPLER), str(page), json.dumps(settings), *(["--plain"] if plain else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


class Loaded:
    def __init__(self, model, vocab):
        self.model, self.vocab = model, vocab


def random_page(tmp_path: Path, text: str, cell: str, input_mode: str, layers: int, half: bool = False):
    """A page of a small untrained model (weights spread as training spreads them) and the model
    `charrnn sample` would run: the same weights (rounded to float16 where the page keeps them so)."""
    vocab = vocab_of(text)
    torch_model = random_model(cell, input_mode, len(vocab), layers, hidden_size=24)
    weights = {name: value.numpy() for name, value in torch_model.state_dict().items()}
    if half:
        weights = {name: value.astype(np.float16) for name, value in weights.items()}
    path = tmp_path / f"{cell}-{input_mode}-{layers}{'-half' if half else ''}.html"
    page = render_page(PageModel(torch_model.config, vocab, weights), np.float16 if half else np.float32, "model.pt")
    path.write_text(page, encoding="utf-8")
    return path, Loaded(NumpyCharRNN(torch_model.config, weights), vocab)


@needs_node
@pytest.mark.parametrize(
    "cell, input_mode, layers, text, prime",
    [
        ("lstm", "embedding", 2, ENGLISH, "All:\n"),
        ("gru", "one-hot", 1, ENGLISH, ""),
        ("rnn", "embedding", 2, CHINESE, "春眠𠀋"),
        ("gru", "embedding", 2, CHINESE, "低头"),
    ],
)
def test_the_pages_script_writes_what_sample_writes(tmp_path, cell, input_mode, layers, text, prime):
    page, loaded = random_page(tmp_path, text, cell, input_mode, layers)
    for seed, (name, settings) in enumerate(SETTINGS.items()):
        written = node_text(page, page_settings(prime, 600, settings, seed))
        assert written["kernel"], "the WebAssembly kernel did not load"
        assert written["text"] == python_text(loaded, prime, 600, settings, seed), name


@needs_node
def test_the_plain_javascript_products_give_the_kernels_numbers(tmp_path):
    page, loaded = random_page(tmp_path, ENGLISH, "lstm", "one-hot", 2)
    settings = page_settings("Speak", 600, SETTINGS["temperature 0.8"], 7)
    plain = node_text(page, settings, plain=True)
    assert not plain["kernel"]
    assert (
        plain["text"] == node_text(page, settings)["text"] == python_text(loaded, "Speak", 600, {"temperature": 0.8}, 7)
    )


@needs_node
def test_a_float16_page_writes_what_its_float16_weights_write(tmp_path):
    page, loaded = random_page(tmp_path, CHINESE, "lstm", "embedding", 2, half=True)
    settings = SETTINGS["top-p 0.9 at temperature 1.2"]
    assert node_text(page, page_settings("明月", 600, settings, 5))["text"] == python_text(
        loaded, "明月", 600, settings, 5
    )


@needs_node
def test_the_pages_generator_draws_numpys_numbers(tmp_path):
    """numpy's default_rng: SeedSequence then PCG64, doubles and bounded integers, for seeds of
    one and two 32-bit words up to the largest sample takes."""
    page, _ = random_page(tmp_path, PANGRAM, "rnn", "one-hot", 1)
    script = (
        f"const {{ PCG64 }} = require({json.dumps(str(SAMPLER))}).load(process.argv[1]);"
        "const out = {}; for (const seed of JSON.parse(process.argv[2])) {"
        "  const a = new PCG64(seed), b = new PCG64(seed);"
        "  out[seed] = [[0,1,2,3,4].map(() => a.random()), [0,1,2,3,4].map(() => b.integers(37)), b.random()]; }"
        "process.stdout.write(JSON.stringify(out));"
    )
    seeds = ["0", "1", "3", "4294967295", "4294967296", str(2**63 - 1)]
    done = subprocess.run(
        [NODE, "-e", script, str(page), json.dumps(seeds)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    drawn = json.loads(done.stdout)
    for seed in seeds:
        a, b = np.random.default_rng(int(seed)), np.random.default_rng(int(seed))
        assert drawn[seed][0] == a.random(5).tolist()
        assert drawn[seed][1] == [int(b.integers(37)) for _ in range(5)]
        assert drawn[seed][2] == b.random()  # a double after the 32-bit draws, as numpy buffers them


@needs_node
def test_the_pages_top_k_and_top_p_keep_the_characters_sample_keeps(tmp_path):
    """Ties (at the k-th, inside and at the edge of the nucleus), -0, -inf, tiny and whole
    nuclei, the two rules together: the page keeps exactly the logits filter_logits keeps."""
    page, _ = random_page(tmp_path, PANGRAM, "rnn", "one-hot", 1)
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(400):
        V = int(rng.integers(1, 60))
        pool = [0.0, -0.0, 1.0, -1.5, -np.inf, *rng.normal(0, 3, 3)]
        logits = np.where(rng.random(V) < 0.5, rng.choice(pool, V), rng.normal(0, 2, V))
        logits[rng.integers(V)] = rng.normal()  # one finite logit at least, as pick_next ensures
        top_k = [None, int(rng.integers(1, V + 1))][int(rng.integers(2))]
        top_p = [None, 1e-9, 0.3, 0.9, 0.999999, float(rng.random())][int(rng.integers(6))]
        cases.append((logits, top_k, top_p))
    script = (
        f"const {{ filterLogits }} = require({json.dumps(str(SAMPLER))}).load(process.argv[1]);"
        "const out = JSON.parse(require('fs').readFileSync(0, 'utf8')).map(([bytes, k, p]) => {"
        "  const logits = new Float64Array(Uint8Array.from(Buffer.from(bytes, 'base64')).buffer);"
        "  return Array.from(filterLogits(logits, k, p), (v) => v !== -Infinity); });"
        "process.stdout.write(JSON.stringify(out));"
    )
    given = [(base64.b64encode(logits.astype("<f8").tobytes()).decode(), k, p) for logits, k, p in cases]
    done = subprocess.run(
        [NODE, "-e", script, str(page)], input=json.dumps(given), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for (logits, top_k, top_p), kept in zip(cases, json.loads(done.stdout), strict=True):
        assert kept == (filter_logits(logits[None, :], top_k, top_p)[0] != -np.inf).tolist(), (logits, top_k, top_p)


@needs_node
def test_a_prime_with_characters_the_model_never_saw_is_read_as_sample_reads_it(tmp_path):
    """Full-width forms are read as the characters the model knows; one with nothing near is
    left out, as `--unknown skip` leaves it (sample's default refuses such a prime)."""
    page, loaded = random_page(tmp_path, ENGLISH, "gru", "embedding", 1)
    prime = "Ａll： speak， Speak?"
    written = node_text(page, page_settings(prime, 300, SETTINGS["top-k 5"], 2))
    assert written["text"] == python_text(loaded, prime, 300, SETTINGS["top-k 5"], 2, unknown="skip")
    assert (
        written["note"] == "read '，' as ',', '：' as ':', 'Ａ' as 'A'; left out '?' (characters the model never saw)"
    )
    assert written["note"] == python_note(loaded, prime)


@needs_node
def test_the_pages_line_on_unseen_characters_is_samples_word_for_word(tmp_path):
    """Quotes, backslashes, control and format characters, separators, a character outside the
    BMP, one unseen character alone, and more than ten (named up to ten, the rest counted)."""
    page, loaded = random_page(tmp_path, ENGLISH, "rnn", "one-hot", 1)
    primes = ["Z", "'", '"', "\\", "a\tb", "\x00\x7f", "\u200b\u2028\xa0", "𝒜", "¡¢£¤¥¦§¨©ª«¬®¯", "Ａll， 'yes'?\t"]
    for prime in primes:
        note = node_text(page, page_settings(prime, 5, {}, 1))["note"]
        assert note == python_note(loaded, prime), prime


@needs_node
def test_a_chinese_prime_in_other_forms_is_read_as_sample_reads_it(tmp_path):
    """Traditional forms of a simplified corpus's characters, including those only OpenCC's own
    conversion of the unseen character finds (傢 to 家, 佈 to 布: no known character converts to
    them), read as `charrnn sample` reads them, with the same note."""
    page, loaded = random_page(tmp_path, CHINESE + "家布\n", "lstm", "one-hot", 1)
    prime = "傢佈舉頭"
    written = node_text(page, page_settings(prime, 300, SETTINGS["temperature 0.8"], 3))
    assert written["text"] == python_text(loaded, prime, 300, SETTINGS["temperature 0.8"], 3)
    assert written["note"] == python_note(loaded, prime)
    assert written["note"].startswith("read '佈' as '布', '傢' as '家', '舉' as '举', '頭' as '头' (")


def test_the_page_is_self_contained(tmp_path):
    page, _ = random_page(tmp_path, ENGLISH, "lstm", "embedding", 1)
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""<[^>]*\s(?:src|href)\s*=|https?://|fetch\(|XMLHttpRequest|import\(|<link""", text)
    assert text.count("<script") == 3 and 'id="output"' in text


def test_the_default_models_page_in_float16_is_under_2_5_mb(tmp_path):
    """The default model (a 2-layer LSTM of 256, embedding input) on a vocabulary of 100."""
    config = ModelConfig(vocab_size=100)
    vocab = vocab_of("".join(chr(c) for c in range(32, 131)) + "\n")
    rng = np.random.default_rng(0)
    from charrnn.core.model import CharRNN

    shapes = {name: tuple(value.shape) for name, value in CharRNN(config).state_dict().items()}
    weights = {name: rng.standard_normal(shape).astype(np.float32) * 0.1 for name, shape in shapes.items()}
    page = render_page(PageModel(config, vocab, weights), np.float16, "model.pt").encode("utf-8")
    assert 2 * config.parameter_count * 4 / 3 < len(page) <= 2_500_000


def test_export_html_writes_a_page_and_refuses_a_file_that_exists(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 40, encoding="utf-8")
    train(corpus, tmp_path / "run", {**TINY_OPTIONS, "max_steps": 10})
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tmp_path / "page.html"), "-c", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "a page that writes with" in result.output
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<title>corpus: a charrnn model</title>" in page
    assert '"source":"best.pt"' in page  # its `charrnn sample -c` line: the absolute path given, by name alone
    before = (tmp_path / "page.html").read_bytes()
    again = runner.invoke(main, ["export", str(tmp_path / "page.html"), "-c", str(tmp_path / "run")])
    assert again.exit_code == 2 and "already exists" in again.output
    assert (tmp_path / "page.html").read_bytes() == before


# ---------------------------------------------------------------- in a real browser


def page_in_browser(chromium, page: Path, fragment: str, profile: str = "chromium-profile") -> dict:
    dom = chromium("--virtual-time-budget=600000", "--dump-dom", f"{page.as_uri()}#{fragment}", profile=profile)
    found = re.search(r'<pre id="output"([^>]*)>(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', found[1]))
    assert "data-done" in attributes, dom[-2000:]
    return {"text": html.unescape(found[2]), **attributes}


def fragment_of(prime: str, length: int, settings: dict, seed: int) -> str:
    from urllib.parse import quote

    parts = [f"prime={quote(prime)}", f"length={length}", f"seed={seed}"]
    parts += [f"{name}={value}" for name, value in settings.items()]
    return "&".join(parts) + "&run"


@pytest.fixture(scope="module")
def trained_pages(tmp_path_factory):
    """For each cell, input, layer count and language: a trained run and its exported page."""
    folder = tmp_path_factory.mktemp("pages")
    runs = {}
    for language, text in (("english", ENGLISH), ("chinese", CHINESE)):
        corpus = folder / f"{language}.txt"
        corpus.write_text(text, encoding="utf-8")
        for cell in ("rnn", "lstm", "gru"):
            for input_mode in ("one-hot", "embedding"):
                for layers in (1, 2):
                    name = f"{language}-{cell}-{input_mode}-{layers}"
                    options = {**TINY_OPTIONS, "cell": cell, "input_mode": input_mode, "layers": layers}
                    train(corpus, folder / name, {**options, "hidden_size": 24, "max_steps": 40})
                    result = CliRunner().invoke(
                        main, ["export", str(folder / f"{name}.html"), "-c", str(folder / name)]
                    )
                    assert result.exit_code == 0, result.output
                    runs[name] = (folder / name, folder / f"{name}.html")
    return runs


@pytest.mark.slow
def test_the_page_writes_what_sample_writes_in_a_real_browser(chromium, trained_pages):
    """3 cells x one-hot and embedding x 1 and 2 layers x English and Chinese (with characters
    outside the BMP) x 3 seeds x 3 settings: 2,000 characters each, equal byte for byte."""
    cases = []
    for name, (run, page) in trained_pages.items():
        loaded = load_for_sampling(run)
        prime = "All:\n" if name.startswith("english") else "春眠𠀋"
        for seed in (1, 2, 3):
            for setting, settings in SETTINGS.items():
                cases.append(
                    (name, page, prime, seed, setting, settings, python_text(loaded, prime, 2000, settings, seed))
                )

    def run(case):
        name, page, prime, seed, setting, settings, expected = case
        profile = f"profile-{threading.get_ident()}"  # a browser of its own for each thread
        written = page_in_browser(chromium, page, fragment_of(prime, 2000, settings, seed), profile)
        return (name, seed, setting), written["text"] == expected, written.get("data-error")

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(run, cases))
    differ = [(case, error) for case, same, error in outcomes if not same]
    assert len(outcomes) == 216 and not differ, differ


@pytest.mark.slow
def test_the_cli_prints_what_the_page_writes(chromium, trained_pages):
    run, page = trained_pages["chinese-lstm-embedding-2"]
    result = CliRunner().invoke(
        main, ["sample", "-c", str(run), "--prime", "明月", "--length", "500", "--seed", "9", "--top-p", "0.9"]
    )
    assert result.exit_code == 0, result.output
    written = page_in_browser(chromium, page, fragment_of("明月", 500, {"top_p": 0.9}, 9))
    assert result.stdout.rstrip("\n") == written["text"]


@pytest.mark.slow
def test_a_float16_pages_command_line_writes_its_text(chromium, trained_pages, tmp_path):
    """The line under a --half page's text, run as given in a shell, prints that text."""
    run, _ = trained_pages["english-lstm-one-hot-2"]
    result = CliRunner().invoke(main, ["export", str(tmp_path / "half.html"), "-c", str(run), "--half"])
    assert result.exit_code == 0, result.output
    dom = chromium(
        "--virtual-time-budget=600000",
        "--dump-dom",
        f"{(tmp_path / 'half.html').as_uri()}#{fragment_of('All:', 400, {'top_k': 5}, 4)}",
    )
    written = re.search(r'<pre id="output"[^>]*>(.*?)</pre>', dom, re.S)[1]
    command = html.unescape(re.search(r'<p id="command">(.*?)</p>', dom, re.S)[1])
    assert command.startswith("charrnn export half.model -c best.pt --half && charrnn sample -c half.model ")
    shutil.copy(run / "best.pt", tmp_path / "best.pt")
    # The shell finds `charrnn` where pip put it, beside this Python, as on a user's PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = subprocess.run(
        command, shell=True, cwd=tmp_path, env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report, text = done.stdout.split("\n", 1)  # export's line, then the sample
    assert report.startswith("wrote half.model: the model of best.pt")
    assert text.rstrip("\n") == html.unescape(written)


@pytest.mark.slow
def test_a_bad_setting_in_the_fragment_is_one_clear_line(chromium, trained_pages):
    _, page = trained_pages["english-gru-one-hot-1"]
    for fragment, message in (
        ("temperature=0&run", 'temperature: "0" is not a number above 0'),
        ("top_k=2.5&run", 'top_k: "2.5" is not a whole number'),
        ("colour=red&run", "colour: no such setting"),
    ):
        written = page_in_browser(chromium, page, fragment)
        assert message in html.unescape(written["data-error"]) and written["text"] == ""


@pytest.mark.slow
def test_a_screenshot_of_the_page_shows_its_text(chromium, trained_pages, tmp_path):
    _, page = trained_pages["chinese-gru-embedding-2"]
    shot = tmp_path / "page.png"
    chromium(
        "--virtual-time-budget=600000",
        "--window-size=1000,900",
        f"--screenshot={shot}",
        f"{page.as_uri()}#length=400&seed=1&run",
    )
    pixels = shot.read_bytes()
    assert pixels.startswith(b"\x89PNG") and len(pixels) > 20_000


@pytest.mark.slow
def test_the_stop_button_ends_a_long_run_while_it_writes(chromium, trained_pages, tmp_path):
    """Clicked in real time (not under a virtual-time budget) once some text is out: the page
    answers between slices, stops, and says so."""
    _, page = trained_pages["english-lstm-embedding-2"]
    click_stop = """(() => {
      const press = () => {
        const output = document.getElementById("output");
        if (output && output.textContent.length > 500) document.getElementById("stop").click();
        else setTimeout(press, 20);
      };
      press();
    })();"""
    found = in_real_time(page, "length=1000000&seed=1&run", tmp_path / "stop-profile", click_stop)
    assert found["data-status"].endswith(", stopped"), found
    assert 500 < int(found["data-chars"]) < 1_000_000  # a broken button writes them all (some minutes)


@pytest.mark.slow
def test_ctrl_enter_in_the_prime_writes(chromium, trained_pages, tmp_path):
    """The prime's Ctrl+Enter submits the form (Enter alone stays a newline in the prime), and
    the page writes what `charrnn sample` writes for the settings in the form."""
    run, page = trained_pages["english-gru-embedding-1"]
    press = """(() => {
      const press = () => {
        const prime = document.getElementById("prime");
        if (!prime || !document.documentElement.hasAttribute("data-opened-ms")) return setTimeout(press, 20);
        prime.value = "All:";
        prime.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", ctrlKey: true, bubbles: true }));
        const output = document.getElementById("output"); // a page that never writes: end the wait
        setTimeout(() => output.hasAttribute("data-done") || output.setAttribute("data-done", ""), 20000);
      };
      press();
    })();"""
    found = in_real_time(page, "length=300&seed=6", tmp_path / "key-profile", press)
    assert found["data-status"].startswith("300 characters in"), found
    loaded = load_for_sampling(run)
    written = python_text(loaded, "All:", 300, {}, 6)
    assert int(found["data-chars"]) == len(written)
