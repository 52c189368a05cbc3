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
        "s = digits(name='digits', task='classification', input_shape=[1, 8, 8], num_classes=10, test_fraction=0.2, "
        "val_fraction=0.1, split_seed=0)\n"
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'\n"
        "import torch\n"
        "torch.save({k: getattr(s, k).x for k in ('train', 'val', 'test')} | {'y': s.test.y}, sys.argv[1])\n"
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
    for name, split in zip(("train", "val", "test"), theirs):
        assert torch.equal(ours[name], split.x)
    assert torch.equal(ours["y"], theirs[2].y)
