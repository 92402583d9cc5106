"""Google Drive as a publish target: the Drive v3 REST calls the factory needs, with retries.

Four calls: files.list (find a file or folder by name), files.create for a folder, and
files.create with a multipart upload (small files) or a resumable upload (large ones). The
service account's key comes from an Airflow connection (the Google provider's fields:
``keyfile_dict`` or ``key_path`` in the extra); google-auth signs it into an access token at the
key's ``token_uri``. A client of our own, on ``requests`` and google-auth, instead of pydrive2
or the Google provider: those add 123 MiB and 1.2 GiB to the install, pydrive2 speaks Drive v2
through the retired oauth2client, and neither lets a test point it at a loopback server.
An ``api_url`` in the connection's extra replaces https://www.googleapis.com (a proxy, a test).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dag_factory.errors import PublishError, PublishRefused

if TYPE_CHECKING:
    import requests

    from dag_factory.spec.schema import PublishSpec

log = logging.getLogger(__name__)

GOOGLE_APIS = "https://www.googleapis.com"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
FOLDER_TYPE = "application/vnd.google-apps.folder"
#: Statuses worth another try: rate limits and server errors.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Files up to this size go in one multipart request; larger ones through a resumable upload session.
MULTIPART_LIMIT = 5 * 1024 * 1024
#: Keep Drive's answers small: only the fields the client reads.
FIELDS = "id,name"


@dataclass(frozen=True)
class Retry:
    """How often, and after how long a wait, a request that failed on the way is sent again."""

    retries: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 60.0


class DriveClient:
    """The Drive v3 calls of a publication, each retried on 429, 5xx and broken connections."""

    def __init__(self, session: requests.Session, api_url: str = GOOGLE_APIS, retry: Retry = Retry(),
                 multipart_limit: int = MULTIPART_LIMIT) -> None:
        self.session, self.api, self.retry, self.multipart_limit = session, api_url.rstrip("/"), retry, multipart_limit

    @classmethod
    def from_connection(cls, spec: PublishSpec) -> DriveClient:
        """A client authorised as the service account whose key is in the spec's Airflow connection."""
        from google.auth.transport.requests import AuthorizedSession
        from google.oauth2 import service_account

        key, api_url = service_account_key(spec.conn_id)
        try:
            credentials = service_account.Credentials.from_service_account_info(key, scopes=[DRIVE_SCOPE])
        except (ValueError, KeyError) as err:
            raise PublishRefused(f"publish.conn_id {spec.conn_id}: the key is not a service account's JSON key "
                                 f"({err}); paste the whole key file into the connection's keyfile_dict") from None
        return cls(AuthorizedSession(credentials), api_url,
                   Retry(spec.retries, spec.backoff_seconds, spec.timeout_seconds))

    def find(self, name: str, parent: str) -> str | None:
        """The id of the file or folder ``name`` directly in folder ``parent`` (not in the trash), or None."""
        query = f"name = '{_quoted(name)}' and '{_quoted(parent)}' in parents and trashed = false"
        found = self._call("GET", f"{self.api}/drive/v3/files", what=f"listing folder {parent}", params={
            "q": query, "fields": f"files({FIELDS})", "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true", "pageSize": "10"}).json().get("files", [])
        return found[0]["id"] if found else None

    def folder(self, parent: str, names: list[str]) -> str:
        """The id of folder ``parent/names[0]/names[1]/...``, creating what is missing."""
        for name in names:
            parent = self.find(name, parent) or self._call(
                "POST", f"{self.api}/drive/v3/files", what=f"creating folder {name}",
                params={"supportsAllDrives": "true", "fields": FIELDS},
                json={"name": name, "mimeType": FOLDER_TYPE, "parents": [parent]}).json()["id"]
        return parent

    def upload(self, content: bytes, name: str, parent: str) -> str:
        """Upload ``content`` as file ``name`` into folder ``parent``, unless a file of that name is there already.

        Publications never change a file once written (each version and run has its own folder),
        so a retried task finds what an earlier attempt uploaded and goes on from there.
        """
        existing = self.find(name, parent)
        if existing is not None:
            return existing
        meta = {"name": name, "parents": [parent]}
        if len(content) <= self.multipart_limit:
            return self._multipart(meta, content)
        return self._resumable(meta, content)

    def _multipart(self, meta: dict[str, Any], content: bytes) -> str:
        boundary = f"dag-factory-{uuid.uuid4().hex}"
        body = b"".join([
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(meta).encode(),
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            content, f"\r\n--{boundary}--\r\n".encode()])
        return self._call("POST", f"{self.api}/upload/drive/v3/files", what=f"uploading {meta['name']}",
                          params={"uploadType": "multipart", "supportsAllDrives": "true", "fields": FIELDS},
                          data=body, headers={"Content-Type": f"multipart/related; boundary={boundary}"}).json()["id"]

    def _resumable(self, meta: dict[str, Any], content: bytes) -> str:
        """A resumable session: one request opens it, one PUT sends the bytes (sent whole again on a retry)."""
        opened = self._call("POST", f"{self.api}/upload/drive/v3/files", what=f"starting the upload of {meta['name']}",
                            params={"uploadType": "resumable", "supportsAllDrives": "true", "fields": FIELDS},
                            json=meta, headers={"X-Upload-Content-Type": "application/octet-stream",
                                                "X-Upload-Content-Length": str(len(content))})
        session_url = opened.headers.get("Location")
        if not session_url:
            raise PublishError(f"Drive opened no upload session for {meta['name']} (no Location header)")
        return self._call("PUT", session_url, what=f"uploading {meta['name']}", data=content, headers={
            "Content-Range": f"bytes 0-{len(content) - 1}/{len(content)}"}).json()["id"]

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        """One Drive request, sent again after 429, 5xx or a broken connection, waiting twice as long each time.

        A key the token endpoint refuses fails at once; a token endpoint out of reach is retried.
        """
        import requests
        from google.auth.exceptions import RefreshError, TransportError

        wait = self.retry.backoff_seconds
        for attempt in range(1, self.retry.retries + 2):
            try:
                response = self.session.request(method, url, timeout=self.retry.timeout_seconds, **kwargs)
            except RefreshError as err:
                said = err.args[0] if err.args else err  # its other args repeat the answer as a dict
                if not getattr(err, "retryable", False):
                    raise PublishRefused(f"Google refused the service account's key while {what} ({said}); check "
                                         "the key in the publish.conn_id connection") from None
                reason = f"the token endpoint failed: {said}"
            except (requests.RequestException, TransportError) as err:
                reason = f"{type(err).__name__}: {err}"
            else:
                if response.status_code < 400:
                    return response
                reason = f"HTTP {response.status_code} {_message(response)}"
                if response.status_code not in TRANSIENT_STATUS:
                    raise PublishRefused(f"Google Drive refused {what} ({reason}); check publish.drive_folder and "
                                         "that the folder is shared with the service account as Editor")
            if attempt > self.retry.retries:
                break
            log.warning("Google Drive: %s failed on attempt %d (%s); trying again in %.3g s",
                        what, attempt, reason, wait)
            time.sleep(wait)
            wait *= 2
        raise PublishError(f"Google Drive: {what} failed after {self.retry.retries + 1} attempt(s) ({reason}); "
                           "Airflow retries the task")


