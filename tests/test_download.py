"""recbench.download against a local HTTP server: resume, retries, checksums, unpacking."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recbench import download as dl
from recbench.errors import DataError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        path = self.path.split("?")[0]
        srv.requests.append({"path": path, "range": self.headers.get("Range")})
        if path in srv.status:
            body = b"nope"
            self.send_response(srv.status[path])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path not in srv.files:
            self.send_error(404)
            return
        data = srv.files[path]
        start = 0
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = srv.drop_after.pop(path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)


class LocalServer:
    """http.server on 127.0.0.1 with knobs: drop after N bytes once, ignore Range, fail."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files = {}
        self.httpd.status = {}
        self.httpd.drop_after = {}
        self.httpd.ignore_range = False
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.httpd.requests

    def add(self, path: str, data: bytes) -> str:
        self.httpd.files[path] = data
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(dl, "BACKOFF_S", 0.0)


def payload(n: int = 300_000) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# -- transfers ----------------------------------------------------------------------------


def test_download_completes_and_verifies(server, tmp_path):
    data = payload()
    url = server.add("/f.bin", data)
    out = dl.download_file(url, tmp_path / "sub" / "f.bin", sha(data), progress=False, chunk=4096)
    assert out.read_bytes() == data
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert server.requests[0]["range"] is None


def test_resume_after_dropped_connection(server, tmp_path):
    data = payload()
    url = server.add("/f.bin", data)
    server.httpd.drop_after["/f.bin"] = 100_000
    out = dl.download_file(url, tmp_path / "f.bin", sha(data), progress=False, chunk=4096, timeout=5)
    assert len(server.requests) == 2
    assert server.requests[1]["range"] == "bytes=100000-"
    assert sha(out.read_bytes()) == sha(data)


def test_resume_from_part_left_by_earlier_run(server, tmp_path):
    data = payload()
    url = server.add("/f.bin", data)
    (tmp_path / "f.bin.part").write_bytes(data[:12345])
    dl.download_file(url, tmp_path / "f.bin", sha(data), progress=False)
    assert server.requests[0]["range"] == "bytes=12345-"
    assert (tmp_path / "f.bin").read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = payload()
    url = server.add("/f.bin", data)
    server.httpd.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"x" * 5000)  # would corrupt the file if appended to
    dl.download_file(url, tmp_path / "f.bin", sha(data), progress=False)
    assert server.requests[0]["range"] == "bytes=5000-"
    assert (tmp_path / "f.bin").read_bytes() == data


