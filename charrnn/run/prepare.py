"""What a training run starts from: corpus, vocabulary, configs, out folder, and perhaps a checkpoint.

Three ways to start:
- fresh: the vocabulary comes from the corpus, the configs from the options;
- --resume: everything comes from the checkpoint, which the run continues exactly;
- --init-from: the architecture and weights come from a checkpoint, the vocabulary is the
  checkpoint's (its aliases too) plus the new corpus's new characters, and training starts over
  (fine-tuning).

Where it writes: a fresh run into --out (default checkpoints/), which must hold no run, or the
run of this same command: the same corpus (by its SHA-256) and every option the same, but the
display ones (--log-every, --preview-chars) and the machine's (--device, --dtype, --threads,
--compile), which no checkpoint's configs hold. That run goes on from its newest checkpoint as
--resume would (a complete one ends at once), so a documented command can be run twice; any
other command is refused, naming what differs. A resumed run writes into its checkpoint's own
folder, or into --out. A folder holds one run, so:
- resuming into a folder that holds another run is refused, naming both;
- resuming a checkpoint older than the newest one of its own folder is refused (it would
  replace the newer history): continue the newest, or fork the old step with another --out;
- resuming into an empty folder is a fork: a new run, which records where it came from.
The training process owns the folder (OutDir.acquire) before it looks at what it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.core.nearest import require_variants, variant_folds
from charrnn.core.vocab import Coverage, Vocab
from charrnn.display import printable
from charrnn.errors import CheckpointError, ConfigError, CorpusError
from charrnn.run.preview import PreviewLog
from charrnn.run.sizing import SIZED_FIELDS, sized_options
from charrnn.settings.config import (
    ModelConfig,
    TrainConfig,
    architecture_differences,
    pick,
    rerun_differences,
    resume_configs,
    with_run_length,
)
from charrnn.settings.option import DEFAULT_OUT
from charrnn.settings.spelling import for_python, spelled
from charrnn.store.checkpoint import Checkpoint, CorpusRecord, InitFrom, RunIdentity, RunRecord
from charrnn.store.corpus import Corpus, resolve_corpus, texts_corpus
from charrnn.store.encoded import CharCounts, CorpusCache, Encoded, Progress, no_progress
from charrnn.store.metrics import MetricsLog
from charrnn.store.outdir import RUN_FILE, FoundCheckpoint, OutDir, load_from
from charrnn.store.runfiles import is_run_file_name
from charrnn.store.training_state import check_training_state


@dataclass(frozen=True)
class StartingPoint:
    """Everything a run starts from."""

    corpus: Corpus
    encoded: Encoded
    vocab: Vocab
    coverage: Coverage
    model_config: ModelConfig
    train_config: TrainConfig
    out: OutDir  # where the run writes: acquired, when this is the process that writes
    run: RunIdentity  # the run's identity, stored in its folder and in every checkpoint
    resume: FoundCheckpoint | None = None  # continue this checkpoint's run
    init: FoundCheckpoint | None = None  # start from this checkpoint's weights
    rerun: bool = False  # resume is the newest checkpoint of --out, where a new command found its own run
    sizing: str | None = None  # why the model has its size, when charrnn chose it (sizing.sized_options)

    def run_record(self) -> RunRecord:
        """What every checkpoint of the run records besides its training state."""
        corpus = CorpusRecord(
            paths=self.corpus.paths(),
            description=self.corpus.description,
            chars=self.encoded.counts.total,
            sha256=self.encoded.counts.sha256,
            entry_counts=self.vocab.entry_counts(self.encoded.counts.counts),
        )
        init = InitFrom(str(self.init.path), self.init.checkpoint.step) if self.init is not None else None
        return RunRecord(self.run, self.vocab, corpus, init)

    @property
    def same_corpus_as_checkpoint(self) -> bool:
        recorded = self.resume.checkpoint.record.corpus if self.resume else None
        return recorded is None or recorded.sha256 == self.encoded.counts.sha256


def prepare_run(
    corpus_args: Sequence[str],
    out_dir: Path | None,
    options: Mapping[str, Any],
    resume: str | None = None,
    init_from: str | None = None,
    progress: Progress = no_progress,
    owner: bool = True,
    texts: Sequence[str] | None = None,
) -> StartingPoint:
    """Check the request against the corpus, the out folder and any checkpoint; encode the
    corpus (or reuse its cache). `options` holds only the options the user gave; `out_dir`
    None means none was given; `texts`, strings given in memory as the corpus instead of
    `corpus_args`. The `owner` (the process that writes) acquires the out folder before it
    looks inside, and lets it go if anything here fails."""
    if resume is not None:
        found = load_from(resume, prefer="newest")
        check_training_state(found.checkpoint, found.path)  # before any work: only a resumed run uses it
        out = OutDir(out_dir or (Path(resume) if Path(resume).is_dir() else Path(resume).parent))
        return _owning(out, owner, lambda: _resumed(corpus_args, texts, options, found, out, owner, progress))
    train_config = TrainConfig(**pick(TrainConfig, with_run_length(options)))
    corpus = _corpus(corpus_args, texts, train_config)  # the corpus before the folder
    out = OutDir(out_dir or DEFAULT_OUT)
    _refuse_own_files_as_text(corpus, out)
    return _owning(out, owner, lambda: _new_or_rerun(corpus, out, owner, options, train_config, init_from, progress))


def _corpus(corpus_args: Sequence[str], texts: Sequence[str] | None, config: TrainConfig) -> Corpus:
    """The texts given in memory, else the files, folders and patterns named (none: the built-in corpus)."""
    return texts_corpus(texts) if texts is not None else resolve_corpus(corpus_args, config.encoding, config.errors)


def _owning(out: OutDir, owner: bool, prepare: Callable[[], StartingPoint]) -> StartingPoint:
    if not owner:
        return prepare()
    out.acquire(logs=(MetricsLog(out.path), PreviewLog(out.path)))  # every file it will write checked first
    try:
        return prepare()
    except BaseException:
        out.release()
        raise


def _new_or_rerun(
    corpus: Corpus,
    out: OutDir,
    owner: bool,
    options: Mapping[str, Any],
    train_config: TrainConfig,
    init_from: str | None,
    progress: Progress,
) -> StartingPoint:
    """A run started without --resume: a new one (fine-tuned with `init_from`), or, where `out`
    already holds a run, that run again if this is its command (`_rerun`)."""
    if init_from is None and out.holds_run():
        return _rerun(corpus, out, owner, options, progress)
    if owner:
        _refuse_to_overwrite(out)
    if train_config.fold_variants:
        require_variants()  # refused at once, before the corpus is read, where OpenCC is missing
    run = RunIdentity.new()
    cache = CorpusCache(corpus)
    counted = cache.counts(progress)
    counts = counted[0]
    if init_from is None:
        folds = _folds(counts.counts, train_config)
        vocab, coverage = Vocab.from_counts(counts.counts, train_config.min_count, train_config.max_vocab, folds)
        options, sizing = sized_options(options, counts.total, len(vocab), train_config)
        model_config = ModelConfig(vocab_size=len(vocab), **pick(ModelConfig, options))
        encoded = cache.encoded(vocab, progress, counted)
        start = StartingPoint(corpus, encoded, vocab, coverage, model_config, train_config, out, run, sizing=sizing)
        return _claim_folder(start, owner)
    init = load_from(init_from, prefer="best")
    base_model, base_vocab = init.checkpoint.model_config, init.checkpoint.vocab
    _refuse_other_architecture(base_model, options, "fine-tune")
    # The base model's aliases stay; with --fold-variants, new variants of its characters join them.
    vocab = base_vocab.extended(counts.counts, _folds(counts.counts, train_config, base_vocab.known_chars))
    model_config = dataclasses.replace(base_model, vocab_size=len(vocab))
    encoded = cache.encoded(vocab, progress, counted)
    start = StartingPoint(
        corpus, encoded, vocab, vocab.coverage(counts.counts), model_config, train_config, out, run, init=init
    )
    return _claim_folder(start, owner)


def _folds(counts: np.ndarray, config: TrainConfig, fixed: frozenset[str] = frozenset()) -> dict[str, str]:
    """With --fold-variants, each variant of the corpus -> the character it folds into (`fixed`:
    a fine-tuned model's characters, which stay); else none."""
    if not config.fold_variants:
        return {}
    return variant_folds({chr(code): int(counts[code]) for code in np.flatnonzero(counts)}, fixed)


def _resumed(
    corpus_args: Sequence[str],
    texts: Sequence[str] | None,
    options: Mapping[str, Any],
    found: FoundCheckpoint,
    out: OutDir,
    owner: bool,
    progress: Progress,
) -> StartingPoint:
    saved = found.checkpoint
    model_config, train_config = resume_configs(saved.model_config, saved.train_config, options)
    run = _continued_run(found, out) if owner else RunIdentity.new()
    recorded = saved.record.corpus
    paths = corpus_args or (recorded.locations() if recorded is not None else [])
    cache = CorpusCache(_corpus(paths, texts, train_config))
    _refuse_own_files_as_text(cache.corpus, out)
    configs = model_config, train_config
    return _continuing(found, configs, cache, cache.counts(progress), out, run, owner, progress)


def _rerun(corpus: Corpus, out: OutDir, owner: bool, options: Mapping[str, Any], progress: Progress) -> StartingPoint:
    """A new run into a folder that holds one: the same command again (same corpus, same options)
    continues that run from its newest checkpoint, as --resume would, so that a documented command
    can be run twice; any other is refused, naming what differs."""
    found = _newest_or_refuse(out)
    check_training_state(found.checkpoint, found.path)
    saved = found.checkpoint
    cache = CorpusCache(corpus)
    counted = cache.counts(progress)
    _refuse_another_run(out, saved, options, counted[0].sha256)
    run = _continued_run(found, out) if owner else RunIdentity.new()
    configs = resume_configs(saved.model_config, saved.train_config, options)  # equal, but for display options
    return _continuing(found, configs, cache, counted, out, run, owner, progress, rerun=True)


def _continuing(
    found: FoundCheckpoint,
    configs: tuple[ModelConfig, TrainConfig],
    cache: CorpusCache,
    counted: tuple[CharCounts, bool],
    out: OutDir,
    run: RunIdentity,
    owner: bool,
    progress: Progress,
    rerun: bool = False,
) -> StartingPoint:
    """The start of a run that continues `found`, on the corpus of `cache`."""
    vocab, counts = found.checkpoint.vocab, counted[0].counts
    _check_vocab_covers(counts, vocab)
    encoded = cache.encoded(vocab, progress, counted)
    start = StartingPoint(
        cache.corpus, encoded, vocab, vocab.coverage(counts), *configs, out, run, resume=found, rerun=rerun
    )
    return _claim_folder(start, owner)


def _claim_folder(start: StartingPoint, owner: bool) -> StartingPoint:
    """Every input is checked: from now on the run writes into its folder."""
    if owner:
        start.out.claim(start.run)
    return start


def _continued_run(found: FoundCheckpoint, out: OutDir) -> RunIdentity:
    """The identity under which a resumed run goes on writing into `out` (which this process
    owns), or a refusal if that would overwrite another run or newer checkpoints of this one."""
    saved = found.checkpoint.record.run or RunIdentity(None)
    saved_id = saved.id
    step = found.checkpoint.step
    if not out.holds_run():  # continuing elsewhere: a new run, forked from this checkpoint
        return RunIdentity.new(forked_from=found.checkpoint, path=found.path.resolve())
    folder_id = out.identity()
    inside = _same_folder(found.path.parent, out.path)
    # A checkpoint from before run identities (or a folder without run.json) belongs to the
    # run of the folder it lies in.
    if not ((saved_id is not None and saved_id == folder_id) or (inside and None in (saved_id, folder_id))):
        raise ConfigError(
            f"{printable(out.path)} holds another run ({_describe_run(folder_id, _newest_step(out))}) than "
            f"{printable(found.path)} ({_describe_run(saved_id, step)}); to continue that checkpoint, "
            f"give it an {spelled('out')} of its own"
        )
    newest = _newest_step(out)
    if step < newest:
        raise ConfigError(
            f"{printable(out.path)} holds newer checkpoints of this run (step {newest:,}) than {printable(found.path)} "
            f"(step {step:,}), which resuming it here would replace; continue the newest with "
            f"{spelled('resume', str(out.path))}, or fork step {step:,} into a new folder with {spelled('out')}"
        )
    run_id = saved_id or folder_id
    return RunIdentity(run_id, saved.forked_from) if run_id else RunIdentity.new()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _newest_step(out: OutDir) -> int:
    try:
        return out.newest().checkpoint.step
    except CheckpointError:  # nothing loads: the step files' names still tell how far it got
        return max((step for step, _ in out.step_files()), default=0)


def _describe_run(run_id: str | None, step: int) -> str:
    return f"{'run ' + run_id[:8] if run_id else 'a run from before run ids'} at step {step:,}"


def _newest_or_refuse(out: OutDir) -> FoundCheckpoint:
    """The newest checkpoint of the run in `out`, or, when none loads, the refusal to start a new run there."""
    try:
        return out.newest()
    except CheckpointError:
        _refuse_to_overwrite(out)
        raise


def _refuse_another_run(out: OutDir, saved: Checkpoint, options: Mapping[str, Any], corpus_sha256: str) -> None:
    """Refuse a new run into `out` unless it is the run `saved` belongs to: the same corpus (by its
    SHA-256), the same options (display ones aside), and no --init-from. A size charrnn chose
    (the options not given of SIZED_FIELDS) is the run's own, whatever it is."""
    own_size = {name: getattr(saved.model_config, name) for name in SIZED_FIELDS if name not in options}
    options = {**options, **own_size}
    differences = rerun_differences(saved.model_config, saved.train_config, options)
    init = saved.record.init_from
    if init is not None:
        differences.append(f"{spelled('init_from', None)} (checkpoint: {printable(init.path or 'a checkpoint')})")
    recorded = saved.record.corpus
    if recorded is None or recorded.sha256 is None:
        differences.append("a corpus the checkpoint does not record")
    elif recorded.sha256 != corpus_sha256:
        size = f", {recorded.chars:,} characters" if recorded.chars is not None else ""
        differences.append(f"another corpus text (checkpoint: {printable(recorded.description or 'unnamed')}{size})")
    if not differences:
        return
    shown = ", ".join(differences[:_MOST_SHOWN]) + (
        f" and {len(differences) - _MOST_SHOWN} more" if len(differences) > _MOST_SHOWN else ""
    )
    try:
        resume_configs(saved.model_config, saved.train_config, options)
        resume = f"add {spelled('resume', True)} to continue it with these, or "
    except ConfigError:  # an architecture or a data layout no resume can change
        resume = ""
    raise ConfigError(
        f"{printable(out.path)} holds a run with other settings: {shown}; {resume}give another {spelled('out')} to start a new one"
    )


_MOST_SHOWN = 4  # differences named in one refusal


def _refuse_to_overwrite(out: OutDir) -> None:
    existing = out.checkpoint_names() or ([RUN_FILE] if out.holds_run() else [])
    if existing:
        raise ConfigError(
            f"{printable(out.path)} already holds a run ({', '.join(existing[:3])}); add {spelled('resume', True)} to continue it, "
            f"or give another {spelled('out')} to start a new one"
        )


def _refuse_own_files_as_text(corpus: Corpus, out: OutDir) -> None:
    """Refuse a corpus file that the run itself writes (its samples.txt, its metrics.jsonl, named
    as a file): it would change while the run trains on it, and no resume would find it again.
    (Folders and patterns leave such files out: charrnn.store.corpus.)"""
    folder = out.path.resolve()
    for path in corpus.files:  # resolved paths
        if path.parent == folder and is_run_file_name(path.name):
            raise CorpusError(
                f"the corpus file {printable(path)} is one that this run writes into its out folder, so it would "
                f"change as the run trains; copy it elsewhere first, or give another {spelled('out')}"
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
            + (
                "model.train_more(NEW_TEXT, out=NEW_FOLDER)"
                if for_python()
                else "charrnn train NEW.txt --init-from CHECKPOINT --out NEW_FOLDER"
            )
        )
