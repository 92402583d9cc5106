"""Retrain only when something changed: the data and spec fingerprints against the last runs that trained."""

from __future__ import annotations

from dag_factory.artifacts.layout import last_trained_file
from dag_factory.artifacts.records import LastTrained, ModelCard, RunMeta
from dag_factory.storage.location import StoragePath


def unchanged_reason(meta: RunMeta, champion: ModelCard | None, results: StoragePath, experiment: str) -> str | None:
    """Why training this run would only repeat earlier training, or None when the data or the spec changed.

    Earlier training is the champion's run, or the newest run that trained without beating it.
    """
    earlier = [LastTrained(run_id=champion.run_id, fingerprint=champion.data.fingerprint,
                           config_fingerprint=champion.config_fingerprint)] if champion else []
    last = last_trained_file(results, experiment)
    if last.exists():
        earlier.append(LastTrained.read(last))
    same = next((e for e in earlier
                 if (e.fingerprint, e.config_fingerprint) == (meta.fingerprint, meta.config_fingerprint)), None)
    if same is None:
        return None
    who = (f"the champion was trained in run {same.run_id}" if champion and same.run_id == champion.run_id
           else f"run {same.run_id} trained on them (its winner did not beat the champion)")
    return (f"data and spec unchanged since {who} (data fingerprint {meta.fingerprint[:12]}); training skipped. "
            "Trigger with force=true (CLI: --force) to retrain anyway.")


def record_training(meta: RunMeta, run_id: str, results: StoragePath, experiment: str) -> None:
    """Remember that ``run_id`` trained on these data and spec, so a later run on the same ones is skipped."""
    LastTrained(run_id=run_id, fingerprint=meta.fingerprint,
                config_fingerprint=meta.config_fingerprint).write(last_trained_file(results, experiment))
