"""Two local stand-ins for the Hugging Face Hub, for tests that use the real clients on 127.0.0.1.

- `FakeHub`: the *write* side. A small HTTP server answering the calls huggingface_hub's `HfApi` makes to
  push (whoami-v2, repos/create, repo info, validate-yaml, preupload, commit, repos/delete). Every commit
  is written into a git repository `ROOT/{models,datasets}/org/name` and recorded, so a test can assert
  what was uploaded (one commit, which files, their bytes) and then serve the result read-only with olah.
  No package accepts pushes offline (ASSETS.md), hence this stub; the client side is the real HfApi.
- `start_mirror(ROOT)`: the *read* side. olah (a Hub mirror) in a subprocess, serving the git repositories
  under ROOT with offline=true, so `from_pretrained("org/name")`, `hf_hub_download` and `load_dataset` run
  unchanged against it (HF_ENDPOINT=url, HF_HUB_OFFLINE unset).

    python tests/hubfakes.py olah ROOT PORT_FILE      # what start_mirror runs
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT = ["git", "-c", "user.name=fakehub", "-c", "user.email=fakehub@localhost", "-c", "commit.gpgsign=false"]


class FakeHub:
    def __init__(self, root: Path, token: str, user: str = "alice", orgs: tuple[str, ...] = ("hfrepro-org",),
                 role: str = "write"):
        self.root, self.token, self.user, self.orgs, self.role = Path(root), token, user, orgs, role
        self.commits: list[dict] = []        # {"repo_type", "repo_id", "message", "files": {path: bytes}}
        self.created: list[tuple[str, str, str | None]] = []   # (repo_type, repo_id, visibility)
        self.deleted: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_commits = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / f"{repo_type}s" / repo_id

    # --- the endpoints ----------------------------------------------------------------------------------
    def _handler(self):
        hub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, code: int, obj=None, headers: dict | None = None):
                data = json.dumps(obj if obj is not None else {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _authed(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {hub.token}":
                    return True
                self._send(401, {"error": "Invalid credentials in Authorization header"})
                return False

            def do_GET(self):
                hub.requests.append(("GET", self.path))
                path = self.path.split("?")[0]
                if path == "/api/whoami-v2":
                    if self._authed():
                        self._send(200, {"type": "user", "name": hub.user,
                                         "orgs": [{"name": o} for o in hub.orgs],
                                         "auth": {"type": "access_token",
                                                  "accessToken": {"displayName": "test", "role": hub.role}}})
                    return
                m = re.match(r"^/api/(models|datasets)/([^/]+/[^/]+)(/revision/.*)?$", path)
                if m:
                    kind, repo_id = m.group(1)[:-1], m.group(2)
                    d = hub.repo_dir(kind, repo_id)
                    if d.is_dir():
                        self._send(200, {"id": repo_id, "_id": repo_id, "private": False, "siblings": [],
                                         "sha": _head(d)})
                    else:
                        self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    return
                self._send(404, {"error": "not served by FakeHub"})

            def do_POST(self):
                hub.requests.append(("POST", self.path))
                path = self.path.split("?")[0]
                body = self._body()
                if path == "/api/validate-yaml":
                    import yaml
                    content = json.loads(body)["content"]
                    m = re.match(r"^\s*---\s*\n(.*?)\n---", content, flags=re.S)
                    try:
                        if m:
                            yaml.safe_load(m.group(1))
                    except yaml.YAMLError as e:
                        self._send(400, {"error": f"invalid YAML: {e}"})
                        return
                    self._send(200, {"errors": [], "warnings": []})
                    return
                if not self._authed():
                    return
                if path == "/api/repos/create":
                    req = json.loads(body)
                    kind = req.get("type") or "model"
                    repo_id = f"{req.get('organization') or hub.user}/{req['name']}"
                    ns = repo_id.split("/")[0]
                    if ns not in (hub.user, *hub.orgs):
                        self._send(403, {"error": "You don't have the rights to create a repo under this namespace"})
                        return
                    d = hub.repo_dir(kind, repo_id)
                    url = f"{hub.url}/{'' if kind == 'model' else kind + 's/'}{repo_id}"
                    if d.exists():
                        self._send(409, {"error": "You already created this repo", "url": url})
                        return
                    d.mkdir(parents=True)
                    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=d, check=True)
                    (d / ".gitattributes").write_text("# created by FakeHub\n")
                    subprocess.run([*GIT, "add", "-A"], cwd=d, check=True)
                    subprocess.run([*GIT, "commit", "-q", "-m", "initial commit"], cwd=d, check=True)
                    hub.created.append((kind, repo_id, req.get("visibility")))
                    self._send(200, {"url": url, "name": repo_id, "id": repo_id})
                    return
                m = re.match(r"^/api/(models|datasets)/([^/]+/[^/]+)/(preupload|commit)/([^/]+)$", path)
                if m:
                    kind, repo_id, what = m.group(1)[:-1], m.group(2), m.group(3)
                    d = hub.repo_dir(kind, repo_id)
                    if not d.is_dir():
                        self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                        return
                    if what == "preupload":
                        files = json.loads(body)["files"]
                        self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                   for f in files]})
                        return
                    if hub.fail_commits:
                        self._send(500, {"error": "commit failed (FakeHub.fail_commits)"})
                        return
                    lines = [json.loads(x) for x in body.splitlines() if x.strip()]
                    header = next(x["value"] for x in lines if x["key"] == "header")
                    files = {}
                    for x in lines:
                        if x["key"] != "file":
                            assert x["key"] == "header", f"FakeHub only accepts regular files, got {x['key']}"
                            continue
                        v = x["value"]
                        files[v["path"]] = base64.b64decode(v["content"])
                    for rel, data in files.items():
                        target = d / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                    subprocess.run([*GIT, "add", "-A"], cwd=d, check=True)
                    subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", header["summary"]], cwd=d, check=True)
                    sha = _head(d)
                    hub.commits.append({"repo_type": kind, "repo_id": repo_id, "message": header["summary"],
                                        "files": files})
                    prefix = "" if kind == "model" else kind + "s/"
                    self._send(200, {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{sha}", "commitOid": sha,
                                     "success": True})
                    return
                self._send(404, {"error": "not served by FakeHub"})

            def do_DELETE(self):
                hub.requests.append(("DELETE", self.path))
                body = self._body()
                if not self._authed():
                    return
                if self.path.split("?")[0] == "/api/repos/delete":
                    req = json.loads(body)
                    kind = req.get("type") or "model"
                    repo_id = f"{req.get('organization') or hub.user}/{req['name']}"
                    shutil.rmtree(hub.repo_dir(kind, repo_id), ignore_errors=True)
                    hub.deleted.append((kind, repo_id))
                    self._send(200, {})
                    return
                self._send(404, {"error": "not served by FakeHub"})

        return H


def _head(d: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=d, capture_output=True, text=True).stdout.strip()


# --- olah, the read side --------------------------------------------------------------------------------

def start_mirror(root: Path, timeout: float = 30.0) -> tuple[str, subprocess.Popen]:
    """Start olah serving ROOT/{models,datasets}/org/name in a subprocess. Returns (url, process).

    Raises RuntimeError with the server's output if it does not come up within `timeout` seconds.
    """
    port_file = Path(root).parent / f".olah-port-{os.getpid()}"
    port_file.unlink(missing_ok=True)
    log = open(Path(root).parent / "olah.log", "w")
    proc = subprocess.Popen([sys.executable, __file__, "olah", str(root), str(port_file)], stdout=log,
                            stderr=subprocess.STDOUT, cwd=Path(root).parent)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if port_file.is_file():
            return f"http://127.0.0.1:{port_file.read_text().strip()}", proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    log.close()
    raise RuntimeError(f"olah did not start within {timeout:.0f} s (exit code {proc.returncode}): "
                       + (Path(root).parent / "olah.log").read_text()[-2000:])


def _serve_olah(root: str, port_file: str) -> None:
    """olah with offline=true on a port chosen by the OS; the port is written to port_file once listening.

    Two fixes over olah 0.5.4's offline mode, both on the test server only: a file or folder absent from a
    mirrored repo answers 404 + `X-Error-Code: EntryNotFound` (olah answers 401, which the clients read as
    "repo not found": transformers then fails on the optional adapter_config.json and on the
    additional_chat_templates/ listing), and `/api/{type}/org/name` without a revision is answered for `main`
    (olah looks only in its upstream cache).
    """
    import logging
    import socket
    from urllib.parse import unquote

    import olah.server as srv
    import uvicorn
    from olah.configs import OlahConfig
    from olah.mirror.repos import LocalMirrorRepo
    from starlette.responses import Response

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    cfg = OlahConfig()
    cfg.host, cfg.port = "127.0.0.1", port
    cfg.mirror_netloc = cfg.mirror_lfs_netloc = f"127.0.0.1:{port}"
    cfg.mirrors_path = [root]
    cfg.offline = True
    cfg.repos_path = str(Path(root).parent / "olah-cache")
    log = logging.getLogger("olah")  # olah's own build_logger would hijack stdout/stderr
    srv.logger = log
    srv.app.state.logger = log
    srv.app.state.app_settings = srv.AppSettings(config=cfg)
    resolve = re.compile(r"^/(?:(datasets|models)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
    tree = re.compile(r"^/api/(datasets|models)/([^/]+)/([^/]+)/tree/([^/]+)/(.+)$")
    info = re.compile(r"^/api/(datasets|models)/([^/]+)/([^/]+)$")

    def missing(kind, org, name, rev, rel) -> bool:
        folder = os.path.join(root, kind or "models", org, name)
        if not os.path.isdir(folder):
            return False
        try:
            commit = LocalMirrorRepo(folder, kind or "models", org, name)._git_repo.commit(unquote(rev))
        except Exception:  # noqa: BLE001 - unknown revision: let olah answer
            return False
        try:
            commit.tree[unquote(rel).strip("/")]
        except KeyError:
            return True
        return False

    @srv.app.middleware("http")
    async def _offline_fixes(request, call_next):
        p = request.url.path
        if info.match(p):
            request.scope["path"] = p + "/revision/main"
        m = resolve.match(p) or tree.match(p)
        if m and missing(*m.groups()):
            return Response(status_code=404, headers={"X-Error-Code": "EntryNotFound",
                                                      "X-Error-Message": "Entry not found"})
        return await call_next(request)

    server = uvicorn.Server(uvicorn.Config(srv.app, log_level="warning"))
    tmp = port_file + ".tmp"
    Path(tmp).write_text(str(port))
    os.replace(tmp, port_file)
    server.run(sockets=[sock])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "olah":
        _serve_olah(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
