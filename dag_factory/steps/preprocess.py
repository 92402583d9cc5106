"""Preprocess step: settle the task, clean once, encode the target, fingerprint, and split once for every model."""

from __future__ import annotations

import hashlib
import logging
from typing import NamedTuple

import pandas as pd
from sklearn.model_selection import train_test_split

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import RunMeta, TrainingSample
from dag_factory.errors import DataError
from dag_factory.spec.schema import Catalog, DataSpec, ExperimentSpec, TaskKind, for_task, task_problems
from dag_factory.steps.validate import check_columns, clean, clean_test, infer_task, positive_label
from dag_factory.storage.files import read_parquet, write_parquet

log = logging.getLogger(__name__)


def encode_target(labels: pd.Series, data: DataSpec) -> tuple[pd.Series, list[str]]:
    """Integer codes for the target and the class names they stand for.

    Binary targets become 1 for the spec's positive class and 0 for the other, whatever the
    source encoding (scikit-learn's breast cancer loader uses 0 for malignant). Multiclass
    targets are numbered in sorted order of their names.
    """
    names = sorted(labels.astype(str).unique())
    positive = positive_label(labels, data)
    if len(names) == 2 and positive is not None:
        negative = next(n for n in names if n != str(positive))
        names = [negative, str(positive)]
    return codes_of(labels, names), names


def codes_of(labels: pd.Series, names: list[str]) -> pd.Series:
    """The integer code of each label: its place in ``names`` (the classes ``encode_target`` found)."""
    return labels.astype(str).map({name: i for i, name in enumerate(names)}).astype(int)


