#!/usr/bin/env python3
"""The sweep behind `charrnn train`'s model sizing: which size and dropout train the best model
of a corpus in a budget, for corpora from 25 thousand to 3.7 million characters.

For each corpus and budget, every candidate (hidden size, dropout) is trained and its best
validation loss (best.pt, the held-out last tenth, state carried) recorded; small corpora,
whose held-out tenth is noisy, are trained with several seeds and the mean taken.

A budget is time on this machine (2 and 10 minutes), but runs are given as steps, so that
every figure can be reproduced exactly, whatever else the machine is doing:
`measure` times each candidate's training steps and evaluations alone on the machine (two
threads), and the budget's step count is how many steps, with their evaluations, fit in it.

    python scripts/sizing_sweep.py measure            # time each candidate (machine otherwise idle)
    python scripts/sizing_sweep.py run                # train every candidate (resumable)
    python scripts/sizing_sweep.py report             # tables into docs/benchmarks.md

Results go to --work (default ~/.cache/charrnn-sizing-sweep): rates.json and results.jsonl.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

DATA = ROOT.parent / "shared" / "data"
BUDGETS = {"2m": 120.0, "10m": 600.0}
EVAL_EVERY = 500  # charrnn train's default


@dataclass(frozen=True)
class Corpus:
    name: str
    file: str
    seeds: dict[str, tuple[int, ...]]  # budget -> seeds: several where the held-out tenth is small and noisy
    grid: dict[str, tuple[dict[str, Any], ...]]  # budget -> candidates (options: hidden size, dropout, ...), 2 layers
    patience: int | None = None  # evaluations without a new best that end a run early (saves time)

    @property
    def path(self) -> Path:
        return DATA / self.file


def _c(hidden_size: int, dropout: float, **levers: Any) -> dict[str, Any]:
    return {"hidden_size": hidden_size, "dropout": dropout, **levers}


from charrnn.run.sizing import HIDDEN_SIZES  # noqa: E402

DEFAULT = _c(256, 0.2)  # charrnn's fixed default before sizing
# Candidates by budget, around what earlier exploratory runs pointed to (the small corpora want
# dropout, the large ones steps), with today's default in every list; the automatic choice is
# added where it is not listed (candidates).
CORPORA = (
    Corpus(
        "tang300",
        "tang300.txt",
        {"2m": (1, 2, 3), "10m": (1,)},
        {"2m": (DEFAULT, _c(256, 0.3)), "10m": (DEFAULT,)},
        patience=6,
    ),
    Corpus(
        "timemachine",
        "timemachine.txt",
        {"2m": (1, 2), "10m": (1,)},
        {"2m": (DEFAULT, _c(256, 0.4)), "10m": (DEFAULT,)},
        patience=6,
    ),
    Corpus("shakespeare", "tinyshakespeare.txt", {"2m": (1,), "10m": (1,)}, {"2m": (DEFAULT,), "10m": (DEFAULT,)}),
    Corpus("tang", "tang_poems.txt", {"2m": (1,), "10m": (1,)}, {"2m": (DEFAULT,), "10m": (DEFAULT,)}),
)


def candidates(corpus: Corpus, budget: str) -> list[dict[str, Any]]:
    """The budget's grid, and the automatic choice where it is not in the grid."""
    configs = list(corpus.grid[budget])
    automatic = automatic_choice(corpus, budget)
    return configs + ([automatic] if automatic not in configs else [])


def automatic_choice(corpus: Corpus, budget: str) -> dict[str, Any]:
    """What `charrnn train CORPUS --max-time BUDGET` chooses (charrnn/run/sizing.py)."""
    from charrnn.run.sizing import sized_options
    from charrnn.settings.config import TrainConfig

    train = TrainConfig(max_steps=None, max_time=BUDGETS[budget])
    options, _ = sized_options({}, *text_counts(corpus.path), train)
    return {"hidden_size": options["hidden_size"], "dropout": options["dropout"]}


@functools.cache
def text_counts(path: Path) -> tuple[int, int]:
    """A corpus's characters and distinct characters, read once (the rule is asked many times)."""
    text = path.read_text(encoding="utf-8")
    return len(text), len(set(text))


def key(config: dict[str, Any]) -> str:
    return ",".join(f"{name}={config[name]}" for name in sorted(config))


