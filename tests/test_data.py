"""Datasets: shapes and ranges, the IDX path through torchvision, and the missing-data error."""

import struct

import pytest
import torch

from sigmavae.data import DatasetNotFoundError, data_root, load_dataset


def write_idx(folder, prefix, images):
    """The original MNIST IDX layout: big-endian magic, dims, then uint8 data."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">iiii", 0x803, n, h, w) + images.numpy().tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">ii", 0x801, n) + bytes(range(n)))


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_load_through_torchvision(tmp_path, name, folder):
    images = torch.randint(0, 256, (9, 28, 28), dtype=torch.uint8)
    write_idx(tmp_path / folder / "raw", "train", images[:5])
    write_idx(tmp_path / folder / "raw", "t10k", images[5:])
    x = load_dataset(name, "test", root=tmp_path)
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0] * 255, images[5:].float())
    assert load_dataset(name, "train", root=tmp_path).shape == (5, 1, 28, 28)


def test_missing_dataset_error_names_folder_files_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", "train", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg
    assert "SIGMAVAE_DATA" in msg


def test_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGMAVAE_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("SIGMAVAE_DATA")
    assert data_root().parts[-2:] == (".cache", "sigmavae")


def test_digits_and_synthetic():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.shape == (1500, 1, 28, 28) and test.shape == (297, 1, 28, 28)
    assert 0 <= float(train.min()) and float(train.max()) <= 1 and float(train.max()) > 0.9
    syn = load_dataset("synthetic", "train")
    assert syn.shape == (512, 1, 28, 28) and 0 <= float(syn.min()) and float(syn.max()) <= 1
    torch.testing.assert_close(syn, load_dataset("synthetic", "train"), rtol=0, atol=0)
    assert not torch.equal(syn[:128], load_dataset("synthetic", "test"))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("digits", "val")
