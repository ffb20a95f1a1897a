"""A checkpoint's training state is data too: every field a resumed run uses (optimizer moments
and settings, step counts, carried hidden state, validation losses, counters, random
generators) is checked against the model and its meaning before the run continues, and
refused in one line naming it. Commands that read only the weights (sample, eval, info,
--init-from) still use such a checkpoint."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.cli.commands import main
from charrnn.core.model import CharRNN
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.run.optim import build_optimizer
from charrnn.settings.config import ModelConfig, TrainConfig
from charrnn.store.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from charrnn.store.outdir import LOCK_FILE
from charrnn.store.training_state import check_training_state, optimizer_parameters
from helpers import copy_run, fast_args, fingerprint, train, trained_pangram_run

FAST = fast_args()
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A folder with a corpus and a finished tiny LSTM run on it (run/)."""
    return trained_pangram_run(tmp_path_factory.mktemp("state"))


def _crafted(run: Path, folder: Path, change) -> Path:
    """The run's latest checkpoint with `change(state)` applied, alone in `folder`."""
    state = load_checkpoint(run / "run" / "latest.pt")
    change(state)
    folder.mkdir(exist_ok=True)
    save_checkpoint(state, folder / "odd.pt")
    return folder / "odd.pt"


def _moments(state, parameter: int = 0) -> dict:
    return state["optimizer"]["state"][parameter]


def _group(state, index: int = 0) -> dict:
    return state["optimizer"]["param_groups"][index]


def _set(mapping_of, key, value):
    return lambda state: mapping_of(state).__setitem__(key, value)


def _fill(value, index: int = 0):
    return lambda state: state["hidden"][index].fill_(value)


def _one_group(state) -> None:
    first, second = state["optimizer"]["param_groups"]
    first["params"] = [*first["params"], *second["params"]]
    del state["optimizer"]["param_groups"][1]


def _top(key, value):
    return lambda state: state.__setitem__(key, value)


def _losses(best, last):
    return lambda state: state.update(best_val_loss=best, val_loss=last)