def service_account_key(conn_id: str) -> tuple[dict[str, Any], str]:
    """The service account's JSON key and the API URL from Airflow connection ``conn_id``."""
    from airflow.sdk import Connection

    try:
        extra = Connection.get(conn_id).extra_dejson
    except Exception as err:  # noqa: BLE001  Airflow raises its own not-found error types
        raise PublishRefused(f"publish.conn_id: Airflow connection {conn_id!r} is not defined ({err}); create it (type "
                             "google_cloud_platform, extra keyfile_dict = the service account's JSON key)") from err
    extra = {k.removeprefix("extra__google_cloud_platform__"): v for k, v in extra.items()}
    key: Any = extra.get("keyfile_dict")
    if key is None and extra.get("key_path"):
        key = Path(extra["key_path"]).read_text(encoding="utf-8")
    if isinstance(key, str):
        try:
            key = json.loads(key)
        except json.JSONDecodeError:
            key = None
    if not isinstance(key, dict):
        raise PublishRefused(f"publish.conn_id: connection {conn_id!r} holds no service account key; set its extra "
                             "keyfile_dict to the key's JSON (or key_path to the key file on the workers)")
    return key, str(extra.get("api_url") or GOOGLE_APIS)


def _quoted(text: str) -> str:
    """``text`` inside single quotes of a Drive query."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _message(response: requests.Response) -> str:
    """Drive's short reason for an error (its JSON error message), at most one line of 200 characters."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.reason or ""
    return " ".join(str(message).split())[:200]
