"""The hub download path of `resolve_base_model` against a local Hugging Face hub: a real HTTP server on
127.0.0.1 serving a tiny random BERT as the model repo "org/tiny-bert". huggingface_hub runs unpatched in a
subprocess pointed at that server (HF_ENDPOINT) with its own cache (HF_HOME). No network."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from sentimentkit.models.pipeline import sha256_file
from sentimentkit.training.transformer import HUB_ALLOW_PATTERNS
from tests.conftest import build_tiny_bert, write_tiny_splits

torch = pytest.importorskip(
    "torch", reason="needs the [transformer] extra: pip install -r requirements-transformer.txt"
)
pytest.importorskip("transformers", reason="needs the [transformer] extra (transformers)")
pytest.importorskip("huggingface_hub", reason="the hub download path needs huggingface_hub")
pytest.importorskip("tokenizers", reason="needs the tokenizers library")

REPO = "org/tiny-bert"
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the fake repo's only commit
# Served by the fake repo but outside resolve_base_model's allow_patterns: must not be downloaded.
EXTRA_FILES = {
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    "README.md": b"# tiny\n",
}
BASE_FILES = {"model.safetensors", "config.json", "tokenizer.json", "vocab.txt"}  # what tiny_base holds
LFS_SUFFIXES = (".safetensors",)  # served like the hub serves LFS files (sha256 ETag, lfs entry in the tree)

# Runs in the subprocess: resolve each (base_model, expected_sha256) in argv, print one JSON line per call.
RESOLVE_SCRIPT = """
import json, sys
from sentimentkit.models.pipeline import ModelError
from sentimentkit.training.transformer import resolve_base_model
for name, expected in json.loads(sys.argv[1]):
    try:
        folder, provenance = resolve_base_model(name, expected)
        print(json.dumps({"folder": str(folder), "provenance": provenance}))
    except ModelError as exc:
        print(json.dumps({"error": str(exc)}))
