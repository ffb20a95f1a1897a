"""Record a real training run as a diagnosis fixture: its metrics.jsonl and the facts the rules read.

    cd SOMEWHERE && python .../tests/data/runs/make_fixture.py NAME CORPUS OUT OPTIONS_JSON "HOW IT WAS MADE"

trains `charrnn.train(CORPUS, out=OUT, **OPTIONS)` (CORPUS "" for the built-in corpus) in the
current folder, as `charrnn train` would there, printing its header and advice, and writes
tests/data/runs/NAME/{metrics.jsonl,facts.json}. The run's folder is left where it is.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import charrnn


def main(name: str, corpus: str, out: str, options_json: str, how: str) -> None:
    options = json.loads(options_json)
    folder = Path(__file__).parent / name
    result = charrnn.train(*([corpus] if corpus else []), out=out, **options)
    facts = {
        "steps": result.step,
        "max_steps": result.budget.max_steps,
        "max_time": result.budget.max_time,
        "elapsed": round(result.elapsed, 1),
        "hidden_size": result.model_config.hidden_size,
        "dropout": result.model_config.dropout,
        "lr": result.train_config.lr,
        "vocab_size": result.model_config.vocab_size,
        "unigram_bits": None if result.unigram_bits is None else round(result.unigram_bits, 4),
        "stopped_early": result.stopped_early,
    }
    folder.mkdir(exist_ok=True)
    shutil.copyfile(Path(out) / "metrics.jsonl", folder / "metrics.jsonl")
    record = {"made_by": how, "facts": facts, "corpus": [corpus] if corpus else [], "out": out, "options": options}
    (folder / "facts.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print("\n".join(result.advice()), file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:])
