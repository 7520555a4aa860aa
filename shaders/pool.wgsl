// pool.wgsl: max-pooling over square windows (torch.nn.MaxPool2d without padding or dilation; the host picks
// the output size for floor or ceil mode, and windows that run past the input edge are clipped, as PyTorch does).
//
// The backward routes each output's gradient to the first maximum of its window in row-major order (what
// PyTorch's CPU and CUDA kernels record as the index; the last NaN wins, as there), summing over overlapping
// windows: a forward that trains (maxpool2d_forward_argmax) records each window's maximum (its index within the
// plane) as it finds it, then maxpool2d_backward_cells (or maxpool2d_backward, for windows wider than twice the
// stride) gathers: each input value adds the gradients of the few windows whose maximum it is, so no two
// invocations write the same value. (Re-finding the maxima per input value instead reads every window up to four
// times over for 3×3 windows at stride 2: 12× the time of the forward on SqueezeNet, BENCHMARKS.md.)
//
// Layout: x / grad_x [planes, H, W] and y / gy / argmax [planes, Ho, Wo] with planes = B*C, f32 (argmax u32).
// Bindings: forward x, y (and argmax); backward argmax, gy, grad_x.
// Dispatch: workgroup 256, one thread per output value (forward) or two (_pairs), cell of stride × stride input
//           values (backward_cells) or input value (backward); linear workgroup index = x + z*groups_x.
//           accumulate (backward only): add to grad_x instead of overwriting it.

struct PoolParams {
    planes: u32, h: u32, w: u32, ho: u32,
    wo: u32, kernel: u32, stride: u32, groups_x: u32,
    accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// The maximum of output window r of a plane and where it is (yy·W + xx): the first in row-major order, or the
// last NaN, as PyTorch's max-pool (its value and recorded index: `val > maxval || isnan(val)`) has it.
struct WindowMax {
    value: f32,
    index: u32,
}

// By its bits: WGSL lets a compiler assume floats are never NaN, so `v != v` may be folded to false.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn window_max(plane: u32, r: u32) -> WindowMax {
    let y0 = (r / p.wo) * p.stride;
    let x0 = (r % p.wo) * p.stride;
    let y1 = min(y0 + p.kernel, p.h);
    let x1 = min(x0 + p.kernel, p.w);
    var best = WindowMax(bitcast<f32>(0xff800000u), y0 * p.w + x0); // -inf
    for (var yy = y0; yy < y1; yy++) {
        for (var xx = x0; xx < x1; xx++) {
            let v = x[(plane * p.h + yy) * p.w + xx];
            if (v > best.value || is_nan(v)) {
                best = WindowMax(v, yy * p.w + xx);
            }
        }
    }
    return best;
}

@compute @workgroup_size(256, 1, 1)
fn maxpool2d_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    if (idx >= p.planes * p.ho * p.wo) {
        return;
    }
    y[idx] = window_max(idx / (p.ho * p.wo), idx % (p.ho * p.wo)).value;
}

// maxpool2d_forward_argmax: the forward, also writing argmax[o] = the index (yy·W + xx) of the first maximum of
// window o, for the backward of a pass that trains.
@group(0) @binding(3) var<storage, read_write> argmax_out: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn maxpool2d_forward_argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    if (idx >= p.planes * p.ho * p.wo) {
        return;
    }
    let best = window_max(idx / (p.ho * p.wo), idx % (p.ho * p.wo));
    y[idx] = best.value;
    argmax_out[idx] = best.index;
}

// The _pairs variants: two neighbouring outputs of a row per thread, where their windows fit in 5 columns
// (stride + kernel <= 5: the nets' 3×3 and 2×2 windows at stride 2). Each window row's inputs are read as the two
// whole vec4s that hold them (a SIMD rasteriser such as lavapipe pays per load and lane, whatever the width: 2
// loads per row for both outputs where there were up to 6), then scanned in the same order as window_max.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;

