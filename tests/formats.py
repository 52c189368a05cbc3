"""Tiny datasets written in the official on-disk formats, for the loading code to read for real."""

import pickle
import struct

import numpy as np

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def class_images(n, shape, seed, classes=10):
    """`n` uint8 noise images whose class is readable from their brightness: class k is k * 20 brighter."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 40, (n, *shape), dtype=np.uint8) + (20 * labels).astype(np.uint8).reshape(
        -1, *[1] * len(shape)
    )
    return images, labels


def write_cifar10(root, n_per_batch=40, n_test=60, seed=0):
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}, pickled dicts as in the release."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        images, labels = class_images(n_test if name == "test_batch" else n_per_batch, (3, 32, 32), seed + i)
        entry = {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": images.reshape(len(images), -1),
            "filenames": [f"{j}.png" for j in range(len(images))],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR_CLASSES, "num_vis": 3072}, protocol=2))
    return folder


def _idx(data, dtype_code=0x08):
    """An IDX file: magic (0, 0, type, ndim), big-endian dims, then the raw bytes."""
    header = struct.pack(">BBBB", 0, 0, dtype_code, data.ndim) + struct.pack(f">{data.ndim}I", *data.shape)
    return header + data.astype(np.uint8).tobytes()


def write_mnist(root, folder="MNIST", n_train=200, n_test=60, seed=0):
    """root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, as torchvision expects them."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = class_images(n, (28, 28), seed + (prefix == "t10k"))
        for name, data in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            (raw / name).write_bytes(_idx(data))
    return raw


def write_image_folder(root, classes=("cat", "dog"), per_class=12, size=(20, 16), seed=0):
    """root/<class>/<i>.png: small RGB images, each class its own colour, with noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (size[1], size[0], 3), dtype=np.uint8)
            pixels[..., k % 3] += 150
            Image.fromarray(pixels).save(root / cls / f"{i:03d}.png")
    return root
