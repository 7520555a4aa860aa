#!/usr/bin/env python3
"""PyTorch figures to set beside `dps-gpu bench`, measured the same way on the same machine.

The same work as dps-gpu's benchmark: torchvision AlexNet / SqueezeNet 1.1 / VGG-16 `features` (random
weights: speed does not depend on values), 64x64 inputs, a triplet = features of ref, p0, p1 and the two spatial
LPIPS-style distances. `eval` is that under no_grad; `train` adds the scalars-training step (per-channel weights
with dropout, the rank net, BCE, Adam; features frozen); `tune` is that step with the network's conv layers
trained too ("Adapted Net", `dps-gpu train --variant net`). Adapted from ../shared/anchors/torch_anchor.py.

Usage: python3 tools/torch_bench.py [--device cpu|cuda] [--nets alex,squeeze,vgg] [--what eval,train,tune]
       [--batch 64] [--iters 3] [--threads N] [--tf32]      (prints one JSON line per net)
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

TAPS = {'alex': [1, 4, 7, 9, 11], 'squeeze': [1, 4, 7, 9, 10, 11, 12], 'vgg': [3, 8, 15, 22, 29]}
CTOR = {'alex': torchvision.models.alexnet, 'squeeze': torchvision.models.squeezenet1_1, 'vgg': torchvision.models.vgg16}


class Features(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.taps = TAPS[net]
        self.mods = nn.ModuleList(list(CTOR[net]().features.children())[:max(self.taps) + 1])

    def forward(self, x):
        outs = []
        for i, m in enumerate(self.mods):
            x = m(x)
            if i in self.taps:
                outs.append(x)
        return outs


def distance(lins, fa, fb):
    total = 0
    for lin, a, b in zip(lins, fa, fb):
        total = total + lin((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2).mean(dim=(2, 3))
    return total.view(-1)


def rank_net():
    return nn.Sequential(nn.Linear(5, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Sigmoid())


def timeit(fn, iters, sync):
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - start) / iters


def bench(net, batch, iters, device, what):
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    feats = Features(net).to(device).eval()
    for p in feats.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        chans = [t.shape[1] for t in feats(torch.zeros(1, 3, 64, 64, device=device))]
    lins = nn.ModuleList([nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False)) for c in chans]).to(device)
    rn = rank_net().to(device)
    x = torch.rand(3 * batch, 3, 64, 64, device=device)
    labels = (torch.rand(batch, device=device) > 0.5).float()

    def split(f):
        return [t[:batch] for t in f], [t[batch:2 * batch] for t in f], [t[2 * batch:] for t in f]

    def evaluate():
        lins.eval()
        with torch.no_grad():
            fr, f0, f1 = split(feats(x))
            return distance(lins, fr, f0), distance(lins, fr, f1)

    opt = torch.optim.Adam(list(lins.parameters()) + list(rn.parameters()), lr=1e-3, betas=(0.5, 0.999))

    tune_opt = torch.optim.Adam(list(feats.parameters()) + list(lins.parameters()) + list(rn.parameters()),
                                lr=1e-3, betas=(0.5, 0.999))

    def train_step(tune=False):
        lins.train()
        if tune:
            fr, f0, f1 = split(feats(x))
        else:
            with torch.no_grad():
                fr, f0, f1 = split(feats(x))
        d0, d1 = distance(lins, fr, f0), distance(lins, fr, f1)
        eps = 0.1
        inp = torch.stack((d0, d1, d0 - d1, d0 / (d1 + eps), d1 / (d0 + eps)), dim=1)
        loss = F.binary_cross_entropy(rn(inp).view(-1), labels)
        o = tune_opt if tune else opt
        o.zero_grad()
        loss.backward()
        o.step()
        with torch.no_grad():
            for lin in lins:
                lin[1].weight.clamp_(min=0)

    def tune_step():
        for p in feats.parameters():
            p.requires_grad_(True)
        train_step(tune=True)

    steps = {'eval': evaluate, 'train': train_step, 'tune': tune_step}
    return {f'{w}_triplets_per_s': batch / timeit(steps[w], iters, sync) for w in what}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--nets', default='alex,squeeze,vgg')
    ap.add_argument('--what', default='eval,train,tune', help='comma-separated: eval, train, tune')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--threads', type=int, default=0, help='CPU threads (0: PyTorch default)')
    ap.add_argument('--tf32', action='store_true', help='allow TF32 (PyTorch default for convolutions)')
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = True
    for net in a.nets.split(','):
        res = bench(net, a.batch, a.iters, a.device, a.what.split(','))
        device = torch.cuda.get_device_name(0) if a.device == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'
        print(json.dumps({'net': net, 'batch': a.batch, 'device': device, 'torch': torch.__version__, 'tf32': a.tf32, **res}), flush=True)


if __name__ == '__main__':
    main()
