"""The bookkeeping around a training loop, written once: seeding, the torch thread count, a
progress bar, and the losses with the start/end windows that trainers report in their metrics.

The loops themselves stay written out in each model's module (forward, loss, ``zero_grad``,
``backward``, ``step``): they are what the course reads. Only what every loop repeated around
them lives here::

    rng = seeded(config["seed"])                 # torch's global seed + a numpy Generator
    bar = progress_bar(total=steps, desc="train", progress=progress)
    log = LossLog(bar)                           # advances the bar, shows the running loss
    for step in range(steps):
        loss = model_loss(...)
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.add(loss)
    bar.close()
    metrics = log.metrics("train_loss_start", "train_loss_end")   # mean of first/last steps

- :func:`seeded`: ``torch.manual_seed(seed)`` and ``numpy.random.default_rng(seed)``;
- :func:`torch_threads`: the one way to run code with a given torch thread count (restored
  afterwards, also when the body raises); :func:`mmkit.checkpoints.train_and_save` trains
  with ``CheckpointSpec.threads`` through it;
- :func:`progress_bar`: a tqdm bar (``tqdm.auto``) that is off when ``progress`` is false and
  leaves no line behind when done;
- :class:`LossLog`: every step's loss, the (sample-weighted) mean of every epoch, the mean of
  the first and last steps (:meth:`LossLog.start`, :meth:`LossLog.end`).

torch is imported only when a function needs it (``import mmkit.training`` stays light).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmkit.errors import InputError

#: the default size of the start/end windows and of the running loss shown on the bar
WINDOW = 20


def seeded(seed: int) -> np.random.Generator:
    """Seed torch's global generator with ``seed`` and return ``numpy.random.default_rng(seed)``
    (the generator a trainer draws its batches from). Makes no other random draw."""
    import torch

    torch.manual_seed(int(seed))
    return np.random.default_rng(int(seed))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with ``n`` torch threads (``None``: the count is left as it is); the
    previous count is restored afterwards, also when the body raises.

    Float sums run in an order that depends on the thread count, so a fixed count makes a
    training reproducible; small embedding and recurrent models also train faster on one
    thread than on two busy cores.

    Raises:
        InputError: ``n`` is not a positive integer (nor ``None``).
    """
    import torch

    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                          or n < 1):
        raise InputError(f"torch_threads: the thread count must be a positive integer or None, "
                         f"got {n!r}")
    was = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(was)


def progress_bar(iterable: Iterable | None = None, *, progress: bool = True,
                 total: int | None = None, desc: str | None = None, **kwargs: Any) -> tqdm:
    """A tqdm progress bar over ``iterable`` (or a manual one of ``total`` steps, advanced by
    :meth:`LossLog.add` or ``bar.update``): off when ``progress`` is false, removed from the
    screen when done (``leave=False``). ``kwargs`` go to tqdm."""
    return tqdm(iterable, total=total, desc=desc, disable=not progress, leave=False, **kwargs)


class LossLog:
    """The losses of one training run.

    - :attr:`steps`: every step's loss (python floats, in order);
    - :attr:`epochs`: the mean loss of every finished epoch (:meth:`end_epoch`), each step
      weighted by its batch size ``n``;
    - :meth:`start` / :meth:`end`: the mean loss of the first / last steps, what trainers
      report as ``*_first_*`` / ``*_last_*`` or ``*_start`` / ``*_end`` metrics.

    ``bar``: a manual progress bar over steps (:func:`progress_bar` with ``total``);
    :meth:`add` advances it by one and, every ``every`` steps, shows the mean loss of the
    last ``every`` steps. A bar over epochs or no bar: pass ``None``.
    """

    def __init__(self, bar: tqdm | None = None, every: int = WINDOW) -> None:
        if every < 1:
            raise InputError(f"LossLog: every must be >= 1, got {every}")
        self.bar = bar
        self.every = int(every)
        self.steps: list[float] = []
        self.epochs: list[float] = []
        self._total, self._count = 0.0, 0

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, loss: Any, n: int = 1) -> float:
        """Record one step's ``loss`` (a scalar tensor, detached here, or a number) over a batch
        of ``n`` samples (the weight in the epoch mean); returns it as a python float."""
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        self.steps.append(value)
        self._total, self._count = self._total + value * n, self._count + n
        if self.bar is not None:
            self.bar.update(1)
            if len(self.steps) % self.every == 0:
                self.bar.set_postfix(loss=f"{self.recent(self.every):.3f}")
        return value

    def end_epoch(self) -> float:
        """Close the current epoch: appends to :attr:`epochs` and returns the mean of its
        steps' losses weighted by their ``n`` (sum of ``loss * n`` over the sum of ``n``,
        summed in step order)."""
        if self._count == 0:
            raise InputError("LossLog.end_epoch: no step was added in this epoch")
        mean = self._total / self._count
        self.epochs.append(mean)
        self._total, self._count = 0.0, 0
        return mean

    def window(self, size: int | None = None) -> int:
        """How many steps :meth:`start` and :meth:`end` average: ``size``, or by default a
        quarter of the steps, at least 1 and at most :data:`WINDOW` (20)."""
        if size is None:
            return max(1, min(WINDOW, len(self.steps) // 4))
        if size < 1:
            raise InputError(f"LossLog: the window must be >= 1 step, got {size}")
        return int(size)

    def _mean(self, values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    def start(self, size: int | None = None) -> float:
        """The mean loss of the first :meth:`window` steps (all of them when there are fewer;
        NaN when there is none)."""
        return self._mean(self.steps[:self.window(size)])

    def end(self, size: int | None = None) -> float:
        """The mean loss of the last :meth:`window` steps (all of them when there are fewer;
        NaN when there is none)."""
        return self._mean(self.steps[-self.window(size):])

    def recent(self, size: int = WINDOW) -> float:
        """The mean loss of the last ``size`` steps (the running loss shown on the bar)."""
        return self._mean(self.steps[-int(size):])

    def metrics(self, start_name: str, end_name: str, size: int | None = None,
                digits: int = 4) -> dict[str, float]:
        """``{start_name: start, end_name: end}`` (see :meth:`start`, :meth:`end`), rounded
        to ``digits`` decimals, for a trainer's reported metrics."""
        return {start_name: round(self.start(size), digits),
                end_name: round(self.end(size), digits)}


__all__ = ["WINDOW", "LossLog", "progress_bar", "seeded", "torch_threads"]
