// distance.wgsl: the weighted squared distance of the paper's eq. 1-3, split so that training gets the gradient
// with respect to the channel weights for free:
//   pair_profile           s[pair, off + c] = (1/P) * sum_p mask * (u[i,c,p] - u[j,c,p])^2,   (i, j) = pairs[pair],
//                          u[n,c,p] = g[n,c,p] * r[n,p] with r the inverse norms (channel.wgsl's inverse_norm):
//                          the unit-normalised maps, made on the fly rather than written and read back.
//   weighted_sum           d[pair] = sum_k w[k] * s[pair, k]                    (forward)
//   weighted_sum_backward  grad_w[k] = sum_pair grad_d[pair] * s[pair, k]       (backward, for w)
//   pair_profile_backward  grad_g = dL/dg of one column block through d = s.w, given grad_d (backward, for the
//                          features): grad_g[i,c,p] = sum over the pairs (i, j) holding image i of
//                          +-(2/P) grad_d[pair] w[off+c] mask (g[i,c,p] - g[j,c,p]) / (1 - drop)
//                          (+ for the first image of the pair, - for the second); one thread per 4 values of
//                          a group's reference, writing the whole group's.
//                          It relies on the member-major layout: image m*chunk + g (m = 0 the reference) is in
//                          pair (m-1)*chunk + g, and reference g in pairs m*chunk + g for every m.
// A tap's term uses P = H*W positions (spatial), P = 1 (mean) or P = H*W sorted ranks (sort); every (tap, part)
// owns a column range [off, off + C) of the profile s, so one weighted_sum covers all taps and parts.
// mask is element-wise dropout (keep probability 1 - drop, kept values scaled by 1/(1 - drop), as nn.Dropout)
// drawn from a counter-based hash of (seed, step seed, global pair id, column, p): no mask is stored, a seed
// replays it exactly, and the mask of a pair does not depend on how the batch was cut into chunks. Pairs are
// laid out member-major within a chunk (pair = m * chunk + g for group g, compared member m+1), and
// state = [step seed, index of the chunk's first group, drop probability as f32 bits] is rewritten by the host
// for every chunk and step (drop 0 for evaluation), so one recorded plan serves training and evaluation.
//
// Layout: g [N, C, P] f32, r [N, P], pairs [n_pairs] vec2<u32> image indices, state [2] u32, s [n_pairs, K]
//         (K = all columns), w [K], d / grad_d [n_pairs], grad_w [K].
// Dispatch: one thread per output value (pair_profile: per (pair, 4 channels); weighted_sum: per pair; backward:
//           per k;
//           pair_profile_backward: per 4 consecutive values of an image of the chunk's references,
//           chunk·ceil(C·P/4)),
//           workgroup 256, linear workgroup index x + z*groups_x.

struct ProfileParams {
    n_pairs: u32, c: u32, positions: u32, groups_x: u32,
    offset: u32, columns: u32, seed: u32, chunk: u32,
}

@group(0) @binding(0) var<uniform> pp: ProfileParams;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> pairs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> s: array<f32>;
@group(0) @binding(5) var<storage, read> inv_norm: array<f32>;

// A 32-bit integer hash (lowbias32) chained over the coordinates; its low 24 bits give a uniform in [0, 1).
fn hash(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// The hash chain up to the position, shared by a row's values: hash(hash(hash(seed ^ hash(step)) ^ global pair)
// ^ column).
fn row_stream(pair: u32, column: u32) -> u32 {
    let others = pp.n_pairs / pp.chunk;
    let global_pair = (state[1] + pair % pp.chunk) * others + pair / pp.chunk;
    return hash(hash(hash(pp.seed ^ hash(state[0])) ^ global_pair) ^ column);
}

fn kept(stream: u32, p: u32) -> bool {
    return f32(hash(stream ^ p) >> 8u) * (1.0 / 16777216.0) >= bitcast<f32>(state[2]);
}

// A thread takes PROFILE_CO channels of a pair, so that each position's two inverse norms are loaded once for
// them (a load per value is what these loops pay on a SIMD rasteriser such as lavapipe).
const PROFILE_CO: u32 = 4u;

@compute @workgroup_size(256, 1, 1)
fn pair_profile(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * pp.groups_x) * 256u + li;
    let blocks = (pp.c + PROFILE_CO - 1u) / PROFILE_CO;
    if (idx >= pp.n_pairs * blocks) {
        return;
    }
    let pair = idx / blocks;
    let c0 = (idx % blocks) * PROFILE_CO;
    let ij = pairs[pair];
    let ri = ij.x * pp.positions;
    let rj = ij.y * pp.positions;
    // Channels past C repeat the last one and are not stored.
    var gi: array<u32, PROFILE_CO>;
    var gj: array<u32, PROFILE_CO>;
    var stream: array<u32, PROFILE_CO>;
    for (var k = 0u; k < PROFILE_CO; k++) {
        let c = min(c0 + k, pp.c - 1u);
        gi[k] = (ij.x * pp.c + c) * pp.positions;
        gj[k] = (ij.y * pp.c + c) * pp.positions;
        stream[k] = row_stream(pair, pp.offset + c);
    }
    var acc = vec4<f32>(0.0);
    let drop = bitcast<f32>(state[2]);
    for (var q = 0u; q < pp.positions; q++) {
        let inv_i = inv_norm[ri + q];
        let inv_j = inv_norm[rj + q];
        var kept_q = vec4<bool>(true);
        if (drop > 0.0) {
            for (var k = 0u; k < PROFILE_CO; k++) {
                kept_q[k] = kept(stream[k], q);
            }
        }
        var diff: vec4<f32>;
        for (var k = 0u; k < PROFILE_CO; k++) {
            diff[k] = g[gi[k] + q] * inv_i - g[gj[k] + q] * inv_j;
        }
        acc = select(acc, fma(diff, diff, acc), kept_q);
    }
    if (drop > 0.0) {
        acc /= 1.0 - drop;
    }
    acc /= f32(pp.positions);
    for (var k = 0u; k < PROFILE_CO; k++) {
        if (c0 + k < pp.c) {
            s[pair * pp.columns + pp.offset + c0 + k] = acc[k];
        }
    }
}

