"""Share step: copy a run's leaderboard, and the champion it promoted, into the spec's Google Drive folder.

The layout in Drive mirrors the results folder, one immutable folder per run and per champion version:

    <drive_folder>/<experiment>/runs/<run id>/leaderboard.json
    <drive_folder>/<experiment>/champions/<version>/model.skops, model_card.json, ..., SHA256SUMS (last)

The results folder stays the record: a Drive copy is made after the promotion, so a failed
upload never touches the champion, and a retried task uploads only what is still missing.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

from dag_factory.artifacts.layout import MANIFEST, RunFiles, versions_dir
from dag_factory.artifacts.records import Decision
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.storage.drive import DriveClient
from dag_factory.storage.location import StoragePath

log = logging.getLogger(__name__)


def share_in_drive(spec: ExperimentSpec, results: StoragePath, files: RunFiles, decision: Decision,
                   client: DriveClient | None = None) -> list[str]:
    """Upload the leaderboard, and the promoted champion's version folder; returns the Drive paths written."""
    assert spec.publish is not None
    client = client or DriveClient.from_connection(spec.publish)
    experiment = client.folder(spec.publish.drive_folder, [spec.experiment])
    shared = [_upload_folder(client, files.leaderboard.parent, experiment, ["runs", files.folder.name],
                             only=[files.leaderboard.name])]
    if decision.promoted and decision.path:
        version = versions_dir(results, spec.experiment) / PurePosixPath(decision.path).name
        shared.append(_upload_folder(client, version, experiment, ["champions", version.name]))
    for path in shared:
        log.info("Published to Google Drive: %s/%s", spec.experiment, path)
    return shared


def _upload_folder(client: DriveClient, folder: StoragePath, root: str, names: list[str],
                   only: list[str] | None = None) -> str:
    """Upload the files of ``folder`` (or just those named in ``only``) into Drive folder ``root/names``.

    Subfolders become Drive folders; the checksum file goes last, so a reader that finds it finds everything.
    """
    target = client.folder(root, names)
    entries = sorted((p for p in folder.iterdir() if only is None or p.name in only),
                     key=lambda p: (p.name == MANIFEST, p.name))
    for entry in entries:
        if entry.is_dir():
            _upload_folder(client, entry, target, [entry.name])
        else:
            client.upload(entry.read_bytes(), entry.name, target)
    return "/".join(names)