def train_once(corpus: Path, options: dict[str, Any], threads: int) -> dict[str, Any]:
    """One `charrnn.train` run in a fresh process: its step, elapsed seconds, best validation
    (nats) and the metrics it wrote."""
    with tempfile.TemporaryDirectory(prefix="charrnn-sizing-") as out:
        program = (
            "import charrnn, json, sys\n"
            f"r = charrnn.train({str(corpus)!r}, out={out!r}, threads={threads}, progress=False, "
            f"preview_chars=0, **json.loads(sys.argv[1]))\n"
            "print(json.dumps(dict(step=r.step, elapsed=r.elapsed, best=r.best_val_loss)))\n"
        )
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", program, json.dumps(options)], capture_output=True, text=True, cwd=ROOT
        )
        if done.returncode:
            raise RuntimeError(f"training failed: {done.stderr[-1000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return {**result, "wall": time.perf_counter() - began, "records": records}


def measure(corpus: Corpus, config: dict[str, Any]) -> dict[str, float]:
    """Seconds per training step and per evaluation of `config` on `corpus`, two threads, alone."""
    run = train_once(
        corpus.path, {**config, "max_time": 20, "log_every": 10, "eval_every": 10**9, "save_every": 10**9}, threads=2
    )
    train = [r for r in run["records"] if r["kind"] == "train"]
    validation = [r for r in run["records"] if r["kind"] == "validation"]
    # The first report carries start-up costs: the rate from the first report to the last.
    first, last = train[0], train[-1]
    step_seconds = (last["elapsed"] - first["elapsed"]) / max(last["step"] - first["step"], 1)
    return {"step_seconds": step_seconds, "eval_seconds": validation[-1]["elapsed"] - last["elapsed"]}


def steps_in(budget: float, rate: dict[str, float], every: int) -> int:
    """Steps that fit in `budget` seconds with an evaluation every `every` steps."""
    per_step = rate["step_seconds"] + rate["eval_seconds"] / every
    return max(1, int(budget / per_step))


def load_rates(work: Path) -> dict[str, dict[str, float]]:
    path = work / "rates.json"
    return json.loads(path.read_text()) if path.exists() else {}


def load_results(work: Path) -> list[dict[str, Any]]:
    path = work / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def command_measure(args: argparse.Namespace) -> None:
    rates = load_rates(args.work)
    for corpus in selected(args):
        # Every size the rule may choose (the step-time estimate in charrnn/run/sizing.py is fitted to
        # these), and every size of the grid.
        grid = {c["hidden_size"] for budget in BUDGETS for c in candidates(corpus, budget)}
        sizes = sorted(grid | set(HIDDEN_SIZES))
        for size in sizes:
            name = rate_key(corpus, size)
            if name in rates and not args.again:
                continue
            rates[name] = measure(corpus, {"hidden_size": size})
            print(name, rates[name], flush=True)
            (args.work / "rates.json").write_text(json.dumps(rates, indent=1))


def rate_key(corpus: Corpus, hidden_size: int) -> str:
    return f"{corpus.name}:{hidden_size}"  # dropout costs no measurable time


def command_run(args: argparse.Namespace) -> None:
    rates = load_rates(args.work)
    done = {(r["corpus"], r["budget"], r["config"], r["seed"]) for r in load_results(args.work)}
    jobs = []
    for corpus in selected(args):
        for budget_name, budget in BUDGETS.items():
            if args.budget and budget_name not in args.budget:
                continue
            for config in candidates(corpus, budget_name):
                rate = rates.get(rate_key(corpus, config["hidden_size"]))
                if rate is None:
                    raise SystemExit(f"no rate for {corpus.name} {key(config)}: run `measure` first")
                for seed in corpus.seeds[budget_name]:
                    if (corpus.name, budget_name, key(config), seed) not in done:
                        jobs.append((corpus, budget_name, config, seed, steps_in(budget, rate, EVAL_EVERY)))
    # The automatic choice and the default of every corpus and budget first, the others after:
    # a sweep cut short still compares the two that matter most.
    automatic = {(c.name, b): key(automatic_choice(c, b)) for c in selected(args) for b in BUDGETS}
    jobs.sort(
        key=lambda job: (key(job[2]) not in (key(DEFAULT), automatic[job[0].name, job[1]]), list(BUDGETS).index(job[1]))
    )
    print(f"{len(jobs)} runs to go", flush=True)

    def run(job: tuple) -> None:
        corpus, budget_name, config, seed, steps = job
        options = {**config, "max_steps": steps, "seed": seed, "save_every": 10**9}
        if corpus.patience:
            options["patience"] = corpus.patience
        outcome = train_once(corpus.path, options, threads=max(1, 2 // args.jobs))
        row = {
            "corpus": corpus.name,
            "budget": budget_name,
            "config": key(config),
            "seed": seed,
            "steps": steps,
            "stopped_at": outcome["step"],
            "best_nats": outcome["best"],
            "wall": round(outcome["wall"], 1),
        }
        with open(args.work / "results.jsonl", "a") as file:
            file.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run, jobs))


def selected(args: argparse.Namespace) -> list[Corpus]:
    chosen = [c for c in CORPORA if not args.corpus or c.name in args.corpus]
    missing = [c.name for c in chosen if not c.path.exists()]
    if missing:
        raise SystemExit(f"corpora not found in {DATA}: {', '.join(missing)}")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("measure", "run", "report"))
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "charrnn-sizing-sweep")
    parser.add_argument("--corpus", action="append", help="only this corpus (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (2 threads for one, else one each)")
    parser.add_argument("--budget", action="append", help="only this budget (repeatable)")
    parser.add_argument("--again", action="store_true", help="measure rates again")
    parser.add_argument("--no-write", action="store_true", help="report: print only")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    {"measure": command_measure, "run": command_run, "report": command_report}[args.command](args)
    return 0


