// distort.wgsl: the paper's six distortions (Table 2) with torchvision 0.11's semantics, on a batch where every
// image has its own distortion and parameters (PROTOCOL.md §3).
//   kind 0 copy.
//   kind 1 affine (rotate, translate, zoom): torchvision's _gen_affine_grid (base grid times the rescaled
//     inverse theta) then grid_sample(nearest, align_corners=False, zeros), i.e. black outside. Every product
//     and sum is rounded to f32 where torch rounds it, so round-half-to-even ties land as on torch's CPU.
//   kind 2 darken: clamp(b x, 0, 1).   kind 3 hue: torchvision's _rgb2hsv, H <- (H + h) mod 1, _hsv2rgb.
//   kind 4 blur: Gaussian 11 wide x 21 high with reflect padding, separable: distort_pixel runs the horizontal
//     pass into `scratch`, blur_vertical the vertical one into y. Other kinds skip blur_vertical.
//
// Layout: x, y, scratch [N, 3, H, W] f32 in [0, 1]; records [N] (see Record), filled by the host with what
//   torchvision derives from the parameters: theta already divided by (W/2, H/2) in f32, blur tap weights.
// Dispatch: one thread per (image, pixel), workgroup 256, linear index x + z*groups_x; distort_pixel, then
//   blur_vertical.

struct DistortParams {
    n: u32, h: u32, w: u32, groups_x: u32,
    // Always 0; see `rounded`.
    zero: u32, _u0: u32, _u1: u32, _u2: u32,
}

struct Record {
    kind: u32, value: f32, _u0: u32, _u1: u32,
    // grid x = t0 bx + t1 by + t2, grid y = t3 bx + t4 by + t5 (normalised coordinates); t6, t7 unused.
    theta: array<f32, 8>,
    blur_x: array<f32, 12>, // 11 taps, left to right
    blur_y: array<f32, 24>, // 21 taps, top to bottom
}

@group(0) @binding(0) var<uniform> dp: DistortParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> records: array<Record>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;

const KIND_COPY: u32 = 0u;
const KIND_AFFINE: u32 = 1u;
const KIND_DARKEN: u32 = 2u;
const KIND_HUE: u32 = 3u;
const KIND_BLUR: u32 = 4u;
const BLUR_WIDTH: i32 = 11;
const BLUR_HEIGHT: i32 = 21;

// The identity, opaque to the compiler (dp.zero is 0 at run time): it keeps a product from being fused into
// the add after it (an FMA rounds once where torch rounds twice) and stops re-association across it.
fn rounded(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) | dp.zero);
}

// torch's reflect padding, valid for pads smaller than n.
fn reflect(i: i32, n: i32) -> i32 {
    let j = abs(i);
    return select(j, 2 * (n - 1) - j, j >= n);
}

fn load3(base: u32, plane: u32, i: u32) -> vec3<f32> {
    return vec3<f32>(x[base + i], x[base + plane + i], x[base + 2u * plane + i]);
}

// Nearest source pixel of output (row, col) of image `img`, or -1 outside the image.
fn affine_source(img: u32, row: u32, col: u32) -> i32 {
    let t = records[img].theta;
    // torch.linspace(-w/2 + 0.5, w/2 - 0.5, w): exact half-integers.
    let bx = f32(col) + (0.5 - 0.5 * f32(dp.w));
    let by = f32(row) + (0.5 - 0.5 * f32(dp.h));
    // bmm of (bx, by, 1) with theta^T: ((bx t0 + by t1) + t2), each step rounded.
    let gx = rounded(rounded(bx * t[0]) + rounded(by * t[1])) + t[2];
    let gy = rounded(rounded(bx * t[3]) + rounded(by * t[4])) + t[5];
    // grid_sample's unnormalise for align_corners=False, as its CPU kernel: (g + 1) * (size / 2) - 0.5.
    let ix = round(rounded(rounded(gx + 1.0) * (0.5 * f32(dp.w))) - 0.5);
    let iy = round(rounded(rounded(gy + 1.0) * (0.5 * f32(dp.h))) - 0.5);
    if (ix < 0.0 || ix > f32(dp.w - 1u) || iy < 0.0 || iy > f32(dp.h - 1u)) {
        return -1;
    }
    return i32(iy) * i32(dp.w) + i32(ix);
}