# id -> (the change to the trained run's state, what the one line must name)
BAD_STATES = {
    "moment-wrong-shape": (
        _set(_moments, "exp_avg", torch.zeros(3, 3)),
        "exp_avg of embedding.weight has shape (3, 3)",
    ),
    "moment-nan": (lambda s: _moments(s, 2)["exp_avg"].fill_(NAN), "exp_avg of rnn.weight_hh_l0 holds NaN"),
    "moment-beyond-float32": (
        lambda s: _moments(s).__setitem__("exp_avg", _moments(s)["exp_avg"].double() * 1e300),
        "holds NaN or infinite values (in float32",
    ),
    "moment-integers": (
        lambda s: _moments(s).__setitem__("exp_avg", _moments(s)["exp_avg"].long()),
        "exp_avg of embedding.weight holds torch.int64",
    ),
    "mean-square-negative": (
        lambda s: _moments(s, 4)["exp_avg_sq"].neg_(),
        "exp_avg_sq of rnn.bias_ih_l0 holds negative values",
    ),
    "mean-square-missing": (lambda s: _moments(s).pop("exp_avg_sq"), "lacks exp_avg_sq"),
    "moment-unknown": (_set(_moments, "momentum_buffer", torch.zeros(1)), "holds momentum_buffer"),
    "adam-step-vector": (_set(_moments, "step", torch.tensor([1.0, 2.0, 3.0])), "has step (a tensor of shape (3,))"),
    "adam-step-zero": (_set(_moments, "step", torch.tensor(0.0)), "has step 0, not a count of its updates"),
    "adam-step-beyond-run": (
        _set(_moments, "step", torch.tensor(1e6)),
        "has step 1e+06, not a count of its updates from 1 to the run's 20",
    ),
    "adam-step-fraction": (_set(_moments, "step", 2.5), "has step 2.5"),
    "adam-step-nan": (_set(_moments, "step", torch.tensor(NAN)), "has step nan"),
    "state-of-no-parameter": (lambda s: s["optimizer"]["state"].__setitem__(99, _moments(s)), "parameter 99"),
    "one-parameter-group": (_one_group, "its optimizer has 1 parameter groups where charrnn's has 2"),
    "parameters-reordered": (_set(_group, "params", [1, 0, 2]), "lists parameters [1, 0, 2]"),
    "three-betas": (_set(_group, "betas", (0.9, 0.99, 0.999)), "has betas (0.9, 0.99, 0.999)"),
    "beta-one": (_set(_group, "betas", (1.0, 0.999)), "has betas (1.0, 0.999)"),
    "betas-missing": (lambda s: _group(s).pop("betas"), "has betas None"),
    "lr-nan": (_set(_group, "lr", NAN), "has lr nan"),
    "lr-negative": (_set(_group, "lr", -0.1), "has lr -0.1"),
    "lr-string": (_set(_group, "lr", "fast"), "has lr 'fast'"),
    "eps-zero": (_set(_group, "eps", 0.0), "has eps 0"),
    "weight-decay-negative": (_set(_group, "weight_decay", -1.0), "has weight_decay -1"),
    "amsgrad": (_set(_group, "amsgrad", True), "has amsgrad True"),
    "maximize": (_set(_group, "maximize", True), "has maximize True"),
    "capturable": (_set(_group, "capturable", True), "has capturable True"),
    "hidden-nan": (_fill(NAN), "hidden[0] holds NaN or infinite values"),
    "hidden-beyond-tanh": (_fill(5.0), "hidden[0] holds values beyond [-1, 1]"),
    "cell-state-infinite": (_fill(INF, 1), "hidden[1] holds NaN or infinite values"),
    "hidden-integers": (
        lambda s: s.update(hidden=(s["hidden"][0].long(), *s["hidden"][1:])),
        "hidden[0] holds torch.int64",
    ),
    "best-loss-absurd": (_losses(-1e308, None), "best_val_loss is -1e+308, but a loss"),
    "best-loss-negative": (_losses(-0.5, -0.5), "best_val_loss is -0.5"),
    "best-loss-huge": (_losses(1e300, 1e300), "best_val_loss is 1e+300, more than any loss computed in float32"),
    "best-loss-nan": (_losses(NAN, None), "best_val_loss nan is not a finite number"),
    "last-loss-infinite": (_losses(2.0, INF), "val_loss inf is not a finite number"),
    "best-above-last": (_losses(2.0, 1.0), "best_val_loss 2 is above the last validation loss 1"),
    "last-without-best": (_losses(None, 1.0), "holds a last validation loss (val_loss) but no best"),
    "step-absurd": (_top("step", 10**16), "its step 10000000000000000 is not a count"),
    "evals-since-best-beyond-step": (_top("evals_since_best", 10**6), "evals_since_best 1000000"),
    "data-position-not-of-step": (_top("data_position", {"epoch": 5, "window": 3}), "data_position (5, 3)"),
    "world-size-alone": (_top("world_size", 2), "world_size"),
    "world-size-beyond-streams": (
        lambda s: s.update(world_size=8, rng_ranks=[s["rng"]] * 8),
        "world_size 8 is not a number of processes sharing 4 streams",
    ),
    "rng-ranks-miscounted": (lambda s: s.update(world_size=2, rng_ranks=[s["rng"]]), "1 random generator states"),
    "rng-garbage": (_set(lambda s: s["rng"], "torch", torch.zeros(5056, dtype=torch.uint8)), "rng holds a random"),
    "rng-floats": (
        _set(lambda s: s["rng"], "torch", torch.zeros(5056)),
        "rng holds a random generator state torch refuses (RNG state must be a torch.ByteTensor)",
    ),
    "rng-cuda-floats": (_set(lambda s: s["rng"], "cuda", [torch.zeros(16)]), "CUDA generator state (cuda[0])"),
}


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_a_bad_training_state_is_refused_on_resume_in_one_line(case, run, tmp_path):
    change, excerpt = BAD_STATES[case]
    path = _crafted(run, tmp_path / "crafted", change)
    before, run_before = fingerprint(tmp_path), fingerprint(run)
    result = CliRunner().invoke(main, ["train", str(run / "corpus.txt"), "--resume", str(path), "--max-steps", "30"])
    line = _one_error_line(result)
    assert "cannot be resumed: " in line and excerpt in line, line
    assert len(line) < 400, line
    assert fingerprint(tmp_path) == before and fingerprint(run) == run_before  # nothing written, nothing changed
    assert sorted(p.name for p in (tmp_path / "crafted").iterdir() if p.name != LOCK_FILE) == ["odd.pt"]


