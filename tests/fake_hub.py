"""A local HTTP server that speaks the Hugging Face Hub endpoints that ``pipelines.publish`` calls.

It keeps state the way the Hub does: repositories, their files at each commit, tags.
Endpoints (as huggingface_hub 2.x calls them):

- ``POST /api/repos/create``: create a repository (409 if it exists);
- ``POST /api/validate-yaml``: check a README's YAML front matter;
- ``POST /api/{type}s/{repo}/preupload/{rev}``: upload mode per file: always "regular", so
  the content travels inline in the commit; with the git oid of a file it already holds
  (huggingface_hub then leaves unchanged files out of the commit, as with the real Hub);
- ``POST /api/{type}s/{repo}/commit/{rev}``: an ndjson commit (header, then files);
- ``POST /api/{type}s/{repo}/tag/{rev}``: tag a revision (409 if the tag exists);
- ``GET /api/{type}s/{repo}[/revision/{rev}]``: repository info.

Every request must carry ``Authorization: Bearer <token>``; every request is recorded.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import unquote, urlsplit


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_type: str
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)  # {"oid", "summary", "files": [paths]}
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def head(self) -> str:
        return self.commits[-1]["oid"] if self.commits else "0" * 40


ROUTE = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(preupload|commit|tag|revision)/(.+))?$")


class FakeHub:
    def __init__(self, token: str = "hf_test_token"):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                hub._handle(self, "GET")

            def do_POST(self):
                hub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---------- protocol ----------
    @staticmethod
    def _body(handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().strip(), 16)
                if size == 0:
                    handler.rfile.readline()
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict, error_code: str | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if error_code:
            handler.send_header("X-Error-Code", error_code)
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(handler.path).path
        body = self._body(handler) if method == "POST" else b""
        with self.lock:
            self.requests.append((method, path))
            if handler.headers.get("Authorization") != f"Bearer {self.token}":
                return self._send(handler, 401, {"error": "Invalid credentials in Authorization header"})
            status, payload, code = self._route(method, path, body)
        self._send(handler, status, payload, code)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict, str | None]:
        if method == "GET" and path == "/api/whoami-v2":
            return 200, {"type": "user", "name": "tester", "orgs": []}, None
        if method == "POST" and path == "/api/repos/create":
            req = json.loads(body)
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            if repo_id in self.repos:
                return 409, {"error": "You already created this dataset repo", "url": repo_id}, None
            self.repos[repo_id] = Repo(req.get("type") or "model")
            return 200, {"url": f"{self.url}/{req.get('type', 'model')}s/{repo_id}", "name": repo_id}, None
        if method == "POST" and path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            if not content.startswith("---\n"):
                return 400, {"errors": [{"message": "no YAML front matter"}], "warnings": []}, None
            return 200, {"errors": [], "warnings": []}, None
        match = ROUTE.match(path)
        if not match:
            return 404, {"error": f"no route {method} {path}"}, None
        kind, repo_id, action, rev = match.group(1), match.group(2), match.group(3), unquote(match.group(4) or "main")
        repo = self.repos.get(repo_id)
        if repo is None or repo.repo_type != kind[:-1]:
            return 404, {"error": f"Repository not found: {repo_id}"}, "RepoNotFound"
        if method == "GET" and action in (None, "revision"):
            return 200, {"id": repo_id, "sha": repo.head,
                         "siblings": [{"rfilename": p} for p in sorted(repo.files)]}, None
        if method == "POST" and action == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                    "oid": git_oid(repo.files[f["path"]]) if f["path"] in repo.files else None}
                                   for f in files]}, None
        if method == "POST" and action == "commit":
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            header = next(x["value"] for x in lines if x["key"] == "header")
            written = []
            for entry in lines:
                if entry["key"] == "file":
                    value = entry["value"]
                    if value.get("encoding") != "base64":
                        return 400, {"error": "expected base64 content"}, None
                    repo.files[value["path"]] = base64.b64decode(value["content"])
                    written.append(value["path"])
                elif entry["key"] != "header":
                    return 400, {"error": f"unsupported commit operation {entry['key']}"}, None
            oid = hashlib.sha1(json.dumps([repo.head, header, written]).encode()).hexdigest()
            repo.commits.append({"oid": oid, "summary": header["summary"], "files": written})
            return 200, {"commitUrl": f"{self.url}/{kind}/{repo_id}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None}, None
        if method == "POST" and action == "tag":
            tag = json.loads(body)["tag"]
            if tag in repo.tags:
                return 409, {"error": f"Tag {tag} already exists"}, None
            target = repo.head if rev == "main" else rev
            if target not in {c["oid"] for c in repo.commits}:
                return 404, {"error": f"Invalid rev id: {rev}"}, "RevisionNotFound"
            repo.tags[tag] = target
            return 200, {}, None
        return 404, {"error": f"no route {method} {path}"}, None
