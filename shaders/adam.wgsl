// adam.wgsl: one Adam step (torch.optim.Adam, no weight decay, no amsgrad) on a flat parameter vector, with
// the positivity clamp of the channel weights:
//   clamp = 0: none (rank net); 1: theta = max(theta, 0) after the step (intended, as LPIPS);
//   2: theta = max(theta, 0) before the update (the paper's order: the final weights are not clamped).
// The per-step scalars live in a storage buffer the host rewrites every step, so the recorded dispatch is reused:
//   step = [lr, 1 - beta1^t, 1 - beta2^t].
//
// Layout: theta, grad, m, v [n] f32, read and written as vec4s (tensors are allocated in whole vec4s; values past
// n keep theirs, as a parameter vector may be a view of a longer buffer).
// Dispatch: one thread per 4 parameters, workgroup 256, x + z*groups_x.

struct AdamParams {
    n: u32, groups_x: u32, clamp: u32, _unused: u32,
    beta1: f32, beta2: f32, eps: f32, _unused2: f32,
}

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> step: array<f32>;
@group(0) @binding(3) var<storage, read_write> theta: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> v: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn adam_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.x + wid.z * ap.groups_x) * 256u + li;
    if (4u * i >= ap.n) {
        return;
    }
    let inside = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(ap.n);
    let g = grad[i];
    let m0 = m[i];
    let v0 = v[i];
    let mi = ap.beta1 * m0 + (1.0 - ap.beta1) * g;
    let vi = ap.beta2 * v0 + (1.0 - ap.beta2) * g * g;
    m[i] = select(m0, mi, inside);
    v[i] = select(v0, vi, inside);
    let t0 = theta[i];
    var x = t0;
    if (ap.clamp == 2u) {
        x = max(x, vec4<f32>(0.0));
    }
    let denom = sqrt(vi) / sqrt(step[2]) + ap.eps;
    x -= (step[0] / step[1]) * mi / denom;
    if (ap.clamp == 1u) {
        x = max(x, vec4<f32>(0.0));
    }
    theta[i] = select(t0, x, inside);
}
