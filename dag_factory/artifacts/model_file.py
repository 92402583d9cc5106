"""The saved model (``model.skops``): written and read with skops.io, which never runs code from the file.

A pickle (joblib) runs whatever its bytes say when it is loaded, so whoever can write to the
results folder could make ``dag-factory predict`` run a command. skops.io stores the model as
data and rebuilds only the types it is told to trust: scikit-learn's estimators, plain Python
and NumPy values (skops trusts those itself), and the explicit list below of scikit-learn's
and XGBoost's inner types. A file holding any other type is refused, with the types named,
when it is saved and again when it is loaded. Decision trees (forests, boosting) are trusted only
after their node arrays are bounds-checked, since scikit-learn follows them unchecked. The types
of the packages an operator allowed in ``DAG_FACTORY_ALLOWED_MODULES`` are trusted too, but only
classes really defined there (the name in the file is resolved first, so an allowed module's
import of ``os`` lets nothing in).

skops is imported inside the functions: the DAG file never loads it.
"""

from __future__ import annotations

import importlib
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from dag_factory.errors import ModelConfigError, UntrustedModel
from dag_factory.spec.schema import DEFAULT_ALLOWED_MODULES, allowed_modules
from dag_factory.storage.files import write_bytes
from dag_factory.storage.location import StoragePath

#: Types a saved model may hold beyond those skops trusts by itself (scikit-learn estimators, NumPy arrays, ...):
#: the inner parts of the estimators, calibration, threshold and searches this project builds.
TRUSTED_TYPES = (
    "dag_factory.artifacts.named_classifier.NamedClassifier",  # predicts class names; its code is in this project
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.metrics._scorer._Scorer",
    "sklearn.model_selection._split.KFold",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    # the metrics a hyperparameter search scores with (functions: referenced, never called on load)
    "sklearn.metrics._classification.accuracy_score",
    "sklearn.metrics._classification.balanced_accuracy_score",
    "sklearn.metrics._classification.brier_score_loss",
    "sklearn.metrics._classification.f1_score",
    "sklearn.metrics._classification.log_loss",
    "sklearn.metrics._classification.matthews_corrcoef",
    "sklearn.metrics._classification.precision_score",
    "sklearn.metrics._classification.recall_score",
    "sklearn.metrics._ranking.average_precision_score",
    "sklearn.metrics._ranking.roc_auc_score",
    "sklearn.metrics._regression.mean_absolute_error",
    "sklearn.metrics._regression.mean_absolute_percentage_error",
    "sklearn.metrics._regression.r2_score",
    "sklearn.metrics._regression.root_mean_squared_error",
)


def save_model(model: Any, path: StoragePath) -> list[str]:
    """Write ``model`` to ``path`` in the skops format; returns the trusted types it holds beyond skops' own.

    Raises ModelConfigError, before anything is written, when the model holds a type that loading would refuse.
    """
    skops = _skops()
    data = skops.dumps(model, compression=zipfile.ZIP_DEFLATED)  # a tenth of the size, at no measurable cost
    types = skops.get_untrusted_types(data=data)
    refused = _refused(types)
    if refused:
        raise ModelConfigError(f"the trained model holds types a saved model may not hold ({', '.join(refused)}); "
                         "use scikit-learn or XGBoost estimators, or add the package that defines them to "
                         "DAG_FACTORY_ALLOWED_MODULES if you trust it")
    write_bytes(path, data)
    return types


def load_model(path: StoragePath) -> Any:
    """The model saved in ``path``, rebuilt from trusted types only; UntrustedModel (one sentence) for anything else.

    Its decision trees are checked too: a tree's node indices are used without bounds checks
    by scikit-learn, so a crafted file could otherwise crash ``predict`` or read stray memory.
    """
    data, types = _checked(path)
    try:
        model = _skops().loads(data, trusted=types)
    except Exception as err:  # noqa: BLE001  a damaged file fails in many ways; none may escape as a traceback
        raise UntrustedModel(f"{path} cannot be loaded ({type(err).__name__}: {err}); re-run the experiment to save "
                             "a fresh model") from None
    problem = next((p for tree in _trees_in(model) if (p := _tree_problem(tree))), None)
    if problem:
        raise UntrustedModel(f"{path} holds a decision tree whose {problem}; refusing to use it, since predicting "
                             "with it could crash or read stray memory; re-run the experiment to save a fresh model")
    return model


