#!/usr/bin/env python3
"""Expected values for dps-gpu's dataset loaders on ../shared/data, computed independently with numpy and PIL:
image counts, and for a few images the sum and some pixels after PIL's bilinear resize to 64x64.

Usage: python3 tools/make_data_expectations.py DATA_DIR [OUT]   (default tests/fixtures/data/shared_expectations.json)
"""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def cifar(path):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), raw[:, 0]


def stl(path):
    return np.fromfile(path, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)


def describe(img):
    small = np.asarray(Image.fromarray(img).resize((64, 64), Image.BILINEAR))
    return {"sum": int(small.astype(np.int64).sum()), "pixel_0_0": small[0, 0].tolist(), "pixel_40_17": small[40, 17].tolist()}


def main():
    data = Path(sys.argv[1])
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/data/shared_expectations.json")
    c = data / "cifar-10-batches-bin"
    train = [cifar(c / f"data_batch_{i}.bin") for i in (1, 2)]
    test_x, _ = cifar(c / "test_batch.bin")
    stl_test = stl(data / "stl10_binary/test_X.bin")
    stl_unlabeled = stl(data / "stl10_binary/unlabeled_X.bin")
    res = {
        "cifar10_train": {"count": sum(len(x) for x, _ in train), "first": describe(train[0][0][0]),
                          "last": describe(train[-1][0][-1])},
        "cifar10_test": {"count": len(test_x), "first": describe(test_x[0])},
        "stl10_test": {"count": len(stl_test), "first": describe(stl_test[0]), "last": describe(stl_test[-1])},
        "stl10_unlabeled": {"count": len(stl_unlabeled)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