fn rgb_to_hsv(c: vec3<f32>) -> vec3<f32> {
    let maxc = max(max(c.x, c.y), c.z);
    let minc = min(min(c.x, c.y), c.z);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / select(maxc, 1.0, eqc);
    let divisor = select(cr, 1.0, eqc);
    let rc = (maxc - c.x) / divisor;
    let gc = (maxc - c.y) / divisor;
    let bc = (maxc - c.z) / divisor;
    // Exactly one of the three masked terms is live, so their sum is that term.
    var h = rounded(4.0 + gc) - rc;
    if (maxc == c.x) {
        h = bc - gc;
    } else if (maxc == c.y) {
        h = rounded(2.0 + rc) - bc;
    }
    let hh = rounded(h / 6.0) + 1.0;
    return vec3<f32>(hh - trunc(hh), s, maxc); // torch.fmod(h / 6 + 1, 1)
}

fn hsv_to_rgb(c: vec3<f32>) -> vec3<f32> {
    let h6 = rounded(c.x * 6.0);
    let i = floor(h6);
    let f = h6 - i;
    let v = c.z;
    let p = clamp(v * (1.0 - c.y), 0.0, 1.0);
    let q = clamp(v * (1.0 - rounded(c.y * f)), 0.0, 1.0);
    let t = clamp(v * (1.0 - rounded(c.y * (1.0 - f))), 0.0, 1.0);
    switch (u32(i) % 6u) {
        case 0u: { return vec3<f32>(v, t, p); }
        case 1u: { return vec3<f32>(q, v, p); }
        case 2u: { return vec3<f32>(p, v, t); }
        case 3u: { return vec3<f32>(p, q, v); }
        case 4u: { return vec3<f32>(t, p, v); }
        default: { return vec3<f32>(v, p, q); }
    }
}

@compute @workgroup_size(256, 1, 1)
fn distort_pixel(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * dp.groups_x) * 256u + li;
    let plane = dp.h * dp.w;
    if (idx >= dp.n * plane) {
        return;
    }
    let img = idx / plane;
    let pix = idx % plane;
    let row = pix / dp.w;
    let col = pix % dp.w;
    let base = img * 3u * plane;
    var out = vec3<f32>(0.0);
    switch (records[img].kind) {
        case KIND_AFFINE: {
            let src = affine_source(img, row, col);
            if (src >= 0) {
                out = load3(base, plane, u32(src));
            }
        }
        case KIND_DARKEN: {
            out = clamp(records[img].value * load3(base, plane, pix), vec3<f32>(0.0), vec3<f32>(1.0));
        }
        case KIND_HUE: {
            var hsv = rgb_to_hsv(load3(base, plane, pix));
            let shifted = hsv.x + records[img].value;
            hsv.x = shifted - floor(shifted); // torch.remainder(H + h, 1)
            out = hsv_to_rgb(hsv);
        }
        case KIND_BLUR: {
            let rowbase = row * dp.w;
            var acc = vec3<f32>(0.0);
            for (var t = 0; t < BLUR_WIDTH; t++) {
                let src = rowbase + u32(reflect(i32(col) + t - BLUR_WIDTH / 2, i32(dp.w)));
                acc += records[img].blur_x[t] * load3(base, plane, src);
            }
            scratch[base + pix] = acc.x;
            scratch[base + plane + pix] = acc.y;
            scratch[base + 2u * plane + pix] = acc.z;
            return;
        }
        default: {
            out = load3(base, plane, pix);
        }
    }
    y[base + pix] = out.x;
    y[base + plane + pix] = out.y;
    y[base + 2u * plane + pix] = out.z;
}

@compute @workgroup_size(256, 1, 1)
fn blur_vertical(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * dp.groups_x) * 256u + li;
    let plane = dp.h * dp.w;
    if (idx >= dp.n * plane) {
        return;
    }
    let img = idx / plane;
    if (records[img].kind != KIND_BLUR) {
        return;
    }
    let pix = idx % plane;
    let row = pix / dp.w;
    let col = pix % dp.w;
    let base = img * 3u * plane;
    var acc = vec3<f32>(0.0);
    for (var t = 0; t < BLUR_HEIGHT; t++) {
        let src = u32(reflect(i32(row) + t - BLUR_HEIGHT / 2, i32(dp.h))) * dp.w + col;
        let s = vec3<f32>(scratch[base + src], scratch[base + plane + src], scratch[base + 2u * plane + src]);
        acc += records[img].blur_y[t] * s;
    }
    y[base + pix] = acc.x;
    y[base + plane + pix] = acc.y;
    y[base + 2u * plane + pix] = acc.z;
}