"""


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with a vocabulary of the inline texts' words."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@dataclass
class FakeHub:
    """A local hub serving one model repo at one commit; `requests` logs (method, path) of every request."""

    url: str
    files: dict[str, bytes]
    requests: list[tuple[str, str]] = field(default_factory=list)

    def fetched(self) -> set[str]:
        """Files whose bytes were sent (GET on /{repo}/resolve/{commit}/{file})."""
        prefix = f"/{REPO}/resolve/{COMMIT}/"
        return {p.removeprefix(prefix) for m, p in self.requests if m == "GET" and p.startswith(prefix)}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    """The endpoints snapshot_download (as of huggingface_hub 2.4) calls, and nothing else.

    - GET /api/models/{repo}/revision/{rev}: repo info; only `sha` (the commit) is needed.
    - GET /api/models/{repo}/tree/{commit}?recursive=...: the file listing (no `xetHash`, so no xet).
    - HEAD /{repo}/resolve/{commit}/{file}: X-Repo-Commit, ETag and Content-Length (no X-Xet-* headers,
      so huggingface_hub falls back to a plain HTTP GET).
    - GET /{repo}/resolve/{commit}/{file}: the bytes.
    Anything else: 404 with the hub's X-Error-Code (RepoNotFound / EntryNotFound / RevisionNotFound).
    """

    def etag(name: str) -> str:
        data = hub.files[name]
        return hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else git_blob_sha1(data)

    def tree_entry(name: str) -> dict[str, object]:
        data = hub.files[name]
        entry: dict[str, object] = {
            "type": "file",
            "path": name,
            "size": len(data),
            "oid": git_blob_sha1(data),
        }
        if name.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": etag(name), "size": len(data), "pointerSize": 134}
        return entry

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

        def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_json(self, payload: object) -> None:
            self.send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def not_found(self, code: str) -> None:
            self.send(
                404, json.dumps({"error": code}).encode(), {"X-Error-Code": code, "X-Error-Message": code}
            )

        def route(self) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path))
            api, resolve = f"/api/models/{REPO}/", f"/{REPO}/resolve/"
            if self.command == "GET" and path.startswith(api):
                kind, _, rev = path.removeprefix(api).partition("/")
                if rev not in ("main", COMMIT):
                    return self.not_found("RevisionNotFound")
                if kind == "revision":
                    siblings = [{"rfilename": name} for name in sorted(hub.files)]
                    return self.send_json({"id": REPO, "modelId": REPO, "sha": COMMIT, "siblings": siblings})
                if kind == "tree":
                    return self.send_json([tree_entry(name) for name in sorted(hub.files)])
            elif path.startswith(resolve):
                rev, _, name = path.removeprefix(resolve).partition("/")
                if rev not in ("main", COMMIT):
                    return self.not_found("RevisionNotFound")
                if name not in hub.files:
                    return self.not_found("EntryNotFound")
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag(name)}"', "Accept-Ranges": "bytes",
                           "Content-Type": "application/octet-stream"}  # fmt: skip
                return self.send(200, hub.files[name], headers)
            return self.not_found("RepoNotFound")

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.route()

        def do_HEAD(self) -> None:  # noqa: N802
            self.route()

    return Handler


@pytest.fixture(scope="module")
def server(tiny_base: Path) -> Iterator[FakeHub]:
    """The tiny BERT folder (plus files outside the allow patterns) served as REPO on 127.0.0.1."""
    files = {p.name: p.read_bytes() for p in tiny_base.iterdir() if p.is_file()} | EXTRA_FILES
    fake = FakeHub(url="", files=files)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def hub(server: FakeHub) -> FakeHub:
    """The local hub with an empty request log."""
    server.requests.clear()
    return server


def hub_env(hub: FakeHub, home: Path) -> dict[str, str]:
    """The environment minus any HF/proxy settings, pointed at the local hub with an empty cache."""
    drop = ("HF_", "HUGGING", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")  # fmt: skip
    return env


def resolve_in_subprocess(hub: FakeHub, tmp_path: Path, *calls: tuple[str, str | None]) -> list[dict]:
    """resolve_base_model(name, expected) for each call in a fresh interpreter; one result dict per call."""
    proc = subprocess.run([sys.executable, "-c", RESOLVE_SCRIPT, json.dumps(calls)], cwd=tmp_path,
                          env=hub_env(hub, tmp_path / "hf-home"), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_hub_id_is_downloaded_over_http_and_hashed(hub: FakeHub, tiny_base: Path, tmp_path: Path) -> None:
    (result,) = resolve_in_subprocess(hub, tmp_path, (REPO, None))
    assert "error" not in result, result["error"]
    folder = Path(result["folder"])
    # The hub cache layout under the isolated HF_HOME, at the server's commit.
    assert folder == tmp_path / "hf-home" / "hub" / "models--org--tiny-bert" / "snapshots" / COMMIT
    assert {p.name for p in folder.iterdir()} >= BASE_FILES
    assert not (folder / "README.md").exists() and not (folder / ".gitattributes").exists()
    for name in BASE_FILES:
        assert (folder / name).read_bytes() == (tiny_base / name).read_bytes()
    local_sha = sha256_file(tiny_base / "model.safetensors")
    assert result["provenance"] == {"name": REPO, "weights_file": "model.safetensors", "sha256": local_sha,
                                    "verified": False, "official": None}  # fmt: skip
    # Really over HTTP: repo info, tree listing, then HEAD + GET per allowed file and nothing else.
    assert hub.requests[:2] == [("GET", f"/api/models/{REPO}/revision/main"),
                                ("GET", f"/api/models/{REPO}/tree/{COMMIT}")]  # fmt: skip
    allowed = {name for name in hub.files if any(fnmatch(name, pattern) for pattern in HUB_ALLOW_PATTERNS)}
    assert allowed >= BASE_FILES and hub.fetched() == allowed
    assert sorted(p for m, p in hub.requests if m == "HEAD") == sorted(
        f"/{REPO}/resolve/{COMMIT}/{name}" for name in allowed
    )
    assert len(hub.requests) == 2 + 2 * len(allowed)


@dataclass
class Calls:
    """Results of resolve_in_subprocess by call name, and the requests the hub saw during them."""

    results: dict[str, dict]
    requests: list[tuple[str, str]]


@pytest.fixture(scope="module")
def refusals(server: FakeHub, tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Calls:
    """One fresh interpreter and cache, three calls: a wrong expected hash (downloads, then refuses), the
    right one (served from the cache just filled), and a repo the hub does not have."""
    server.requests.clear()
    local_sha = sha256_file(tiny_base / "model.safetensors")
    calls = {"wrong": (REPO, "0" * 64), "right": (REPO, local_sha.upper()), "missing": ("org/missing", None)}
    results = resolve_in_subprocess(server, tmp_path_factory.mktemp("refusals"), *calls.values())
    return Calls(dict(zip(calls, results, strict=True)), list(server.requests))


def test_downloaded_weights_with_another_sha256_are_refused(refusals: Calls) -> None:
    assert (
        "Refusing base model org/tiny-bert: model.safetensors has SHA-256"
        in refusals.results["wrong"]["error"]
    )
    # Refused after downloading and hashing the weights, not before.
    assert ("GET", f"/{REPO}/resolve/{COMMIT}/model.safetensors") in refusals.requests


def test_a_matching_expected_sha256_is_verified(refusals: Calls, tiny_base: Path) -> None:
    provenance = refusals.results["right"]["provenance"]
    assert provenance["verified"] is True and provenance["official"] is None
    assert provenance["sha256"] == sha256_file(tiny_base / "model.safetensors")
    # The second call found the files in the cache: each was fetched once over both calls.
    log = refusals.requests
    assert log.count(("GET", f"/{REPO}/resolve/{COMMIT}/model.safetensors")) == 1
    assert log.count(("GET", f"/api/models/{REPO}/revision/main")) == 2


def test_a_repo_the_hub_does_not_have_gives_a_clear_error(refusals: Calls) -> None:
    error = refusals.results["missing"]["error"]
    assert "org/missing is not a local folder and could not be fetched from the Hugging Face hub" in error
    assert "RepositoryNotFoundError" in error
    assert [r for r in refusals.requests if "org/missing" in r[1]] == [
        ("GET", "/api/models/org/missing/revision/main")
    ]


def test_cli_trains_from_a_hub_id(hub: FakeHub, tiny_base: Path, tmp_path: Path) -> None:
    data = write_tiny_splits(tmp_path / "data")
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "sentimentkit", "train-transformer", "--base-model", REPO, "--data", str(data),
           "--out", str(out), "--epochs", "1", "--threads", "1", "--batch-size", "8", "--max-length", "32"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=hub_env(hub, tmp_path / "hf-home"), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["base_model"]["name"] == REPO
    assert card["base_model"]["sha256"] == sha256_file(tiny_base / "model.safetensors")
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= {p.name for p in out.iterdir()}
    assert "model.safetensors" in hub.fetched()
