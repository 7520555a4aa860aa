#!/usr/bin/env python3
"""Tiny dataset files in the real on-disk layouts, for tests/data.rs, and a manifest of what numpy/scipy/PIL read
from them (independently of dps-gpu): SVHN .mat (zlib-compressed and plain, y uint8 and double), STL-10
*_X.bin/*_y.bin, CIFAR-10 batches, BAPPS 2afc and jnd trees (.npy v1/v2/v3, f4/f8, both byte orders, shapes
(1,), (), (1,1)), and a nested image folder. With the shared data directory present it also records what numpy
reads from the real files there (`real_data_expectations`); without it, the previous values are kept.

Usage: python3 tools/make_data_fixtures.py [SHARED_DATA_DIR]   (default ../shared/data; needs numpy scipy pillow)
Writes tests/fixtures/data/ (everything in it except files other tools own).
"""
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/fixtures/data"
MANIFEST = OUT / "manifest.json"
rng = np.random.default_rng(20240601)


def describe(img, label=None):
    """img: HxWx3 uint8. A position-sensitive checksum catches transposed or permuted pixels, which a sum does not."""
    h, w, _ = img.shape
    flat = img.astype(np.int64).ravel()
    weights = np.arange(flat.size, dtype=np.int64) % 251 + 1
    points = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 3, (2 * w) // 3)]
    d = {
        "width": w,
        "height": h,
        "sum": int(flat.sum()),
        "weighted": int((flat * weights).sum()),
        "pixels": [[y, x, img[y, x].tolist()] for y, x in points],
    }
    if label is not None:
        d["label"] = int(label)
    return d


def images(n, h, w):
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def svhn(manifest):
    cases = []
    for name, n, ydtype, compress in [("svhn_compressed.mat", 3, np.uint8, True), ("svhn_plain.mat", 2, np.float64, False)]:
        x = images(n, 32, 32)
        y = rng.integers(1, 11, size=(n, 1)).astype(ydtype)
        y[0, 0] = 10  # the digit 0
        # MATLAB's X is 32x32x3xN: X(row, col, channel, image). A variable before X must be skipped.
        mat = {"note": "not an image", "X": np.ascontiguousarray(x.transpose(1, 2, 3, 0)), "y": y}
        scipy.io.savemat(OUT / name, mat, do_compression=compress)
        fix_header(OUT / name)
        back = scipy.io.loadmat(OUT / name)
        assert back["X"].dtype == np.uint8 and back["y"].dtype == ydtype
        imgs = back["X"].transpose(3, 0, 1, 2)
        cases.append({"file": name, "compressed": compress, "y_dtype": np.dtype(ydtype).name,
                      "images": [describe(im, l) for im, l in zip(imgs, back["y"].ravel())]})
    manifest["svhn"] = cases


def fix_header(path):
    """savemat stamps the time into the 116-byte header text; a fixed text keeps regenerated fixtures identical."""
    raw = bytearray(path.read_bytes())
    raw[:116] = b"MATLAB 5.0 MAT-file, written by tools/make_data_fixtures.py".ljust(116, b" ")
    path.write_bytes(bytes(raw))


def stl10(manifest):
    x = images(2, 96, 96)
    y = np.array([3, 10], dtype=np.uint8)
    # Each channel plane is stored column-major (MATLAB order): plane[col, row].
    x.transpose(0, 3, 2, 1).tofile(OUT / "stl10/tiny_X.bin")
    y.tofile(OUT / "stl10/tiny_y.bin")
    raw = np.fromfile(OUT / "stl10/tiny_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
    manifest["stl10"] = {"file": "stl10/tiny_X.bin", "images": [describe(im, l) for im, l in zip(raw, y)]}


def cifar(manifest):
    splits = {}
    for name, n in [("data_batch_1.bin", 3), ("data_batch_2.bin", 2), ("test_batch.bin", 1)]:
        x = images(n, 32, 32)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        rec = np.concatenate([labels[:, None], x.transpose(0, 3, 1, 2).reshape(n, -1)], axis=1)
        rec.tofile(OUT / "cifar-10-batches-bin" / name)
        raw = np.fromfile(OUT / "cifar-10-batches-bin" / name, dtype=np.uint8).reshape(-1, 3073)
        imgs = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        splits[name] = [describe(im, l) for im, l in zip(imgs, raw[:, 0])]
    manifest["cifar10"] = {
        "dir": "cifar-10-batches-bin",
        "train": splits["data_batch_1.bin"] + splits["data_batch_2.bin"],
        "test": splits["test_batch.bin"],
    }


def npy_bytes(value, dtype, version, shape):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(value, dtype=dtype).reshape(shape), version=version)
    return buf.getvalue()


