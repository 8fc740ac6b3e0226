import os
import tempfile

import pytest
import torch

# The tests compare with mathematics at fp32 tolerances: they run the fp32 path unless a test asks
# for bf16 (tests/test_precision.py), whatever CPU CI lands on. Subprocesses (the CLI, notebooks)
# inherit it.
os.environ.setdefault("SIGMAVAE_PRECISION", "fp32")
# The tests compute what they check, and what they compute never lands in the repository's
# evidence store: each test has a store of its own, empty when it starts (below).
os.environ.setdefault("SIGMAVAE_EVIDENCE", tempfile.mkdtemp(prefix="sigmavae-evidence-"))


@pytest.fixture(autouse=True)
def _own_evidence_store(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SIGMAVAE_EVIDENCE", str(tmp_path_factory.mktemp("evidence")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: on two busy cores one thread is several times faster, and
    a run compared bit for bit with another must use the same thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