def check_model_file(path: StoragePath) -> None:
    """Raise UntrustedModel unless ``path`` is a skops file holding trusted types only (nothing is built)."""
    _checked(path)


def _checked(path: StoragePath) -> tuple[bytes, list[str]]:
    """The file's bytes and the trusted types it holds beyond skops' own; UntrustedModel for anything else."""
    if not path.is_file():
        raise UntrustedModel(f"{path} is missing (a model saved by an older version is a pickle, model.joblib, which "
                             "can run code when loaded, so it is never loaded); re-run the experiment to save a fresh "
                             "model, after deleting the champion's best/<experiment> link if it is an old one")
    data = path.read_bytes()
    try:
        types = _skops().get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise UntrustedModel(f"{path} is not a model in the skops format ({type(err).__name__}); refusing to load "
                             "it (a pickle, such as a model.joblib of an older version, can run code when loaded); "
                             "re-run the experiment to save a fresh model") from None
    refused = _refused(types)
    if refused:
        raise UntrustedModel(f"{path} holds types that are not trusted ({', '.join(refused)}); refusing to load "
                             "it, since building them could run code; re-run the experiment to save a fresh model")
    return data, types


def _refused(types: list[str]) -> list[str]:
    """The type names among ``types`` that are neither in TRUSTED_TYPES nor classes of an operator-allowed package."""
    return sorted(name for name in types if name not in TRUSTED_TYPES and not _operator_allowed(name))


def _operator_allowed(name: str) -> bool:
    """Whether ``name`` resolves to a class defined in a package listed in DAG_FACTORY_ALLOWED_MODULES.

    Only those packages are imported (the operator trusts them); the class's own module must be
    one of them, not just the module the file names.
    """
    added = tuple(m for m in allowed_modules() if m not in DEFAULT_ALLOWED_MODULES)
    module_name, _, attribute = name.rpartition(".")
    if not added or not name.startswith(added):
        return False
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    return isinstance(found, type) and f"{found.__module__}.".startswith(added)


def trusted_types_of(path: Path) -> list[str]:
    """The trusted types a saved model holds beyond skops' own (what MLflow needs to load the same model)."""
    return _skops().get_untrusted_types(file=path)


def _trees_in(model: Any) -> Iterator[Any]:
    """Every ``sklearn.tree._tree.Tree`` in a loaded model: in its estimators, lists and dicts, however nested.

    The model was rebuilt from trusted types only, so walking its attributes runs no foreign code.
    """
    from sklearn.tree._tree import Tree

    seen: set[int] = set()
    stack = [model]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Tree):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif hasattr(item, "__dict__") and type(item).__module__.startswith(("sklearn.", "xgboost.")):
            stack.extend(vars(item).values())


def _tree_problem(tree: Any) -> str | None:
    """Why a tree's arrays are unsafe to predict with, or None: every child after its parent, every feature in range."""
    import numpy as np

    left, right, feature = tree.children_left, tree.children_right, tree.feature
    count, nodes = tree.node_count, np.arange(tree.node_count)
    if not (len(left) == len(right) == len(feature) == count == tree.value.shape[0]):
        return "arrays do not match its node count"
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        return "leaves are not marked on both sides"
    inner = ~leaf
    if ((left[inner] <= nodes[inner]) | (left[inner] >= count) | (right[inner] <= nodes[inner])
            | (right[inner] >= count)).any():
        return "child indices point outside the tree or back up it"
    if ((feature[inner] < 0) | (feature[inner] >= tree.n_features)).any():
        return "feature indices are out of range"
    return None


def import_skops_first() -> None:
    """Import skops.io before a process loads Airflow: on import, skops looks up each SciPy function it trusts
    in every loaded module, in import order, so after Airflow's thousands of modules it takes a second more."""
    _skops()


def _skops() -> ModuleType:
    """skops.io, imported quietly: on import it looks for NumPy's and SciPy's functions in every loaded module,
    which in an Airflow process touches Airflow's deprecated modules (one warning each, in the task's log)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import skops.io
    return skops.io