fn window_max_pair(plane: u32, oy: u32, ox0: u32) -> array<WindowMax, 2> {
    let y0 = oy * p.stride;
    let y1 = min(y0 + p.kernel, p.h);
    let x0 = ox0 * p.stride;
    var best = array<WindowMax, 2>(
        WindowMax(bitcast<f32>(0xff800000u), y0 * p.w + x0),
        WindowMax(bitcast<f32>(0xff800000u), y0 * p.w + x0 + p.stride),
    );
    for (var yy = y0; yy < y1; yy++) {
        let start = (plane * p.h + yy) * p.w + x0;
        let a = x4[start / 4u];
        let b = x4[start / 4u + 1u];
        var flat = array<f32, 8>(a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w);
        let shift = start % 4u;
        for (var u = 0u; u < 5u; u++) {
            var v = flat[u];
            v = select(v, flat[u + 1u], shift == 1u);
            v = select(v, flat[u + 2u], shift == 2u);
            v = select(v, flat[u + 3u], shift == 3u);
            for (var j = 0u; j < 2u; j++) {
                // Column x0 + u is tap u - j·stride of window j.
                let in_window = u >= j * p.stride && u < j * p.stride + p.kernel && x0 + u < p.w;
                if (in_window && (v > best[j].value || is_nan(v))) {
                    best[j] = WindowMax(v, yy * p.w + x0 + u);
                }
            }
        }
    }
    return best;
}

// What a thread of a _pairs variant found: whether it has outputs, where its first output is in y (the second
// follows it, if it exists) and the two windows' maxima.
struct PairMaxima {
    ok: bool,
    at: u32,
    second: bool,
    best: array<WindowMax, 2>,
}

fn pair_maxima(wid: vec3<u32>, li: u32) -> PairMaxima {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    let pairs_x = (p.wo + 1u) / 2u;
    let ok = idx < p.planes * p.ho * pairs_x;
    let plane = min(idx / (p.ho * pairs_x), p.planes - 1u);
    let oy = (idx / pairs_x) % p.ho;
    let ox0 = 2u * (idx % pairs_x);
    var best: array<WindowMax, 2>;
    if (ok) {
        best = window_max_pair(plane, oy, ox0);
    }
    return PairMaxima(ok, (plane * p.ho + oy) * p.wo + ox0, ox0 + 1u < p.wo, best);
}

@compute @workgroup_size(256, 1, 1)
fn maxpool2d_forward_pairs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pair_maxima(wid, li);
    if (m.ok) {
        y[m.at] = m.best[0].value;
    }
    if (m.ok && m.second) {
        y[m.at + 1u] = m.best[1].value;
    }
}

@compute @workgroup_size(256, 1, 1)
fn maxpool2d_forward_argmax_pairs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pair_maxima(wid, li);
    if (m.ok) {
        y[m.at] = m.best[0].value;
        argmax_out[m.at] = m.best[0].index;
    }
    if (m.ok && m.second) {
        y[m.at + 1u] = m.best[1].value;
        argmax_out[m.at + 1u] = m.best[1].index;
    }
}

// maxpool2d_backward: grad_x[i] (+)= the sum of gy over the windows whose argmax is i.
@group(0) @binding(1) var<storage, read> argmax: array<u32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_x: array<f32>;

// The windows along one axis (rows or columns) that may contain input position i, where kernel <= 2·stride (the
// three nets' pools): i / stride and the one before it, the same for every position of a cell. `first`/`second`
// are they, clamped into range so they can always be read, and the flags say which exist. (A window that exists
// but does not contain i, where windows leave gaps, is harmless: its argmax is inside it, so never i.)
struct AxisWindows {
    first: u32,
    second: u32,
    first_ok: bool,
    second_ok: bool,
}

fn axis_windows(i: u32, n_out: u32) -> AxisWindows {
    let a = i / p.stride;
    let b = max(a, 1u) - 1u;
    let a_ok = a < n_out;
    let b_ok = a >= 1u && b < n_out;
    return AxisWindows(min(a, n_out - 1u), min(b, n_out - 1u), a_ok, b_ok);
}

