"""Where an experiment's champion lives, and how it is replaced in one step that readers never see half done.

Every champion is a complete, never-changed version folder in ``best/.versions/<experiment>/``.
What makes one of them the champion is a small pointer, switched only after the version is whole:

- on a disk, ``best/<experiment>`` is a symbolic link, swapped by one rename under an fcntl lock;
- on an object store (no renames, no links), ``best/<experiment>/champion.json`` names the version.
  Its switch is one PUT; on S3 a conditional one (If-Match), so two promotions racing outside
  Airflow's scheduler cannot both win: the loser sees ``ChampionMoved`` and decides again.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from dag_factory.artifacts.layout import CARD_JSON, HISTORY, MANIFEST, MODEL_FILE, POINTER, best_dir, versions_dir
from dag_factory.artifacts.model_file import check_model_file
from dag_factory.artifacts.records import ChampionPointer, HistoryEntry, ModelCard, history_text
from dag_factory.errors import UntrustedModel
from dag_factory.storage.files import fsync_dir, manifest_problems, sha256_file, write_manifest, write_text
from dag_factory.storage.location import S3_SCHEMES, StoragePath, ensure_parent, is_local
from dag_factory.storage.publish import building, sweep_partials

log = logging.getLogger(__name__)


#: Puts a champion's own files (model, card, metrics, pages) into the folder being assembled; ``install`` adds
#: the history and SHA256SUMS.
Filler = Callable[[Path], None]


class ChampionMoved(Exception):
    """Another promotion replaced the champion after this one read it; decide again against the new one."""


def champion_store(results: StoragePath, experiment: str) -> LinkStore | PointerStore:
    """The champion store of ``experiment`` under ``results``: links on a disk, a pointer object elsewhere."""
    return LinkStore(results, experiment) if is_local(results) else PointerStore(results, experiment)


class LinkStore:
    """A champion on a disk: ``best/<experiment>`` is a symbolic link to its version folder."""

    def __init__(self, results: Path, experiment: str) -> None:
        self.experiment = experiment
        self.link = best_dir(results, experiment)
        self.versions = versions_dir(results, experiment)

    def current(self) -> Path | None:
        """The champion's version folder (the link resolved once), or None before the first promotion."""
        folder = self.link.resolve()
        return folder if (folder / CARD_JSON).exists() else None

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the experiment's lock, so that reading, comparing and swapping the champion is one step.

        The kernel releases the lock when its holder dies, even by SIGKILL. Leftovers of a
        promotion killed midway (staging folders, unused links) are removed first.
        """
        path = self.link.parent / f".{self.experiment}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._sweep()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def staging(self, version: str) -> Iterator[Path]:
        """A folder in which the new champion is assembled; it becomes versions/<version> whole, SHA256SUMS last."""
        if self.link.exists() and not self.link.is_symlink():
            raise UntrustedModel(f"{self.link} is a plain folder, not a champion link; move it away and run again")
        with building(self.versions / version, last=MANIFEST) as staging:
            yield staging

    def switch(self, version: str, card: ModelCard) -> Path:
        """Point best/<experiment> at the complete version folder: one rename of a new link over the old."""
        target = self.versions / version
        pointer = self.link.with_name(f".{self.experiment}.link-{version}")
        os.symlink(os.path.relpath(target, self.link.parent), pointer)
        os.replace(pointer, self.link)  # the atomic switch: best/<experiment> now names the new version
        fsync_dir(self.link.parent)
        return target

    def _sweep(self) -> None:
        """Remove what a killed promotion left; a version folder renamed but never linked stays (it is whole)."""
        for staging in sweep_partials(self.versions):
            log.warning("Removed %s, left by a promotion that did not finish", staging)
        for pointer in self.link.parent.glob(f".{self.experiment}.link-*"):
            pointer.unlink(missing_ok=True)


class PointerStore:
    """A champion on an object store: ``best/<experiment>/champion.json`` names its version folder."""

    def __init__(self, results: StoragePath, experiment: str) -> None:
        self.pointer = best_dir(results, experiment) / POINTER
        self.versions = versions_dir(results, experiment)
        self._seen: tuple[bytes | None, str | None] | None = None

    def current(self) -> StoragePath | None:
        """The champion's version folder as the pointer names it (as read by ``claim``, inside one), or None."""
        data, _ = self._seen if self._seen is not None else self._read()
        return None if data is None else self.versions / ChampionPointer.model_validate_json(data).version

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Remember the pointer as it is now; ``install`` switches it only if it is still the same."""
        self._seen = self._read()
        try:
            yield
        finally:
            self._seen = None

    @contextmanager
    def staging(self, version: str) -> Iterator[Path]:
        """A local folder in which the new champion is assembled; it is uploaded whole, SHA256SUMS last."""
        with building(self.versions / version, last=MANIFEST) as staging:
            yield staging

    def switch(self, version: str, card: ModelCard) -> StoragePath:
        """Switch the pointer to the uploaded version (unless another promotion switched it since ``claim``)."""
        pointer = ChampionPointer(version=version, run_id=card.run_id, model=card.model.name,
                                  switched_at=datetime.now(UTC).isoformat(timespec="seconds"))
        self._switch(pointer.encode())
        return self.versions / version

    def _read(self) -> tuple[bytes | None, str | None]:
        """The pointer's bytes and entity tag (None, None when there is no champion yet).

        The tag comes from the same open as the bytes: S3 reads are conditioned on it.
        """
        self.pointer.fs.invalidate_cache(self.pointer.path)  # a cached listing would give an old tag
        if not self.pointer.exists():
            return None, None
        with self.pointer.open("rb") as handle:
            tag = (getattr(handle, "details", None) or {}).get("ETag")
            return handle.read(), tag

    def _switch(self, new: bytes) -> None:
        """Write the pointer unless another promotion changed it since ``claim`` (then raise ChampionMoved)."""
        assert self._seen is not None, "switch only inside claim()"
        seen, tag = self._seen
        ensure_parent(self.pointer)
        if self.pointer.protocol in S3_SCHEMES:
            condition = {"mode": "create"} if seen is None else {"IfMatch": tag}
            try:
                self.pointer.fs.pipe_file(self.pointer.path, new, **condition)
            except OSError as err:
                if self._read()[0] != seen:
                    raise ChampionMoved(f"{self.pointer} changed during this promotion") from err
                raise
            finally:
                self.pointer.fs.invalidate_cache(self.pointer.path)
            return
        # Other stores offer no conditional write through fsspec: Airflow runs one promote task of an
        # experiment at a time (max_active_tis_per_dag=1); this check narrows what is left to a moment.
        if self._read()[0] != seen:
            raise ChampionMoved(f"{self.pointer} changed during this promotion")
        self.pointer.write_bytes(new)


def install(store: LinkStore | PointerStore, version: str, card: ModelCard, entry: HistoryEntry,
            current: StoragePath | None, fill: Filler) -> StoragePath:
    """Install a champion, by a promotion or a rollback: assemble version folder ``version`` (``fill``'s files,
    the current champion's history with ``entry`` appended, SHA256SUMS last), then switch the store to it.

    Call it inside ``store.claim()``. Until the switch, readers see the old champion; a process
    killed before it leaves only a leftover that the next claim removes.
    """
    with store.staging(version) as staging:
        fill(staging)
        write_text(staging / HISTORY, history_text(history_of(current), entry))
        write_manifest(staging)
    return store.switch(version, card)


def history_of(folder: StoragePath | None) -> str:
    """The history.jsonl text of a champion's version folder ('' when there is none)."""
    history = None if folder is None else folder / HISTORY
    return history.read_text(encoding="utf-8") if history is not None and history.exists() else ""


def current_card(results: StoragePath, experiment: str) -> ModelCard | None:
    """The current champion's model card, or None when nothing was promoted yet.

    Raises UntrustedModel when a file of the champion no longer matches its recorded SHA-256, or the model is refused.
    """
    folder = champion_store(results, experiment).current()
    return None if folder is None else verified_card(folder)


def verified_card(folder: StoragePath) -> ModelCard:
    """The model card of the champion in ``folder``, after every file was checked against its SHA-256."""
    verify_champion(folder)
    return ModelCard.read(folder / CARD_JSON)


def verify_champion(folder: StoragePath) -> None:
    """Raise UntrustedModel unless every file of the champion in ``folder`` matches its SHA-256 and the model holds
    trusted types only.

    The checksums catch a file changed by accident or half copied; they cannot stop someone who
    rewrites them too. That is the job of the model's format (``artifacts.model_file``): loading
    it runs no code, and a file that is not such a model is refused here, before any run relies on it.
    """
    if (folder / MANIFEST).exists():
        problems = manifest_problems(folder)
    else:  # promoted before SHA256SUMS existed: the card records the model's checksum
        expected = ModelCard.read(folder / CARD_JSON).artifact.sha256
        model = folder / MODEL_FILE
        problems = [] if model.is_file() and sha256_file(model) == expected else [
            f"{model} does not match the SHA-256 in its model card"]
    if problems:
        raise UntrustedModel(
            f"the champion in {folder} was changed after promotion ({'; '.join(problems)}); refusing to use it. "
            "Restore the file, or delete the results/best/<experiment> link (or champion.json) to start over "
            "(every promoted version stays in results/best/.versions/)")
    check_model_file(folder / MODEL_FILE)


def champion_model_path(results: StoragePath, experiment: str) -> StoragePath | None:
    """Where the champion's model is for a user: the stable link on a disk, its version folder on an object store."""
    folder = champion_store(results, experiment).current()
    if folder is None:
        return None
    return (best_dir(results, experiment) if is_local(results) else folder) / MODEL_FILE