def fingerprint(*frames: pd.DataFrame) -> str:
    """SHA-256 of the cleaned tables' content and column names: same data, same fingerprint.

    One table (a split drawn from data.source) or two (data.source and data.test_source): a
    changed test file changes the fingerprint as a changed training file does.
    """
    digest = hashlib.sha256()
    for frame in frames:
        digest.update("\x1f".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def settle_task(raw: pd.DataFrame, spec: ExperimentSpec, catalog: Catalog) -> tuple[TaskKind, list[str]]:
    """The run's task (the spec's, else inferred from the target, and said so in the log) and the notes to keep.

    An inferred task is checked against the spec as ``task:`` is when the spec is read: a positive
    class or threshold of a regression, a metric or a model of the other task is refused here.
    """
    if spec.task is not None:
        return spec.task, []
    check_columns(raw, spec.data)
    task, why = infer_task(raw[spec.data.target], spec.data)
    log.info("The run's %s", why)
    problems = task_problems(for_task(spec, task), task, catalog)
    if problems:
        raise DataError("; ".join(f"{'.'.join(map(str, key))}: {message}" for key, message in problems)
                        + f" ({why})")
    return task, [why] if task == "regression" else []  # kept in meta.json's notes when it changes how a run works


def preprocess(raw: pd.DataFrame, spec: ExperimentSpec, files: RunFiles, config: str,
               catalog: Catalog | None = None, raw_test: pd.DataFrame | None = None) -> RunMeta:
    """Settle the task, clean ``raw`` and split it, or take ``raw_test`` (data.test_source) as the test set;
    write the train and test sets and meta.json into the run folder.

    ``config`` is the run's config fingerprint, recorded with the data's. Refuses, before any
    model trains, a split that cannot be stratified, a test file unlike the training file and
    a class smaller than the CV folds. Regression splits are not stratified (the target is a quantity).
    """
    task, task_notes = settle_task(raw, spec, catalog or {})
    cleaned, notes = clean(raw, spec.data, task)
    test_file = None if raw_test is None else HeldOutFile(raw_test, [str(c) for c in raw.columns])
    return split_cleaned(cleaned, task_notes + notes, spec, files, config, task=task, test_file=test_file)


class HeldOutFile(NamedTuple):
    """The rows of data.test_source as read, and the training file's columns they must have."""

    rows: pd.DataFrame
    train_columns: list[str]


def split_cleaned(cleaned: pd.DataFrame, notes: list[str], spec: ExperimentSpec, files: RunFiles, config: str,
                  data_fingerprint: str | None = None, sample: TrainingSample | None = None,
                  task: TaskKind = "classification", test_file: HeldOutFile | None = None) -> RunMeta:
    """Encode the target of a cleaned table (features, then the target), split it (or take the test file as
    the test set), write the train and test sets and meta.json.

    The one split of both engines: the Spark engine hands over its cleaned table (or a sample of it)
    with the fingerprint of the whole table.
    """
    data = spec.data
    if task == "regression":
        y, classes = cleaned[data.target], []
        _note_zero_target(y, notes)
    else:
        y, classes = encode_target(cleaned[data.target], data)
    features = cleaned.drop(columns=[data.target])
    table = features.assign(**{data.target: y})
    if test_file is None:
        train, test = _split(table, spec, classes)
        data_fingerprint = data_fingerprint or fingerprint(cleaned)
    else:
        held_out, test_notes = clean_test(test_file.rows, data, test_file.train_columns, classes)
        notes += test_notes
        test_y = codes_of(held_out[data.target], classes) if classes else held_out[data.target]
        train, test = table, held_out.assign(**{data.target: test_y})
        data_fingerprint = fingerprint(cleaned, held_out)
    categorical = [c for c in data.categorical if c in features.columns]
    meta = RunMeta(
        train_path=str(files.train), test_path=str(files.test), target=data.target, task=task, classes=classes,
        positive_class=classes[1] if len(classes) == 2 else None,
        numeric=[c for c in features.columns if c not in categorical], categorical=categorical,
        rows=len(train) + len(test), train_rows=len(train),
        train_class_counts={classes[int(k)]: int(v) for k, v in train[data.target].value_counts().items()}
        if classes else {},
        test_rows=len(test), fingerprint=data_fingerprint, notes=notes, config_fingerprint=config, sample=sample,
    )
    if classes:
        check_folds(meta.train_class_counts, spec.cv.folds, data.target)
    write_parquet(train, files.train)
    write_parquet(test, files.test)
    meta.write(files.meta)
    log.info("Cleaned data: %d rows, %d features (%d categorical), classes %s; fingerprint %s",
             meta.rows, features.shape[1], len(categorical), classes, meta.fingerprint[:12])
    if test_file is None:
        log.info("Split: %d train rows, %d test rows (%s, seed %d)", len(train), len(test),
                 "stratified" if classes else "not stratified: regression", spec.split.seed)
    else:
        log.info("No split drawn: %d train rows from data.source, %d test rows from data.test_source",
                 len(train), len(test))
    return meta


def _note_zero_target(y: pd.Series, notes: list[str]) -> None:
    """MAPE divides by the true value: say so when the target holds a zero and the MAPE of a set with one is NaN."""
    zeros = int((y == 0).sum())
    if zeros:
        notes.append(f"the target is 0 in {zeros} row(s): MAPE is not defined there, so it is NaN for every set "
                     "holding such a row (rank on rmse, mae or r2)")
        log.warning("Cleaning: %s", notes[-1])


def _split(table: pd.DataFrame, spec: ExperimentSpec, classes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The one train/test split of ``table`` the spec's ``split`` asks for, stratified by class (not for a regression)."""
    split = spec.split
    try:
        train, test = train_test_split(table, test_size=split.test_size, random_state=split.seed,
                                       stratify=table[spec.data.target] if classes else None)
    except ValueError as err:  # e.g. a test split with fewer rows than there are classes
        raise DataError(f"split.test_size {split.test_size}: cannot make a stratified split of {len(table)} rows "
                        f"and {len(classes)} classes ({err}); raise split.test_size or add data") from err
    return train, test


def check_folds(class_counts: dict[str, int], folds: int, target: str) -> None:
    """Every class needs a row in each CV fold: refuse, before training, a class smaller than the folds."""
    label, count = min(class_counts.items(), key=lambda kv: kv[1])
    if count < folds:
        raise DataError(f'data.target: class "{label}" of "{target}" has only {count} row(s) in the training split, '
                        f"fewer than cv.folds ({folds}); lower cv.folds (or the cv_folds param), lower "
                        "split.test_size, or add rows of that class")


def load_split(files: RunFiles, target: str) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """Read the train and test splits ``preprocess`` wrote: X_train, y_train, X_test, y_test."""
    train = read_parquet(files.train)
    test = read_parquet(files.test)
    return train.drop(columns=[target]), train[target], test.drop(columns=[target]), test[target]
