"""A loopback stand-in for the parts of Google's APIs the Drive publisher uses: the OAuth token
endpoint of a service account and Drive v3's files.list, files.create (folders), multipart and
resumable uploads. It keeps files in memory, checks every bearer token it issued, and can answer
the next matching requests with an error (a 503, a 429) to test retries.

Not a test module: the Drive tests import it. It is not Google's service: it accepts what the
Drive v3 reference documents for these calls and nothing more.
"""

from __future__ import annotations

import http.server
import json
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt

from data_helpers import serving_in_thread

FOLDER = "application/vnd.google-apps.folder"
#: The audience google-auth signs a service account's JWT for, whatever the key's token_uri.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_QUERY = re.compile(r"^name = '((?:[^'\\]|\\.)*)' and '((?:[^'\\]|\\.)*)' in parents and trashed = false$")


@dataclass
class DriveStandIn:
    """The stand-in's state: files by id, tokens issued, requests seen, errors to answer next."""

    public_key: str
    root: str = "root_folder_0123456789"
    port: int = 0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    log: list[tuple[str, str, int]] = field(default_factory=list)  # (method, kind, status)
    fail: dict[str, list[int]] = field(default_factory=dict)  # kind -> statuses to answer next
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)  # the verified JWT of each token request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def path_of(self, file_id: str) -> str:
        """A file's path from the shared root folder: 'exp/runs/run1/leaderboard.json'."""
        parts = []
        while file_id != self.root:
            parts.append(self.files[file_id]["name"])
            file_id = self.files[file_id]["parents"][0]
        return "/".join(reversed(parts))

    def tree(self) -> dict[str, bytes]:
        """Every uploaded file by its path from the root."""
        return {self.path_of(i): f["content"] for i, f in self.files.items() if f["mimeType"] != FOLDER}

    def uploads(self) -> list[str]:
        """Paths of the uploaded files in upload order."""
        return [self.path_of(i) for i, f in self.files.items() if f["mimeType"] != FOLDER]


@contextmanager
def drive_stand_in(public_key: str) -> Iterator[DriveStandIn]:
    """Serve the stand-in on a free loopback port for the duration of the block."""
    state = DriveStandIn(public_key)
    state.files[state.root] = {"name": "shared", "parents": [], "mimeType": FOLDER, "content": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def _serve(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self._kind(method, url.path, query)
            if kind != "token" and self.headers.get("Authorization", "").removeprefix("Bearer ") not in state.tokens:
                return self._answer(method, kind, 401, {"error": {"code": 401, "message": "Invalid Credentials"}})
            if state.fail.get(kind):
                status = state.fail[kind].pop(0)
                return self._answer(method, kind, status, {"error": {"code": status, "message": "stand-in says no"}})
            handler = getattr(self, f"_{kind}", None)
            if handler is None:
                return self._answer(method, kind, 404, {"error": {"code": 404, "message": "not served here"}})
            handler(method, kind, query, body)

        @staticmethod
        def _kind(method: str, path: str, query: dict[str, str]) -> str:
            if path == "/token":
                return "token"
            if path == "/drive/v3/files":
                return {"GET": "list", "POST": "create"}.get(method, "other")
            if path == "/upload/drive/v3/files":
                if method == "PUT":
                    return "resumable_put"
                return {"multipart": "multipart", "resumable": "resumable_open"}.get(query.get("uploadType", ""), "other")
            return "other"

        def _token(self, method: str, kind: str, query: dict[str, str], body: bytes) -> None:
            form = dict(urllib.parse.parse_qsl(body.decode()))
            try:
                claims = jwt.decode(form["assertion"], state.public_key, algorithms=["RS256"],
                                    audience=GOOGLE_TOKEN_AUDIENCE)
            except (KeyError, jwt.PyJWTError) as err:
                return self._answer(method, kind, 400, {"error": "invalid_grant", "error_description": str(err)})
            state.claims.append(claims)
            token = secrets.token_urlsafe(16)
            state.tokens.add(token)
            self._answer(method, kind, 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

        def _list(self, method: str, kind: str, query: dict[str, str], body: bytes) -> None:
            match = _QUERY.match(query.get("q", ""))
            if not match:
                return self._answer(method, kind, 400, {"error": {"code": 400, "message": "Invalid Value"}})
            name, parent = (re.sub(r"\\(.)", r"\1", g) for g in match.groups())
            if parent not in state.files:
                return self._answer(method, kind, 404, {"error": {"code": 404, "message": f"File not found: {parent}."}})
            found = [{"id": i, "name": f["name"]} for i, f in state.files.items()
                     if f["name"] == name and parent in f["parents"]]
            self._answer(method, kind, 200, {"files": found})

        def _create(self, method: str, kind: str, query: dict[str, str], body: bytes) -> None:
            self._new_file(method, kind, json.loads(body), b"")

        def _multipart(self, method: str, kind: str, query: dict[str, str], body: bytes) -> None:
            boundary = re.search(r"boundary=(\S+)", self.headers["Content-Type"]).group(1).encode()
            parts = body.split(b"--" + boundary)
            meta_part, content_part = parts[1], parts[2]
            meta = json.loads(meta_part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n"))
            content = content_part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")
            self._new_file(method, kind, meta, content)

        def _resumable_open(self, method: str, kind: str, query: dict[str, str], body: bytes) -> None:
            session = secrets.token_hex(8)
            state.sessions[session] = {"meta": json.loads(body), "length": int(self.headers["X-Upload-Content-Length"])}
            location = f"{state.url}/upload/drive/v3/files?uploadType=resumable&upload_id={session}"
            self._answer(method, kind, 200, {}, {"Location": location})

        def _resumable_put(self, method: str, kind: str, query: dict[str, str], body: bytes) -> None:
            session = state.sessions.get(query.get("upload_id", ""))
            if session is None or len(body) != session["length"]:
                return self._answer(method, kind, 400, {"error": {"code": 400, "message": "bad upload session"}})
            self._new_file(method, kind, session["meta"], body)

        def _new_file(self, method: str, kind: str, meta: dict[str, Any], content: bytes) -> None:
            parent = meta["parents"][0]
            if parent not in state.files:
                return self._answer(method, kind, 404, {"error": {"code": 404, "message": f"File not found: {parent}."}})
            file_id = secrets.token_hex(8)
            state.files[file_id] = {"name": meta["name"], "parents": [parent],
                                    "mimeType": meta.get("mimeType", "application/octet-stream"), "content": content}
            self._answer(method, kind, 200, {"id": file_id, "name": meta["name"]})

        def _answer(self, method: str, kind: str, status: int, payload: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
            state.log.append((method, kind, status))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    with serving_in_thread(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        state.port = port
        yield state
