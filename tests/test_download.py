"""Downloads and damaged files, with no network but 127.0.0.1: torchvision fetches a small MNIST from
a local HTTP server; a failed download, a checksum mismatch, a truncated or corrupt IDX file and a
corrupt CelebA cache each stop with one line that names the URL or file and the remedy."""

import contextlib
import functools
import gzip
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
import tempfile
import threading
from pathlib import Path

import pytest
import torch
import torchvision

from sigmavae import cli
from sigmavae.data import CorruptDatasetError, DatasetNotFoundError, load_dataset, load_labels

ROOT = Path(__file__).parents[1]
IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
N_TRAIN, N_TEST = 2000, 100  # few test images: the Figure 3 score ranks every pixel of each, 50 times


def _idx_files_from_digits(folder: Path) -> Path:
    """Where the original MNIST is not on the machine: valid IDX files under MNIST's names, made
    from scikit-learn's bundled digits (28×28, uint8; the training images repeated to 2000)."""
    from sigmavae.data import load_dataset, load_labels

    folder.mkdir(parents=True, exist_ok=True)
    for split, prefix, n in (("train", "train", N_TRAIN), ("test", "t10k", N_TEST)):
        x, y = load_dataset("digits", split, dtype=torch.uint8), load_labels("digits", split)
        reps = -(-n // len(x))
        x, y = x.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n]
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">iiii", 2051, n, 28, 28) + x.numpy().tobytes())
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">ii", 2049, n) + y.to(torch.uint8).numpy().tobytes())
    return folder


def _real_mnist() -> Path:
    """The original MNIST IDX files: $SIGMAVAE_DATA/MNIST/raw, else the shared data folder beside
    the repository (CI's copy), else IDX files made from the bundled digits."""
    for folder in (Path(os.environ.get("SIGMAVAE_DATA", "/nonexistent")) / "MNIST" / "raw",
                   ROOT.parent / "shared" / "data" / "MNIST" / "raw"):
        if all((folder / f).is_file() for f in IDX):
            return folder
    return _idx_files_from_digits(Path(tempfile.mkdtemp(prefix="sigmavae-idx-")) / "MNIST" / "raw")


REAL = _real_mnist()


def _count(name: str) -> int:
    """How many images (or labels) REAL's IDX file ``name`` holds, from its header: 60000 for the
    original training split, N_TRAIN for the files made from the bundled digits."""
    with open(REAL / name, "rb") as fh:
        return struct.unpack(">ii", fh.read(8))[1]


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch):
    """urllib (here and in a notebook's kernel) goes to 127.0.0.1 directly, anywhere else through
    a proxy that is not there: nothing can leave the machine even if a mirror were not patched."""
    closed = f"http://127.0.0.1:{_closed_port()}"
    for var in ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy"):
        monkeypatch.setenv(var, closed)
        monkeypatch.setenv(var.upper(), closed)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)


@pytest.fixture(scope="module")
def small_mnist_gz(tmp_path_factory):
    """The first 2000 training and 100 test images and labels of the real MNIST as valid IDX files,
    gzip-compressed under torchvision's names; returns (folder, {name.gz: md5})."""
    folder = tmp_path_factory.mktemp("mnist-gz")
    md5s = {}
    for name in IDX:
        n = N_TRAIN if name.startswith("train") else N_TEST
        header = 16 if "images" in name else 8
        with open(REAL / name, "rb") as fh:
            head = bytearray(fh.read(header))
            body = fh.read(n * (784 if "images" in name else 1))
        head[4:8] = struct.pack(">i", n)  # the count; magic (and rows, cols) as in the original
        data = gzip.compress(bytes(head) + body, mtime=0)
        (folder / f"{name}.gz").write_bytes(data)
        md5s[f"{name}.gz"] = hashlib.md5(data).hexdigest()
    return folder, md5s


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # not on stderr: the CLI tests read stderr
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up early: not on stderr
        pass


