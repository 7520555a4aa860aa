#!/usr/bin/env python3
"""Fixtures for dps-gpu's backward kernels, computed with PyTorch autograd on the CPU (float64 maths, stored as
float32), on small awkward shapes.

conv cases: one or two convolutions (torch.nn.functional.conv2d, ReLU) reading the same input x and writing
  channel slices of one output y [B, Ctot, Ho, Wo] (two = SqueezeNet's fire expand1x1 || expand3x3 concat);
  L = sum(gy * y) for a random gy; stored: x, y, gy, grad_x (summed over the convolutions) and per convolution
  weight, bias, grad_weight, grad_bias.
pool cases: F.max_pool2d (floor and ceil mode) on inputs drawn from a few integers, so windows hold ties;
  L = sum(gy * y); stored: x, gy, grad_x.
distance cases: one tap t [N, C, H, W] of N = chunk * group_len images (member-major: image m*chunk + g is member
  m of group g, member 0 the reference), one part (spatial, mean or sort), channel weights w of the whole profile
  (the part's block at columns offset..offset+C), dropout with dps-gpu's hash; L = sum(grad_d * d) with
    v = t (spatial) | mean over positions (mean) | each channel sorted ascending (sort),
    u = F.normalize(v, dim=1), s = (1/P) sum_p mask (u_ref - u_m)^2 / (1 - drop), d = s . w;
  stored: t, w, grad_d, grad_u, grad_v, grad_t.

alex_spatial_step, squeeze_spatial_sort_step, alex_spatial_mean_step (DPS_WEIGHTS_DIR must hold the ImageNet
  weights): one whole training step of the "Adapted Net" variant at 48x48 on 3 random triplets (ImageNet weights, w ~ U(+-1/sqrt(C)), the rank net's
  default init, dropout off, clamp w >= 0 after the step): loss as PROTOCOL.md section 6 (rank-net BCE, plus
  10 * BCE(sigmoid(d0 - d1), h) when the batch's 2AFC <= 0.5), autograd, one torch.optim.Adam step (lr 1e-3,
  betas (0.5, 0.999), eps 1e-8) over w, the rank net and every conv weight and bias. Stored: the inputs, d, the
  gradients and updated values of w and the rank net, every bias's, and of each conv weight (256 sampled
  entries of the larger ones).

Usage: python3 tools/make_backward_fixtures.py [OUT_DIR]   (default tests/fixtures/backward)
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_train_fixtures import keep_mask, rank_net, rank_net_init, two_afc  # noqa: E402  (dropout hash as distance.wgsl)

torch.set_default_dtype(torch.float64)


def f32(t):
    return t.detach().numpy().astype(np.float32)


def conv_case(name, seed, batch, h, w, ctot, convs):
    gen = torch.Generator().manual_seed(seed)
    cin = convs[0]["cin"]
    x = torch.randn(batch, cin, h, w, generator=gen, requires_grad=True)
    outs, params = [], []
    for c in convs:
        k = c["kernel"]
        weight = (torch.randn(c["cout"], cin, k, k, generator=gen) / np.sqrt(cin * k * k)).requires_grad_()
        bias = (0.1 * torch.randn(c["cout"], generator=gen)).requires_grad_()
        out = F.conv2d(x, weight, bias, stride=c["stride"], padding=c["pad"])
        outs.append((c["c_off"], F.relu(out) if c["relu"] else out))
        params.append((weight, bias))
    ho, wo = outs[0][1].shape[2:]
    y = torch.zeros(batch, ctot, ho, wo)
    for off, out in outs:
        y = torch.cat([y[:, :off], out, y[:, off + out.shape[1]:]], dim=1)
    gy = torch.randn(batch, ctot, ho, wo, generator=gen)
    (gy * y).sum().backward()
    tensors = {"x": x, "y": y, "gy": gy, "grad_x": x.grad}
    for j, (weight, bias) in enumerate(params):
        tensors.update({f"{j}.weight": weight, f"{j}.bias": bias, f"{j}.grad_weight": weight.grad,
                        f"{j}.grad_bias": bias.grad})
    meta = {"batch": batch, "h": h, "w": w, "ctot": ctot, "convs": convs}
    return {f"conv.{name}.{k}": f32(v) for k, v in tensors.items()}, meta


def conv(cin, cout, kernel, stride, pad, c_off=0, relu=True):
    return {"cin": cin, "cout": cout, "kernel": kernel, "stride": stride, "pad": pad, "c_off": c_off, "relu": relu}


def pool_case(name, seed, shape, kernel, stride, ceil_mode):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 4, shape, generator=gen).double().requires_grad_()
    y = F.max_pool2d(x, kernel, stride, ceil_mode=ceil_mode)
    gy = torch.randn(y.shape, generator=gen)
    (gy * y).sum().backward()
    meta = {"shape": list(shape), "kernel": kernel, "stride": stride, "ceil_mode": ceil_mode}
    return {f"pool.{name}.{k}": f32(v) for k, v in {"x": x, "gy": gy, "grad_x": x.grad}.items()}, meta


def distance_case(name, seed, part, chunk, group_len, c, h, w, offset, columns, drop, step_seed, first_group):
    gen = torch.Generator().manual_seed(seed)
    n = chunk * group_len
    p_all = h * w
    t = torch.randn(n, c, h, w, generator=gen).requires_grad_()
    wts = torch.rand(columns, generator=gen) - 0.3
    n_pairs = (group_len - 1) * chunk
    grad_d = torch.randn(n_pairs, generator=gen)
    flat = t.reshape(n, c, p_all)
    if part == "spatial":
        v = flat
    elif part == "mean":
        v = flat.mean(dim=2, keepdim=True)
    else:
        v = torch.sort(flat, dim=2).values
    v.retain_grad()
    u = F.normalize(v, dim=1, eps=1e-12)
    u.retain_grad()
    p = v.shape[2]
    seed_metric = 7
    mask = torch.from_numpy(keep_mask(n_pairs, chunk, first_group, seed_metric, step_seed, drop, offset, c, p))
    first = torch.tensor([k % chunk for k in range(n_pairs)])
    second = torch.tensor([(k // chunk + 1) * chunk + k % chunk for k in range(n_pairs)])
    diff = u[first] - u[second]
    s = (mask * diff * diff).sum(dim=2) / (p * (1.0 - drop))
    d = s @ wts[offset:offset + c]
    (grad_d * d).sum().backward()
    tensors = {"t": t, "w": wts, "grad_d": grad_d, "grad_u": u.grad, "grad_v": v.grad, "grad_t": t.grad}
    meta = {"part": part, "chunk": chunk, "group_len": group_len, "c": c, "h": h, "w": w, "offset": offset,
            "columns": columns, "drop": drop, "step_seed": step_seed, "first_group": first_group,
            "seed": seed_metric}
    return {f"distance.{name}.{k}": f32(v) for k, v in tensors.items()}, meta


ALEX_CONVS = [(0, 4, 2), (3, 1, 2), (6, 1, 1), (8, 1, 1), (10, 1, 1)]  # (index, stride, pad)
SQUEEZE_FIRES = [3, 4, 6, 7, 9, 10, 11, 12]
SQUEEZE_TAPS = [1, 4, 7, 9, 10, 11, 12]


def conv_relu(x, params, key, stride=1, pad=0):
    return F.relu(F.conv2d(x, params[f"{key}.weight"], params[f"{key}.bias"], stride=stride, padding=pad))


def alex_taps(x, params):
    taps = []
    for index, stride, pad in ALEX_CONVS:
        if index in (3, 6):
            x = F.max_pool2d(x, 3, 2)
        x = conv_relu(x, params, f"features.{index}", stride, pad)
        taps.append(x)
    return taps


def squeeze_taps(x, params):
    x = conv_relu(x, params, "features.0", 2)
    taps = [x]
    for index in SQUEEZE_FIRES:
        if index in (3, 6, 9):
            x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        s = conv_relu(x, params, f"features.{index}.squeeze")
        x = torch.cat([conv_relu(s, params, f"features.{index}.expand1x1"),
                       conv_relu(s, params, f"features.{index}.expand3x3", pad=1)], dim=1)
        if index in SQUEEZE_TAPS:
            taps.append(x)
    return taps


NETS = {
    "alex": ("alexnet.safetensors", alex_taps),
    "squeeze": ("squeezenet1_1.safetensors", squeeze_taps),
}


def step_images(triplets=3, size=48):
    """The images of every step case (member-major: references, p0, p1), rounded to float32 as the GPU gets them."""
    gen = torch.Generator().manual_seed(40)
    return torch.rand(3 * triplets, 3, size, size, generator=gen).float().double()


def net_step(weights_dir, net, parts, seed, images, lr=1e-3):
    """One "Adapted Net" training step; `parts` is the method's parts, e.g. ["spatial"] or ["spatial", "sort"]."""
    triplets, size = images.shape[0] // 3, images.shape[2]
    from safetensors.numpy import load_file
    gen = torch.Generator().manual_seed(seed)
    file, taps_of = NETS[net]
    loaded = load_file(str(weights_dir / file))
    params = {k: torch.from_numpy(v.astype(np.float64)).requires_grad_() for k, v in loaded.items()
              if k.startswith("features.")}
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    taps = taps_of((images - mean) / std, params)
    channels = [t.shape[1] for t in taps]
    w0 = torch.cat([(torch.rand(c, generator=gen) * 2 - 1) / np.sqrt(c) for _ in parts for c in channels])
    w0 = w0.float().double()
    theta0 = [t.float().double() for t in rank_net_init(gen)]
    h = torch.tensor([1.0, 0.0, 0.3][:triplets])
    w = w0.clone().requires_grad_()
    theta = [t.clone().requires_grad_() for t in theta0]
    d = torch.zeros(2 * triplets)
    offset = 0
    for part in parts:
        for t, c in zip(taps, channels):
            v = t.flatten(2)
            if part == "sort":
                v = torch.sort(v, dim=2).values
            elif part == "mean":
                v = v.mean(dim=2, keepdim=True)
            u = F.normalize(v, dim=1, eps=1e-12)
            ref = u[:triplets].repeat(2, 1, 1)
            s = ((ref - u[triplets:]) ** 2).mean(dim=2)
            d = d + s @ w[offset:offset + c]
            offset += c
    d0, d1 = d[:triplets], d[triplets:]
    bce = F.binary_cross_entropy(rank_net(theta, d0, d1), h)
    afc = two_afc(d0.detach(), d1.detach(), h)
    synced = bool(afc <= 0.5)
    loss = bce + (10.0 * F.binary_cross_entropy(torch.sigmoid(d0 - d1), h) if synced else 0.0)
    loss.backward()
    grads = {"w": w.grad.clone(), "theta": torch.cat([t.grad.flatten() for t in theta])}
    grads.update({k: p.grad.clone() for k, p in params.items()})
    opt = torch.optim.Adam([w] + theta + list(params.values()), lr=lr, betas=(0.5, 0.999), eps=1e-8)
    opt.step()
    with torch.no_grad():
        w.clamp_(min=0)
    new = {"w": w.detach(), "theta": torch.cat([t.detach().flatten() for t in theta])}
    new.update({k: p.detach() for k, p in params.items()})
    out = {"w0": w0, "theta0": torch.cat([t.flatten() for t in theta0]), "h": h, "d": d.detach()}
    rng = np.random.default_rng(seed)
    for k in grads:
        g, n = grads[k].flatten(), new[k].flatten()
        if k.endswith(".weight") and g.numel() > 256:
            idx = torch.from_numpy(np.sort(rng.choice(g.numel(), 256, replace=False)))
            out[f"{k}.index"] = idx.double()
            g, n = g[idx], n[idx]
        out[f"{k}.grad"] = g
        out[f"{k}.new"] = n
    name = f"{net}_{'_'.join(parts)}_step"
    meta = {"net": net, "method": "+".join(parts), "triplets": triplets, "size": size, "lr": lr, "synced": synced,
            "loss": loss.item()}
    return {f"{name}.{k}": f32(v) for k, v in out.items()}, name, meta


