"""ReleaseIndex against a package index served on loopback, with real range requests."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools.hf import release_index
from tools.hf.release_index import IndexUnavailable, ReleaseIndex

RELEASES = {"1.0.0": [], "1.1.0": [], "1.2.0": ["newmodel"], "1.3.0": ["newmodel"], "2.0.0rc1": ["other"]}


def _wheel(models: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("transformers/__init__.py", "x" * 50_000)  # padding before the directory
        for m in ["llama", *models]:
            zf.writestr(f"transformers/models/{m}/__init__.py", "")
    return buf.getvalue()


class _Index(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path == "/pypi/transformers/json":
            body = json.dumps({"releases": {
                v: [{"packagetype": "bdist_wheel", "url": f"/files/{v}.whl", "size": len(_wheel(m))}]
                for v, m in RELEASES.items()}}).encode()
            self.send_response(200)
        elif self.path.startswith("/files/"):
            data = _wheel(RELEASES[self.path[7:-4]])
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=-"):
                body = data[-int(rng[7:]):]
                self.send_response(206)
            else:
                body = data
                self.send_response(200)
        else:
            body = b"not found"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def index(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(release_index, "INDEX_URL", f"http://127.0.0.1:{server.server_port}/pypi/{{name}}/json")
    _Index.requests = []
    yield _Index
    server.shutdown()


def test_finds_first_release_and_skips_prereleases(index, tmp_path):
    ri = ReleaseIndex(tmp_path)
    assert ri.first_release_with("newmodel") == "1.2.0"
    assert ri.first_release_with("llama") == "1.0.0"
    # only in a pre-release: not a release a MIN version may name
    assert ri.first_release_with("other") is None


def test_reads_only_the_tail_and_caches(index, tmp_path):
    ReleaseIndex(tmp_path).first_release_with("newmodel")
    fetched = [p for p in index.requests if p.startswith("/files/")]
    assert fetched and len(fetched) <= 3
    index.requests = []
    ReleaseIndex(tmp_path).first_release_with("newmodel")
    assert not [p for p in index.requests if p.startswith("/files/")]


def test_unreachable_index_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(release_index, "INDEX_URL", "http://127.0.0.1:9/pypi/{name}/json")
    with pytest.raises(IndexUnavailable, match="unreachable"):
        ReleaseIndex(tmp_path, timeout=2).first_release_with("x")


def test_min_version_looks_up_the_module_directory_not_the_model_type(monkeypatch, tmp_path):
    import tools.targets.optimum_intel.target as oi
    from tools.targets import get_target

    asked = []

    class Index:
        def __init__(self, cache_dir):
            pass

        def first_release_with(self, module_dir):
            asked.append(module_dir)
            return "4.0.0" if module_dir == "bert_generation" else None

    monkeypatch.setattr(oi, "ReleaseIndex", Index)
    version, why = get_target("optimum-intel", tmp_path)._lookup_version("bert-generation")
    assert asked == ["bert_generation"] and version == "4.0.0" and "first transformers release" in why
