#!/usr/bin/env python3
"""Fixtures for dps-gpu's training kernels, computed with PyTorch autograd on the CPU (float64 reference maths,
stored as float32).

Each case is one training step on a small batch, from unit-normalised feature maps g of one tap:
  profile s = (1/P) sum_p mask * (g_ref - g_p)^2 / (1 - drop)   (mask: dps-gpu's dropout hash, reproduced here)
  d = s . w ;  loss = BCE(ranknet(d0, d1), h) + [2AFC <= 0.5] * 10 * BCE(sigmoid(d0 - d1), h)
then one torch.optim.Adam step (lr, betas (0.5, 0.999), eps 1e-8) with the clamp w >= 0 after the step
(intended) and before the update (paper-faithful).

Usage: python3 tools/make_train_fixtures.py [OUT_DIR]   (default tests/fixtures/train)
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

M32 = 0xFFFFFFFF


def lowbias32(x):
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def keep_mask(n_pairs, chunk, first_group, seed, step_seed, drop, offset, c, p):
    """The dropout mask of shaders/distance.wgsl, element by element."""
    others = n_pairs // chunk
    mask = np.zeros((n_pairs, c, p), dtype=np.float64)
    base = seed ^ lowbias32(step_seed)
    for pair in range(n_pairs):
        global_pair = (first_group + pair % chunk) * others + pair // chunk
        hp = lowbias32(lowbias32(base) ^ global_pair)
        for ch in range(c):
            hc = lowbias32(hp ^ (offset + ch))
            for q in range(p):
                h = lowbias32(hc ^ q)
                mask[pair, ch, q] = 1.0 if (h >> 8) / 16777216.0 >= drop else 0.0
    return mask


def rank_net_init(gen):
    params = []
    for fan_in, fan_out in [(5, 32), (32, 32), (32, 1)]:
        bound = 1.0 / np.sqrt(fan_in)
        params.append(torch.empty(fan_out, fan_in, dtype=torch.float64).uniform_(-bound, bound, generator=gen))
        params.append(torch.empty(fan_out, dtype=torch.float64).uniform_(-bound, bound, generator=gen))
    return params


def rank_net(params, d0, d1):
    eps = 0.1
    x = torch.stack([d0, d1, d0 - d1, d0 / (d1 + eps), d1 / (d0 + eps)], dim=1)
    w1, b1, w2, b2, w3, b3 = params
    a = torch.nn.functional.leaky_relu(x @ w1.T + b1, 0.2)
    a = torch.nn.functional.leaky_relu(a @ w2.T + b2, 0.2)
    return torch.sigmoid(a @ w3.T + b3)[:, 0]


def two_afc(d0, d1, h):
    return torch.where(d0 < d1, 1 - h, torch.where(d1 < d0, h, torch.full_like(h, 0.5))).mean()


def make_case(name, seed, triplets, c, p, drop, flip_labels, lr):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(3 * triplets, c, p, dtype=torch.float64, generator=gen).abs()
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w0 = (torch.rand(c, dtype=torch.float64, generator=gen) * 2 - 1) / np.sqrt(c)
    theta0 = rank_net_init(gen)
    pairs = [(t, triplets + t) for t in range(triplets)] + [(t, 2 * triplets + t) for t in range(triplets)]
    step_seed, metric_seed, first_group = 12345 + seed, 0, 0
    mask = keep_mask(2 * triplets, triplets, first_group, metric_seed, step_seed, drop, 0, c, p) if drop > 0 else np.ones((2 * triplets, c, p))
    z = torch.stack([(g[i] - g[j]) ** 2 for i, j in pairs])
    s = (torch.from_numpy(mask) * z).mean(dim=2) / (1 - drop)
    # labels: a mix of hard and soft judgements; flipped against the distances to force the L_sync branch
    d_plain = s @ w0
    h = torch.tensor([[0.0, 1.0, 0.5, 0.3, 0.8, 1.0, 0.0][t % 7] for t in range(triplets)], dtype=torch.float64)
    if flip_labels:
        h = (d_plain[:triplets] > d_plain[triplets:]).double() * 0.0 + (d_plain[:triplets] < d_plain[triplets:]).double()
    out = {}
    for clamp in ["after", "before"]:
        w = w0.clone().requires_grad_(True)
        theta = [t.clone().requires_grad_(True) for t in theta0]
        d = s @ w
        d0, d1 = d[:triplets], d[triplets:]
        bce = torch.nn.functional.binary_cross_entropy(rank_net(theta, d0, d1), h)
        afc = two_afc(d0.detach(), d1.detach(), h)
        sync_bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(d0 - d1), h)
        synced = bool(afc <= 0.5)
        loss = bce + (10.0 * sync_bce if synced else 0.0)
        loss.backward()
        out["grad_w"] = w.grad.detach().clone()
        out["grad_theta"] = torch.cat([t.grad.flatten() for t in theta]).detach().clone()
        opt = torch.optim.Adam([w] + theta, lr=lr, betas=(0.5, 0.999), eps=1e-8)
        with torch.no_grad():
            if clamp == "before":
                w.clamp_(min=0)
        opt.step()
        with torch.no_grad():
            if clamp == "after":
                w.clamp_(min=0)
        out[f"w_{clamp}"] = w.detach().clone()
        out[f"theta_{clamp}"] = torch.cat([t.detach().flatten() for t in theta])
        out["stats"] = torch.tensor([bce.item(), afc.item(), 1.0 if synced else 0.0, sync_bce.item()], dtype=torch.float64)
        out["d"] = d.detach().clone()
    tensors = {
        "g": g, "w0": w0, "theta0": torch.cat([t.flatten() for t in theta0]), "h": h, "profile": s, **out,
    }
    meta = {"triplets": triplets, "c": c, "p": p, "drop": drop, "step_seed": step_seed, "lr": lr, "synced": bool(out["stats"][2])}
    return {name + "." + k: v.numpy().astype(np.float32) for k, v in tensors.items()}, {name: meta}


def main():
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/train")
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors, meta = {}, {"torch": torch.__version__, "cases": {}}
    for args in [("plain", 1, 6, 5, 7, 0.0, False, 1e-3), ("sync", 2, 7, 4, 9, 0.0, True, 1e-3),
                 ("dropout", 3, 5, 6, 11, 0.5, False, 2e-3)]:
        t, m = make_case(*args)
        tensors.update(t)
        meta["cases"].update(m)
    save_file(tensors, str(out_dir / "step.safetensors"))
    (out_dir / "step.json").write_text(json.dumps(meta, indent=1) + "\n")
    print("wrote", out_dir / "step.safetensors", "with cases", list(meta["cases"]))


if __name__ == "__main__":
    main()
