"""Dynamic evaluation (Krause et al., "Dynamic Evaluation of Neural Sequence Models", 2018): a
model that keeps learning as it reads.

The text is read one segment at a time, the state carried. Each segment is scored with the
weights as they are, then the weights take one step on that segment's loss:

    W <- W - lr * g / max(rms, FLOOR * mean rms) + decay * rate * (W0 - W)

g is the segment's gradient; rms the root mean square of the gradients the model met in
training (AdamW's second moments, which the checkpoint keeps), or, for a model without them, of
the gradients of the text's first segments, gathered while those are scored and before any
step; W0 the trained weights; `rate` each weight's rms over the mean rms, capped at 1 / decay.
The weights training moved most are the ones a segment may move most, and the ones pulled back
to W0 fastest. Every character is scored before any step that has seen it, so the figure is an
honest prediction score; the trained weights are copied, never changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.core.data import Streams
from charrnn.core.model import CharRNN, detach_hidden
from charrnn.core.threads import UNTUNED, Tuning
from charrnn.errors import CharRNNError
from charrnn.settings.config import AdaptConfig
from charrnn.settings.spelling import spelled
from charrnn.store.checkpoint import Checkpoint
from charrnn.store.training_state import optimizer_parameters

# A weight whose gradients were tiny in training (a rare character's embedding: it has one only
# when the character is in the batch) would take a huge step: its divisor is at least this share
# of the mean rms, so that no weight steps more than 1 / FLOOR times as far as a typical one.
FLOOR = 0.1
TINY = 1e-12  # the mean rms of a model whose gradients were all zero: no division by zero
# A segment scored this many uniform guesses (ln V nats each) worse than the first, which no step had
# changed yet, means the steps are wrecking the model: reported as diverged, never as a score.
RUNAWAY = 2.0
WARMUP_SEGMENTS = 100  # a model without training statistics gathers its rms over this many segments first


class AdaptationDiverged(CharRNNError):
    """The adapting weights or the loss left the finite numbers: the learning rate is too high."""


def checkpoint_rms(checkpoint: Checkpoint) -> dict[str, torch.Tensor] | None:
    """The rms of the training gradients of each weight, from the checkpoint's AdamW moments;
    None for a checkpoint without them."""
    names = [[name for name, _ in group] for group in optimizer_parameters(checkpoint.model_config)]
    return training_rms(checkpoint.optimizer or {}, names)


def training_rms(optimizer: Mapping[str, Any], names: list[list[str]]) -> dict[str, torch.Tensor] | None:
    """The rms of the training gradients of each parameter, from the AdamW state of a checkpoint
    (`names`: each group's parameter names, in the optimizer's order); None when it has none."""
    state, groups = optimizer.get("state") or {}, optimizer.get("param_groups") or []
    rms: dict[str, torch.Tensor] = {}
    for group, group_names in zip(groups, names):
        beta2 = group.get("betas", (0.9, 0.999))[1]
        for key, name in zip(group["params"], group_names):
            moments = state.get(key)
            if not moments or "exp_avg_sq" not in moments:
                return None
            steps = float(torch.as_tensor(moments["step"]))
            corrected = torch.as_tensor(moments["exp_avg_sq"]).float() / (1.0 - beta2**steps)
            rms[name] = corrected.sqrt()
    return rms or None


def adapter_for(model: CharRNN, adaptation: AdaptConfig, checkpoint: Checkpoint | None) -> Adapter:
    """An Adapter of `model`, with the gradients' scale from `checkpoint` where it holds one."""
    return Adapter(model, adaptation, checkpoint_rms(checkpoint) if checkpoint is not None else None)