def main():
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/backward")
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors, meta = {}, {"conv": {}, "pool": {}, "distance": {}}
    conv_cases = [
        # name, seed, batch, h, w, ctot, convolutions
        ("alex_conv1", 1, 2, 19, 19, 4, [conv(3, 4, 11, 4, 2)]),
        ("k5_p2", 2, 2, 7, 6, 6, [conv(5, 6, 5, 1, 2)]),
        ("squeeze_conv1", 3, 3, 9, 9, 5, [conv(3, 5, 3, 2, 0)]),
        ("k3_p1_no_relu", 4, 1, 6, 5, 5, [conv(9, 5, 3, 1, 1, relu=False)]),
        ("fire_expand", 5, 2, 5, 5, 7, [conv(6, 3, 1, 1, 0, c_off=0), conv(6, 4, 3, 1, 1, c_off=3)]),
    ]
    for name, seed, batch, h, w, ctot, convs in conv_cases:
        t, m = conv_case(name, seed, batch, h, w, ctot, convs)
        tensors.update(t)
        meta["conv"][name] = m
    pool_cases = [
        ("floor_k3_s2", 11, (2, 3, 7, 7), 3, 2, False),
        ("ceil_k3_s2", 12, (2, 3, 8, 8), 3, 2, True),
        ("ceil_k3_s2_exact", 13, (1, 2, 9, 9), 3, 2, True),
        ("floor_k2_s2_odd", 14, (1, 2, 7, 5), 2, 2, False),
    ]
    for name, seed, shape, k, s, ceil in pool_cases:
        t, m = pool_case(name, seed, shape, k, s, ceil)
        tensors.update(t)
        meta["pool"][name] = m
    distance_cases = [
        # name, seed, part, chunk, group_len, c, h, w, offset, columns, drop, step_seed, first_group
        ("spatial", 21, "spatial", 2, 3, 5, 3, 4, 2, 10, 0.5, 99, 4),
        ("spatial_no_dropout", 22, "spatial", 3, 2, 4, 2, 2, 0, 4, 0.0, 0, 0),
        ("mean", 23, "mean", 3, 2, 6, 4, 4, 3, 11, 0.5, 5, 1),
        ("sort", 24, "sort", 2, 3, 4, 3, 3, 1, 6, 0.5, 17, 2),
    ]
    for case in distance_cases:
        t, m = distance_case(*case)
        tensors.update(t)
        meta["distance"][case[0]] = m
    import os
    weights_dir = Path(os.environ.get("DPS_WEIGHTS_DIR", ""))
    if not (weights_dir / "alexnet.safetensors").is_file():
        sys.exit(f"set DPS_WEIGHTS_DIR to the directory holding alexnet.safetensors (looked in {weights_dir})")
    meta["steps"] = {}
    images = step_images()
    tensors["step_images"] = f32(images)
    for net, parts, seed in [("alex", ["spatial"], 41), ("squeeze", ["spatial", "sort"], 43),
                             ("alex", ["spatial", "mean"], 45)]:
        t, name, m = net_step(weights_dir, net, parts, seed, images)
        tensors.update(t)
        meta["steps"][name] = m
    save_file(tensors, str(out_dir / "backward.safetensors"))
    (out_dir / "backward.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(tensors)} tensors to {out_dir}")


if __name__ == "__main__":
    main()
