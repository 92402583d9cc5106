"""Validate and clean step: stop bad data before any model trains, and say exactly why.

The rules' sentences are built from counts (``check_classes``, ``check_missing_share``,
``non_numeric_error`` ...), so the Spark engine (``steps.spark.clean``) counts on its cluster
and reports the same sentences as this pandas implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import pandas as pd

from dag_factory.errors import DataError, did_you_mean, excerpt
from dag_factory.spec.schema import DataSpec, TaskKind

log = logging.getLogger(__name__)

#: A numeric target with more distinct values than this (or any fraction) is taken as a regression target.
MAX_CLASSES_INFERRED = 20


def check_columns(names: Iterable[object], data: DataSpec) -> None:
    """The target and every column the spec names must exist (``names``: the column names, or a DataFrame)."""
    columns = [str(c) for c in names]
    if data.target not in columns:
        if data.header and _looks_like_data(columns):
            raise DataError(
                f'data.target: column "{data.target}" not found, and the first row looks like data, not column '
                f"names (it starts {_shorten(columns, 3)}); if the file has no header row, set data.header: false "
                "and list data.columns")
        raise DataError(
            f'data.target: column "{data.target}" not found{did_you_mean(data.target, columns)}; '
            f"the data has columns: {_shorten(columns)}"
        )
    for key in ("drop", "categorical"):
        for name in getattr(data, key):
            if name not in columns:
                raise DataError(
                    f'data.{key}: column "{name}" not found{did_you_mean(name, columns)}; '
                    f"the data has columns: {_shorten(columns)}"
                )


def infer_task(target: pd.Series, data: DataSpec) -> tuple[TaskKind, str]:
    """The task a spec without ``task:`` gets from its target, and the sentence saying why (for the log).

    A numeric target with many distinct values, or any fraction, is a quantity (regression); text,
    few whole numbers, or a named positive class are classes.
    """
    values = target.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    distinct = int(values.nunique())
    fractional = numeric and bool((values % 1 != 0).any())
    if data.positive_class is None and numeric and (fractional or distinct > MAX_CLASSES_INFERRED):
        why = "fractions" if fractional else f"{distinct} distinct whole numbers"
        return "regression", (f'task: regression, inferred from the target "{data.target}" (numeric, {why}); set '
                              "task: classification in the spec if its values are classes")
    return "classification", (f'task: classification, inferred from the target "{data.target}" ({distinct} distinct '
                              "values); set task: regression in the spec if it is a quantity")


def clean(frame: pd.DataFrame, data: DataSpec, task: TaskKind = "classification") -> tuple[pd.DataFrame, list[str]]:
    """Drop id columns and rows without a target, coerce feature types, handle duplicates.

    Returns the cleaned table (target last) and the notes a user should read in the log.
    Raises DataError for anything that would make training meaningless.
    """
    check_columns(frame, data)
    notes: list[str] = []
    frame = frame.drop(columns=data.drop)
    frame = _rows_with_target(frame, data, notes)
    features = [c for c in frame.columns if c != data.target]
    check_features(features)
    for column in features:
        if frame[column].isna().all():
            raise empty_column_error(column)
        if column not in data.categorical:
            frame[column] = _numeric(frame[column], column)
    check_missing_share(frame[features].isna().mean().to_dict(), data.max_missing_share)
    frame = _handle_duplicates(frame, data, notes)
    check_min_rows(len(frame), data)
    if task == "regression":
        frame[data.target] = _numeric_target(frame[data.target], data.target)
    else:
        check_classes(frame[data.target].astype(str).value_counts().to_dict(), data, notes)
    return frame[[*features, data.target]].reset_index(drop=True), notes


def check_features(features: list[str]) -> None:
    """Something must be left to learn from."""
    if not features:
        raise DataError("data: no feature columns are left after dropping the target and data.drop; "
                        "check data.drop and data.columns")


def empty_column_error(column: str) -> DataError:
    return DataError(f'data: column "{column}" is entirely empty; add it to data.drop')


def check_min_rows(rows: int, data: DataSpec) -> None:
    """Refuse a table too small to train on."""
    if rows < data.min_rows:
        raise DataError(f"data: only {rows} usable row(s), fewer than data.min_rows ({data.min_rows}); "
                        "add data, or lower data.min_rows if you accept so little")


def check_target_rows(rows: int, missing: int, data: DataSpec, notes: list[str]) -> None:
    """A target with no value at all is a wrong column; rows without one are dropped, with a note."""
    if missing == rows:
        raise DataError(f'data.target: column "{data.target}" has no values at all; check data.target and the file')
    if missing:
        note(notes, f"dropped {missing} row(s) without a target value")


def clean_test(frame: pd.DataFrame, data: DataSpec, train_columns: list[str],
               classes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The held-out test file cleaned like the training file: its columns, numeric features, its classes.

    ``classes`` are the training file's classes; none for a regression, whose target must be numeric.

    Nothing is learnt from these rows and none is dropped but those without a target: they are the
    test set as given. Every error names the test file and the column.
    """
    where = f"data.test_source ({data.test_source})"
    _check_same_columns([str(c) for c in frame.columns], train_columns, where)
    notes: list[str] = []
    try:
        frame = _rows_with_target(frame[train_columns].drop(columns=data.drop), data, notes)
        for column in frame.columns:
            if column != data.target and column not in data.categorical:
                frame[column] = _numeric(frame[column], column)
        if not classes:  # a regression: the target is a quantity
            frame[data.target] = _numeric(frame[data.target], data.target)
    except DataError as err:
        raise DataError(f"{where}: {err}") from None
    if classes:
        _check_test_labels(frame[data.target], classes, where, data.target)
    features = [c for c in frame.columns if c != data.target]
    return frame[[*features, data.target]].reset_index(drop=True), [f"test file: {n}" for n in notes]