struct SumParams {
    n_pairs: u32, columns: u32, groups_x: u32, _unused: u32,
}

@group(0) @binding(0) var<uniform> sp: SumParams;
@group(0) @binding(1) var<storage, read> profile: array<f32>;
@group(0) @binding(2) var<storage, read> vector: array<f32>;
@group(0) @binding(3) var<storage, read_write> result: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn weighted_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let pair = (wid.x + wid.z * sp.groups_x) * 256u + li;
    if (pair >= sp.n_pairs) {
        return;
    }
    var acc = 0.0;
    let row = pair * sp.columns;
    for (var k = 0u; k < sp.columns; k++) {
        acc = fma(vector[k], profile[row + k], acc);
    }
    result[pair] = acc;
}

@compute @workgroup_size(256, 1, 1)
fn weighted_sum_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let k = (wid.x + wid.z * sp.groups_x) * 256u + li;
    if (k >= sp.columns) {
        return;
    }
    var acc = 0.0;
    for (var pair = 0u; pair < sp.n_pairs; pair++) {
        acc = fma(vector[pair], profile[pair * sp.columns + k], acc);
    }
    result[k] = acc;
}

// pair_profile_backward's bindings: the pairs are not read (their member-major layout is assumed, see the
// header), so grad_d takes binding 2; g (as vec4s, tensors being allocated in whole vec4s) and state keep theirs.
@group(0) @binding(2) var<storage, read> grad_d: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read> g4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> grad_g4: array<vec4<f32>>;

// The 4 values of g from index `at` on (the last repeated past `count`): one vec4 load where the images are whole
// vec4s (C·P a multiple of 4: every net's taps), else one load per value.
fn load4(aligned: bool, at: u32, count: u32) -> vec4<f32> {
    if (aligned) {
        return g4[at / 4u];
    }
    var v: vec4<f32>;
    for (var j = 0u; j < 4u; j++) {
        let i = at + min(j, count - 1u);
        v[j] = g4[i / 4u][i % 4u];
    }
    return v;
}

fn store4(aligned: bool, at: u32, count: u32, v: vec4<f32>) {
    if (aligned) {
        grad_g4[at / 4u] = v;
        return;
    }
    for (var j = 0u; j < count; j++) {
        grad_g4[(at + j) / 4u][(at + j) % 4u] = v[j];
    }
}

// One thread per 4 consecutive values of a group's reference (its flat index c·P + q; fewer at the image's end):
// it reads the reference's values and each other member's once, as vec4s where aligned (1.4× on lavapipe against
// 4 scalar accesses), and writes all of the group's gradients there, each pair's dropout stream hashed once per
// channel the 4 values touch. (A thread per value of g gathered the
// reference's value once per pair and each pair's twice, and drew each dropout decision twice.)
@compute @workgroup_size(256, 1, 1)
fn pair_profile_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let others = pp.n_pairs / pp.chunk;
    let per_image = pp.c * pp.positions;
    let quads = (per_image + 3u) / 4u;
    let idx = (wid.x + wid.z * pp.groups_x) * 256u + li;
    if (idx >= pp.chunk * quads) {
        return;
    }
    let aligned = per_image % 4u == 0u;
    let group = idx / quads;
    let v0 = (idx % quads) * 4u;
    let count = min(per_image - v0, 4u);
    let drop = bitcast<f32>(state[2]);
    // Each value's channel (column of the profile) and position, stepped from the first's.
    var column: array<u32, 4>;
    var position: array<u32, 4>;
    var scale: vec4<f32>;
    let per_weight = 2.0 / (f32(pp.positions) * (1.0 - drop));
    var c = v0 / pp.positions;
    var q = v0 % pp.positions;
    for (var j = 0u; j < 4u; j++) {
        column[j] = pp.offset + min(c, pp.c - 1u);
        position[j] = q;
        scale[j] = weights[column[j]] * per_weight;
        q += 1u;
        c += u32(q == pp.positions);
        q = select(q, 0u, q == pp.positions);
    }
    let reference = group * per_image + v0;
    let v_ref = load4(aligned, reference, count);
    // Pair (m - 1)·chunk + group compares the reference with member m; whichever order it holds them in,
    // ∂d/∂g is +(2/P)·w·(v_ref - v_m) for the reference and its negative for the member.
    var acc = vec4<f32>(0.0);
    for (var m = 1u; m <= others; m++) {
        let pair = (m - 1u) * pp.chunk + group;
        let member = (m * pp.chunk + group) * per_image + v0;
        var t = grad_d[pair] * (v_ref - load4(aligned, member, count));
        if (drop > 0.0) {
            var stream = row_stream(pair, column[0]);
            for (var j = 0u; j < 4u; j++) {
                if (j > 0u && column[j] != column[j - 1u]) {
                    stream = row_stream(pair, column[j]);
                }
                t[j] = select(0.0, t[j], kept(stream, position[j]));
            }
        }
        acc += t;
        store4(aligned, member, count, -t * scale);
    }
    store4(aligned, reference, count, acc * scale);
}
