"""The default dataset without scikit-learn's import: the same digits, read from the file scikit-learn ships."""

import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def test_digits_are_scikit_learns_exactly_and_read_without_importing_it():
    code = (
        "import sys\n"
        "from runner.data.toy import digits\n"
        "s = {m: digits(name='digits', task='classification', input_shape=[1, 8, 8], num_classes=10, "
        "test_fraction=0.2, val_fraction=0.1, split_seed=0, max_value=m) for m in (16, 255)}\n"
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'\n"
        "import torch\n"
        "torch.save({(k, m): getattr(s[m], k).x for k in ('train', 'val', 'test') for m in s} | {'y': s[16].test.y}, "
        "sys.argv[1])\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "splits.pt"
        proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        ours = torch.load(out, weights_only=True)
    from sklearn.datasets import load_digits

    from runner.data.splits import Split, three_way

    bunch = load_digits()
    theirs = three_way(
        Split(torch.from_numpy(bunch.images).to(torch.uint8).unsqueeze(1), torch.from_numpy(bunch.target).long()),
        0.2,
        0.1,
        0,
    )
    # scikit-learn's 0..16 counts of inked pixels, on each of 17 levels of an 8-bit image's 0..255
    levels = torch.tensor(
        [0, 16, 32, 48, 64, 80, 96, 112, 128, 143, 159, 175, 191, 207, 223, 239, 255], dtype=torch.uint8
    )
    for name, split in zip(("train", "val", "test"), theirs):
        assert torch.equal(ours[(name, 16)], split.x)  # max_value=16: scikit-learn's own values (runs before 0..255)
        assert torch.equal(ours[(name, 255)], levels[split.x.long()])
    assert torch.equal(ours["y"], theirs[2].y)
