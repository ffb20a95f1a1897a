#!/usr/bin/env python3
"""How much a model gains from learning as it reads (dynamic evaluation, `charrnn eval --adapt`).

Each RUN:CORPUS pair names a trained out folder and the corpus it was trained on; the held-out
text is the corpus's last 10 %, the tenth training held out (on tiny Shakespeare the standard
111,540 characters). Two steps, kept apart so that no figure is tuned on the text it reports:

    # 1. choose --adapt-lr, --adapt-decay and --adapt-segment on texts that are never reported
    python scripts/adapt_quality.py sweep runs/tune-shakespeare:shakespeare-first90.txt checkpoints:builtin
    # 2. report the defaults on the reported texts: carried and in windows of 256, each static and adapted
    python scripts/adapt_quality.py report runs/s1:tinyshakespeare.txt runs/tm:timemachine.txt

`builtin` names the built-in corpus. The sweep scores the first --chars characters of each
held-out text for every setting and ranks the settings by their mean gain in nats.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

VAL_FRACTION = 0.1  # charrnn train's default: the held-out tenth
WINDOW = 256  # nanoGPT's block size (see quality.py)
LRS = (3e-5, 1e-4, 3e-4)
DECAYS = (0.001, 0.01, 0.05)
SEGMENTS = (50, 100)


@dataclass(frozen=True)
class Pair:
    run: Path
    corpus: str  # a path, or "builtin"

    @classmethod
    def parse(cls, text: str) -> Pair:
        run, _, corpus = text.rpartition(":")
        if not run:
            raise argparse.ArgumentTypeError(f"{text!r} is not RUN:CORPUS")
        return cls(Path(run), corpus)


def held_out(pair: Pair, folder: Path, chars: int | None = None) -> Path:
    """The corpus's validation tenth (its first `chars` characters), as a file in `folder`."""
    from charrnn.core.data import split_train_val
    from charrnn.store.corpus import resolve_corpus

    corpus = resolve_corpus([] if pair.corpus == "builtin" else [pair.corpus])
    text = "".join(corpus.chunks())  # the text as training read it
    _, validation = split_train_val(text, VAL_FRACTION)
    path = folder / f"{len(list(folder.iterdir()))}-held-out.txt"
    path.write_text(validation[:chars] if chars else validation, encoding="utf-8")
    return path


def sweep(pairs: list[Pair], chars: int, grid: tuple[tuple, tuple, tuple]) -> list[str]:
    from charrnn import api

    settings = list(itertools.product(*grid))
    gains: dict[tuple, list[float]] = {setting: [] for setting in settings}
    lines = [
        f"Tuning texts (the first {chars:,} characters of each held-out tenth; never reported):",
        "",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for pair in pairs:
            text = held_out(pair, Path(folder), chars)
            model = api.load(pair.run, threads=1)
            static = model.score(text).nats
            lines.append(f"- {pair.run} on {pair.corpus}: static {static:.4f} nats")
            for setting in settings:
                lr, decay, segment = setting
                nats = model.score(text, adapt=True, adapt_lr=lr, adapt_decay=decay, adapt_segment=segment).nats
                gains[setting].append(static - nats)
                print(f"{pair.run} lr {lr:g} decay {decay:g} segment {segment}: {nats:.4f}", flush=True)
    # Ranked by the mean share of each text's best gain, so that the text with the larger gains does not decide alone.
    best_gains = [max(gains[setting][index] for setting in settings) for index in range(len(pairs))]

    def share(setting: tuple) -> float:
        return statistics.mean(gain / best for gain, best in zip(gains[setting], best_gains))

    ranked = sorted(settings, key=lambda setting: -share(setting))
    names = " | ".join(f"gain, {Path(p.corpus).name}" for p in pairs)
    lines += ["", f"| --adapt-lr | --adapt-decay | --adapt-segment | {names} | share of the best gains |"]
    lines.append("| ---: | ---: | ---: | " + " | ".join("---:" for _ in pairs) + " | ---: |")
    for lr, decay, segment in ranked:
        each = " | ".join(f"{gain:.4f}" for gain in gains[(lr, decay, segment)])
        lines.append(f"| {lr:g} | {decay:g} | {segment} | {each} | {share((lr, decay, segment)):.3f} |")
    best = ranked[0]
    lines += ["", f"Best: --adapt-lr {best[0]:g} --adapt-decay {best[1]:g} --adapt-segment {best[2]}."]
    return lines


def report(pairs: list[Pair]) -> list[str]:
    from charrnn import api

    lines = [
        "| run | corpus | steps | carried, static | carried, adapted | gain | windows of 256, static | "
        "windows, adapted | gain | static eval | adapted eval |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for pair in pairs:
            text = held_out(pair, Path(folder))
            model = api.load(pair.run, threads=1)
            began = time.perf_counter()
            static = model.score(text).nats
            static_seconds = time.perf_counter() - began
            began = time.perf_counter()
            adapted = model.score(text, adapt=True).nats
            adapted_seconds = time.perf_counter() - began
            windows = model.score(text, windows=WINDOW).nats
            windows_adapted = model.score(text, windows=WINDOW, adapt=True).nats
            lines.append(
                f"| {pair.run.name} | {Path(pair.corpus).name} | {model.step:,} | {static:.4f} | {adapted:.4f} | "
                f"{static - adapted:.4f} | {windows:.4f} | {windows_adapted:.4f} | {windows - windows_adapted:.4f} | "
                f"{static_seconds:.1f} s | {adapted_seconds:.1f} s |"
            )
            print(lines[-1], flush=True)
    return lines


def _numbers(kind: type):
    return lambda text: tuple(kind(part) for part in text.split(","))


def main() -> int:
    from benchmark_doc import check_section, machine_description, replace_section

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("sweep", "report"))
    parser.add_argument("pairs", nargs="+", type=Pair.parse, metavar="RUN:CORPUS")
    parser.add_argument("--chars", type=int, default=30_000, help="sweep: characters of each tuning text")
    parser.add_argument("--lrs", type=_numbers(float), default=LRS, help="sweep: --adapt-lr values, comma-separated")
    parser.add_argument("--decays", type=_numbers(float), default=DECAYS, help="sweep: --adapt-decay values")
    parser.add_argument("--segments", type=_numbers(int), default=SEGMENTS, help="sweep: --adapt-segment values")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not args.no_write:
        check_section(f"adapt-{args.step}")
    grid = (args.lrs, args.decays, args.segments)
    lines = sweep(args.pairs, args.chars, grid) if args.step == "sweep" else report(args.pairs)
    command = "python scripts/adapt_quality.py " + " ".join(sys.argv[1:])
    body = "\n".join([f"Command: `{command}` (one thread)  ", f"Machine: {machine_description()}", "", *lines])
    print(body)
    if not args.no_write:
        replace_section(f"adapt-{args.step}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
