// pool.wgsl: max-pooling over square windows (torch.nn.MaxPool2d without padding or dilation; the host picks
// the output size for floor or ceil mode, and windows that run past the input edge are clipped, as PyTorch does).
//
// Layout: x [planes, H, W] and y [planes, Ho, Wo] with planes = B*C, f32.
// Dispatch: workgroup 256, one thread per output value; linear workgroup index = x + z*groups_x.

struct PoolParams {
    planes: u32, h: u32, w: u32, ho: u32,
    wo: u32, kernel: u32, stride: u32, groups_x: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn maxpool2d_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    if (idx >= p.planes * p.ho * p.wo) {
        return;
    }
    let plane = idx / (p.ho * p.wo);
    let r = idx % (p.ho * p.wo);
    let y0 = (r / p.wo) * p.stride;
    let x0 = (r % p.wo) * p.stride;
    let y1 = min(y0 + p.kernel, p.h);
    let x1 = min(x0 + p.kernel, p.w);
    var best = bitcast<f32>(0xff800000u); // -inf
    for (var yy = y0; yy < y1; yy++) {
        for (var xx = x0; xx < x1; xx++) {
            best = max(best, x[(plane * p.h + yy) * p.w + xx]);
        }
    }
    y[idx] = best;
}
