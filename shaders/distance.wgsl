// distance.wgsl: the weighted squared distance of the paper's eq. 1-3, split so that training gets the gradient
// with respect to the channel weights for free:
//   pair_profile           s[pair, off + c] = (1/P) * sum_p mask * (u[i,c,p] - u[j,c,p])^2,   (i, j) = pairs[pair],
//                          u[n,c,p] = g[n,c,p] * r[n,p] with r the inverse norms (channel.wgsl's inverse_norm):
//                          the unit-normalised maps, made on the fly rather than written and read back.
//   weighted_sum           d[pair] = sum_k w[k] * s[pair, k]                    (forward)
//   weighted_sum_backward  grad_w[k] = sum_pair grad_d[pair] * s[pair, k]       (backward, for w)
//   pair_profile_backward  grad_g = dL/dg of one column block through the normalisation and d = s.w, given
//                          grad_d (backward, for the features): with gu[i,c,p] = sum over the pairs (i, j) holding
//                          image i of +-(2/P) grad_d[pair] w[off+c] mask (u[i,c,p] - u[j,c,p]) / (1 - drop)
//                          (+ for the first image of the pair, - for the second), grad_g = (gu - u (u.gu)) r
//                          column by column (nothing of u.gu below the norm's 1e-12 clamp); one thread per
//                          position of a group, holding its column in every image of the group (at most 4).
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
//           pair_profile_backward: per position of a group, chunk·P),
//           workgroup 256, linear workgroup index x + z*groups_x.

struct ProfileParams {
    n_pairs: u32, c: u32, positions: u32, groups_x: u32,
    offset: u32, columns: u32, seed: u32, chunk: u32,
    // pair_profile_backward: add to grad_g rather than overwrite it.
    accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
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
    return hash(pair_stream(pair) ^ column);
}

// The part of row_stream that depends on the pair alone.
fn pair_stream(pair: u32) -> u32 {
    let others = pp.n_pairs / pp.chunk;
    let global_pair = (state[1] + pair % pp.chunk) * others + pair / pp.chunk;
    return hash(hash(pp.seed ^ hash(state[0])) ^ global_pair);
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
// header), so grad_d takes binding 2; g and state keep theirs.
@group(0) @binding(2) var<storage, read> grad_d: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_g: array<f32>;

// The images of a group a thread of the backward holds (a reference and up to three compared members; training
// compares triplets): one vec4 lane each, so that its per-image sums stay in registers.
const GROUP_MAX: u32 = 4u;

// Channel `o` (c·P) of the thread's column of every image of its group; 0 for the images the group lacks.
fn group_column(at: vec4<u32>, o: u32, members: u32) -> vec4<f32> {
    var v = vec4<f32>(g[at.x + o], g[at.y + o], 0.0, 0.0);
    if (members > 2u) {
        v.z = g[at.z + o];
    }
    if (members > 3u) {
        v.w = g[at.w + o];
    }
    return v;
}

// The gradient with respect to the unit-normalised column `u` (reference in .x, member m in [m]) of channel c:
// member m's pair adds t = grad_d·w·2/(P(1 - drop))·(u_ref - u_m) (0 where dropped) to the reference's and -t
// to the member's.
fn group_grad_u(u: vec4<f32>, scaled_grad_d: vec4<f32>, streams: vec4<u32>, column: u32, q: u32, members: u32,
                drop: f32) -> vec4<f32> {
    var t = scaled_grad_d * (vec4<f32>(u.x) - u);
    if (drop > 0.0) {
        for (var m = 1u; m < GROUP_MAX; m++) {
            if (m < members && !kept(hash(streams[m] ^ column), q)) {
                t[m] = 0.0;
            }
        }
    }
    return vec4<f32>(t.y + t.z + t.w, -t.y, -t.z, -t.w);
}

// One thread per position q of a group (chunk·P threads), holding that column of every image of the group:
// it finds the columns' norms, then the gradient gu with respect to the normalised maps u = g·r (r = 1 / max(‖g‖,
// 1e-12)) and its projection gu·u, then writes ∂L/∂g = (gu - g·(g·gu)·r²)·r (without the projection below the
// clamp, where the norm is the constant 1e-12), computing gu again rather than storing it: the normalisation,
// the pair profile's backward and the normalisation's backward in one pass over the maps, three loads and a store
// per value. Streams are the pairs' dropout streams (row_stream's hashes of the pair, hoisted).
@compute @workgroup_size(256, 1, 1)
fn pair_profile_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * pp.groups_x) * 256u + li;
    if (idx >= pp.chunk * pp.positions) {
        return;
    }
    let group = idx / pp.positions;
    let q = idx % pp.positions;
    let members = pp.n_pairs / pp.chunk + 1u;
    let per_image = pp.c * pp.positions;
    let drop = bitcast<f32>(state[2]);
    // Images past the group's repeat its last; their grad_d is 0 and nothing is stored for them.
    var at: vec4<u32>;
    var streams: vec4<u32>;
    var gd = vec4<f32>(0.0);
    let per_weight = 2.0 / (f32(pp.positions) * (1.0 - drop));
    for (var m = 0u; m < GROUP_MAX; m++) {
        let image = min(m, members - 1u);
        at[m] = (image * pp.chunk + group) * per_image + q;
        if (m > 0u && m < members) {
            let pair = (m - 1u) * pp.chunk + group;
            streams[m] = pair_stream(pair);
            gd[m] = grad_d[pair] * per_weight;
        }
    }
    var sumsq = vec4<f32>(0.0);
    for (var c = 0u; c < pp.c; c++) {
        let v = group_column(at, c * pp.positions, members);
        sumsq = fma(v, v, sumsq);
    }
    let norm = sqrt(sumsq);
    let inv = 1.0 / max(norm, vec4<f32>(1e-12));
    var dot = vec4<f32>(0.0);
    for (var c = 0u; c < pp.c; c++) {
        let v = group_column(at, c * pp.positions, members);
        let w_gd = gd * weights[pp.offset + c];
        dot = fma(v, group_grad_u(v * inv, w_gd, streams, pp.offset + c, q, members, drop), dot);
    }
    let proj = select(vec4<f32>(0.0), dot * inv * inv, norm > vec4<f32>(1e-12));
    for (var c = 0u; c < pp.c; c++) {
        let o = c * pp.positions;
        let v = group_column(at, o, members);
        let w_gd = gd * weights[pp.offset + c];
        let grad = (group_grad_u(v * inv, w_gd, streams, pp.offset + c, q, members, drop) - v * proj) * inv;
        for (var m = 0u; m < GROUP_MAX; m++) {
            if (m < members) {
                var value = grad[m];
                if (pp.accumulate != 0u) {
                    value += grad_g[at[m] + o];
                }
                grad_g[at[m] + o] = value;
            }
        }
    }
}