@contextlib.contextmanager
def serve(directory):
    """A ThreadingHTTPServer for ``directory`` on 127.0.0.1 (a free port) in a daemon thread;
    yields (base URL, list of the paths it was asked for); shut down on exit."""
    requested = []

    class Handler(_Handler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

    handler = functools.partial(Handler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def mnist_server(small_mnist_gz, monkeypatch):
    """torchvision's MNIST mirrors and checksums pointed at the local server of the small files."""
    folder, md5s = small_mnist_gz
    with serve(folder) as (url, requested):
        monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
        monkeypatch.setattr(torchvision.datasets.MNIST, "resources", list(md5s.items()))
        yield url, requested


def _real_images(name: str, n: int) -> torch.Tensor:
    with open(REAL / name, "rb") as fh:
        fh.seek(16)
        return torch.frombuffer(bytearray(fh.read(n * 784)), dtype=torch.uint8).view(n, 1, 28, 28)


def _copy_real(root: Path) -> Path:
    """The four real IDX files copied (writable) into ``root/MNIST/raw``."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX:
        shutil.copyfile(REAL / name, raw / name)
    return raw


def _train_cli(root: Path, out: Path, download: bool) -> list[str]:
    return ["train", "--dataset", "mnist", "--data-root", str(root), *(["--download"] if download else []),
            "--epochs1", "1", "--epochs2", "0", "--out", str(out), "--device", "cpu", "--quiet"]


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ----------------------------------------------------------------------------- downloads


def test_download_from_a_mirror_then_offline(mnist_server, tmp_path, monkeypatch):
    url, requested = mnist_server
    root = tmp_path / "empty"
    x = load_dataset("mnist", "train", root=root, download=True, dtype=torch.uint8)
    assert x.shape == (N_TRAIN, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(x, _real_images("train-images-idx3-ubyte", N_TRAIN))
    assert set(requested) == {f"/{name}.gz" for name in IDX}  # (torchvision asks twice: redirects, file)
    raw = root / "MNIST" / "raw"
    assert all((raw / name).is_file() for name in IDX)
    assert (raw / "t10k-images-idx3-ubyte").stat().st_size == 16 + N_TEST * 784
    # offline now: the mirror is a closed port, and download=False must not need it anyway
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{_closed_port()}/"])
    served = len(requested)
    again = load_dataset("mnist", "train", root=root, download=False, dtype=torch.uint8)
    assert torch.equal(again, x)
    assert len(requested) == served
    test = load_dataset("mnist", "test", root=root, download=False)
    assert test.shape == (N_TEST, 1, 28, 28)
    torch.testing.assert_close(test * 255, _real_images("t10k-images-idx3-ubyte", N_TEST).float())
    with open(REAL / "t10k-labels-idx1-ubyte", "rb") as fh:
        fh.seek(8)
        labels = torch.frombuffer(bytearray(fh.read(N_TEST)), dtype=torch.uint8).long()
    assert torch.equal(load_labels("mnist", "test", root=root, download=False), labels)


def test_failed_download_is_one_line_naming_the_urls(small_mnist_gz, tmp_path, monkeypatch, capsys):
    folder, md5s = small_mnist_gz
    with serve(folder) as (url, requested):
        refused = f"http://127.0.0.1:{_closed_port()}/"
        missing = f"{url}nothing-here/"  # the server answers 404
        monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [missing, refused])
        monkeypatch.setattr(torchvision.datasets.MNIST, "resources", list(md5s.items()))
        root = tmp_path / "empty"
        code = cli.main(_train_cli(root, tmp_path / "r", download=True))
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("sigmavae train: error: ")
    assert f"{missing}train-images-idx3-ubyte.gz" in line and "404" in line
    assert f"{refused}train-images-idx3-ubyte.gz" in line and "refused" in line.lower()
    assert str(root / "MNIST" / "raw") in line and "--data-root" in line and "proxy" in line
    assert "/nothing-here/train-images-idx3-ubyte.gz" in requested
    assert not (tmp_path / "r" / "model.pt").exists()


def test_checksum_mismatch_says_so(small_mnist_gz, mnist_server, tmp_path, monkeypatch):
    url, _ = mnist_server
    _, md5s = small_mnist_gz
    wrong = {**md5s, "train-labels-idx1-ubyte.gz": "0" * 32}
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", list(wrong.items()))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", "train", root=tmp_path, download=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert "checksum mismatch" in msg and "0" * 32 in msg
    assert f"{url}train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg


class _CutShort(_Handler):
    """Promises 100,000 bytes, sends 100 and hangs up."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + b"\0" * 98)
        self.close_connection = True


class _NotHttp(_Handler):
    """Answers with a line that is not an HTTP status line: http.client's BadStatusLine, which
    neither urllib nor torchvision catches."""

    def handle_one_request(self):
        self.rfile.readline()
        self.wfile.write(b"SSH-2.0-OpenSSH\r\n")
        self.close_connection = True


@pytest.mark.parametrize("handler,reason", [(_CutShort, "checksum mismatch"), (_NotHttp, "SSH-2.0-OpenSSH")],
                         ids=["cut-short", "not-http"])
def test_a_broken_server_is_a_download_error(small_mnist_gz, tmp_path, monkeypatch, handler, reason):
    _, md5s = small_mnist_gz
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
        monkeypatch.setattr(torchvision.datasets.MNIST, "resources", list(md5s.items()))
        with pytest.raises(DatasetNotFoundError) as err:
            load_dataset("mnist", "train", root=tmp_path, download=True)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    msg = str(err.value)
    assert "\n" not in msg and f"{url}train-images-idx3-ubyte.gz ({reason}" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg and "--data-root" in msg


# ----------------------------------------------------------------------------- damaged files


def test_truncated_idx_file_is_refused_naming_it(tmp_path, capsys):
    raw = _copy_real(tmp_path)
    images = raw / "train-images-idx3-ubyte"
    os.truncate(images, 16 + 1000 * 784 + 5)
    with pytest.raises(CorruptDatasetError) as err:
        load_dataset("mnist", "train", root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{images} is truncated or corrupt")
    n = _count(images.name)
    assert f"expected {16 + n * 784} bytes for {n} 28×28 images, found {16 + 1000 * 784 + 5}" in msg
    assert "delete it" in msg and "--download" in msg
    with pytest.raises(CorruptDatasetError, match="truncated or corrupt"):  # the test split: all four checked
        load_dataset("mnist", "test", root=tmp_path)
    with pytest.raises(CorruptDatasetError):  # a download would not replace it: refused before any
        load_dataset("mnist", "train", root=tmp_path, download=True)
    code = cli.main(_train_cli(tmp_path, tmp_path / "r", download=False))
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert str(images) in line and "delete" in line


def test_wrong_magic_number_and_truncated_labels(tmp_path, capsys):
    raw = _copy_real(tmp_path)
    images = raw / "t10k-images-idx3-ubyte"
    with open(images, "r+b") as fh:
        fh.write(struct.pack(">i", 2049))  # a labels file's magic number
    with pytest.raises(CorruptDatasetError) as err:
        load_dataset("mnist", "test", root=tmp_path)
    msg = str(err.value)
    assert str(images) in msg and "magic number 2049" in msg and "expected 2051" in msg and "delete" in msg
    shutil.copyfile(REAL / images.name, images)
    labels = raw / "train-labels-idx1-ubyte"
    n = _count(labels.name)
    os.truncate(labels, 8 + n - 1)
    with pytest.raises(CorruptDatasetError) as err:
        load_labels("mnist", "train", root=tmp_path)
    assert str(err.value).startswith(
        f"{labels} is truncated or corrupt (expected {8 + n} bytes for {n} labels, found {8 + n - 1})")
    labels.write_bytes(b"\x00\x00")  # shorter than the header
    code = cli.main(_train_cli(tmp_path, tmp_path / "r", download=False))
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert str(labels) in line and "found 2 bytes" in line


def test_images_and_labels_that_disagree_on_the_count(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 5), ("t10k", 3)):
        images = struct.pack(">iiii", 2051, n, 28, 28) + bytes(n * 784)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n - 1) + bytes(n - 1))
    with pytest.raises(CorruptDatasetError) as err:
        load_dataset("mnist", "train", root=tmp_path)
    assert "holds 5 images but" in str(err.value) and "holds 4 labels" in str(err.value)


