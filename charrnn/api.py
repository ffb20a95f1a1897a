"""charrnn from Python (a notebook, a script): load a model to sample from, score or describe
it; train, resume or fine-tune a run with the same options as the command line.

    import charrnn

    model = charrnn.load("checkpoints")            # a checkpoint file, or an out folder (its best.pt)
    print(model.sample(300, prime="ROMEO:", temperature=0.8, seed=1))
    for piece in model.stream(300, prime="ROMEO:"):  # the text as it is made
        print(piece, end="", flush=True)
    model.score("held_out.txt").bits               # bits per character on a text
    charrnn.train("poems.txt", out="runs/poems", max_steps=2000, hidden_size=512)

The `charrnn` command is a thin layer over these functions. Errors a user can cause raise
charrnn.errors.CharRNNError subclasses, each with a one-line message.

Sampling never imports torch (charrnn.sample runs the model in numpy): torch and the modules
that use it are imported where a function needs them (score, train).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charrnn.arguments import argument, shown, texts, too_much_held
from charrnn.checkpoint import describe_checkpoint
from charrnn.config import AUTO, DEFAULT_OUT, ModelConfig, SampleConfig, TrainConfig, field_names
from charrnn.diagnosis import Command, Diagnosis, RunFacts, curves, diagnose
from charrnn.errors import ConfigError
from charrnn.metrics import MetricsRecords
from charrnn.nearest import Unseen
from charrnn.options import EVAL, PATH, SAMPLE, TRAIN, Option, by_name
from charrnn.outdir import Found
from charrnn.sample import LoadedModel, generate_beam, generate_samples, generate_text, load_for_sampling, torch_model
from charrnn.threads import blas_threads, running_on, torch_threads

if TYPE_CHECKING:
    import torch

    from charrnn.evaluate import TextScore
    from charrnn.model import CharRNN
    from charrnn.progress import Reporter
    from charrnn.training import TrainResult

TRAINING_OPTIONS = field_names(ModelConfig)[1:] + field_names(TrainConfig)  # vocab_size comes from the corpus

# Every argument is checked at the door by its command-line option's rule (options.py), named as
# the Python argument: what the command line refuses, the API refuses, before any work.
_SAMPLE, _EVAL, _TRAIN = by_name(SAMPLE), by_name(EVAL), by_name(TRAIN)
_LOCATION = Option(("--location",), "", kind=PATH)  # a file, folder or glob: a corpus, a text to score
_OPTIONAL = {f.name for config in (ModelConfig, TrainConfig) for f in fields(config) if "None" in str(f.type)}
_OPTIONAL_CHOICES = ("top_k", "top_p")  # None: off


class Model:
    """A trained model, ready to generate text and to score it."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu", threads: int | str | None = AUTO):
        self.loaded = loaded  # its model a NumpyCharRNN (or a torch CharRNN): sampling takes either
        self._device = device  # where `score` runs the torch model
        self.threads = threads  # CPU threads of `score` and of batched sampling (see `load`)
        self._torch_model: CharRNN | None = None

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
        from charrnn.runtime import select_device

        return select_device(self._device)

    @property
    def passed_over(self) -> tuple[str, ...]:
        """A note on each damaged checkpoint passed over to reach this one."""
        return self.loaded.passed_over

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
        sampling = _sampling(length, choices)
        return generate_text(self.loaded, _prime(prime), sampling, _seed(seed), _stops(stop), _policy(unknown))

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
        argument("beam", beam, _SAMPLE["beam"], optional=True)
        if beam is None:
            _held(1, _length(length), hint="stream() makes a text of any length a piece at a time")
            return "".join(self.stream(length, prime, unknown=unknown, **choices))
        _held(beam, _length(length), f" with beam={beam}")
        if set(choices) - {"stop"}:
            raise ConfigError(f"beam search takes no {', '.join(sorted(set(choices) - {'stop'}))}: it is not random")
        config, stops, policy = _sampling(length, {}), _stops(choices.get("stop", ())), _policy(unknown)
        with running_on(blas_threads(), self.threads) as tuning:
            return generate_beam(self.loaded, _prime(prime), config.length, beam, stops, policy, tuning)

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
        argument("count", count, _SAMPLE["num_samples"])
        config, stops, policy = _sampling(length, choices), _stops(stop), _policy(unknown)
        _held(count, config.length, f" with count={count}")
        prime, seed = _prime(prime), _seed(seed)
        with running_on(blas_threads(), self.threads) as tuning:
            return generate_samples(self.loaded, prime, config, count, seed, stops, policy, tuning)

    def unseen(self, text: str, unknown: str = "map") -> Unseen:
        """What becomes of the characters of `text` that the model never saw, under the
        `unknown` policy: `.mapped` (each read as its nearest known character), `.as_unknown`,
        `.left_out`, `.note()` (one line saying so), or `.refusal` (why `text` cannot be read)."""
        vocab = self.loaded.vocab
        argument("text", text, _SAMPLE["prime"])
        return vocab.unseen(vocab.unknown_chars(text), _policy(unknown))

    def score(
        self,
        *text: str | Path,
        encoding: str = "utf-8",
        errors: str = "strict",
        progress: Reporter | None = None,
        windows: int | None = None,
        unknown: str = "skip",
    ) -> TextScore:
        """How well the model predicts a text (files, folders or globs, as for training):
        bits per character, nats, perplexity, and the characters outside its vocabulary.
        `windows`: score independent windows of that many characters, each from a zero state, as
        nanoGPT does (256 for its figures); None: the state is carried through the whole text.
        `unknown`: what the text's characters the model never saw become, as for `stream`
        (here "skip" unless told, as `charrnn eval` does)."""
        from charrnn.corpus import resolve_corpus
        from charrnn.evaluate import score_text
        from charrnn.progress import Reporter

        for location in text:
            argument("text", location, _LOCATION)
        argument("encoding", encoding, _EVAL["encoding"])
        argument("errors", errors, _EVAL["errors"])
        argument("windows", windows, _EVAL["windows"], optional=True)
        policy = argument("unknown", unknown, _EVAL["unknown"])
        if progress is not None and not isinstance(progress, Reporter):
            raise ConfigError(f"progress must be None or a charrnn.progress.Reporter, got {shown(progress)}")
        corpus = resolve_corpus([str(t) for t in text], encoding, errors) if text else None
        if corpus is None:
            raise ConfigError("score needs a text: a file, folder or glob pattern")
        reporter = progress or Reporter()
        model = self.torch_model()
        threads = self.threads if self.device.type == "cpu" else None  # a GPU's speed hardly depends on them
        with running_on(torch_threads(), threads) as tuning:
            return score_text(model, self.loaded.vocab, corpus, self.device, reporter.progress, windows, policy, tuning)

    def torch_model(self) -> CharRNN:
        """The model as a torch CharRNN on `device` (built at the first call), for scoring."""
        if self._torch_model is None:
            found = Found(self.loaded.path, self.loaded.checkpoint)
            self._torch_model = torch_model(found, self.device)
        return self._torch_model

    def describe(self) -> list[str]:
        """What `charrnn info` says about the checkpoint: model, vocabulary, training, corpus."""
        return describe_checkpoint(self.loaded.checkpoint, self.loaded.path)


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
    argument("location", location, _SAMPLE["checkpoint"])
    argument("device", device, _EVAL["device"])
    argument("threads", threads, _EVAL["threads"], optional=True)
    return Model(load_for_sampling(location), device, threads)