def command_report(args: argparse.Namespace) -> None:
    """Per corpus and budget: each candidate's mean best validation, the best, the automatic
    choice and today's default beside it, against the targets; into docs/benchmarks.md."""
    from benchmark_doc import machine_description, replace_section

    results = load_results(args.work)
    rates = load_rates(args.work)
    tables, verdicts = [], []
    for corpus in selected(args):
        for budget in BUDGETS:
            rows = _rows(results, corpus, budget)
            if not rows:
                continue
            best = min(rows.values())
            chosen = rows.get(key(automatic_choice(corpus, budget)))
            default = rows.get(key(DEFAULT))
            tables.append(_table(corpus, budget, rows, rates, best, chosen, default))
            verdicts.append(_verdict(corpus, budget, best, chosen, default))
    command = "python scripts/sizing_sweep.py measure; python scripts/sizing_sweep.py run; python scripts/sizing_sweep.py report"
    body = (
        f"Commands: `{command}`  \nMachine: {machine_description()}  \n"
        "Each run: `charrnn.train(CORPUS, hidden_size=H, dropout=D, max_steps=STEPS, seed=SEED)`, defaults otherwise "
        "(LSTM, 2 layers, embedding 64, batch 16 x 64, weight decay 0.1), two CPU threads, one run at a time; "
        "STEPS is what fits in the budget on this machine's two cores alone (`measure`: step and evaluation times "
        "with two threads), so every figure is reproducible exactly, whatever the machine's load. Figures are "
        f"best.pt's validation loss (nats, the held-out last tenth, state carried), the mean over the seeds; small "
        f"corpora stop early after {CORPORA[0].patience} evaluations without a new best (a run's best comes long before).\n\n"
        + "\n\n".join(tables)
        + "\n\n| corpus | budget | best found | automatic | within 0.03 | default | automatic beats default by |\n"
        "| --- | --- | ---: | ---: | --- | ---: | ---: |\n" + "\n".join(verdicts) + "\n"
    )
    if not args.no_write:
        replace_section("sizing", body)
    print(body)


def _rows(results: list[dict[str, Any]], corpus: Corpus, budget: str) -> dict[str, float]:
    """config key -> mean best validation over the corpus's seeds (configs with every seed done)."""
    by_config: dict[str, list[float]] = {}
    for row in results:
        if row["corpus"] == corpus.name and row["budget"] == budget:
            by_config.setdefault(row["config"], []).append(row["best_nats"])
    return {config: sum(v) / len(v) for config, v in by_config.items() if len(v) == len(corpus.seeds[budget])}


def _table(corpus, budget, rows, rates, best, chosen, default) -> str:
    automatic = key(automatic_choice(corpus, budget))
    lines = [
        f"**{corpus.name}**, {budget} ({len(corpus.seeds[budget])} seed{'s' if len(corpus.seeds[budget]) > 1 else ''}):",
        "",
        "| hidden | dropout | other | steps | best validation (nats) | |",
        "| ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for config, nats in sorted(rows.items(), key=lambda item: item[1]):
        values = dict(part.split("=") for part in config.split(","))
        rate = rates[rate_key(corpus, int(values["hidden_size"]))]
        marks = [m for m, c in (("best", nats == best), ("automatic", config == automatic)) if c]
        marks += ["default"] if config == key(DEFAULT) else []
        others = ", ".join(
            f"{name} {value}" for name, value in values.items() if name not in ("hidden_size", "dropout")
        )
        lines.append(
            f"| {values['hidden_size']} | {values['dropout']} | {others} | {steps_in(BUDGETS[budget], rate, EVAL_EVERY):,} "
            f"| {nats:.4f} | {', '.join(marks)} |"
        )
    return "\n".join(lines)


def _verdict(corpus, budget, best, chosen, default) -> str:
    within = "—" if chosen is None else ("yes" if chosen - best <= 0.03 else "no")
    gain = "—" if chosen is None or default is None else f"{default - chosen:.3f}"
    chosen_shown = "—" if chosen is None else f"{chosen:.4f}"
    default_shown = "—" if default is None else f"{default:.4f}"
    return f"| {corpus.name} | {budget} | {best:.4f} | {chosen_shown} | {within} | {default_shown} | {gain} |"


if __name__ == "__main__":
    sys.exit(main())