@pytest.mark.parametrize("case", ["mean-square-negative", "adam-step-vector", "hidden-nan", "best-loss-absurd"])
def test_commands_that_read_only_the_weights_still_use_it(case, run, tmp_path):
    path = _crafted(run, tmp_path / "crafted", BAD_STATES[case][0])
    for command in (
        ["sample", "-c", path, "--length", "20", "--seed", "1"],
        ["eval", run / "corpus.txt", "-c", path],
        ["info", path],
    ):
        result = CliRunner().invoke(main, [str(a) for a in command])
        assert result.exit_code == 0, result.output


def test_a_bad_training_state_still_fine_tunes(run, tmp_path):
    path = _crafted(run, tmp_path / "crafted", BAD_STATES["moment-wrong-shape"][0])
    result = CliRunner().invoke(
        main, ["train", str(run / "corpus.txt"), *FAST, "--init-from", str(path), "--out", str(tmp_path / "tuned")]
    )
    assert result.exit_code == 0, result.output


def test_a_rerun_on_a_folder_whose_newest_state_is_bad_is_refused(run, tmp_path):
    copy = copy_run(run, tmp_path)
    state = load_checkpoint(copy / "latest.pt")
    state["hidden"][0].fill_(NAN)
    save_checkpoint(state, copy / "step-00000020.pt")  # the newest: latest.pt (a copy here) is no newer
    before = fingerprint(copy)
    result = CliRunner().invoke(main, ["train", str(run / "corpus.txt"), *FAST, "--out", str(copy)])
    line = _one_error_line(result)
    assert "cannot be resumed: hidden[0] holds NaN" in line, line
    assert fingerprint(copy) == before


def test_a_best_pt_holding_an_impossible_loss_does_not_block_better_models(run, tmp_path):
    """best.pt's loss is the standard a new best must beat: -1e308 would keep it for ever."""
    copy = copy_run(run, tmp_path)
    state = load_checkpoint(copy / "best.pt")
    state["best_val_loss"] = -1e308
    save_checkpoint(state, copy / "best.pt")
    result = CliRunner().invoke(
        main, ["train", str(run / "corpus.txt"), "--resume", str(copy), "--max-steps", "30", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    best = read_checkpoint(copy / "best.pt")
    assert best.step == 30 and 0 < best.best_val_loss < 10


def test_a_state_training_wrote_passes(run):
    for name in ("latest.pt", "best.pt", "step-00000010.pt"):
        check_training_state(read_checkpoint(run / "run" / name), name)


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "input_mode": "embedding", "layers": 2},
        {"cell": "gru", "input_mode": "one-hot", "layers": 1},
        {"cell": "rnn", "input_mode": "embedding", "layers": 3, "weight_drop": 0.2},
    ],
)
def test_the_optimizer_layout_is_build_optimizers(options):
    """The check names each parameter of build_optimizer's groups by its place in them."""
    config = ModelConfig(vocab_size=7, hidden_size=8, embed_dim=4, **options)
    model = CharRNN(config)
    names = {id(p): name for name, p in model.named_parameters()}
    groups = build_optimizer(model, TrainConfig()).param_groups
    built = [[(names[id(p)], tuple(p.shape)) for p in group["params"]] for group in groups]
    assert built == optimizer_parameters(config)


