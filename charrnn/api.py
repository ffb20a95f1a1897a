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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from charrnn.checkpoint import describe_checkpoint
from charrnn.config import AUTO, DEFAULT_OUT, ModelConfig, SampleConfig, TrainConfig, field_names
from charrnn.corpus import resolve_corpus
from charrnn.errors import ConfigError
from charrnn.evaluate import TextScore, score_text
from charrnn.progress import Reporter, console_reporter
from charrnn.runtime import select_device, use_threads
from charrnn.sample import LoadedModel, generate_beam, generate_samples, generate_text, load_model
from charrnn.training import TrainRequest, TrainResult, run_training

TRAINING_OPTIONS = field_names(ModelConfig)[1:] + field_names(TrainConfig)  # vocab_size comes from the corpus


class Model:
    """A trained model, ready to generate text and to score it."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

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
        return self.loaded.model.head.weight.device

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
        **choices: Any,
    ) -> Iterator[str]:
        """The prime, then its continuation one character at a time, up to `length` characters
        or the first of the `stop` strings (included). `choices`: how each character is drawn,
        as for `charrnn sample`: temperature (1.0), top_k, top_p, greedy. The prime is checked
        before anything is made: characters the model never saw raise OptionError."""
        return generate_text(self.loaded, prime, _sampling(length, choices), seed, _stops(stop))

    def sample(self, length: int = 1000, prime: str | None = None, *, beam: int | None = None, **choices: Any) -> str:
        """The prime and its continuation as one string (the choices as for `stream`, and seed
        and stop). With `beam`, the most likely continuation a beam search of that width
        finds, instead of a random one."""
        if beam is None:
            return "".join(self.stream(length, prime, **choices))
        if set(choices) - {"stop"}:
            raise ConfigError(f"beam search takes no {', '.join(sorted(set(choices) - {'stop'}))}: it is not random")
        if not isinstance(beam, int) or isinstance(beam, bool) or beam < 1:
            raise ConfigError(f"beam must be an integer >= 1, got {beam!r}")
        return generate_beam(self.loaded, prime, _sampling(length, {}).length, beam, _stops(choices.get("stop", ())))

    def samples(
        self,
        count: int,
        length: int = 1000,
        prime: str | None = None,
        *,
        seed: int | None = None,
        stop: str | Sequence[str] = (),
        **choices: Any,
    ) -> list[str]:
        """`count` independent samples from one batched pass (faster than one at a time)."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(f"count must be an integer >= 1, got {count!r}")
        return generate_samples(self.loaded, prime, _sampling(length, choices), count, seed, _stops(stop))

    def score(
        self, *text: str | Path, encoding: str = "utf-8", errors: str = "strict", progress: Reporter | None = None
    ) -> TextScore:
        """How well the model predicts a text (files, folders or globs, as for training):
        bits per character, nats, perplexity, and the characters outside its vocabulary."""
        corpus = resolve_corpus([str(t) for t in text], encoding, errors) if text else None
        if corpus is None:
            raise ConfigError("score needs a text: a file, folder or glob pattern")
        return score_text(self.loaded.model, self.loaded.vocab, corpus, self.device, (progress or Reporter()).progress)

    def describe(self) -> list[str]:
        """What `charrnn info` says about the checkpoint: model, vocabulary, training, corpus."""
        return describe_checkpoint(self.loaded.checkpoint, self.loaded.path)


def load(location: str | Path = DEFAULT_OUT, device: str = "cpu", threads: int | None = None) -> Model:
    """The model in a checkpoint file, or in an out folder's best.pt (else its newest whole
    checkpoint), on `device` ("cpu", "cuda", "mps" or "auto"); `threads`: CPU threads for
    PyTorch in this process (unchanged when None)."""
    use_threads(threads)
    return Model(load_model(location, select_device(device)))


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
    use_threads(threads, auto=True)
    unknown = sorted(set(options) - set(TRAINING_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown training options: {', '.join(unknown)} (see charrnn.api.TRAINING_OPTIONS)")
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
    return run_training(request, reporter)


def _sampling(length: int, choices: dict[str, Any]) -> SampleConfig:
    """The validated SampleConfig of a call's length and choices."""
    unknown = sorted(set(choices) - set(field_names(SampleConfig)))
    if unknown:
        raise ConfigError(f"unknown sampling options: {', '.join(unknown)} (temperature, top_k, top_p, greedy)")
    return SampleConfig(length=length, **choices)


def _stops(stop: str | Sequence[str]) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if any(not isinstance(s, str) or not s for s in stops):
        raise ConfigError("stop strings must be non-empty text")
    return stops
