"""A Hugging Face Hub stand-in on loopback, for testing pushes and downloads without the network.

It implements the endpoints huggingface_hub's upload and download paths call, with the Hub's status codes and
headers (``X-Error-Code``, ``X-Repo-Commit``, ``ETag``), so the client code under test is the real one:

* ``POST /api/repos/create`` (409 when it exists);
* ``POST /api/validate-yaml`` and every commit of ``README.md``: the card's metadata must be valid YAML with Hub
  repository ids (not local paths) in ``datasets`` and ``base_model``, or the Hub answers 400;
* ``POST /api/models/{repo}/preupload/{rev}``: weights and images go through LFS, text inline, as on the Hub;
* ``POST /{repo}.git/info/lfs/objects/batch`` and the ``PUT`` of the "basic" LFS transfer it hands out;
* ``POST /api/models/{repo}/commit/{rev}`` (the NDJSON commit payload);
* ``GET /api/models/{repo}[/revision/{rev}]``, ``GET /api/models/{repo}/tree/{rev}[/{folder}]``;
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``.

Writes need ``Authorization: Bearer <token>`` with the server's token; other requests are answered like the
Hub answers anonymous ones. Uploads must run with ``HF_HUB_DISABLE_XET=1`` (the Xet protocol is not served).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".png")


class FakeHub:
    """In-memory repositories behind a real HTTP server. Use as a context manager; ``endpoint`` is its URL."""

    def __init__(self, token: str = "hf_test_token"):
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, list[str]] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        #: Set to an HTTP status to make every commit fail with it (a Hub outage or revoked write access mid-run).
        self.refuse_commits: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def head_commit(self, repo_id: str) -> str:
        return self.commits[repo_id][-1]


def card_metadata_errors(content: str) -> list[str]:
    """What the Hub refuses in a model card's YAML front matter: invalid YAML, a non-mapping, and `datasets` or
    `base_model` values that are not repository ids (a local path such as ``../data/train.txt`` or ``/tmp/model``)."""
    if not content.startswith("---"):
        return []
    try:
        metadata = yaml.safe_load(content.split("---")[1])
    except yaml.YAMLError as error:
        return [str(error)]
    if not isinstance(metadata, dict):
        return ["metadata must be a mapping"]
    errors = []
    for key in ("datasets", "base_model"):
        values = metadata.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            try:
                validate_repo_id(str(value))
            except HFValidationError:
                errors.append(f'"{key}" with value "{value}" is not valid. It must be a repository id on the Hub.')
    return errors


def _upload_mode(path: str, size: int) -> str:
    """As on the Hub: binary files and files over 10 MB go through LFS, the rest inline in the commit."""
    return "lfs" if path.endswith(LFS_SUFFIXES) or size > 10_000_000 else "regular"


def _handler_for(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        # -- plumbing ----------------------------------------------------------------------------------------
        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload=None, headers: dict | None = None, body: bytes | None = None):
            if body is None:
                body = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str):
            self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {hub.token}":
                return True
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return False

        def _repo(self, repo_id: str) -> dict[str, bytes] | None:
            files = hub.repos.get(repo_id)
            if files is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return files

        # -- routes ------------------------------------------------------------------------------------------
        def do_POST(self):
            path = unquote(urlparse(self.path).path)
            hub.requests.append(("POST", path))
            body = self._body()
            if path == "/api/repos/create":
                if not self._authorized():
                    return
                request = json.loads(body)
                repo_id = "/".join(filter(None, [request.get("organization"), request["name"]]))
                if repo_id in hub.repos:
                    return self._error(409, "RepoExists", "You already created this model repo")
                hub.repos[repo_id], hub.commits[repo_id] = {}, [hashlib.sha1(repo_id.encode()).hexdigest()]
                return self._send(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                return self._validate_card(json.loads(body)["content"])
            if match := re.fullmatch(r"/api/models/(.+)/preupload/([^/]+)", path):
                if not self._authorized() or self._repo(match.group(1)) is None:
                    return
                files = [
                    {"path": f["path"], "uploadMode": _upload_mode(f["path"], f["size"]), "shouldIgnore": False}
                    for f in json.loads(body)["files"]
                ]
                return self._send(200, {"files": files, "commitOid": hub.head_commit(match.group(1))})
            if match := re.fullmatch(r"/(.+)\.git/info/lfs/objects/batch", path):
                if not self._authorized() or self._repo(match.group(1)) is None:
                    return
                objects = []
                for item in json.loads(body)["objects"]:
                    entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
                    if item["oid"] not in hub.lfs_objects:
                        href = f"{hub.endpoint}/lfs-upload/{item['oid']}"
                        entry["actions"] = {"upload": {"href": href, "header": {}}}
                    objects.append(entry)
                lfs_json = {"Content-Type": "application/vnd.git-lfs+json"}
                return self._send(200, {"transfer": "basic", "objects": objects}, lfs_json)
            if match := re.fullmatch(r"/api/models/(.+)/commit/([^/]+)", path):
                if not self._authorized() or (files := self._repo(match.group(1))) is None:
                    return
                if hub.refuse_commits is not None:
                    return self._error(hub.refuse_commits, "Forbidden", "You don't have the rights to commit here")
                return self._commit(match.group(1), files, body)
            self._error(404, "NotImplemented", f"fake hub: no route for POST {path}")

        def _validate_card(self, content: str):
            errors = card_metadata_errors(content)
            return self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})

        def _commit(self, repo_id: str, files: dict[str, bytes], body: bytes):
            summary = ""
            for line in body.splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "header":
                    summary = value.get("summary", "")
                elif item["key"] == "file":
                    content = base64.b64decode(value["content"])
                    # As on the Hub: a commit whose model card has invalid metadata is refused as a whole.
                    if value["path"] == "README.md" and (errors := card_metadata_errors(content.decode())):
                        message = "Invalid metadata in README.md.\n" + "\n".join(f"- {e}" for e in errors)
                        return self._error(400, "BadRequest", message)
                    files[value["path"]] = content
                elif item["key"] == "lfsFile":
                    if value["oid"] not in hub.lfs_objects:
                        return self._error(422, "LfsObjectMissing", f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = hub.lfs_objects[value["oid"]]
                elif item["key"] == "deletedFile":
                    files.pop(value["path"], None)
            commit = hashlib.sha1((hub.head_commit(repo_id) + summary + str(sorted(files))).encode()).hexdigest()
            hub.commits[repo_id].append(commit)
            return self._send(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{commit}", "commitOid": commit})

        def _tree(self, repo_id: str, folder: str):
            if (files := self._repo(repo_id)) is None:
                return
            prefix = f"{folder}/" if folder else ""
            entries = {}
            for name, data in files.items():
                if not name.startswith(prefix):
                    continue
                child = name[len(prefix) :].split("/")[0]
                if "/" in name[len(prefix) :]:
                    entries[child] = {"type": "directory", "path": prefix + child, "oid": "0" * 40}
                else:
                    oid = hashlib.sha1(data).hexdigest()
                    entries[child] = {"type": "file", "path": name, "size": len(data), "oid": oid}
            if folder and not entries:
                return self._error(404, "EntryNotFound", f"{folder} does not exist in {repo_id}")
            return self._send(200, list(entries.values()))

        def do_PUT(self):
            path = urlparse(self.path).path
            hub.requests.append(("PUT", path))
            if match := re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path):
                data = self._body()
                if hashlib.sha256(data).hexdigest() != match.group(1):
                    return self._error(400, "BadRequest", "content does not match its sha256")
                hub.lfs_objects[match.group(1)] = data
                return self._send(200, {})
            self._error(404, "NotImplemented", f"fake hub: no route for PUT {path}")

        def do_GET(self):
            path = unquote(urlparse(self.path).path)
            hub.requests.append((self.command, path))
            if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)/?(.*)", path):
                return self._tree(match.group(1), match.group(3).strip("/"))
            if match := re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+))?", path):
                if (files := self._repo(match.group(1))) is None:
                    return
                siblings = [{"rfilename": name} for name in sorted(files)]
                info = {"id": match.group(1), "sha": hub.head_commit(match.group(1)), "siblings": siblings}
                return self._send(200, {**info, "private": False, "tags": [], "downloads": 0, "likes": 0})
            if match := re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", path):
                repo_id, _, filename = match.groups()
                if (files := self._repo(repo_id)) is None:
                    return
                if filename not in files:
                    return self._error(404, "EntryNotFound", f"{filename} does not exist in {repo_id}")
                data = files[filename]
                lfs = _upload_mode(filename, len(data)) == "lfs"
                etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(data).hexdigest()
                headers = {"ETag": f'"{etag}"', "X-Repo-Commit": hub.head_commit(repo_id)}
                headers["Content-Type"] = "application/octet-stream"
                if lfs:
                    headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": len(data)})
                return self._send(200, headers=headers, body=data)
            self._error(404, "NotImplemented", f"fake hub: no route for GET {path}")

        do_HEAD = do_GET

    return Handler