class Adapter:
    """The weights of `model` as they adapt, and the step that adapts them."""

    def __init__(self, model: CharRNN, adaptation: AdaptConfig, rms: Mapping[str, torch.Tensor] | None):
        self.model = model
        self.adaptation = adaptation
        self.parameters = dict(model.named_parameters())
        self.trained = [p.detach().clone() for p in self.parameters.values()]
        self.squares = [torch.zeros_like(p) for p in self.parameters.values()]
        self.gathered = 0  # segments whose squared gradients are in `squares` (no training rms)
        self.denominators: list[torch.Tensor] = []
        self.pulls: list[torch.Tensor] = []
        self.kept: list[torch.Tensor] = []
        if rms is not None:
            self._use(dict(rms))

    @property
    def ready(self) -> bool:
        """Whether the gradients' scale is known (else the first segments gather it)."""
        return bool(self.denominators)

    def _use(self, rms: dict[str, torch.Tensor]) -> None:
        """Take `rms` as the gradients' scale: each weight's step divides by it, and its pull
        back to the trained weight is decay * rate (see the module's docstring)."""
        device = next(iter(self.parameters.values())).device
        rms = {name: value.to(device) for name, value in rms.items()}
        mean = sum(float(value.mean()) for value in rms.values()) / len(rms)
        cap = 1.0 / self.adaptation.adapt_decay if self.adaptation.adapt_decay > 0 else math.inf
        floor = FLOOR * max(mean, TINY)
        self.denominators = [rms[name].clamp(min=floor) for name in self.parameters]
        self.pulls = [
            self.adaptation.adapt_decay * (rms[name] / max(mean, TINY)).clamp(max=cap) for name in self.parameters
        ]
        self.kept = [1.0 - pull for pull in self.pulls]

    @torch.no_grad()
    def step(self) -> None:
        """One step on the gradients in the parameters (or, until the rms is known, gather them)."""
        weights = list(self.parameters.values())
        gradients = [p.grad for p in weights]
        if not self.ready:
            torch._foreach_addcmul_(self.squares, gradients, gradients)
            self.gathered += 1
            if self.gathered >= WARMUP_SEGMENTS:
                self._use({name: (total / self.gathered).sqrt() for name, total in zip(self.parameters, self.squares)})
            return
        # torch's multi-tensor kernels (as its optimizers use): a few calls for all the weights
        torch._foreach_addcdiv_(weights, gradients, self.denominators, value=-self.adaptation.adapt_lr)
        if self.adaptation.adapt_decay > 0:  # W <- (1 - pull) W + pull W0
            torch._foreach_mul_(weights, self.kept)
            torch._foreach_addcmul_(weights, self.pulls, self.trained)

    @torch.no_grad()
    def reset(self) -> None:
        """Back to the trained weights (a window of its own starts)."""
        torch._foreach_copy_(list(self.parameters.values()), self.trained)

    def weights(self) -> dict[str, torch.Tensor]:
        """The adapted weights, as a state_dict (on the CPU)."""
        weights = {name: value.detach().cpu().clone() for name, value in self.model.state_dict().items()}
        if not all(bool(value.isfinite().all()) for value in weights.values()):
            raise _diverged(self, None)
        return weights


def adaptive_losses(
    adapter: Adapter,
    ids: np.ndarray,
    device: torch.device,
    tuning: Tuning = UNTUNED,
    advance: Callable[[int], None] = lambda scored: None,
) -> np.ndarray:
    """The loss (nats) of each character of `ids` after the first, read in order as one stream from
    a zero state, the state carried, a segment at a time: each segment scored, then stepped on."""
    model = adapter.model
    was_training = model.training
    model.eval()  # no dropout: the model reads the text as it will predict it
    hidden = model.init_hidden(1, device)
    losses: list[np.ndarray] = []
    limit = math.inf
    try:
        for inputs, targets in tuning.timed(Streams(ids, 1, adapter.adaptation.adapt_segment).every_window()):
            model.zero_grad(set_to_none=False)
            logits, hidden = model(inputs.to(device), hidden)
            targets = targets.to(device)
            each = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
            scored = each.detach().double().cpu().numpy()  # before the step below has seen these characters
            limit = limit if losses else scored.mean() + RUNAWAY * math.log(model.config.vocab_size)
            if not (np.isfinite(scored).all() and scored.mean() <= limit):
                raise _diverged(adapter, sum(len(loss) for loss in losses))
            losses.append(scored)
            each.mean().backward()
            adapter.step()
            hidden = detach_hidden(hidden)
            advance(targets.numel())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return np.concatenate(losses)


def _diverged(adapter: Adapter, scored: int | None) -> AdaptationDiverged:
    where = "at the end" if scored is None else f"after {scored:,} characters"
    return AdaptationDiverged(
        f"adapting diverged {where} (the loss ran away, or stopped being a finite number): "
        f"{spelled('adapt_lr')} {adapter.adaptation.adapt_lr:g} is too high for this model; try a tenth of it"
    )


def adaptive_windowed_losses(
    adapter: Adapter,
    ids: np.ndarray,
    window: int,
    device: torch.device,
    tuning: Tuning = UNTUNED,
    advance: Callable[[int], None] = lambda scored: None,
) -> np.ndarray:
    """As `adaptive_losses`, over independent windows of `window` targets (evaluate.windowed_loss's
    layout): each window starts from the trained weights and a zero state, and adapts only on
    its own past."""
    losses = []
    for first in range(0, (len(ids) - 1) // window * window, window):
        adapter.reset()
        losses.append(adaptive_losses(adapter, ids[first : first + window + 1], device, tuning, advance))
    adapter.reset()
    return np.concatenate(losses)
