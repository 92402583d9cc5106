"""Errors a user sees: each one names the file, the key and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DagFactoryError(Exception):
    """Base class for every error the factory reports to a user."""


class SpecError(DagFactoryError):
    """An experiment or model-catalog YAML file is invalid.

    Holds every problem found in one file, so a user fixes them in one pass.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{lines}")


class DataError(DagFactoryError):
    """The data of an experiment cannot be loaded or fails validation."""


class DownloadError(DataError):
    """A remote source could not be fetched; the next attempt may succeed, so Airflow retries it."""


class ModelError(DagFactoryError):
    """A model cannot be built, trained or loaded."""


class ModelTimeout(ModelError):
    """A model's training ran past the train task's time limit (``timeout_minutes``)."""


class UntrustedModel(ModelError):
    """A saved model is refused: changed after promotion, not in the safe format, or holding untrusted types."""


class ModelConfigError(ModelError):
    """A model's estimator or param names are wrong: the same on every attempt, so never worth a retry."""


class RunFailed(DagFactoryError):
    """The run's outcome is decided (models failed, nothing to select): a retry would repeat it.

    ``models_failed`` marks the one failure after which the run still decided: some models failed,
    the others were compared and the promotion decision stands.
    """

    def __init__(self, message: str, models_failed: bool = False) -> None:
        super().__init__(message)
        self.models_failed = models_failed


def is_permanent(error: BaseException) -> bool:
    """Whether retrying the failed step cannot help: a bad spec, bad data, a bad model configuration, a refused
    saved model, a decided run."""
    if isinstance(error, DownloadError):
        return False
    return isinstance(error, SpecError | DataError | ModelConfigError | UntrustedModel | RunFailed | PublishRefused)


class NothingToDo(DagFactoryError):
    """A step has nothing to do in this run (data unchanged, model not selected).

    The Airflow glue shows it as a skipped task with this message in the log.
    """


class RunSkipped(NothingToDo):
    """The whole run stops here (data and spec unchanged): its reason also becomes the DAG run's note."""


def excerpt(value: object, limit: int = 24) -> str:
    """A short, printable excerpt of a value read from a file, for an error message.

    Data files are untrusted: a message quotes at most ``limit`` characters of a cell or a
    column name, with control characters replaced, so a log never carries a file's contents.
    """
    text = "".join(c if c.isprintable() else "?" for c in " ".join(str(value).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' when a close match exists, else ''."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{excerpt(matches[0], 40)}"?)' if matches else ""


class TrackingError(DagFactoryError):
    """The MLflow tracking server failed or could not be reached; a later attempt may succeed, so Airflow retries it."""


class PublishError(DagFactoryError):
    """Publishing to Google Drive failed after its retries; a later attempt may succeed, so Airflow retries it."""


class PublishRefused(PublishError):
    """Google Drive refused a request (no access, no such folder, a bad key): the same on every attempt."""
