"""Rollback: make an earlier champion the champion again, and list every champion an experiment had
(and the winners a reviewer did not approve).

A rollback installs a fresh copy of the earlier version, through the same atomic installation
as a promotion (``champion_store.install``): a version folder assembled whole, its files
checked against the earlier version's SHA-256s, then one switch of the link or pointer. Versions
are never changed, so the history (which lives in each version folder) grows by one line saying
"rolled back", and the folder rolled back from stays on disk for a later ``--to``.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dag_factory.artifacts.champion_store import ChampionMoved, champion_store, history_of, install, verified_card
from dag_factory.artifacts.layout import HISTORY, MANIFEST, leaderboards, versions_dir
from dag_factory.artifacts.records import HistoryEntry, Leaderboard, history_entries
from dag_factory.errors import DagFactoryError, UntrustedModel
from dag_factory.storage.files import sha256_file
from dag_factory.storage.location import StoragePath, copy_file

log = logging.getLogger(__name__)

_VERSION_NAME = re.compile(r"[A-Za-z0-9._-]+")


class RollbackRefused(DagFactoryError):
    """A rollback that cannot be done as asked: nothing to roll back to, or an unknown version."""


@dataclass(frozen=True)
class ChampionHistory:
    """Every champion of an experiment, oldest first, and the version that is the champion now."""

    entries: list[HistoryEntry]
    current: str | None


def champion_history(results: StoragePath, experiment: str) -> ChampionHistory:
    """The history recorded with the current champion (each promotion and rollback, in order)."""
    folder = champion_store(results, experiment).current()
    return ChampionHistory(history_entries(history_of(folder)), None if folder is None else folder.name)


def refused_promotions(results: StoragePath, experiment: str) -> list[Leaderboard]:
    """Leaderboards of runs whose better winner was not promoted for want of an approval, oldest first."""
    boards = [Leaderboard.read(path) for path in leaderboards(results, experiment)]
    return [b for b in boards if b.decision is not None and b.decision.approval is not None
            and not b.decision.promoted]


def rollback(results: StoragePath, experiment: str, to: str | None = None, reason: str | None = None) -> HistoryEntry:
    """Make an earlier champion the champion again; returns the history entry that records it.

    ``to`` is a version folder name or a number from ``dag-factory history``; without it, the
    champion before the current one. The earlier version is verified (checksums, trusted model
    types) before anything is written; the current champion stays until the one switch.
    """
    store = champion_store(results, experiment)
    with store.claim():
        current = store.current()
        if current is None:
            raise RollbackRefused(f"{experiment} has no champion yet; there is nothing to roll back")
        entries = history_entries(history_of(current))
        target = versions_dir(results, experiment) / _target_version(experiment, entries, current.name, to)
        if not target.exists():
            raise RollbackRefused(f"version {target.name} of {experiment} is not in {target.parent}; "
                                  f"`dag-factory history {experiment}` lists the versions")
        card = verified_card(target)  # refuses a changed or untrusted earlier champion, before any write
        version = f"{target.name.split('-rollback-')[0]}-rollback-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC).isoformat(timespec="seconds")
        why = f"rolled back from {current.name} to {target.name}" + (f": {reason}" if reason else "")
        entry = HistoryEntry(promoted_at=now, run_id=card.run_id, model=card.model.name, metric=card.metric,
                             score=card.cv[card.metric].mean, reason=why, version=version, action="rolled_back",
                             restored_from=target.name)
        try:
            install(store, version, card, entry, current, lambda staging: _copy_verified(target, staging))
        except ChampionMoved:
            raise RollbackRefused(f"a promotion replaced the champion of {experiment} during the rollback, which "
                                  "changed nothing; check `dag-factory history` and run it again") from None
    log.info("%s: %s", experiment, why)
    return entry


def _target_version(experiment: str, entries: list[HistoryEntry], current: str, to: str | None) -> str:
    """The version folder a rollback restores: ``to`` (a name or a history number), or the previous champion."""
    if to is None:
        if len(entries) < 2:
            raise RollbackRefused(f"{experiment} has had one champion only ({current}); there is no earlier one")
        return entries[-2].version
    if to.isdigit():
        if not 1 <= int(to) <= len(entries):
            raise RollbackRefused(f"--to {to}: the history of {experiment} has entries 1 to {len(entries)}; "
                                  f"`dag-factory history {experiment}` lists them")
        to = entries[int(to) - 1].version
    if not _VERSION_NAME.fullmatch(to):
        raise RollbackRefused(f"--to {to!r} is not a version name (letters, digits, '.', '_', '-'); "
                              f"`dag-factory history {experiment}` lists them")
    if to == current:
        raise RollbackRefused(f"version {to} is already the champion of {experiment}")
    return to


def _copy_verified(source: StoragePath, staging: Path) -> None:
    """Copy a verified version's files (not its history or SHA256SUMS) and check each copy against its SHA-256."""
    manifest = source / MANIFEST
    if not manifest.exists():
        raise RollbackRefused(f"{source} was promoted before champions had a {MANIFEST}; its files cannot all be "
                              "verified, so it is not restored")
    for line in manifest.read_text(encoding="utf-8").splitlines():
        expected, _, name = line.partition("  ")
        if name == HISTORY:
            continue
        copy_file(source / name, staging / name)
        if sha256_file(staging / name) != expected:
            raise UntrustedModel(f"the copy of {source / name} does not match its SHA-256; the champion was kept")
