"""Typed, validated configs of the model families, as :class:`~mmkit.data.world.WorldConfig`
is the world's: frozen dataclasses whose defaults are written once, checked when made (every
problem in ONE line, an :class:`~mmkit.errors.InputError`), read as attributes (``cfg.dim``).

- :class:`DictConfig`: the shared part, :meth:`DictConfig.from_dict` / :meth:`DictConfig.to_dict`.
  A checkpoint's config is a JSON dict (its manifest, :class:`~mmkit.checkpoints.CheckpointSpec`
  ``.config``); ``from_dict(d).to_dict() == d`` for every committed manifest, so that moving a
  config into a dataclass changes no checkpoint (``tests/test_configs.py`` checks each one).
- :class:`TrainWorld`: the ``{"n", "seed"}`` of a training world of fresh scenes, never the
  evaluation world's seed (:data:`mmkit.scoring.EVAL_WORLD`).
- :class:`Checks`: collects the problems of a ``__post_init__`` and raises them together;
  :func:`check_rate`, :func:`check_train_seed` and :func:`counts` are checks they share.

The families: the features' :class:`~mmkit.features.visual_cnn.VisualCNNConfig`,
:class:`~mmkit.features.word2vec.Word2VecConfig`,
:class:`~mmkit.features.sentence_encoders.SentenceEncoderConfig` and
:class:`~mmkit.features.audio_cnn.AudioCNNConfig`; the encoders'
:class:`~mmkit.encoders.joint.JointConfig`, :class:`~mmkit.encoders.speech.SpeechConfig`,
:class:`~mmkit.encoders.clip.configuration.ClipStyleConfig`,
:class:`~mmkit.encoders.metric_learning.MetricWorldConfig` and
:class:`~mmkit.encoders.metric_learning.MetricDigitsConfig`. This module sits with
:mod:`mmkit.features` and :mod:`mmkit.scoring` (it needs :data:`~mmkit.scoring.EVAL_WORLD`), so
both the features and the encoders can use it; ``mmkit.encoders.config`` re-exports it.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, TypeVar

from mmkit.errors import InputError
from mmkit.scoring import EVAL_WORLD
from mmkit.validate import integer, is_integer, number, positive_int

__all__ = ["Checks", "DictConfig", "TrainWorld", "counts", "check_rate", "check_train_seed"]

C = TypeVar("C", bound="DictConfig")


class Checks:
    """The problems found in one config, raised together as one line::

        checks = Checks("JointConfig")
        checks(positive_int, self.dim, "dim")
        checks.choice(self.loss, "loss", ("vse", "vsepp", "infonce"))
        checks.done()        # InputError("JointConfig: dim must be ...; loss must be ...")
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.problems: list[str] = []

    def __call__(self, check: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``check(*args, **kwargs)`` (a :mod:`mmkit.validate` function) and keep its
        message if it fails."""
        try:
            check(*args, **kwargs)
        except InputError as exc:
            self.problems.append(str(exc))

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def optional(self, check: Callable[..., Any], value: Any, name: str, **kwargs: Any) -> None:
        """``check`` unless ``value`` is None."""
        if value is not None:
            self(check, value, f"{name} (or None)", **kwargs)

    def flag(self, value: Any, name: str) -> None:
        if not isinstance(value, bool):
            self.add(f"{name} must be True or False, got {value!r}")

    def choice(self, value: Any, name: str, choices: Collection[str]) -> None:
        if value not in choices:
            self.add(f"{name} must be one of {', '.join(choices)}, got {value!r}")

    def name_or_none(self, value: Any, name: str) -> None:
        if value is not None and not (isinstance(value, str) and value):
            self.add(f"{name} must be a checkpoint name or None, got {value!r}")

    def ints(self, value: Any, name: str) -> None:
        """A non-empty list or tuple of positive integers."""
        if not (isinstance(value, (list, tuple)) and value
                and all(is_integer(v) and v >= 1 for v in value)):
            self.add(f"{name} must be a non-empty list of positive integers, got {value!r}")

    def done(self) -> None:
        if self.problems:
            raise InputError(f"{self.owner}: " + "; ".join(self.problems))


def _plain(value: Any) -> Any:
    """A field's value as JSON has it: nested configs as dicts, tuples as lists."""
    if isinstance(value, DictConfig):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class DictConfig:
    """The dict side of a config dataclass (mixed into frozen dataclasses).

    :attr:`OPTIONAL` names fields that checkpoints do not record (knobs of tests and
    benchmarks): :meth:`to_dict` leaves them out while they hold their default.
    """

    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls: type[C], config: Mapping[str, Any] | C) -> C:
        """The config of ``config`` (a dict, e.g. a manifest's ``"config"``, or already a
        config, returned as is); missing keys take the defaults.

        Raises:
            InputError: unknown keys, or any value the dataclass refuses (one line).
        """
        if isinstance(config, cls):
            return config
        if not isinstance(config, Mapping):
            raise InputError(f"{cls.__name__}: expected a dict or a {cls.__name__}, got "
                             f"{type(config).__name__}")
        known = [f.name for f in fields(cls)]   # type: ignore[arg-type]
        unknown = sorted(map(str, set(config) - set(known)))
        if unknown:
            raise InputError(f"{cls.__name__}: unknown key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(known)})")
        missing = [f.name for f in fields(cls)   # type: ignore[arg-type]
                   if f.default is MISSING and f.default_factory is MISSING
                   and f.name not in config]
        if missing:
            raise InputError(f"{cls.__name__}: missing key(s) {', '.join(missing)}")
        return cls(**config)

    @classmethod
    def coerce(cls, value: Any, checks: Checks, name: str) -> Any:
        """``value`` (a field of another config) as a ``cls``: a dict is read with
        :meth:`from_dict`, its problems added to ``checks`` under ``name``; ``value`` comes
        back unchanged when it cannot be one (``checks`` then holds why)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            checks.add(f"{name} must be a dict, got {value!r}")
            return value
        try:
            return cls.from_dict(value)
        except InputError as exc:
            checks.add(f"{name}: {str(exc).split(': ', 1)[-1]}")
            return value

    def to_dict(self) -> dict[str, Any]:
        """The JSON dict of this config, keys in field order (the checkpoints' form)."""
        out: dict[str, Any] = {}
        for f in fields(self):   # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self.OPTIONAL and f.default is not MISSING and value == f.default:
                continue
            out[f.name] = _plain(value)
        return out


@dataclass(frozen=True)
class TrainWorld(DictConfig):
    """A training world of fresh scenes: ``World(n=n, seed=seed)``; ``seed`` is never the
    evaluation world's (:data:`mmkit.scoring.EVAL_WORLD`), so a model is never trained on
    the scenes it is scored on."""

    n: int
    seed: int

    def __post_init__(self) -> None:
        checks = Checks("TrainWorld")
        checks(positive_int, self.n, "n")
        check_train_seed(checks, self.seed, "seed")
        checks.done()


def check_train_seed(checks: Checks, value: Any, name: str) -> None:
    """The seed of a training world: an integer >= 0 that is not the evaluation world's
    (:data:`mmkit.scoring.EVAL_WORLD`)."""
    checks(integer, value, name, low=0)
    if is_integer(value) and int(value) == EVAL_WORLD["seed"]:
        checks.add(f"{name} {value} is the evaluation world's (n={EVAL_WORLD['n']}, "
                   f"seed {EVAL_WORLD['seed']}); train on fresh scenes of another seed")


def counts(config: Any, *names: str) -> bool:
    """True when the fields ``names`` of ``config`` are all positive integers (so that a
    check between them, such as divisibility, can run)."""
    return all(is_integer(getattr(config, n)) and getattr(config, n) >= 1 for n in names)


def check_rate(checks: Checks, value: Any, name: str) -> None:
    """A learning rate: a finite number > 0."""
    checks(number, value, name, low=0, low_open=True)