NPY_VARIANTS = [("<f4", (1, 0), (1,)), ("<f8", (2, 0), ()), (">f4", (3, 0), (1, 1)), (">f8", (1, 0), (1,))]


def bapps(manifest):
    out = {}
    k = 0
    for kind, dirs, values in [("2afc", ["ref", "p0", "p1"], "judge"), ("jnd", ["p0", "p1"], "same")]:
        subsets = []
        for subset in ["cnn", "traditional"]:
            base = OUT / "bapps" / kind / "val" / subset
            items = []
            for i in range(2):
                stem = f"{i:06d}"
                paths = {}
                for d in dirs:
                    (base / d).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(images(1, 16, 16)[0]).save(base / d / f"{stem}.png")
                    paths[d] = f"bapps/{kind}/val/{subset}/{d}/{stem}.png"
                dtype, version, shape = NPY_VARIANTS[k % len(NPY_VARIANTS)]
                k += 1
                (base / values).mkdir(parents=True, exist_ok=True)
                (base / values / f"{stem}.npy").write_bytes(npy_bytes(rng.random(), dtype, version, shape))
                v = np.load(base / values / f"{stem}.npy")
                assert v.dtype == np.dtype(dtype) and v.shape == shape
                items.append({**paths, "npy": f"{dtype} v{version[0]} shape {shape}", values: float(v.ravel()[0])})
            subsets.append({"name": subset, "items": items})
        out[kind] = {"dir": f"bapps/{kind}/val", "subsets": subsets}
    manifest["bapps"] = out


def folder(manifest):
    base = OUT / "folder"
    (base / "a/d").mkdir(parents=True, exist_ok=True)
    Image.fromarray(images(1, 12, 20)[0]).save(base / "b.png")
    Image.fromarray(images(1, 9, 7)[0]).save(base / "a/d/e.PNG")
    # A uniform JPEG decodes to the same values in every decoder (no IDCT or chroma rounding differences).
    Image.fromarray(np.full((16, 16, 3), (200, 40, 90), dtype=np.uint8)).save(base / "a/c.jpg", quality=95)
    (base / "notes.txt").write_text("not an image\n")
    (base / ".hidden.png").write_bytes(b"a resource fork, not a PNG")  # hidden files are skipped
    files = sorted(p.relative_to(base) for p in base.rglob("*")
                   if p.suffix.lower() in (".png", ".jpg") and not p.name.startswith("."))
    manifest["folder"] = {
        "dir": "folder",
        "images": [{"file": str(f), **describe(np.asarray(Image.open(base / f).convert("RGB")))} for f in files],
    }


def real(data, manifest):
    """What numpy and scipy read from ../shared/data, for the tests that run with DPS_DATA_DIR set."""
    svhn = scipy.io.loadmat(data / "svhn/test_32x32.mat")
    sx = svhn["X"].transpose(3, 0, 1, 2)
    stl = np.fromfile(data / "stl10_binary/test_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
    stl_y = np.fromfile(data / "stl10_binary/test_y.bin", dtype=np.uint8)
    unl = (data / "stl10_binary/unlabeled_X.bin").stat().st_size // (3 * 96 * 96)

    def cifar_file(name):
        raw = np.fromfile(data / "cifar-10-batches-bin" / name, dtype=np.uint8).reshape(-1, 3073)
        return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), raw[:, 0]

    train = [cifar_file(f"data_batch_{i}.bin") for i in (1, 2)]
    test_x, test_y = cifar_file("test_batch.bin")
    manifest["real_data_expectations"] = {
        "svhn_test": [describe(im, l) for im, l in zip(sx, svhn["y"].ravel())],
        "stl10_test": [describe(im, l) for im, l in zip(stl, stl_y)],
        "stl10_unlabeled_count": int(unl),
        "cifar10_train": {"count": sum(len(x) for x, _ in train), "first": describe(train[0][0][0], train[0][1][0]),
                          "last": describe(train[-1][0][-1], train[-1][1][-1])},
        "cifar10_test": {"count": len(test_x), "first": describe(test_x[0], test_y[0]),
                         "last": describe(test_x[-1], test_y[-1])},
    }


def main():
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data"
    old = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for d in ["stl10", "cifar-10-batches-bin", "bapps", "folder"]:
        shutil.rmtree(OUT / d, ignore_errors=True)
        (OUT / d).mkdir(parents=True)
    manifest = {"generator": "tools/make_data_fixtures.py", "numpy": np.__version__, "scipy": scipy.__version__}
    svhn(manifest)
    stl10(manifest)
    cifar(manifest)
    bapps(manifest)
    folder(manifest)
    if (data / "svhn/test_32x32.mat").exists():
        real(data, manifest)
    elif "real_data_expectations" in old:
        print(f"{data} not found; keeping the previous real_data_expectations")
        manifest["real_data_expectations"] = old["real_data_expectations"]
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