def test_416_on_complete_part_finishes(server, tmp_path):
    data = payload(5000)
    url = server.add("/f.bin", data)
    (tmp_path / "f.bin.part").write_bytes(data)
    dl.download_file(url, tmp_path / "f.bin", sha(data), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert not (tmp_path / "f.bin.part").exists()


def test_416_on_oversized_part_restarts(server, tmp_path):
    data = payload(5000)
    url = server.add("/f.bin", data)
    (tmp_path / "f.bin.part").write_bytes(b"y" * 9000)
    dl.download_file(url, tmp_path / "f.bin", sha(data), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.requests[-1]["range"] is None


def test_sha256_mismatch_raises_and_leaves_nothing(server, tmp_path):
    data = payload(4000)
    url = server.add("/f.bin", data)
    wrong = "0" * 64
    with pytest.raises(DataError) as exc:
        dl.download_file(url, tmp_path / "f.bin", wrong, progress=False)
    msg = str(exc.value)
    assert "f.bin" in msg and wrong in msg and sha(data) in msg
    assert not (tmp_path / "f.bin").exists()
    assert not (tmp_path / "f.bin.part").exists()


@pytest.mark.parametrize("code", [404, 500, 403])
def test_http_errors_are_clear(server, tmp_path, code):
    server.httpd.status["/gone"] = code
    url = server.url("/gone")
    with pytest.raises(DataError) as exc:
        dl.download_file(url, tmp_path / "g.bin", progress=False, retries=2)
    msg = str(exc.value)
    assert str(code) in msg and url in msg
    assert "\n" not in msg
    assert not (tmp_path / "g.bin").exists()
    if code == 500:
        assert len(server.requests) == 2  # retried
    else:
        assert len(server.requests) == 1  # not worth retrying


def test_connection_refused_is_a_data_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match="could not download"):
        dl.download_file(f"http://127.0.0.1:{port}/x", tmp_path / "x", progress=False, retries=2, timeout=2)


# -- archives -----------------------------------------------------------------------------


def test_zip_unpack_flattens_single_top_folder(tmp_path):
    archive = tmp_path / "ml.zip"
    archive.write_bytes(make_zip({
        "ml-latest-small/ratings.csv": "userId,movieId,rating,timestamp\n",
        "ml-latest-small/movies.csv": "movieId,title,genres\n",
        "__MACOSX/ml-latest-small/._ratings.csv": "junk",
    }))
    target = tmp_path / "movielens"
    placed = dl.unpack_archive(archive, target)
    assert sorted(p.name for p in placed) == ["movies.csv", "ratings.csv"]
    assert (target / "ratings.csv").read_text().startswith("userId")
    assert not (target / "ml-latest-small").exists()
    assert not any(p.name.startswith(".unpack-") for p in target.iterdir())


def test_zip_with_several_top_entries_is_not_flattened(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a/x.txt": "1", "b.txt": "2"}))
    dl.unpack_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "x.txt").exists() and (tmp_path / "out" / "b.txt").exists()


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/recbench-evil.txt", "ok/../../evil.txt", "..\\evil.txt"])
def test_zip_slip_is_rejected(tmp_path, evil):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(make_zip({"fine.txt": "ok", evil: "pwned"}))
    target = tmp_path / "deep" / "target"
    with pytest.raises(DataError, match="refusing"):
        dl.unpack_archive(archive, target)
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "fine.txt").exists()  # nothing is placed from an unsafe archive


def test_tar_gz_unpack_and_link_rejection(tmp_path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        for name, data in {"MINDsmall_train/news.tsv": b"n", "MINDsmall_train/behaviors.tsv": b"b"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    dl.unpack_archive(good, tmp_path / "mind")
    assert (tmp_path / "mind" / "news.tsv").read_bytes() == b"n"

    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="refusing"):
        dl.unpack_archive(bad, tmp_path / "x")


def test_download_scenario_unpacks_and_skips_when_present(server, tmp_path, monkeypatch):
    from recbench.scenarios import RemoteFile
    from recbench.scenarios.movielens import MovieLensSource

    data = make_zip({"ml-latest-small/ratings.csv": "userId,movieId,rating,timestamp\n",
                     "ml-latest-small/movies.csv": "movieId,title,genres\n"})
    url = server.add("/ml.zip", data)
    monkeypatch.setattr(MovieLensSource, "downloads", (RemoteFile(url, "ml.zip", sha256=sha(data), unpack=True),))
    paths = dl.download_scenario("movielens", tmp_path, progress=False, log=lambda m: None)
    assert {p.name for p in paths} == {"ratings.csv", "movies.csv"}
    assert (tmp_path / "movielens" / "ratings.csv").is_file()
    n = len(server.requests)
    again = dl.download_scenario("movielens", tmp_path, progress=False, log=lambda m: None)
    assert len(server.requests) == n  # already present: no new request
    assert {p.name for p in again} == {"ratings.csv", "movies.csv"}
    dl.download_scenario("movielens", tmp_path, force=True, progress=False, log=lambda m: None)
    assert len(server.requests) == n + 1


def test_download_scenario_needs_a_root(monkeypatch):
    monkeypatch.delenv("RECBENCH_DATA", raising=False)
    with pytest.raises(DataError, match="--raw-dir"):
        dl.download_scenario("movielens", None, progress=False)