def test_gzip_file_under_the_idx_name(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    idx = struct.pack(">iiii", 2051, 1, 28, 28) + bytes(784)
    (raw / "train-images-idx3-ubyte").write_bytes(gzip.compress(idx))
    with pytest.raises(CorruptDatasetError, match="gzip-compressed.*gunzip"):
        load_dataset("mnist", "train", root=tmp_path)


def test_corrupt_celeba_cache_is_refused_naming_it(tmp_path):
    folder = tmp_path / "celeba"
    folder.mkdir()
    cache = folder / "celeba128-train.pt"
    torch.save(torch.zeros(4, 3, 128, 128, dtype=torch.uint8), cache)
    assert load_dataset("celeba", "train", root=tmp_path, dtype=torch.uint8).shape == (4, 3, 128, 128)
    os.truncate(cache, cache.stat().st_size // 2)
    with pytest.raises(CorruptDatasetError) as err:
        load_dataset("celeba", "train", root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{cache} is truncated or corrupt (torch.load failed") and "delete it" in msg
    assert "\n" not in msg
    cache.write_bytes(b"not a torch file")
    with pytest.raises(CorruptDatasetError, match="truncated or corrupt"):
        load_dataset("celeba", "train", root=tmp_path)
    torch.save(torch.zeros(2, 3, 64, 64), cache)
    with pytest.raises(CorruptDatasetError,
                       match=r"not a CelebA cache .*torch.float32 tensor of shape \[2, 3, 64, 64\]"):
        load_dataset("celeba", "train", root=tmp_path)


# ----------------------------------------------------------------------------- notebooks


@pytest.mark.slow
def test_notebook_downloads_through_its_kernel(mnist_server, small_mnist_gz, tmp_path, monkeypatch):
    """papermill's kernel is another process: a sitecustomize.py first on its PYTHONPATH points
    its torchvision at the local server (and says so in a file, so that a test that passed cannot
    have fetched from anywhere else)."""
    import papermill

    url, requested = mnist_server
    _, md5s = small_mnist_gz
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "sitecustomize-ran"
    (site / "sitecustomize.py").write_text(
        "import pathlib\n"
        "import torchvision.datasets\n"
        f"torchvision.datasets.MNIST.mirrors = [{url!r}]\n"
        f"torchvision.datasets.MNIST.resources = {list(md5s.items())!r}\n"
        f"pathlib.Path({str(marker)!r}).write_text({url!r})\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("SIGMAVAE_DATA", raising=False)
    root, results = tmp_path / "empty_root", tmp_path / "results"
    params = {"profile": "smoke", "dataset": "mnist", "download": True, "data_root": str(root),
              "cache_dir": str(tmp_path / "cache"), "results_dir": str(results), "device": "cpu"}
    papermill.execute_notebook(str(ROOT / "notebooks" / "figure3_4.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters=params, kernel_name="python3", progress_bar=False)
    assert marker.read_text() == url
    assert set(requested) == {f"/{name}.gz" for name in IDX}
    assert all((root / "MNIST" / "raw" / name).is_file() for name in IDX)
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 16 + N_TRAIN * 784
    saved = json.loads((results / "figure3_4-mnist.json").read_text())
    assert saved["parameters"]["dataset"] == "mnist" and saved["seeds"] == [0]
    assert saved["parameters"]["epochs1"] == 1 and saved["parameters"]["epochs2"] == 1