def _check_same_columns(columns: list[str], train_columns: list[str], where: str) -> None:
    """The test file must have exactly the training file's columns (in any order)."""
    missing = [c for c in train_columns if c not in columns]
    extra = [c for c in columns if c not in train_columns]
    if missing:
        raise DataError(f"{where}: column(s) {_shorten(missing, 10)} of data.source are missing; give the test file "
                        "the same columns as the training file (data.columns, when set, names both)")
    if extra:
        raise DataError(f"{where}: column(s) {_shorten(extra, 10)} are not in data.source; remove them from the test "
                        "file, or add them to the training file too")


def _check_test_labels(target: pd.Series, classes: list[str], where: str, name: str) -> None:
    """Every test label must be a class the models learnt, and every class needs a test row for held-out metrics."""
    labels = target.astype(str)
    unseen = sorted(set(labels) - set(classes))
    if unseen:
        raise DataError(f'{where}: column "{name}" has label(s) {_shorten(unseen, 10)} that data.source never has '
                        f"(its classes: {_shorten(classes)}); a model cannot predict a class it never learnt, so "
                        "fix those labels or remove those rows")
    absent = [c for c in classes if c not in set(labels)]
    if absent:
        raise DataError(f'{where}: column "{name}" has no row of class(es) {_shorten(absent, 10)}; held-out ROC-AUC '
                        "and recall need every class of data.source, so add rows of them to the test file")


def _rows_with_target(frame: pd.DataFrame, data: DataSpec, notes: list[str]) -> pd.DataFrame:
    """Drop rows without a target, and give the target one type (a CSV column with gaps reads 1 as 1.0)."""
    target = frame[data.target]
    check_target_rows(len(target), int(target.isna().sum()), data, notes)
    if target.isna().any():
        frame = frame[target.notna()].copy()
    target = frame[data.target]
    if pd.api.types.is_float_dtype(target) and (target % 1 == 0).all():
        frame[data.target] = target.astype("int64")
    return frame


def _handle_duplicates(frame: pd.DataFrame, data: DataSpec, notes: list[str]) -> pd.DataFrame:
    """Report duplicate rows; drop them only when the spec says so (they may be real repeat cases)."""
    duplicates = int(frame.duplicated().sum())
    note_duplicates(duplicates, data, notes)
    return frame.drop_duplicates() if duplicates and data.drop_duplicates else frame


def note_duplicates(duplicates: int, data: DataSpec, notes: list[str]) -> None:
    """Say how many duplicate rows there are, and whether they were dropped."""
    if not duplicates:
        return
    if data.drop_duplicates:
        note(notes, f"dropped {duplicates} duplicate row(s) (data.drop_duplicates is true)")
    else:
        note(notes, f"found {duplicates} duplicate row(s) and kept them; set data.drop_duplicates: true to drop them")


def note(notes: list[str], text: str) -> None:
    """Record a cleaning note and log it at once, so it is in the log even if a later check fails."""
    notes.append(text)
    log.warning("Cleaning: %s", text)