def train(
    *corpus: str | Path,
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
    max_steps=2000, max_time=600 (seconds), cell="gru", ...). `resume=True` continues the run in
    `out` (default checkpoints/); a path resumes that checkpoint or folder. `threads`: CPU threads
    for PyTorch in this process, or "auto": on one CPU, the loop keeps whichever count trains
    faster (charrnn/threads.py); None leaves it as it is. `progress`: True prints what the
    command prints, False nothing, or a Reporter of your own."""
    from charrnn.progress import Reporter, console_reporter
    from charrnn.runtime import use_threads
    from charrnn.training import TrainRequest, run_training

    for location in corpus:
        argument("corpus", location, _LOCATION)
    argument("out", out, _TRAIN["out"], optional=True)
    if resume is not None and not isinstance(resume, bool) and _LOCATION.problem(resume):
        raise ConfigError(f"resume must be True, False, None or a checkpoint file or out folder, got {shown(resume)}")
    argument("init_from", init_from, _TRAIN["init_from"], optional=True)
    argument("device", device, _TRAIN["device"])
    argument("dtype", dtype, _TRAIN["dtype"])
    argument("compile", compile, _TRAIN["compile_model"])
    argument("threads", threads, _TRAIN["threads"], optional=True)
    if not isinstance(progress, (bool, Reporter)):
        raise ConfigError(f"progress must be True, False or a charrnn.progress.Reporter, got {shown(progress)}")
    unknown = sorted(set(options) - set(TRAINING_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown training options: {', '.join(unknown)} (see charrnn.api.TRAINING_OPTIONS)")
    for name, value in options.items():
        argument(name, value, _TRAIN[name], optional=name in _OPTIONAL)
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
    )
    reporter = progress if isinstance(progress, Reporter) else console_reporter(quiet=False) if progress else Reporter()
    result = run_training(request, reporter)
    if result.already_complete:
        return result
    command = Command(request.corpus, str(result.out_dir), options, DEFAULT_OUT)
    return replace(result, diagnosis=_diagnosis(result), command=command)


def _diagnosis(result: TrainResult) -> Diagnosis | None:
    """What the finished run needs, from the curves in its metrics.jsonl (None if it cannot be read)."""
    try:
        run_curves = curves(MetricsRecords(result.out_dir))
    except ConfigError:  # the figures are a convenience: a run never fails for want of them
        return None
    facts = RunFacts(
        steps=result.step,
        max_steps=result.budget.max_steps,
        max_time=result.budget.max_time,
        elapsed=result.elapsed,
        hidden_size=result.model_config.hidden_size,
        dropout=result.model_config.dropout,
        lr=result.train_config.lr,
        vocab_size=result.model_config.vocab_size,
        unigram_bits=result.unigram_bits,
        stopped_early=result.stopped_early,
    )
    return diagnose(run_curves, facts)


def _sampling(length: int, choices: dict[str, Any]) -> SampleConfig:
    """The validated SampleConfig of a call's length and choices."""
    unknown = sorted(set(choices) - set(field_names(SampleConfig)))
    if unknown:
        raise ConfigError(f"unknown sampling options: {', '.join(unknown)} (temperature, top_k, top_p, greedy)")
    for name, value in choices.items():
        argument(name, value, _SAMPLE[name], optional=name in _OPTIONAL_CHOICES)
    return SampleConfig(length=_length(length), **choices)


def _length(length: Any) -> int:
    return argument("length", length, _SAMPLE["length"])


def _held(streams: int, length: int, with_what: str = "", hint: str = "") -> None:
    """Refuse a call that would hold more characters in memory at once than MAX_HELD (arguments.py)."""
    problem = too_much_held(streams, length)
    if problem:
        raise ConfigError(f"length={length:,}{with_what} {problem}{'; ' + hint if hint else ''}")


def _prime(prime: Any) -> str | None:
    return argument("prime", prime, _SAMPLE["prime"], optional=True)


def _seed(seed: Any) -> int | None:
    return argument("seed", seed, _SAMPLE["seed"], optional=True)


def _policy(unknown: Any) -> str:
    return argument("unknown", unknown, _SAMPLE["unknown"])


def _stops(stop: Any) -> tuple[str, ...]:
    return texts("stop", stop)