// gy of window o if its maximum is at r, else 0.
fn routed(o: u32, r: u32) -> f32 {
    return select(0.0, gy[o], argmax[o] == r);
}

// maxpool2d_backward_cells: the gather where kernel <= 2·stride, one thread per cell of stride × stride inputs
// (cell (cy, cx): rows cy·stride.., columns cx·stride..). Every input of a cell has the same four candidate
// windows, so their maxima and gradients are read once for its stride² inputs (a SIMD rasteriser such as
// lavapipe pays per load and lane: per input this reads 2 values where a thread per input read 8).
@compute @workgroup_size(256, 1, 1)
fn maxpool2d_backward_cells(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    let cells_y = (p.h + p.stride - 1u) / p.stride;
    let cells_x = (p.w + p.stride - 1u) / p.stride;
    if (idx >= p.planes * cells_y * cells_x) {
        return;
    }
    let plane = idx / (cells_y * cells_x);
    let cy = (idx / cells_x) % cells_y;
    let cx = idx % cells_x;
    let wy = axis_windows(cy * p.stride, p.ho);
    let wx = axis_windows(cx * p.stride, p.wo);
    let row_a = (plane * p.ho + wy.first) * p.wo;
    let row_b = (plane * p.ho + wy.second) * p.wo;
    let window = array<u32, 4>(row_a + wx.first, row_a + wx.second, row_b + wx.first, row_b + wx.second);
    let exists = array<bool, 4>(
        wy.first_ok && wx.first_ok,
        wy.first_ok && wx.second_ok,
        wy.second_ok && wx.first_ok,
        wy.second_ok && wx.second_ok,
    );
    var at: array<u32, 4>;
    var g: array<f32, 4>;
    for (var k = 0u; k < 4u; k++) {
        at[k] = select(0xffffffffu, argmax[window[k]], exists[k]);
        g[k] = gy[window[k]];
    }
    for (var dy = 0u; dy < p.stride; dy++) {
        let iy = cy * p.stride + dy;
        for (var dx = 0u; dx < p.stride; dx++) {
            let ix = cx * p.stride + dx;
            if (iy >= p.h || ix >= p.w) {
                continue;
            }
            let r = iy * p.w + ix;
            var acc = 0.0;
            for (var k = 0u; k < 4u; k++) {
                acc += select(0.0, g[k], at[k] == r);
            }
            let i = plane * p.h * p.w + r;
            if (p.accumulate != 0u) {
                acc += grad_x[i];
            }
            grad_x[i] = acc;
        }
    }
}

// maxpool2d_backward: the same gather for any window, one thread per input value: the windows (oy, ox) with
// oy·stride <= iy < oy·stride + kernel.
@compute @workgroup_size(256, 1, 1)
fn maxpool2d_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    if (idx >= p.planes * p.h * p.w) {
        return;
    }
    let plane = idx / (p.h * p.w);
    let r = idx % (p.h * p.w);
    let iy = r / p.w;
    let ix = r % p.w;
    var oy0 = 0u;
    if (iy + 1u > p.kernel) {
        oy0 = (iy + 1u - p.kernel + p.stride - 1u) / p.stride;
    }
    var ox0 = 0u;
    if (ix + 1u > p.kernel) {
        ox0 = (ix + 1u - p.kernel + p.stride - 1u) / p.stride;
    }
    let oy1 = min(iy / p.stride + 1u, p.ho);
    let ox1 = min(ix / p.stride + 1u, p.wo);
    var acc = 0.0;
    for (var oy = oy0; oy < oy1; oy++) {
        for (var ox = ox0; ox < ox1; ox++) {
            acc += routed((plane * p.ho + oy) * p.wo + ox, r);
        }
    }
    if (p.accumulate != 0u) {
        acc += grad_x[idx];
    }
    grad_x[idx] = acc;
}
