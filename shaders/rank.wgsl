// rank.wgsl: the LPIPS rank net and the training loss on distances, forward and backward.
//   x = (d0, d1, d0 - d1, d0/(d1 + 0.1), d1/(d0 + 0.1))  ->  Linear 5->32, LeakyReLU(0.2), Linear 32->32,
//   LeakyReLU(0.2), Linear 32->1, sigmoid  =  P(p1 is the closer image).
//   loss = mean_t BCE(net(x_t), h_t)  +  [batch 2AFC <= 0.5] * 10 * mean_t BCE(sigmoid(d0_t - d1_t), h_t).
// BCE and its gradient follow torch.nn.BCELoss (log clamped at -100, gradient (p-h)/max(p(1-p), 1e-12)).
//
// Layout: theta = [W1 (32x5), b1 (32), W2 (32x32), b2 (32), W3 (1x32), b3 (1)] row-major (nn.Linear's
//   [out, in]); d = [d0 (T), d1 (T)]; h [T]; cache [T, CACHE_LEN] holds per-triplet activations and gradients (see
//   CACHE_*; stats = [sum BCE, sum 2AFC, sync applied, sum sync BCE]; grad_d = [dL/dd0 (T), dL/dd1 (T)];
//   grad_theta like theta.
// Dispatch: rank_forward_backward and rank_distance_grad one thread per triplet (workgroup 256, linear index
//   x + z*groups_x); rank_batch_stats one workgroup; rank_param_grad one thread per parameter.

struct RankParams {
    triplets: u32, groups_x: u32, sync_weight: f32, sync_threshold: f32,
}

@group(0) @binding(0) var<uniform> rp: RankParams;
@group(0) @binding(1) var<storage, read> theta: array<f32>;
@group(0) @binding(2) var<storage, read> d: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_d: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_theta: array<f32>;

const HIDDEN: u32 = 32u;
const W1: u32 = 0u;
const B1: u32 = 160u;
const W2: u32 = 192u;
const B2: u32 = 1216u;
const W3: u32 = 1248u;
const B3: u32 = 1280u;
const N_THETA: u32 = 1281u;
const EPS: f32 = 0.1;
const SLOPE: f32 = 0.2;

// Per-triplet cache: inputs, the two hidden layers' outputs (after LeakyReLU), the output gradient, the
// pre-activation gradients of both hidden layers, the BCE value, the 2AFC score.
const CACHE_X: u32 = 0u;
const CACHE_A1: u32 = 5u;
const CACHE_A2: u32 = 37u;
const CACHE_G3: u32 = 69u;
const CACHE_G2: u32 = 70u;
const CACHE_G1: u32 = 102u;
const CACHE_BCE: u32 = 134u;
const CACHE_SCORE: u32 = 135u;
const CACHE_GX0: u32 = 136u; // dBCE/dd0, dBCE/dd1 through the rank net
const CACHE_LEN: u32 = 138u;

fn leaky(z: f32) -> f32 {
    return select(SLOPE * z, z, z > 0.0);
}

fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

fn bce(p: f32, y: f32) -> f32 {
    return -(y * max(log(p), -100.0) + (1.0 - y) * max(log(1.0 - p), -100.0));
}

// d BCE(sigmoid(z), y) / dz as autograd computes it through BCELoss and sigmoid.
fn bce_sigmoid_grad(p: f32, y: f32) -> f32 {
    return (p - y) / max(p * (1.0 - p), 1e-12) * (p * (1.0 - p));
}

fn two_afc(d0: f32, d1: f32, y: f32) -> f32 {
    if (d0 < d1) {
        return 1.0 - y;
    }
    if (d1 < d0) {
        return y;
    }
    return 0.5;
}

fn triplet_index(wid: vec3<u32>, li: u32) -> u32 {
    return (wid.x + wid.z * rp.groups_x) * 256u + li;
}

