// channel.wgsl: per-channel transforms of feature maps that the distances are built from.
//
// Layout: maps are [N, C, P] f32 (P = H*W positions). Every entry point uses a linear workgroup index
// x + z*groups_x so batches larger than the per-dimension dispatch limit still fit.
//   imagenet_normalize  x[n,c,p] = (x - mean[c]) / std[c] for images n in [first, last); one thread per four
//                       values.
//   inverse_norm        y[n,p]   = 1 / max(||x[n,:,p]||_2, 1e-12), the factor that unit-normalises a column (the
//                       forward's pair_profile applies it itself, distance.wgsl's backward recomputes it); one
//                       thread per (n, p).
//   channel_mean        y[n,c]   = mean_p x[n,c,p]; one thread per (n, c).
//   channel_sort        y[n,c,:] = x[n,c,:] sorted ascending; one workgroup of 256 per (n, c) row, a bitonic
//                       sort in workgroup memory (P <= 4096, padded with +inf to a power of two).
//   channel_sort_with_order  the same, also writing order[n,c,k] = the position p of x that landed at rank k (u32):
//                       the permutation the sort's backward routes gradients through (as torch.sort's indices).
// Backward (accumulate: add to the output gradient instead of overwriting it):
//   channel_mean_backward    gx[n,c,p] = gy[n,c] / P; one thread per value. Bindings: gy, gx.
//   channel_sort_backward    gx[n,c,order[n,c,k]] = gy[n,c,k]; one thread per value. Bindings: gy, order, gx.

struct ChannelParams {
    n: u32, c: u32, positions: u32, groups_x: u32,
    first: u32, last: u32, padded: u32, accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: ChannelParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const IMAGENET_MEAN = array<f32, 3>(0.485, 0.456, 0.406);
const IMAGENET_STD = array<f32, 3>(0.229, 0.224, 0.225);

fn thread_index(wid: vec3<u32>, li: u32) -> u32 {
    return (wid.x + wid.z * p.groups_x) * 256u + li;
}

// imagenet_normalize reads and writes four values per invocation (tensors are allocated in whole vec4s; values
// past the images keep theirs): a SIMD rasteriser such as lavapipe pays per load and lane, whatever the width.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn imagenet_normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = thread_index(wid, li);
    let n = p.n * p.c * p.positions;
    if (4u * idx >= n) {
        return;
    }
    let v = x4[idx];
    let plane = 4u * idx / p.positions;
    if (4u * idx + 3u < min(n, (plane + 1u) * p.positions)) {
        // The four values in one channel of one image (always, where H·W is a multiple of 4).
        let ch = plane % p.c;
        let img = plane / p.c;
        let inside = img >= p.first && img < p.last;
        y4[idx] = select(v, (v - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch], inside);
        return;
    }
    var out = y4[idx];
    for (var k = 0u; k < 4u; k++) {
        let i = 4u * idx + k;
        let img = i / (p.c * p.positions);
        let ch = (i / p.positions) % p.c;
        if (i < n) {
            out[k] = v[k];
            if (img >= p.first && img < p.last) {
                out[k] = (v[k] - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
            }
        }
    }
    y4[idx] = out;
}

// 1 / max(||x[n,:,p]||, 1e-12) of the column at `base` (n·C·P + p).
fn column_inverse_norm(base: u32) -> f32 {
    var sumsq = 0.0;
    for (var c = 0u; c < p.c; c++) {
        let v = x[base + c * p.positions];
        sumsq = fma(v, v, sumsq);
    }
    return 1.0 / max(sqrt(sumsq), 1e-12);
}

@compute @workgroup_size(256, 1, 1)
fn inverse_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = thread_index(wid, li);
    if (idx >= p.n * p.positions) {
        return;
    }
    y[idx] = column_inverse_norm((idx / p.positions) * p.c * p.positions + idx % p.positions);
}

@compute @workgroup_size(256, 1, 1)
fn channel_mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = thread_index(wid, li);
    if (idx >= p.n * p.c) {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < p.positions; i++) {
        s += x[idx * p.positions + i];
    }
    y[idx] = s / f32(p.positions);
}

const SORT_CAPACITY: u32 = 4096u;
var<workgroup> keys: array<f32, SORT_CAPACITY>;
// Only channel_sort_with_order uses it: workgroup memory is zeroed per workgroup, which the plain sort skips.
var<workgroup> origin: array<u32, SORT_CAPACITY>;
@group(0) @binding(3) var<storage, read_write> order: array<u32>;

// Loads the row at `base` into `keys`, padded with +inf (sorts after every value, infinities included).
fn load_keys(base: u32, li: u32) {
    for (var i = li; i < p.padded; i += 256u) {
        var v = bitcast<f32>(0x7f800000u);
        if (i < p.positions) {
            v = x[base + i];
        }
        keys[i] = v;
    }
}

// One compare-exchange of the bitonic network (merge of blocks `size`, partner distance `stride`); true when the
// pair was swapped.
fn compare_exchange(i: u32, size: u32, stride: u32) -> bool {
    let partner = i ^ stride;
    if (partner <= i) {
        return false;
    }
    let a = keys[i];
    let b = keys[partner];
    if ((a > b) == ((i & size) == 0u)) {
        keys[i] = b;
        keys[partner] = a;
        return true;
    }
    return false;
}

@compute @workgroup_size(256, 1, 1)
fn channel_sort(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.x + wid.z * p.groups_x;
    // `row` is uniform across the workgroup, so this early exit keeps the barriers below uniform.
    if (row >= p.n * p.c) {
        return;
    }
    let base = row * p.positions;
    load_keys(base, li);
    workgroupBarrier();
    for (var size = 2u; size <= p.padded; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var i = li; i < p.padded; i += 256u) {
                _ = compare_exchange(i, size, stride);
            }
            workgroupBarrier();
        }
    }
    for (var i = li; i < p.positions; i += 256u) {
        y[base + i] = keys[i];
    }
}

@compute @workgroup_size(256, 1, 1)
fn channel_sort_with_order(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.x + wid.z * p.groups_x;
    if (row >= p.n * p.c) {
        return;
    }
    let base = row * p.positions;
    load_keys(base, li);
    for (var i = li; i < p.padded; i += 256u) {
        origin[i] = i;
    }
    workgroupBarrier();
    for (var size = 2u; size <= p.padded; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var i = li; i < p.padded; i += 256u) {
                if (compare_exchange(i, size, stride)) {
                    let o = origin[i];
                    origin[i] = origin[i ^ stride];
                    origin[i ^ stride] = o;
                }
            }
            workgroupBarrier();
        }
    }
    for (var i = li; i < p.positions; i += 256u) {
        y[base + i] = keys[i];
        order[base + i] = origin[i];
    }
}

@group(0) @binding(3) var<storage, read_write> gx: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn channel_mean_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = thread_index(wid, li);
    if (idx >= p.n * p.c * p.positions) {
        return;
    }
    // Bound as the forward's (x, y): x holds the gradient of the means, y the gradient of the maps.
    var v = x[idx / p.positions] / f32(p.positions);
    if (p.accumulate != 0u) {
        v += y[idx];
    }
    y[idx] = v;
}

@group(0) @binding(2) var<storage, read> sort_order: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn channel_sort_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = thread_index(wid, li);
    if (idx >= p.n * p.c * p.positions) {
        return;
    }
    // x holds the gradient of the sorted rows; each row's order is a permutation, so writes never collide.
    let o = (idx / p.positions) * p.positions + sort_order[idx];
    var v = x[idx];
    if (p.accumulate != 0u) {
        v += gx[o];
    }
    gx[o] = v;
}
