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
from dag_factory.spec.schema import DataSpec

log = logging.getLogger(__name__)


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


def clean(frame: pd.DataFrame, data: DataSpec) -> tuple[pd.DataFrame, list[str]]:
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