def positive_label(labels: pd.Series, data: DataSpec) -> object | None:
    """The actual label value of the spec's positive class, compared as text (M, 'malignant', 1)."""
    if data.positive_class is None:
        return None
    wanted = str(data.positive_class)
    for value in labels.dropna().unique():
        if str(value) == wanted:
            return value
    return None


def check_classes(counts: Mapping[str, int], data: DataSpec, notes: list[str]) -> None:
    """At least two classes, the positive class among them, and enough rows of each to stratify.

    ``counts``: rows per class, the class written as text.
    """
    classes = sorted(counts)
    if len(classes) < 2:
        raise DataError(f'data.target: column "{data.target}" has only one class ({classes[0]}); '
                        "a classifier needs at least two, check data.target and the file")
    if data.positive_class is not None and str(data.positive_class) not in counts:
        raise DataError(
            f'data.positive_class: "{data.positive_class}" is not a value of "{data.target}"'
            f"{did_you_mean(str(data.positive_class), classes)}; the classes are: {', '.join(classes)}"
        )
    if len(classes) == 2 and data.positive_class is None:
        raise DataError(
            f"data.positive_class: the target is binary ({', '.join(classes)}); name the positive class "
            "so recall, precision and ROC-AUC are computed for the right one"
        )
    if len(classes) > 2 and data.positive_class is not None:
        note(notes, f"data.positive_class ({data.positive_class}) is not used: the target has {len(classes)} "
                     "classes, so metrics are macro-averaged over all of them")
    for label, count in counts.items():
        if count < 2:
            raise DataError(f'data.target: class "{label}" has only {count} row; each class needs at least 2 rows '
                            "to stratify the split, so add rows or drop that class")


def _numeric_target(target: pd.Series, name: str) -> pd.Series:
    """A regression target as numbers: refused when it holds text or a single value (nothing to learn)."""
    is_text = pd.api.types.is_bool_dtype(target)  # true/false are classes, not a quantity
    converted = pd.Series(float("nan"), index=target.index) if is_text else pd.to_numeric(target, errors="coerce")
    bad = target[converted.isna()]
    if len(bad):
        sample = ", ".join(repr(excerpt(v, 20)) for v in bad.astype(str).unique()[:5])
        raise DataError(f'data.target: column "{name}" should be numeric for a regression task but holds '
                        f"{len(bad)} non-numeric value(s), e.g. {sample}; fix the data, or set "
                        "task: classification if the values are classes")
    if converted.nunique() < 2:
        raise DataError(f'data.target: column "{name}" has the same value ({converted.iloc[0]:g}) in every row, so '
                        "there is nothing to predict; check data.target and the file")
    return converted.astype(float)


def _numeric(column: pd.Series, name: str) -> pd.Series:
    """Coerce a feature to numbers, or name the column and show the values that are not."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    converted = pd.to_numeric(column, errors="coerce")
    bad = column[converted.isna() & column.notna()]
    if len(bad):
        raise non_numeric_error(name, len(bad), list(bad.astype(str).unique()[:5]))
    return converted.astype(float)


def non_numeric_error(name: str, count: int, examples: list[str]) -> DataError:
    """A feature that should be numbers holds ``count`` values that are not (``examples``: a few of them)."""
    sample = ", ".join(repr(excerpt(v, 20)) for v in examples[:5])
    return DataError(
        f'data: column "{name}" should be numeric but has {count} non-numeric value(s), e.g. {sample}; '
        "fix the data, list such markers of a missing value under data.missing_values, "
        "or list the column under data.categorical or data.drop"
    )


def check_missing_share(shares: Mapping[str, float], limit: float) -> None:
    """Columns mostly imputed teach a model the imputer, not the data: stop above the spec's limit.

    ``shares``: the share of missing values of each feature.
    """
    over = sorted(((c, s) for c, s in shares.items() if s > limit), key=lambda cs: -cs[1])
    if over:
        worst = ", ".join(f'"{c}" {s:.0%}' for c, s in over)
        raise DataError(
            f"data: missing-value share above data.max_missing_share ({limit:.0%}) in: {worst}; "
            "drop those columns (data.drop) or raise the threshold"
        )


def _shorten(names: list[str], limit: int = 40) -> str:
    """Column names for a message: at most ``limit`` of them, each a short printable excerpt."""
    shown = ", ".join(excerpt(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _looks_like_data(columns: list[str]) -> bool:
    """Whether most "column names" are numbers or hold no letter at all: a data row read as the header."""
    unlike = [c for c in columns if not any(ch.isalpha() for ch in c) or _is_number(c)]
    return len(unlike) * 2 > len(columns)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
