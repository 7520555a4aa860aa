#!/usr/bin/env python3
"""Fixtures for dps-gpu's image loading and PIL-exact bilinear resize, written with numpy and Pillow.

- Resize cases: seeded random RGB images of awkward sizes (PNG) and what Pillow's
  Image.resize((w, h), Image.BILINEAR) makes of them (PNG, lossless): up- and down-sampling, non-square and odd
  targets, 1x1, targets that keep one axis (Pillow then skips that pass) and one that keeps both (a copy).
- Load cases: one small image in many modes and formats, and Pillow's Image.open(f).convert('RGB') of each.
  16-bit PNGs are written by hand (Pillow cannot write 16-bit colour). For 16-bit greyscale Pillow's
  convert('RGB') clips every value above 255 to 255 (I;16 -> RGB), which wipes the image out; dps-gpu keeps the
  high byte instead, as Pillow does for 16-bit colour and grey+alpha, so that case's expected image is the high
  byte, not Pillow's output (the manifest says so).

Everything is listed, with the Pillow version, in manifest.json.
Usage: python3 tools/make_resize_fixtures.py [OUT_DIR]   (default tests/fixtures/resize)
"""
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

SOURCES = [(37, 23), (96, 96), (32, 32), (256, 256), (65, 64), (1, 7), (200, 31)]
TARGETS = [(64, 64), (17, 40), (5, 3), (48, 72), (1, 1)]
# JPEG decoders differ: the `image` crate's (zune-jpeg) against Pillow's libjpeg-turbo, up to 5 levels with the
# default 4:2:0 chroma (chroma upsampling) and 2 without. Every other case is exact.
JPEG_TOLERANCE = 6


def test_image(rng, w, h, block=1):
    """Gradients (so interpolation shows) plus noise (so rounding shows); noise in block x block squares keeps the
    large image's PNG small."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) % 256], axis=-1)
    noise = rng.integers(-40, 41, size=(-(-h // block), -(-w // block), 3))
    noise = noise.repeat(block, axis=0).repeat(block, axis=1)[:h, :w]
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_png16(path, arr):
    """A 16-bit PNG (grey+alpha, RGB or RGBA for 2, 3 or 4 channels), big-endian samples, no filtering."""
    h, w, c = arr.shape
    colour_type = {2: 4, 3: 2, 4: 6}[c]

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    )


def resize_cases(out, rng):
    cases = []
    for i, (w, h) in enumerate(SOURCES):
        name = f"src_{w}x{h}.png"
        Image.fromarray(test_image(rng, w, h, block=4 if w * h > 20000 else 1), "RGB").save(out / name)
        # (w, 27) needs no horizontal pass and (33, h) no vertical one; the first source is also kept as is
        targets = TARGETS + [(w, 27), (33, h)] + ([(w, h)] if i == 0 else [])
        for tw, th in targets:
            res = Image.open(out / name).convert("RGB").resize((tw, th), Image.BILINEAR)
            expected = f"pillow_{w}x{h}_to_{tw}x{th}.png"
            res.save(out / expected)
            cases.append({"source": name, "width": tw, "height": th, "expected": expected})
    return cases


def load_cases(out, rng):
    w, h = 24, 17
    rgb = test_image(rng, w, h)
    alpha = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    alpha[::3, ::2] = 0  # fully transparent pixels keep their colour in convert('RGB')
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    images = {
        "load_rgba.png": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
        "load_la.png": Image.fromarray(np.dstack([grey, alpha]), "LA"),
        "load_l.png": Image.fromarray(grey, "L"),
        "load_1.png": Image.fromarray(grey).convert("1"),
        "load_p.png": Image.fromarray(rgb).quantize(16),
        "load_p.gif": Image.fromarray(rgb).quantize(16),
        "load.bmp": Image.fromarray(rgb),
        "load.tiff": Image.fromarray(rgb),
        "load.webp": Image.fromarray(rgb),
        "load.jpg": Image.fromarray(rgb),
    }
    cases = []
    for name, img in images.items():
        kwargs = {"transparency": 3} if name.startswith("load_p") else {}
        kwargs.update({"lossless": True} if name.endswith(".webp") else {})
        kwargs.update({"quality": 90} if name.endswith(".jpg") else {})
        img.save(out / name, **kwargs)
        cases.append({"file": name, "tolerance": JPEG_TOLERANCE if name.endswith(".jpg") else 0})

    samples16 = rng.integers(0, 65536, size=(h, w, 4), dtype=np.uint16)
    for name, channels in [("load_rgba16.png", 4), ("load_rgb16.png", 3), ("load_la16.png", 2)]:
        write_png16(out / name, samples16[..., :channels])
        cases.append({"file": name, "tolerance": 0})
    for case in cases:
        case["expected"] = "expect_" + case["file"].replace(".", "_") + ".png"
        Image.open(out / case["file"]).convert("RGB").save(out / case["expected"])

    Image.fromarray(samples16[..., 0]).save(out / "load_grey16.png")  # mode I;16
    high = (samples16[..., 0] >> 8).astype(np.uint8)
    Image.fromarray(np.dstack([high] * 3), "RGB").save(out / "expect_load_grey16_png.png")
    cases.append(
        {
            "file": "load_grey16.png",
            "tolerance": 0,
            "expected": "expect_load_grey16_png.png",
            "note": "the high byte; Pillow's convert('RGB') clips I;16 to 255 instead",
        }
    )
    return cases


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/resize")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # the directory holds these fixtures only
        old.unlink()
    rng = np.random.default_rng(7)
    manifest = {"pillow": PIL.__version__, "cases": resize_cases(out, rng), "loads": load_cases(out, rng)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {len(manifest['cases'])} resize and {len(manifest['loads'])} load cases ({size} bytes) "
          f"with Pillow {PIL.__version__}")


if __name__ == "__main__":
    main()