@compute @workgroup_size(256, 1, 1)
fn rank_forward_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = triplet_index(wid, li);
    if (t >= rp.triplets) {
        return;
    }
    let d0 = d[t];
    let d1 = d[rp.triplets + t];
    let y = h[t];
    var x = array<f32, 5>(d0, d1, d0 - d1, d0 / (d1 + EPS), d1 / (d0 + EPS));
    let base = t * CACHE_LEN;
    var a1: array<f32, 32>;
    var a2: array<f32, 32>;
    for (var i = 0u; i < 5u; i++) {
        cache[base + CACHE_X + i] = x[i];
    }
    for (var j = 0u; j < HIDDEN; j++) {
        var z = theta[B1 + j];
        for (var i = 0u; i < 5u; i++) {
            z = fma(theta[W1 + j * 5u + i], x[i], z);
        }
        a1[j] = leaky(z);
        cache[base + CACHE_A1 + j] = a1[j];
    }
    for (var j = 0u; j < HIDDEN; j++) {
        var z = theta[B2 + j];
        for (var i = 0u; i < HIDDEN; i++) {
            z = fma(theta[W2 + j * HIDDEN + i], a1[i], z);
        }
        a2[j] = leaky(z);
        cache[base + CACHE_A2 + j] = a2[j];
    }
    var z3 = theta[B3];
    for (var i = 0u; i < HIDDEN; i++) {
        z3 = fma(theta[W3 + i], a2[i], z3);
    }
    let p = sigmoid(z3);
    // Gradients of the mean BCE: 1/T per triplet.
    let g3 = bce_sigmoid_grad(p, y) / f32(rp.triplets);
    cache[base + CACHE_G3] = g3;
    var g2: array<f32, 32>;
    for (var j = 0u; j < HIDDEN; j++) {
        // LeakyReLU's derivative, read from its output: positive output <=> positive input.
        g2[j] = g3 * theta[W3 + j] * select(SLOPE, 1.0, a2[j] > 0.0);
        cache[base + CACHE_G2 + j] = g2[j];
    }
    var gx = array<f32, 5>(0.0, 0.0, 0.0, 0.0, 0.0);
    for (var i = 0u; i < HIDDEN; i++) {
        var acc = 0.0;
        for (var j = 0u; j < HIDDEN; j++) {
            acc = fma(g2[j], theta[W2 + j * HIDDEN + i], acc);
        }
        let g1 = acc * select(SLOPE, 1.0, a1[i] > 0.0);
        cache[base + CACHE_G1 + i] = g1;
        for (var k = 0u; k < 5u; k++) {
            gx[k] = fma(g1, theta[W1 + i * 5u + k], gx[k]);
        }
    }
    let q0 = d1 + EPS;
    let q1 = d0 + EPS;
    cache[base + CACHE_GX0] = gx[0] + gx[2] + gx[3] / q0 - gx[4] * d1 / (q1 * q1);
    cache[base + CACHE_GX0 + 1u] = gx[1] - gx[2] - gx[3] * d0 / (q0 * q0) + gx[4] / q1;
    cache[base + CACHE_BCE] = bce(p, y);
    cache[base + CACHE_SCORE] = two_afc(d0, d1, y);
}

var<workgroup> sums: array<vec3<f32>, 256>;

@compute @workgroup_size(256, 1, 1)
fn rank_batch_stats(@builtin(local_invocation_index) li: u32) {
    var acc = vec3<f32>(0.0, 0.0, 0.0);
    for (var t = li; t < rp.triplets; t += 256u) {
        let base = t * CACHE_LEN;
        let sync = bce(sigmoid(d[t] - d[rp.triplets + t]), h[t]);
        acc += vec3<f32>(cache[base + CACHE_BCE], cache[base + CACHE_SCORE], sync);
    }
    sums[li] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if (li < half) {
            sums[li] += sums[li + half];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        let n = f32(rp.triplets);
        stats[0] = sums[0].x / n;
        stats[1] = sums[0].y / n;
        stats[2] = select(0.0, 1.0, sums[0].y / n <= rp.sync_threshold);
        stats[3] = sums[0].z / n;
    }
}

@compute @workgroup_size(256, 1, 1)
fn rank_distance_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = triplet_index(wid, li);
    if (t >= rp.triplets) {
        return;
    }
    let base = t * CACHE_LEN;
    var g0 = cache[base + CACHE_GX0];
    var g1 = cache[base + CACHE_GX0 + 1u];
    if (stats[2] > 0.0) {
        let gs = rp.sync_weight * bce_sigmoid_grad(sigmoid(d[t] - d[rp.triplets + t]), h[t]) / f32(rp.triplets);
        g0 += gs;
        g1 -= gs;
    }
    grad_d[t] = g0;
    grad_d[rp.triplets + t] = g1;
}

@compute @workgroup_size(256, 1, 1)
fn rank_param_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let k = triplet_index(wid, li);
    if (k >= N_THETA) {
        return;
    }
    // Each parameter's gradient is a sum over triplets of (gradient at its output) x (its input).
    var grad_at = 0u;
    var input_at = 0u;
    var has_input = true;
    if (k < B1) {
        grad_at = CACHE_G1 + k / 5u; input_at = CACHE_X + k % 5u;
    } else if (k < W2) {
        grad_at = CACHE_G1 + (k - B1); has_input = false;
    } else if (k < B2) {
        grad_at = CACHE_G2 + (k - W2) / HIDDEN; input_at = CACHE_A1 + (k - W2) % HIDDEN;
    } else if (k < W3) {
        grad_at = CACHE_G2 + (k - B2); has_input = false;
    } else if (k < B3) {
        grad_at = CACHE_G3; input_at = CACHE_A2 + (k - W3);
    } else {
        grad_at = CACHE_G3; has_input = false;
    }
    var acc = 0.0;
    for (var t = 0u; t < rp.triplets; t++) {
        let base = t * CACHE_LEN;
        var v = cache[base + grad_at];
        if (has_input) {
            v *= cache[base + input_at];
        }
        acc += v;
    }
    grad_theta[k] = acc;
}
