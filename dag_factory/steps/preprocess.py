"""Preprocess step: clean once, encode the target, fingerprint, and split once for every model."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd
from sklearn.model_selection import train_test_split

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import RunMeta, TrainingSample
from dag_factory.errors import DataError
from dag_factory.spec.schema import DataSpec, ExperimentSpec
from dag_factory.steps.validate import clean, positive_label
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
    codes = labels.astype(str).map({name: i for i, name in enumerate(names)}).astype(int)
    return codes, names


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the cleaned table's content and column names: same data, same fingerprint."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def preprocess(raw: pd.DataFrame, spec: ExperimentSpec, files: RunFiles, config: str) -> RunMeta:
    """Clean and split ``raw``; write the train and test splits and meta.json into the run folder.

    ``config`` is the run's config fingerprint, recorded with the data's. Refuses, before any
    model trains, a split that cannot be stratified and a class smaller than the CV folds.
    """
    cleaned, notes = clean(raw, spec.data)
    return split_cleaned(cleaned, notes, spec, files, config, fingerprint(cleaned))


def split_cleaned(cleaned: pd.DataFrame, notes: list[str], spec: ExperimentSpec, files: RunFiles, config: str,
                  data_fingerprint: str, sample: TrainingSample | None = None) -> RunMeta:
    """Encode the target of a cleaned table (features, then the target), split it, write the splits and meta.json.

    The one split of both engines: the Spark engine hands over its cleaned table (or a sample of it).
    """
    data, split = spec.data, spec.split
    y, classes = encode_target(cleaned[data.target], data)
    features = cleaned.drop(columns=[data.target])
    table = features.assign(**{data.target: y})
    try:
        train, test = train_test_split(
            table, test_size=split.test_size, random_state=split.seed, stratify=table[data.target]
        )
    except ValueError as err:  # e.g. a test split with fewer rows than there are classes
        raise DataError(f"split.test_size {split.test_size}: cannot make a stratified split of {len(table)} rows "
                        f"and {len(classes)} classes ({err}); raise split.test_size or add data") from err
    categorical = [c for c in data.categorical if c in features.columns]
    meta = RunMeta(
        train_path=str(files.train), test_path=str(files.test), target=data.target, classes=classes,
        positive_class=classes[1] if len(classes) == 2 else None,
        numeric=[c for c in features.columns if c not in categorical], categorical=categorical,
        rows=len(table), train_rows=len(train),
        train_class_counts={classes[int(k)]: int(v) for k, v in train[data.target].value_counts().items()},
        test_rows=len(test), fingerprint=data_fingerprint, notes=notes, config_fingerprint=config, sample=sample,
    )
    check_folds(meta.train_class_counts, spec.cv.folds, data.target)
    write_parquet(train, files.train)
    write_parquet(test, files.test)
    meta.write(files.meta)
    log.info("Cleaned data: %d rows, %d features (%d categorical), classes %s; fingerprint %s",
             meta.rows, features.shape[1], len(categorical), classes, meta.fingerprint[:12])
    log.info("Split: %d train rows, %d test rows (stratified, seed %d)", len(train), len(test), split.seed)
    return meta


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
