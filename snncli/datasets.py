"""The built-in data sets: 28x28 grey images in ten classes, stored as four IDX files.

Torch-free, so the CLI can list them and check `--dataset` without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SnnError


class DatasetError(SnnError):
    """An unknown data set name, or a checkpoint used with a data set it was not trained on."""

    exit_code = 2


@dataclass(frozen=True)
class DataSet:
    name: str  # as given to --dataset and stored in checkpoints
    title: str  # as people write it
    classes: tuple[str, ...]  # the label of each output neuron, in order
    torchvision_class: str  # the torchvision.datasets class that downloads it
    digits: bool  # handwritten digits: users' digit images and style digits apply
    subject: str  # what one image shows, as the serve page invites it ("Draw a digit")


DIGITS = tuple(str(digit) for digit in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")

DATASETS: dict[str, DataSet] = {
    "mnist": DataSet("mnist", "MNIST", DIGITS, "MNIST", digits=True, subject="digit"),
    "fashion-mnist": DataSet("fashion-mnist", "Fashion-MNIST", FASHION_CLASSES, "FashionMNIST",
                             digits=False, subject="piece of clothing"),
}
DEFAULT_DATASET = "mnist"


def get_dataset(name: str) -> DataSet:
    """The data set called `name`, or a DatasetError listing the known ones."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DatasetError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}"
        ) from None


def check_trained_on(trained: str, asked: str | None, path: object) -> None:
    """A DatasetError when checkpoint `path`, trained on data set `trained`, is asked to work
    on another (`asked`; None: any): its outputs are `trained`'s classes, so its scores on
    another set's images mean nothing."""
    if asked is not None and asked != trained:
        trained_title, asked_title = get_dataset(trained).title, get_dataset(asked).title
        raise DatasetError(f"{path} was trained on {trained_title}, so it cannot be scored on "
                           f"{asked_title}: its outputs are {trained_title}'s classes")
