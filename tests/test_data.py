import gzip
import socket
import time

import numpy as np
import pytest
import torch

from snncli import data
from snncli.data import batches, load_split, normalise
from snncli.errors import DataError

from conftest import fake_downloader, make_mnist_dir, write_idx


def test_reads_gzipped_flat_folder(tiny_mnist):
    train = load_split("train", tiny_mnist)
    test = load_split("test", tiny_mnist)
    assert train.images.shape == (2000, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (200,) and test.labels.dtype == torch.int64
    assert set(train.labels.tolist()) == set(range(10))


def test_reads_raw_files_in_torchvision_layout(tmp_path):
    make_mnist_dir(tmp_path / "MNIST" / "raw", n_train=20, n_test=10, gz=False)
    assert len(load_split("test", tmp_path)) == 10
    assert len(load_split("train", tmp_path, limit=7)) == 7


def test_env_variable_points_at_the_data(tiny_mnist, monkeypatch):
    monkeypatch.setenv("SNN_DATA_DIR", str(tiny_mnist))
    assert len(load_split("test")) == 200


def test_missing_files_name_what_is_needed(tmp_path):
    with pytest.raises(DataError) as info:
        load_split("train", tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "--data-dir" in message and "\n" not in message


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split("train", tmp_path / "nope")


def test_truncated_file_is_reported(tmp_path):
    folder = make_mnist_dir(tmp_path, n_train=20, n_test=10)
    path = folder / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_split("test", folder)


def test_corrupt_gzip_is_reported(tmp_path):
    folder = make_mnist_dir(tmp_path, n_train=20, n_test=10)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        load_split("test", folder)


def test_wrong_magic_is_reported(tmp_path):
    folder = make_mnist_dir(tmp_path, n_train=20, n_test=10)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros((10, 28, 28), np.uint8))
    with pytest.raises(DataError, match="1 dimensions"):
        load_split("test", folder)


def test_image_and_label_counts_must_agree(tmp_path):
    folder = make_mnist_dir(tmp_path, n_train=20, n_test=10)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="10 images but .* 9 labels"):
        load_split("test", folder)


def test_batches_keep_the_last_partial_batch(tiny_mnist):
    split = load_split("test", tiny_mnist)
    sizes = [len(y) for _, y in batches(split, 64)]
    assert sizes == [64, 64, 64, 8]
    shuffled = torch.cat([y for _, y in batches(split, 64, True, torch.Generator().manual_seed(0))])
    assert sorted(shuffled.tolist()) == sorted(split.labels.tolist())
    assert not torch.equal(shuffled, split.labels)


def test_normalise_scales_and_standardises():
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    assert normalise(images, 0.0, 1.0).tolist() == [[[[0.0, 1.0]]]]
    x = normalise(images, 0.5, 0.5)
    assert x.shape == (1, 1, 1, 2) and x.flatten().tolist() == [-1.0, 1.0]


def _offline(calls):
    def connect(address, timeout):
        calls.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    return connect


def test_offline_the_first_data_command_fails_at_once_in_a_short_line(in_tmp, monkeypatch):
    calls = []
    monkeypatch.setattr(socket, "create_connection", _offline(calls))
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_split("train")  # no --data-dir, no SNN_DATA_DIR: try the download
    assert time.monotonic() - start < 2.0  # no retries: no mirror can be reached
    assert [host for host, _ in calls] == ["ossci-datasets.s3.amazonaws.com", "yann.lecun.com"]
    message = str(info.value)
    assert "\n" not in message and len(message) < 260, message
    assert message.startswith("MNIST could not be downloaded (no network: Name or service not")
    assert "--data-dir DIR" in message and "SNN_DATA_DIR" in message
    for pair in data.SPLIT_FILES.values():
        assert all(name in message for name in pair)
    assert not (in_tmp / "cache").exists()  # no empty cache/mnist/MNIST/raw left behind


def test_torchvision_downloads_when_a_mirror_answers(in_tmp, monkeypatch):
    import torchvision.datasets

    source = make_mnist_dir(in_tmp / "source", n_train=20, n_test=10)
    monkeypatch.setattr(data, "_reachable", lambda urls: None)
    fetched = []
    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_downloader("MNIST", source, fetched))
    assert len(load_split("test")) == 10 and fetched == [True, False]
    monkeypatch.setattr(socket, "create_connection", _offline([]))  # cached: no network needed
    assert len(load_split("train")) == 20


def test_a_failed_download_is_one_short_line_and_leaves_no_folder(in_tmp, monkeypatch):
    import torchvision.datasets

    class FailingMNIST:
        mirrors = ["https://example.invalid/mnist/"]

        def __init__(self, root, train, download):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried "
                               "https://example.invalid/mnist/, got:\nHTTP Error 503")

    monkeypatch.setattr(data, "_reachable", lambda urls: None)
    monkeypatch.setattr(torchvision.datasets, "MNIST", FailingMNIST)
    with pytest.raises(DataError) as info:
        load_split("test")
    (line,) = str(info.value).splitlines()
    assert line.startswith("MNIST could not be downloaded (Error downloading train-images")
    assert "HTTP Error 503" in line and "--data-dir DIR" in line
    assert not (in_tmp / "cache").exists()


def test_cached_download_is_used_without_network(in_tmp, monkeypatch):
    make_mnist_dir(in_tmp / "cache" / "mnist" / "MNIST" / "raw", n_train=20, n_test=10)
    monkeypatch.setattr(socket, "create_connection", _offline([]))  # would fail if called
    assert len(load_split("test")) == 10
