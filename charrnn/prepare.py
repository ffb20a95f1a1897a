"""What a training run starts from: corpus, vocabulary, configs, and perhaps a checkpoint.

Three ways to start:
- fresh: the vocabulary comes from the corpus, the configs from the options;
- --resume: everything comes from the checkpoint, which the run continues exactly;
- --init-from: the architecture and weights come from a checkpoint, the vocabulary is the
  checkpoint's plus the new corpus's new characters, and training starts over (fine-tuning).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.checkpoint import model_parts
from charrnn.config import (
    ModelConfig,
    TrainConfig,
    architecture_differences,
    pick,
    resume_configs,
    with_run_length,
)
from charrnn.corpus import Corpus, resolve_corpus
from charrnn.encoded import CorpusCache, Encoded, Progress, no_progress
from charrnn.errors import CheckpointError, ConfigError
from charrnn.outdir import Found, OutDir, load_from
from charrnn.vocab import Coverage, Vocab


@dataclass(frozen=True)
class Start:
    """Everything a run starts from."""

    corpus: Corpus
    encoded: Encoded
    vocab: Vocab
    coverage: Coverage
    model_config: ModelConfig
    train_config: TrainConfig
    resume: Found | None = None  # continue this checkpoint's run
    init: Found | None = None  # start from this checkpoint's weights

    def corpus_record(self) -> dict[str, Any]:
        """What checkpoints say about the corpus (to find it on resume, and to tell it apart)."""
        return {**self.corpus.record(), "chars": self.encoded.counts.total, "sha256": self.encoded.counts.sha256}

    @property
    def same_corpus_as_checkpoint(self) -> bool:
        recorded = self.resume.state.get("corpus") if self.resume else None
        return not isinstance(recorded, dict) or recorded.get("sha256") == self.encoded.counts.sha256


def prepare_run(
    corpus_args: Sequence[str], out_dir: Path, options: Mapping[str, Any], resume: str | None = None,
    init_from: str | None = None, progress: Progress = no_progress,
) -> Start:
    """Check the request against the corpus and any checkpoint; encode the corpus (or reuse
    its cache). `options` holds only the options the user gave."""
    if resume is not None:
        return _resumed(corpus_args, options, load_from(resume, prefer="newest"), progress)
    _refuse_to_overwrite(OutDir(out_dir))
    train_config = TrainConfig(**pick(TrainConfig, with_run_length(options)))
    corpus = resolve_corpus(corpus_args, train_config.encoding, train_config.errors)
    cache = CorpusCache(corpus)
    counted = cache.counts(progress)
    counts = counted[0]
    if init_from is None:
        vocab, coverage = Vocab.from_counts(counts.counts, train_config.min_count, train_config.max_vocab)
        model_config = ModelConfig(vocab_size=len(vocab), **pick(ModelConfig, options))
        return Start(corpus, cache.encoded(vocab, progress, counted), vocab, coverage, model_config, train_config)
    init = load_from(init_from, prefer="best")
    base_model, _, base_vocab = model_parts(init.state, init.path)
    _refuse_other_architecture(base_model, options, "fine-tune")
    vocab = base_vocab.extended(counts.counts)
    model_config = dataclasses.replace(base_model, vocab_size=len(vocab))
    encoded = cache.encoded(vocab, progress, counted)
    return Start(corpus, encoded, vocab, vocab.coverage(counts.counts), model_config, train_config, init=init)


def _resumed(corpus_args: Sequence[str], options: Mapping[str, Any], found: Found, progress: Progress) -> Start:
    saved_model, saved_train, vocab = model_parts(found.state, found.path)
    model_config, train_config = resume_configs(saved_model, saved_train, options)
    recorded = found.state.get("corpus") if isinstance(found.state.get("corpus"), dict) else {}
    paths = corpus_args or recorded.get("paths") or ([recorded["path"]] if isinstance(recorded.get("path"), str) else [])
    corpus = resolve_corpus(paths, train_config.encoding, train_config.errors)
    cache = CorpusCache(corpus)
    counted = cache.counts(progress)
    counts = counted[0]
    _check_vocab_covers(counts.counts, vocab)
    encoded = cache.encoded(vocab, progress, counted)
    return Start(corpus, encoded, vocab, vocab.coverage(counts.counts), model_config, train_config, resume=found)


def _refuse_to_overwrite(out: OutDir) -> None:
    existing = out.checkpoint_names()
    if existing:
        raise ConfigError(
            f"{out.path} already holds a run ({', '.join(existing[:3])}); add --resume to continue it, "
            "or give another --out to start a new one"
        )


def _refuse_other_architecture(saved: ModelConfig, options: Mapping[str, Any], action: str) -> None:
    differences = architecture_differences(saved, options)
    if differences:
        raise ConfigError(f"cannot {action} with a different architecture: {'; '.join(differences)}")


def _check_vocab_covers(counts: np.ndarray, vocab: Vocab) -> None:
    if vocab.unknown_id is not None:
        return  # every character has an id: its own, or the unknown one
    missing = [chr(code) for code in np.flatnonzero(counts) if chr(code) not in vocab]
    if missing:
        shown = "".join(missing[:20])
        raise CheckpointError(
            f"the corpus has {len(missing):,} characters the checkpoint's vocabulary lacks ({shown!r}), so it is not "
            "the text this run was trained on; to train this model on a new text, fine-tune it: "
            "charrnn train NEW.txt --init-from CHECKPOINT --out NEW_FOLDER"
        )