# Random perturbations of a good training state: refused with a CharRNNError, or resumed and
# trained on; never another exception.


def _tensors_of(state) -> list[tuple[str, torch.Tensor]]:
    found = [(f"hidden[{i}]", h) for i, h in enumerate(state["hidden"])]
    for key, moments in state["optimizer"]["state"].items():
        found += [(f"optimizer[{key}].{name}", t) for name, t in moments.items() if isinstance(t, torch.Tensor)]
    return found


_ODD_NUMBERS = st.sampled_from([NAN, INF, -INF, -1.0, 0.0, 1.0, 0.5, 1e-300, 1e300, -1e308, 3.5e38, 2, 10**12])


@st.composite
def _perturbation(draw):
    kind = draw(st.sampled_from(["tensor-value", "tensor-shape", "number", "setting", "adam-step"]))
    if kind == "tensor-value":
        return kind, draw(st.integers(0, 40)), draw(_ODD_NUMBERS), draw(st.booleans())
    if kind == "tensor-shape":
        return kind, draw(st.integers(0, 40)), draw(st.lists(st.integers(0, 5), max_size=3)), None
    if kind == "number":
        key = draw(st.sampled_from(["best_val_loss", "val_loss", "evals_since_best", "step", "elapsed_seconds"]))
        return kind, key, draw(_ODD_NUMBERS), None
    if kind == "setting":
        key = draw(st.sampled_from(["lr", "eps", "weight_decay", "betas"]))
        value = draw(st.one_of(_ODD_NUMBERS, st.tuples(_ODD_NUMBERS, _ODD_NUMBERS), st.lists(_ODD_NUMBERS)))
        return kind, key, value, draw(st.integers(0, 1))
    return kind, draw(st.integers(0, 40)), draw(st.one_of(_ODD_NUMBERS, st.just(torch.ones(2)))), None


def _replaced(state, name: str, tensor: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    """`replacement` put where the state held `tensor` (named as `_tensors_of` names it)."""
    if name.startswith("hidden"):
        state["hidden"] = tuple(replacement if t is tensor else t for t in state["hidden"])
    else:
        key, moment = name.removeprefix("optimizer[").split("].")
        state["optimizer"]["state"][int(key)][moment] = replacement
    return replacement


def _perturbed(state, perturbation) -> None:
    kind, where, value, extra = perturbation
    tensors = _tensors_of(state)
    if kind == "tensor-value":
        name, tensor = tensors[where % len(tensors)]
        if abs(value) < INF and abs(value) > torch.finfo(tensor.dtype).max:  # a float64 tensor can hold it
            tensor = _replaced(state, name, tensor, tensor.double())
        flat = tensor.view(-1)
        if extra:
            flat.fill_(value)
        elif flat.numel():
            flat[0] = value
    elif kind == "tensor-shape":
        _replaced(state, *tensors[where % len(tensors)], torch.zeros(value))
    elif kind == "number":
        state[where] = value if where.endswith("loss") else int(value) if value == value and abs(value) < 1e18 else 1
    elif kind == "setting":
        state["optimizer"]["param_groups"][extra][where] = value
    else:
        moments = state["optimizer"]["state"]
        moments[sorted(moments)[where % len(moments)]]["step"] = value


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(perturbation=_perturbation())
def test_a_perturbed_training_state_is_refused_or_resumes(run, tmp_path_factory, perturbation):
    folder = tmp_path_factory.mktemp("perturbed")
    path = _crafted(run, folder, lambda state: _perturbed(state, perturbation))
    try:
        checkpoint = read_checkpoint(path)
        check_training_state(checkpoint, path)
    except CheckpointError:
        return  # refused in one line: the one outcome besides a run that trains
    with contextlib.suppress(CharRNNError):  # e.g. a run that diverged from finite moments too large to learn from
        train(run / "corpus.txt", folder, {"max_steps": checkpoint.step + 2}, resume=str(path))
