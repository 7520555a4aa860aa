//! Every kernel wrapper of `dps_gpu::kernels::{conv, pool, channel, distance, adam}` run on the GPU against the
//! plain CPU references of `common::cpu` (Adam's written out here), on random inputs with awkward shapes, plus the
//! wrappers' shape checks.

mod common;

use common::cpu::{self, Maps};
use common::Lcg;
use dps_gpu::gpu::{ConvBlock, Dispatch, Gpu, Precision, Tensor};
use dps_gpu::kernels::adam::{self, AdamConfig, Clamp};
use dps_gpu::kernels::channel::{self, SORT_CAPACITY};
use dps_gpu::kernels::conv::{self, ConvScratch, ConvShape};
use dps_gpu::kernels::distance;
use dps_gpu::kernels::images::ByteImages;
use dps_gpu::kernels::pool::{self, PoolShape};

fn run(gpu: &Gpu, dispatches: Vec<Dispatch>) {
    gpu.run(&dispatches).unwrap();
}

fn read_all(gpu: &Gpu, t: &Tensor) -> Vec<f32> {
    gpu.read(t, t.numel()).unwrap()
}

/// |got − want| ≤ tol[i] for every value.
fn assert_within(got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        assert!(
            err <= tol(i),
            "{what}[{i}]: got {g}, CPU {w}, error {err:.3e} > {:.3e}",
            tol(i)
        );
    }
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

// ---------------------------------------------------------------- convolution

#[derive(Clone, Copy, Debug)]
struct ConvCase {
    batch: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    relu: bool,
    c_off: usize,
    ctot: usize,
}

impl ConvCase {
    fn shape(&self) -> ConvShape {
        ConvShape {
            cin: self.cin,
            cout: self.cout,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
        }
    }
}

/// The inputs of one conv and the CPU result with its error scale Σ|w·x| + |b| per output.
struct ConvData {
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    want: Maps,
    scale: Maps,
}

fn conv_data(rng: &mut Lcg, c: &ConvCase) -> ConvData {
    let x = rng.vec(c.batch * c.cin * c.h * c.w, -1.0, 1.0);
    let weight = rng.vec(c.cout * c.cin * c.kernel * c.kernel, -1.0, 1.0);
    let bias = rng.vec(c.cout, -1.0, 1.0);
    let xm = Maps::new(c.batch, c.cin, c.h, c.w, x.clone());
    let want = cpu::conv2d(&xm, &weight, &bias, c.cout, c.kernel, c.stride, c.pad, c.relu);
    let xa = Maps::new(c.batch, c.cin, c.h, c.w, abs(&x));
    let scale = cpu::conv2d(
        &xa,
        &abs(&weight),
        &abs(&bias),
        c.cout,
        c.kernel,
        c.stride,
        c.pad,
        false,
    );
    ConvData {
        x,
        weight,
        bias,
        want,
        scale,
    }
}

/// Runs the convs of `cases` (all with the same input geometry and output tensor) in one pass into an output
/// pre-filled with sentinels; checks their channel ranges against the CPU and every other channel untouched.
/// The tolerance is relative to Σ|w·x| + |b|: 1e-5 in f32; in the fast mode 1e-2, which bounds f16's rounding
/// of both operands (2⁻¹⁰) plus 16 f16 additions per slice (16 · 2⁻¹¹). Returns the largest error / scale.
fn check_convs(gpu: &Gpu, rng: &mut Lcg, cases: &[ConvCase]) -> f64 {
    let relative = match gpu.precision {
        Precision::F32 => 1e-5,
        Precision::F16 => 1e-2,
    };
    let mut worst = 0.0f64;
    let c0 = cases[0];
    let ho = cpu::conv_output_side(c0.h, c0.kernel, c0.stride, c0.pad);
    let wo = cpu::conv_output_side(c0.w, c0.kernel, c0.stride, c0.pad);
    let prefill = rng.vec(c0.batch * c0.ctot * ho * wo, 100.0, 200.0);
    let y = gpu.upload("y", &[c0.batch, c0.ctot, ho, wo], &prefill).unwrap();
    let mut data = Vec::new();
    let mut keep = Vec::new(); // tensors must outlive the dispatches
    let mut dispatches = Vec::new();
    // One scratch for the pass, as a network's forward shares one: each Winograd convolution transforms its
    // filters over the previous one's.
    let mut scratch = ConvScratch::default();
    for c in cases {
        assert_eq!((c.batch, c.ctot), (c0.batch, c0.ctot));
        let d = conv_data(rng, c);
        let x = gpu.upload("x", &[c.batch, c.cin, c.h, c.w], &d.x).unwrap();
        let k = c.kernel;
        let w = gpu.upload("w", &[c.cout, c.cin, k, k], &d.weight).unwrap();
        let b = gpu.upload("b", &[c.cout], &d.bias).unwrap();
        dispatches.extend(conv::conv2d(gpu, c.shape(), &x, &w, &b, &y, c.c_off, c.relu, &mut scratch).unwrap());
        assert_eq!(
            (d.want.h, d.want.w),
            (ho, wo),
            "{c:?}: cases must share the output size"
        );
        keep.push((x, w, b));
        data.push(d);
    }
    run(gpu, dispatches);
    let got = read_all(gpu, &y);
    let plane = ho * wo;
    for b in 0..c0.batch {
        for ch in 0..c0.ctot {
            let owner = cases
                .iter()
                .zip(&data)
                .find(|(c, _)| (c.c_off..c.c_off + c.cout).contains(&ch));
            for p in 0..plane {
                let i = (b * c0.ctot + ch) * plane + p;
                match owner {
                    Some((c, d)) => {
                        let j = (b * c.cout + ch - c.c_off) * plane + p;
                        let (want, scale) = (d.want.data[j], d.scale.data[j] as f64);
                        let tol = relative * scale + 1e-6;
                        let err = (got[i] as f64 - want as f64).abs();
                        worst = worst.max(err / scale.max(1e-30));
                        assert!(
                            err <= tol,
                            "{c:?} ({}): y[{b}, {ch}, {}, {}] = {}, CPU {want}, error {err:.2e} > {tol:.2e}",
                            common::conv_variant(gpu),
                            p / wo,
                            p % wo,
                            got[i]
                        );
                    }
                    None => assert_eq!(
                        got[i],
                        prefill[i],
                        "{}: y[{b}, {ch}, pixel {p}] is no conv's but changed",
                        common::conv_variant(gpu)
                    ),
                }
            }
        }
    }
    worst
}

fn case(batch: usize, cin: usize, hw: (usize, usize), cout: usize, ksp: (usize, usize, usize), relu: bool) -> ConvCase {
    ConvCase {
        batch,
        cin,
        h: hw.0,
        w: hw.1,
        cout,
        kernel: ksp.0,
        stride: ksp.1,
        pad: ksp.2,
        relu,
        c_off: 0,
        ctot: cout,
    }
}

/// The GPU once per conv variant: the tiled one with workgroup memory in each of its blocks, with its 3×3
/// stride-1 convolutions as Winograd transforms (the default) and as implicit GEMMs, without its prefetch, the barrier-free one that
/// CPU adapters pick by default (its lanes sharing loads through subgroups, and each lane loading its own), the
/// fast mode's tiled one (f16 tiles and products) in its smallest and
/// largest block and, where the adapter offers cooperative matrices, the fast mode's tensor-core one.
fn conv_variants() -> Vec<Gpu> {
    let mut gpus = Vec::new();
    for block in ConvBlock::ALL {
        let mut gpu = common::gpu();
        gpu.barrier_free = false;
        gpu.conv_block = Some(block);
        gpus.push(gpu);
    }
    let mut gpu = common::gpu();
    gpu.barrier_free = false;
    gpu.winograd = false;
    gpus.push(gpu);
    // The tiled and Winograd kernels without their prefetch (`bench --no-prefetch`), the tiled ones in the block
    // with the most registers.
    let mut gpu = common::gpu();
    gpu.barrier_free = false;
    gpu.prefetch = false;
    gpu.conv_block = Some(ConvBlock { rows: 8, columns: 8 });
    gpus.push(gpu);
    let default = common::gpu();
    if default.barrier_free && default.features.contains(wgpu::Features::SUBGROUP) {
        assert!(
            default.weight_lanes > 1,
            "{} runs the barrier-free kernels and has subgroups, so its lanes should share loads",
            default.info.name
        );
    }
    // The barrier-free kernels with the adapter's lanes sharing loads (where it has subgroups) and with one.
    for lanes in [default.weight_lanes, 1] {
        let mut gpu = common::gpu();
        gpu.barrier_free = true;
        gpu.weight_lanes = lanes;
        gpus.push(gpu);
    }
    for rows in [4, 8] {
        let mut tiled_f16 = common::gpu_for(Precision::F16);
        tiled_f16.coop_tile = None;
        tiled_f16.conv_block = Some(ConvBlock { rows, columns: rows });
        gpus.push(tiled_f16);
    }
    let fast = common::gpu_for(Precision::F16);
    if fast.coop_tile.is_some() {
        gpus.push(fast);
        let mut without_prefetch = common::gpu_for(Precision::F16);
        without_prefetch.prefetch = false;
        gpus.push(without_prefetch);
    } else {
        assert!(
            std::env::var_os("DPS_EXPECT_COOP").is_none(),
            "DPS_EXPECT_COOP is set but {} offers no usable cooperative matrix",
            fast.info.name
        );
        println!(
            "skipped the cooperative-matrix conv: {} offers no square f16→f32 cooperative matrix \
             (lavapipe from Mesa 25.1 does: tools/lavapipe-coop.sh runs the tests on it)",
            fast.info.name
        );
    }
    gpus
}

/// The fast mode's tensor-core tiling from what adapters report (VK_KHR_cooperative_matrix shapes as wgpu lists
/// them): NVIDIA's 16×16×16 f16→f32 at subgroup 32, lavapipe's 8×8×8 at subgroup 8; none for a varying subgroup
/// size (AMD's 32..64), for non-square or f16-accumulating shapes, or where workgroups are too small.
#[test]
fn coop_tile_follows_the_adapters_shapes_and_subgroups() {
    use dps_gpu::gpu::CoopTile;
    use wgpu::CooperativeScalarType::{F16, F32};
    let shape = |m, n, k, ab, cr| wgpu::CooperativeMatrixProperties {
        m_size: m,
        n_size: n,
        k_size: k,
        ab_type: ab,
        cr_type: cr,
        saturating_accumulation: false,
    };
    let nvidia = [
        shape(16, 16, 16, F16, F16),
        shape(16, 16, 16, F16, F32),
        shape(16, 8, 16, F16, F32),
        shape(16, 8, 8, F16, F32),
    ];
    let lavapipe = [shape(8, 8, 8, F16, F16), shape(8, 8, 8, F16, F32)];
    // WebGPU's defaults, with the 32 KiB of workgroup memory that NVIDIA and lavapipe offer.
    let limits = wgpu::Limits {
        max_compute_workgroup_storage_size: 32768,
        ..wgpu::Limits::default()
    };
    let tile = |side, subgroup| Some(CoopTile { side, subgroup });
    assert_eq!(CoopTile::choose_for(&nvidia, (32, 32), false, &limits), tile(16, 32));
    assert_eq!(CoopTile::choose_for(&lavapipe, (8, 8), true, &limits), tile(8, 8));
    // lavapipe at 512-bit vectors (subgroup 16) crashes compiling the kernel: CPUs only at subgroup = side.
    assert_eq!(CoopTile::choose_for(&lavapipe, (16, 16), true, &limits), None);
    assert_eq!(CoopTile::choose_for(&lavapipe, (16, 16), false, &limits), tile(8, 16));
    assert_eq!(CoopTile::choose_for(&nvidia, (32, 64), false, &limits), None);
    assert_eq!(CoopTile::choose_for(&nvidia, (8, 8), false, &limits), None);
    assert_eq!(
        CoopTile::choose_for(&[shape(8, 8, 16, F16, F32)], (16, 16), false, &limits),
        None
    );
    assert_eq!(
        CoopTile::choose_for(&[shape(16, 16, 16, F16, F16)], (32, 32), false, &limits),
        None
    );
    let small = wgpu::Limits {
        max_compute_workgroup_storage_size: 16384,
        ..limits.clone()
    };
    assert_eq!(CoopTile::choose_for(&nvidia, (32, 32), false, &small), None);
    assert_eq!(CoopTile::choose_for(&lavapipe, (8, 8), false, &small), tile(8, 8));
}

#[test]
fn conv2d_matches_cpu_on_awkward_shapes() {
    let cases = [
        // AlexNet's stem on a non-square input: kernel 11, stride 4, padding 2, cout 67.
        case(2, 3, (31, 27), 67, (11, 4, 2), true),
        // Batch 3 of 13×13, kernel 5, cout 130 (a partial last row tile of 64 or 128, 507 columns), no ReLU.
        case(3, 5, (13, 13), 130, (5, 1, 2), false),
        // 3×3, stride 2, padding 1, cin 67, non-square 9×7.
        case(1, 67, (9, 7), 16, (3, 2, 1), true),
        // 1×1 with stride 2 (skips pixels) and odd sides.
        case(2, 4, (8, 11), 3, (1, 2, 0), false),
        // 1×1 stride 1 (CPU adapters' pointwise kernel, by 4 pixels of an image): 63 and 9 pixels (partial last
        // quads, images starting at every offset within a vec4), 37 and 20 outputs (partial channel blocks).
        case(3, 5, (7, 9), 37, (1, 1, 0), true),
        case(5, 19, (3, 3), 20, (1, 1, 0), false),
        // Padding 2 around a 3×3 kernel with stride 3: windows that see only padding.
        case(2, 6, (7, 10), 9, (3, 3, 2), true),
        // Deep reduction: depth 64·25 = 1600 (100 k-slices), 70 outputs, 7×7.
        case(2, 64, (7, 7), 70, (5, 1, 2), false),
        // Output 1×1 from a window that covers the whole input.
        case(3, 2, (3, 3), 5, (3, 1, 0), true),
        // 3×3 stride 1 (Winograd's): odd sides that leave partial 2×2 tiles, 67 input channels (not a multiple
        // of the 4 a slice stages), 70 outputs (two full 32-channel workgroups and a partial one), 3 images.
        case(3, 67, (9, 7), 70, (3, 1, 1), true),
        // ... unpadded and with padding 2 (outputs 5×3 and 9×7 of a 5×3 input), one input channel.
        case(2, 1, (7, 5), 9, (3, 1, 0), false),
        case(2, 1, (5, 3), 9, (3, 1, 2), true),
        // ... over more tiles than a workgroup covers (2 × 16 × 16 = 512), VGG's first layer's 3 channels.
        case(2, 3, (32, 31), 64, (3, 1, 1), false),
        // Rows 3 and 9 wide, which CPU adapters compute 3 pixels to an invocation (AlexNet's and SqueezeNet's
        // last maps are 3×3), with 17 and 19 outputs (a partial block of 16).
        case(3, 20, (3, 3), 19, (3, 1, 1), true),
        case(2, 5, (9, 9), 17, (3, 1, 1), false),
    ];
    for gpu in conv_variants() {
        let mut rng = Lcg(1);
        let worst = cases
            .iter()
            .map(|&c| check_convs(&gpu, &mut rng, &[c]))
            .fold(0.0, f64::max);
        println!(
            "{}: largest error {worst:.1e} of Σ|w·x| + |b|",
            common::conv_variant(&gpu)
        );
        if gpu.precision == Precision::F16 {
            // An f32 result would pass the f16 tolerance: check the fast mode really rounds to f16.
            assert!(
                worst > 1e-5,
                "f16 convolutions agree with the CPU to {worst:.1e}: not running in f16"
            );
        }
    }
}

#[test]
fn conv2d_writes_its_channel_range_of_a_wider_output() {
    for gpu in conv_variants() {
        wider_output_cases(&gpu, &mut Lcg(2));
    }
}

fn wider_output_cases(gpu: &Gpu, rng: &mut Lcg) {
    // A 1×1 conv into channels 10..43 of 50, both ReLU settings: channels 0..10 and 43..50 stay untouched.
    for relu in [false, true] {
        let c = ConvCase {
            c_off: 10,
            ctot: 50,
            ..case(3, 19, (6, 5), 33, (1, 1, 0), relu)
        };
        check_convs(gpu, rng, &[c]);
    }
    // A fire module's expand stage: 1×1 into channels 0..20 and 3×3 (padding 1) into 20..40 of the same
    // output, in one pass, on a 13×13 batch of 3 with 5 squeeze channels.
    let e1 = ConvCase {
        ctot: 40,
        ..case(3, 5, (13, 13), 20, (1, 1, 0), true)
    };
    let e3 = ConvCase {
        c_off: 20,
        ctot: 40,
        ..case(3, 5, (13, 13), 20, (3, 1, 1), true)
    };
    check_convs(gpu, rng, &[e1, e3]);
    // Two 3×3 convolutions (Winograd's) into channels 3..11 and 11..24 of 30 in one pass, from different inputs:
    // the second's filter transform reuses the first's scratch.
    let a = ConvCase {
        c_off: 3,
        ctot: 30,
        ..case(2, 6, (10, 9), 8, (3, 1, 1), true)
    };
    let b = ConvCase {
        c_off: 11,
        ctot: 30,
        ..case(2, 9, (10, 9), 13, (3, 1, 1), false)
    };
    check_convs(gpu, rng, &[a, b]);
    // The same with a gap of untouched channels between and after them (ctot 45).
    let e1 = ConvCase { ctot: 45, ..e1 };
    let e3 = ConvCase {
        c_off: 22,
        ctot: 45,
        ..e3
    };
    check_convs(gpu, rng, &[e1, e3]);
}

#[test]
fn conv2d_rejects_shapes_that_do_not_fit() {
    let gpu = common::gpu();
    let shape = ConvShape {
        cin: 4,
        cout: 6,
        kernel: 3,
        stride: 1,
        pad: 1,
    };
    let x = gpu.zeros("x", &[2, 4, 9, 9]).unwrap();
    let w = gpu.zeros("w", &[6, 4, 3, 3]).unwrap();
    let b = gpu.zeros("b", &[6]).unwrap();
    let y = gpu.zeros("y", &[2, 6, 9, 9]).unwrap();
    // The well-formed call is accepted, so the rejections below are about the one thing changed.
    assert!(conv::conv2d(&gpu, shape, &x, &w, &b, &y, 0, true, &mut ConvScratch::default()).is_ok());
    let bad_weights = [
        gpu.zeros("w", &[6, 5, 3, 3]).unwrap(),
        gpu.zeros("w", &[7, 4, 3, 3]).unwrap(),
        gpu.zeros("w", &[6, 4, 3, 2]).unwrap(),
        gpu.zeros("w", &[6, 4, 9]).unwrap(),
    ];
    for bad in &bad_weights {
        assert!(
            conv::conv2d(&gpu, shape, &x, bad, &b, &y, 0, true, &mut ConvScratch::default()).is_err(),
            "weight {:?} accepted for {shape:?}",
            bad.shape
        );
    }
    let bad_bias = gpu.zeros("b", &[5]).unwrap();
    assert!(conv::conv2d(&gpu, shape, &x, &w, &bad_bias, &y, 0, true, &mut ConvScratch::default()).is_err());
    let bad_x = gpu.zeros("x", &[2, 3, 9, 9]).unwrap();
    assert!(conv::conv2d(&gpu, shape, &bad_x, &w, &b, &y, 0, true, &mut ConvScratch::default()).is_err());
    let flat_x = gpu.zeros("x", &[2, 4, 81]).unwrap();
    assert!(conv::conv2d(&gpu, shape, &flat_x, &w, &b, &y, 0, true, &mut ConvScratch::default()).is_err());
    for bad_y in [[2, 6, 8, 9], [2, 6, 9, 10], [3, 6, 9, 9]] {
        let t = gpu.zeros("y", &bad_y).unwrap();
        assert!(
            conv::conv2d(&gpu, shape, &x, &w, &b, &t, 0, true, &mut ConvScratch::default()).is_err(),
            "output {bad_y:?} accepted"
        );
    }
    // Channels c_off..c_off+6 must fit the output's 6 (then 10).
    assert!(conv::conv2d(&gpu, shape, &x, &w, &b, &y, 1, true, &mut ConvScratch::default()).is_err());
    let wide = gpu.zeros("y", &[2, 10, 9, 9]).unwrap();
    assert!(conv::conv2d(&gpu, shape, &x, &w, &b, &wide, 4, true, &mut ConvScratch::default()).is_ok());
    assert!(conv::conv2d(&gpu, shape, &x, &w, &b, &wide, 5, true, &mut ConvScratch::default()).is_err());
}

// ---------------------------------------------------------------- max-pool

#[test]
fn maxpool2d_matches_cpu_in_floor_and_ceil_mode() {
    let gpu = common::gpu();
    let mut rng = Lcg(3);
    // (batch, channels, h, w, kernel, stride, ceil)
    let cases = [
        (2, 3, 15, 15, 3, 2, false), // AlexNet: 15 → 7
        (2, 3, 15, 15, 3, 2, true),  // ceil without a partial window: still 7
        (1, 5, 16, 13, 3, 2, false), // 16 → 7, 13 → 6
        (1, 5, 16, 13, 3, 2, true),  // 16 → 8 (last window clipped to 2 rows), 13 → 6
        (3, 4, 31, 28, 3, 2, true),  // SqueezeNet-like: 31 → 15, 28 → 14 (clipped window)
        (3, 2, 6, 7, 2, 3, true),    // last window must start inside: 6 → 2 (not 3); 7 → 3 (1-wide window)
        (3, 2, 6, 7, 2, 3, false),   // 6 → 2, 7 → 2
        (2, 3, 5, 9, 2, 2, false),   // VGG: 5 → 2, 9 → 4
        (2, 3, 5, 9, 2, 2, true),    // 5 → 3, 9 → 5
        (1, 1, 3, 3, 3, 2, true),    // one window
        (1, 70, 4, 4, 1, 2, true),   // kernel 1, stride 2: 4 → 2 (a third window would start at 4)
    ];
    for (b, c, h, w, k, s, ceil_mode) in cases {
        let shape = PoolShape {
            kernel: k,
            stride: s,
            ceil_mode,
        };
        let (ho, wo) = (
            cpu::pool_output_side(h, k, s, ceil_mode),
            cpu::pool_output_side(w, k, s, ceil_mode),
        );
        assert_eq!(
            (shape.output_side(h), shape.output_side(w)),
            (Some(ho), Some(wo)),
            "{shape:?} on {h}×{w}: output size"
        );
        // All values negative, so a window clipped at the edge must not see zeros.
        let x = rng.vec(b * c * h * w, -3.0, -1.0);
        let want = cpu::maxpool2d(&Maps::new(b, c, h, w, x.clone()), k, s, ceil_mode);
        let xt = gpu.upload("x", &[b, c, h, w], &x).unwrap();
        let yt = gpu.zeros("y", &[b, c, ho, wo]).unwrap();
        run(&gpu, vec![pool::maxpool2d(&gpu, shape, &xt, &yt, None).unwrap()]);
        assert_eq!(read_all(&gpu, &yt), want.data, "{shape:?} on [{b}, {c}, {h}, {w}]");
        // The forward of a pass that trains, which also records where the maxima are, writes the same y.
        let argmax = gpu.zeros("argmax", &[b, c, ho, wo]).unwrap();
        let yt = gpu.zeros("y", &[b, c, ho, wo]).unwrap();
        run(
            &gpu,
            vec![pool::maxpool2d(&gpu, shape, &xt, &yt, Some(&argmax)).unwrap()],
        );
        assert_eq!(read_all(&gpu, &yt), want.data, "{shape:?} with argmax");
        // Output sizes one off either way are refused.
        for (bh, bw) in [(ho + 1, wo), (ho, wo + 1), (ho - 1, wo)] {
            if bh == 0 {
                continue;
            }
            let bad = gpu.zeros("y", &[b, c, bh, bw]).unwrap();
            assert!(
                pool::maxpool2d(&gpu, shape, &xt, &bad, None).is_err(),
                "{shape:?} on {h}×{w} accepted a {bh}×{bw} output"
            );
        }
    }
    // A window larger than the input is refused.
    let shape = PoolShape {
        kernel: 3,
        stride: 2,
        ceil_mode: true,
    };
    assert_eq!(shape.output_side(2), None);
}

// ---------------------------------------------------------------- channel transforms

#[test]
fn imagenet_normalize_touches_only_its_range() {
    let gpu = common::gpu();
    let mut rng = Lcg(4);
    // 315 values, not a multiple of the four the kernel handles at once: y is a view of a longer buffer, whose
    // values past it must keep theirs.
    let (n, h, w) = (3, 5, 7);
    let x = rng.vec(n * 3 * h * w, 0.0, 1.0);
    let xt = gpu.upload("x", &[n, 3, h, w], &x).unwrap();
    for (first, last) in [(0, 3), (1, 2), (2, 10), (3, 3), (0, 1)] {
        let y_all = gpu.upload("y", &[x.len() + 3], &vec![9.0; x.len() + 3]).unwrap();
        let yt = y_all.view(&[n, 3, h, w]).unwrap();
        run(
            &gpu,
            vec![channel::imagenet_normalize(&gpu, &xt, &yt, first, last).unwrap()],
        );
        let want = cpu::imagenet_normalize(&x, n, h * w, first, last);
        let all = read_all(&gpu, &y_all);
        assert_eq!(all[x.len()..], [9.0; 3], "values past the images were written");
        let got = &all[..x.len()];
        let per_image = 3 * h * w;
        for (i, (&g, &wv)) in got.iter().zip(&want).enumerate() {
            let img = i / per_image;
            if (first..last).contains(&img) {
                assert!((g - wv).abs() <= 1e-6, "{first}..{last}: [{i}] {g} vs {wv}");
            } else {
                assert_eq!(g, x[i], "{first}..{last}: image {img} must be copied unchanged");
            }
        }
    }
    let bad = gpu.zeros("y", &[n, 4, h, w]).unwrap();
    assert!(channel::imagenet_normalize(&gpu, &bad, &bad, 0, 1).is_err());
}

#[test]
fn bytes_become_unit_values_and_leave_the_rest_of_the_target() {
    let gpu = common::gpu();
    let mut rng = Lcg(9);
    // Every byte value, at every position within a word, and lengths that end mid-word.
    for len in [1024usize, 1021, 3 * 5 * 5] {
        let bytes: Vec<u8> = (0..len).map(|i| ((i * 7 + i / 256) % 256) as u8).collect();
        let target = gpu.upload("target", &[len + 3], &rng.vec(len + 3, 2.0, 3.0)).unwrap();
        let before = read_all(&gpu, &target);
        let upload = ByteImages::new(&gpu, &target, len).unwrap();
        // Whole, then in parts (split on a word boundary for len 1024, inside a word for 1021 and 75; an empty
        // part and one of a single byte).
        let (head, tail) = bytes.split_at(len / 2);
        let (one, rest) = tail.split_at(1);
        for (how, parts) in [
            ("whole", vec![&bytes[..]]),
            ("in parts", vec![head, tail]),
            ("in uneven parts", vec![head, &[], one, rest]),
        ] {
            gpu.write(&target, 0, &vec![-1.0; len]).unwrap();
            upload.write_parts(&gpu, &parts).unwrap();
            let got = read_all(&gpu, &target);
            for (i, &b) in bytes.iter().enumerate() {
                // The host's conversion of the same bytes (ImageBank::write_unit, PIL's ToTensor): b / 255 in f32.
                assert_eq!(got[i], b as f32 / 255.0, "len {len} {how}: value {i} from byte {b}");
            }
            assert_eq!(got[len..], before[len..], "len {len}: values past the upload must stay");
        }
        assert!(
            upload.write(&gpu, &bytes[1..]).is_err(),
            "a short write must be refused"
        );
    }
    let small = gpu.zeros("small", &[4]).unwrap();
    assert!(ByteImages::new(&gpu, &small, 5).is_err());
}

#[test]
fn inverse_norm_matches_cpu_with_the_floor_on_zero_columns() {
    let gpu = common::gpu();
    let mut rng = Lcg(5);
    // (n, c, spatial dims)
    for (n, c, spatial) in [
        (3, 70, vec![11]),
        (2, 5, vec![3, 4]),
        (2, 1, vec![9]),
        (1, 300, vec![1]),
    ] {
        let p: usize = spatial.iter().product();
        let mut x = rng.vec(n * c * p, -2.0, 2.0);
        // An all-zero position and one whose norm is below the 1e-12 floor.
        for ch in 0..c {
            x[ch * p] = 0.0;
            if n > 1 {
                x[(c + ch) * p + p - 1] = 1e-14 * (ch as f32 + 1.0);
            }
        }
        let mut shape = vec![n, c];
        shape.extend(&spatial);
        let xt = gpu.upload("x", &shape, &x).unwrap();
        // The factor of every column; the 1e-12 floor makes an all-zero column's 1e12.
        let rt = gpu.upload("r", &[n, p], &vec![f32::NAN; n * p]).unwrap();
        run(&gpu, vec![channel::inverse_norm(&gpu, &xt, &rt).unwrap()]);
        let got = read_all(&gpu, &rt);
        let want: Vec<f64> = (0..n * p)
            .map(|col| {
                let (img, q) = (col / p, col % p);
                let sumsq: f64 = (0..c).map(|ch| (x[(img * c + ch) * p + q] as f64).powi(2)).sum();
                1.0 / sumsq.sqrt().max(1e-12)
            })
            .collect();
        assert_within(
            &got,
            &want.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            |i| 2e-6 * want[i],
            &format!("inverse norm {shape:?}"),
        );
        assert!(
            (got[0] / 1e12 - 1.0).abs() < 1e-5,
            "{shape:?}: an all-zero column's inverse norm is 1 / 1e-12, not {}",
            got[0]
        );
        let short = gpu.zeros("r", &[n * p - 1]).unwrap();
        assert!(channel::inverse_norm(&gpu, &xt, &short).is_err());
    }
}

#[test]
fn channel_mean_matches_cpu() {
    let gpu = common::gpu();
    let mut rng = Lcg(6);
    for (n, c, h, w) in [(3, 70, 13, 13), (2, 9, 1, 1), (1, 300, 7, 5), (2, 3, 64, 64)] {
        let p = h * w;
        let x = rng.vec(n * c * p, -1.0, 3.0);
        let xt = gpu.upload("x", &[n, c, h, w], &x).unwrap();
        let yt = gpu.zeros("y", &[n, c]).unwrap();
        run(&gpu, vec![channel::channel_mean(&gpu, &xt, &yt).unwrap()]);
        let want = cpu::channel_mean(&x, n, c, p);
        let scale = cpu::channel_mean(&abs(&x), n, c, p);
        assert_within(
            &read_all(&gpu, &yt),
            &want,
            |i| 1e-5 * scale[i] as f64 + 1e-7,
            &format!("mean [{n}, {c}, {h}, {w}]"),
        );
    }
}

#[test]
fn channel_sort_is_exact_for_any_row_length() {
    let gpu = common::gpu();
    let mut rng = Lcg(7);
    for p in [1, 2, 9, 16, 225, 257, 1000, 4095, SORT_CAPACITY] {
        let (n, c) = (2, 3);
        // Negative and positive values, many of them repeated (quarter steps in [-5, 5]).
        let mut x: Vec<f32> = rng
            .vec(n * c * p, -5.0, 5.0)
            .iter()
            .map(|v| (v * 4.0).round() / 4.0)
            .collect();
        if p > 2 {
            // One row already sorted descending, one constant.
            let row = &mut x[p..2 * p];
            row.sort_by(|a, b| b.partial_cmp(a).unwrap());
            x[2 * p..3 * p].fill(-1.5);
        }
        let xt = gpu.upload("x", &[n, c, p], &x).unwrap();
        let yt = gpu.zeros("y", &[n, c, p]).unwrap();
        run(&gpu, vec![channel::channel_sort(&gpu, &xt, &yt).unwrap()]);
        assert_eq!(read_all(&gpu, &yt), cpu::channel_sort(&x, n, c, p), "sort P = {p}");
    }
    // More than the workgroup holds is an error, not a wrong answer.
    let x = gpu.zeros("x", &[1, 2, SORT_CAPACITY + 1]).unwrap();
    let y = gpu.zeros("y", &[1, 2, SORT_CAPACITY + 1]).unwrap();
    assert!(channel::channel_sort(&gpu, &x, &y).is_err());
    let x = gpu.zeros("x", &[1, 2, 64, 65]).unwrap();
    let y = gpu.zeros("y", &[1, 2, 64, 65]).unwrap();
    assert!(channel::channel_sort(&gpu, &x, &y).is_err());
}

#[test]
fn channel_sort_keeps_infinities() {
    let gpu = common::gpu();
    let x = vec![f32::INFINITY, 1.0, -2.0];
    let xt = gpu.upload("x", &[1, 1, 3], &x).unwrap();
    let yt = gpu.zeros("y", &[1, 1, 3]).unwrap();
    run(&gpu, vec![channel::channel_sort(&gpu, &xt, &yt).unwrap()]);
    assert_eq!(read_all(&gpu, &yt), vec![-2.0, 1.0, f32::INFINITY]);
}

// ---------------------------------------------------------------- distances

/// Inverse norms of 1 for `n` images of `p` positions: pair_profile then compares the maps as given.
fn unit_factors(gpu: &Gpu, n: usize, p: usize) -> Tensor {
    gpu.upload("r", &[n, p], &vec![1.0; n * p]).unwrap()
}

fn pairs_buffer(gpu: &Gpu, pairs: &[(usize, usize)]) -> wgpu::Buffer {
    let flat: Vec<u32> = pairs.iter().flat_map(|&(i, j)| [i as u32, j as u32]).collect();
    gpu.upload_pod("pairs", &flat).unwrap()
}

#[test]
fn pair_profile_matches_cpu_in_its_column_block() {
    let gpu = common::gpu();
    let mut rng = Lcg(8);
    // Pairs in arbitrary order, one image with itself, both orders of one pair.
    let pairs = [(3, 0), (1, 5), (6, 6), (2, 4), (0, 3), (5, 1)];
    let n = 7;
    // Two taps written into column blocks 5..42 and 42..62 of 66; columns 0..5 and 62..66 keep their values.
    let taps = [(37, 13), (20, 1)];
    let (columns, offsets) = (66, [5, 42]);
    let prefill = rng.vec(pairs.len() * columns, 100.0, 200.0);
    let s = gpu.upload("s", &[pairs.len(), columns], &prefill).unwrap();
    let pair_buf = pairs_buffer(&gpu, &pairs);
    let state = gpu.upload_pod("state", &distance::dropout_state(0, 0, 0.0)).unwrap();
    let mut gs = Vec::new();
    let mut dispatches = Vec::new();
    for (&(c, p), &offset) in taps.iter().zip(&offsets) {
        // The maps and their columns' factors (any positive values: the kernel scales by what it is given).
        let g = rng.vec(n * c * p, -2.0, 2.0);
        let r = rng.vec(n * p, 0.25, 2.0);
        let gt = gpu.upload("g", &[n, c, p], &g).unwrap();
        let rt = gpu.upload("r", &[n, p], &r).unwrap();
        // chunk 3: the pairs are whole members of 3 groups (only dropout reads the layout).
        dispatches
            .push(distance::pair_profile(&gpu, &gt, &rt, &pair_buf, pairs.len(), 3, &state, &s, offset, 0).unwrap());
        // What the kernel compares: u[n, c, p] = g[n, c, p] · r[n, p], rounded to f32 as it is there.
        let u: Vec<f32> = (0..g.len()).map(|i| g[i] * r[i / (c * p) * p + i % p]).collect();
        gs.push((u, gt, rt));
    }
    run(&gpu, dispatches);
    let got = read_all(&gpu, &s);
    let mut want: Vec<f32> = prefill.clone();
    let mut tol = vec![0.0f64; want.len()];
    for ((&(c, p), &offset), (u, _, _)) in taps.iter().zip(&offsets).zip(&gs) {
        for (k, row) in cpu::pair_profile(u, c, p, &pairs).iter().enumerate() {
            for (ch, &v) in row.iter().enumerate() {
                want[k * columns + offset + ch] = v as f32;
                tol[k * columns + offset + ch] = 1e-5 * v + 1e-7;
            }
        }
    }
    assert_within(&got, &want, |i| tol[i], "pair profile");
    // Column blocks that do not fit, pair counts that are not whole members of the chunk and inverse norms that
    // miss columns are refused.
    let (_, g0, r0) = &gs[0];
    assert!(distance::pair_profile(&gpu, g0, r0, &pair_buf, 6, 3, &state, &s, 30, 0).is_err());
    assert!(distance::pair_profile(&gpu, g0, r0, &pair_buf, 6, 4, &state, &s, 0, 0).is_err());
    assert!(distance::pair_profile(&gpu, g0, r0, &pair_buf, 7, 7, &state, &s, 0, 0).is_err());
    let short = gpu.zeros("r", &[n * 13 - 1]).unwrap();
    assert!(distance::pair_profile(&gpu, g0, &short, &pair_buf, 6, 3, &state, &s, 5, 0).is_err());
}

#[test]
fn weighted_sum_and_its_backward_match_cpu() {
    let gpu = common::gpu();
    let mut rng = Lcg(9);
    // More pairs and more columns than one workgroup of 256 threads.
    let (pairs, columns) = (300, 270);
    let s = rng.vec(pairs * columns, 0.0, 2.0);
    let w = rng.vec(columns, -1.0, 1.0);
    let grad_d = rng.vec(pairs, -1.0, 1.0);
    let st = gpu.upload("s", &[pairs, columns], &s).unwrap();
    let wt = gpu.upload("w", &[columns], &w).unwrap();
    let gdt = gpu.upload("grad_d", &[pairs], &grad_d).unwrap();
    let dt = gpu.zeros("d", &[pairs]).unwrap();
    let gwt = gpu.zeros("grad_w", &[columns]).unwrap();
    run(
        &gpu,
        vec![
            distance::weighted_sum(&gpu, &st, &wt, &dt).unwrap(),
            distance::weighted_sum_backward(&gpu, &st, &gdt, &gwt).unwrap(),
        ],
    );
    // (value, Σ|term|) of d[k] = Σ_c w[c] s[k, c] and grad_w[c] = Σ_k grad_d[k] s[k, c].
    let mut d = vec![(0.0f64, 0.0f64); pairs];
    let mut gw = vec![(0.0f64, 0.0f64); columns];
    for k in 0..pairs {
        for c in 0..columns {
            let sv = s[k * columns + c] as f64;
            let (term_d, term_g) = (w[c] as f64 * sv, grad_d[k] as f64 * sv);
            d[k] = (d[k].0 + term_d, d[k].1 + term_d.abs());
            gw[c] = (gw[c].0 + term_g, gw[c].1 + term_g.abs());
        }
    }
    let values = |v: &[(f64, f64)]| v.iter().map(|x| x.0 as f32).collect::<Vec<_>>();
    assert_within(&read_all(&gpu, &dt), &values(&d), |i| 1e-5 * d[i].1 + 1e-6, "d");
    assert_within(&read_all(&gpu, &gwt), &values(&gw), |i| 1e-5 * gw[i].1 + 1e-6, "grad_w");
    // Weights of the wrong length are refused.
    let short = gpu.zeros("w", &[columns - 1]).unwrap();
    assert!(distance::weighted_sum(&gpu, &st, &short, &dt).is_err());
    assert!(distance::weighted_sum_backward(&gpu, &st, &gdt, &short).is_err());
}

#[test]
fn profile_then_weighted_sum_is_the_weighted_pair_distance() {
    let gpu = common::gpu();
    let mut rng = Lcg(10);
    let pairs = [(4, 1), (0, 2), (3, 3), (1, 4), (2, 0)];
    let n = 5;
    let taps = [(67, 15 * 15), (130, 7), (9, 1)];
    let columns: usize = taps.iter().map(|t| t.0).sum();
    let w = rng.vec(columns, 0.0, 1.0);
    let pair_buf = pairs_buffer(&gpu, &pairs);
    let state = gpu.upload_pod("state", &distance::dropout_state(0, 0, 0.0)).unwrap();
    let s = gpu.zeros("s", &[pairs.len(), columns]).unwrap();
    let wt = gpu.upload("w", &[columns], &w).unwrap();
    let d = gpu.zeros("d", &[pairs.len()]).unwrap();
    let mut want = vec![0.0f64; pairs.len()];
    let (mut dispatches, mut keep, mut offset) = (Vec::new(), Vec::new(), 0);
    // One tap, then every tap accumulated into one distance through the column blocks.
    for (t, &(c, p)) in taps.iter().enumerate() {
        let g = rng.vec(n * c * p, -1.0, 1.0);
        let gt = gpu.upload("g", &[n, c, p], &g).unwrap();
        let rt = unit_factors(&gpu, n, p);
        dispatches
            .push(distance::pair_profile(&gpu, &gt, &rt, &pair_buf, pairs.len(), 5, &state, &s, offset, 0).unwrap());
        let tap_d = cpu::pair_distance(&g, c, p, &pairs, &w[offset..offset + c]);
        for (acc, v) in want.iter_mut().zip(tap_d) {
            *acc += v;
        }
        offset += c;
        keep.push((gt, rt));
        if t == 0 {
            // With only the first tap's columns filled (the rest zero), d is that tap's distance.
            let mut first = std::mem::take(&mut dispatches);
            first.push(distance::weighted_sum(&gpu, &s, &wt, &d).unwrap());
            run(&gpu, first);
            let got = read_all(&gpu, &d);
            assert_within(
                &got,
                &want.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                |i| 1e-5 * want[i] + 1e-7,
                "one tap",
            );
        }
    }
    dispatches.push(distance::weighted_sum(&gpu, &s, &wt, &d).unwrap());
    run(&gpu, dispatches);
    let got = read_all(&gpu, &d);
    assert_within(
        &got,
        &want.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        |i| 1e-5 * want[i] + 1e-7,
        "three taps",
    );
    assert_eq!(got[2], 0.0, "an image's distance to itself");
}

/// The dropout mask as distance.wgsl documents it: lowbias32 chained over (seed, step seed, global pair id,
/// column, position); a value is kept when the hash's top 24 bits, as a fraction, are ≥ drop.
fn lowbias32(v: u32) -> u32 {
    let mut x = v;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846ca68b);
    x ^= x >> 16;
    x
}

fn kept(seed: u32, step_seed: u32, global_pair: u32, column: u32, p: u32, drop: f32) -> bool {
    let h = lowbias32(lowbias32(lowbias32(lowbias32(seed ^ lowbias32(step_seed)) ^ global_pair) ^ column) ^ p);
    (h >> 8) as f32 / 16777216.0 >= drop
}

#[test]
fn pair_profile_dropout_follows_the_hash_and_ignores_chunking() {
    let gpu = common::gpu();
    let mut rng = Lcg(11);
    // 4 groups of 3 images (a reference and two others): images g, 4 + g, 8 + g of group g.
    let (groups, others, c, p, offset, columns) = (4usize, 2usize, 21, 13, 3, 30);
    let g = rng.vec(groups * (others + 1) * c * p, -1.0, 1.0);
    let gt = gpu.upload("g", &[groups * (others + 1), c, p], &g).unwrap();
    let rt = unit_factors(&gpu, groups * (others + 1), p);
    let (step_seed, seed, drop) = (77u32, 5u32, 0.5f32);
    // CPU: pair (group, member) has global id group·others + member.
    let mut want = vec![vec![0.0f64; c]; groups * others];
    let mut kept_count = 0;
    for grp in 0..groups {
        for m in 0..others {
            let (i, j) = (grp, (m + 1) * groups + grp);
            for (ch, out) in want[grp * others + m].iter_mut().enumerate() {
                let mut acc = 0.0;
                for q in 0..p {
                    let keep = kept(
                        seed,
                        step_seed,
                        (grp * others + m) as u32,
                        (offset + ch) as u32,
                        q as u32,
                        drop,
                    );
                    if keep {
                        kept_count += 1;
                        acc += (g[(i * c + ch) * p + q] as f64 - g[(j * c + ch) * p + q] as f64).powi(2);
                    }
                }
                *out = acc / (1.0 - drop as f64) / p as f64;
            }
        }
    }
    let total = groups * others * c * p;
    let fraction = kept_count as f64 / total as f64;
    assert!(
        (0.45..0.55).contains(&fraction),
        "the reference mask keeps {fraction} of the values"
    );
    // GPU: all 4 groups in one chunk, then chunks of 2 groups (first group 0 and 2); pairs member-major.
    for chunk in [4usize, 2] {
        for first in (0..groups).step_by(chunk) {
            let pairs: Vec<(usize, usize)> = (0..others)
                .flat_map(|m| (first..first + chunk).map(move |grp| (grp, (m + 1) * groups + grp)))
                .collect();
            let pair_buf = pairs_buffer(&gpu, &pairs);
            let state = gpu
                .upload_pod("state", &distance::dropout_state(step_seed, first as u32, drop))
                .unwrap();
            let s = gpu.zeros("s", &[pairs.len(), columns]).unwrap();
            run(
                &gpu,
                vec![
                    distance::pair_profile(&gpu, &gt, &rt, &pair_buf, pairs.len(), chunk, &state, &s, offset, seed)
                        .unwrap(),
                ],
            );
            let got = read_all(&gpu, &s);
            for m in 0..others {
                for (k, grp) in (first..first + chunk).enumerate() {
                    let row = &got[(m * chunk + k) * columns + offset..][..c];
                    let want_row: Vec<f32> = want[grp * others + m].iter().map(|&v| v as f32).collect();
                    assert_within(
                        row,
                        &want_row,
                        |ch| 1e-5 * want[grp * others + m][ch] + 1e-7,
                        &format!("dropout, chunk {chunk}, group {grp}, member {}", m + 1),
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Adam

/// Three steps of torch.optim.Adam (no weight decay) with each clamp, on 7 parameters viewed from 11-value
/// buffers: the 7 follow Adam's update written out plainly (in f64) and the 4 after them are left alone (the
/// kernel takes 4 parameters per invocation).
#[test]
fn adam_step_matches_cpu_and_stops_at_the_parameters_end() {
    let gpu = common::gpu();
    let mut rng = Lcg(41);
    let config = AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let (n, stored) = (7, 11);
    for clamp in [Clamp::None, Clamp::AfterStep, Clamp::BeforeUpdate] {
        let theta0 = rng.vec(stored, -1.0, 1.0);
        let m0 = rng.vec(stored, -0.1, 0.1);
        let v0 = rng.vec(stored, 0.0, 0.01);
        let grads: Vec<Vec<f32>> = (0..3).map(|_| rng.vec(stored, -2.0, 2.0)).collect();
        let buffers = [("theta", &theta0), ("m", &m0), ("v", &v0)]
            .map(|(name, values)| gpu.upload(name, &[stored], values).unwrap());
        let [theta, m, v] = buffers.each_ref().map(|t| t.view(&[n]).unwrap());
        let grad = gpu.zeros("grad", &[n]).unwrap();
        let step = gpu.upload_pod("step", &[0f32; 4]).unwrap();
        let dispatch = adam::adam_step(&gpu, &config, clamp, &theta, &grad, &m, &v, &step).unwrap();
        let (mut want_theta, mut want_m, mut want_v): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            theta0.iter().map(|&x| x as f64).collect(),
            m0.iter().map(|&x| x as f64).collect(),
            v0.iter().map(|&x| x as f64).collect(),
        );
        let lr = 0.01;
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            gpu.write(&grad, 0, &g[..n]).unwrap();
            gpu.write_pod(&step, &adam::step_scalars(&config, lr, t as u32))
                .unwrap();
            gpu.run(std::slice::from_ref(&dispatch)).unwrap();
            let (b1, b2) = (config.beta1 as f64, config.beta2 as f64);
            for i in 0..n {
                let g = g[i] as f64;
                want_m[i] = b1 * want_m[i] + (1.0 - b1) * g;
                want_v[i] = b2 * want_v[i] + (1.0 - b2) * g * g;
                if clamp == Clamp::BeforeUpdate {
                    want_theta[i] = want_theta[i].max(0.0);
                }
                let denom = want_v[i].sqrt() / (1.0 - b2.powi(t)).sqrt() + config.eps as f64;
                want_theta[i] -= lr as f64 / (1.0 - b1.powi(t)) * want_m[i] / denom;
                if clamp == Clamp::AfterStep {
                    want_theta[i] = want_theta[i].max(0.0);
                }
            }
        }
        for ((name, want), buffer) in [("theta", &want_theta), ("m", &want_m), ("v", &want_v)]
            .iter()
            .zip(&buffers)
        {
            let got = read_all(&gpu, buffer);
            let want: Vec<f32> = want.iter().map(|&x| x as f32).collect();
            assert_within(
                &got[..n],
                &want[..n],
                |i| 1e-5 * (1.0 + want[i].abs() as f64),
                &format!("{clamp:?} {name}"),
            );
            assert_eq!(
                got[n..],
                want[n..],
                "{clamp:?} {name}: the values after the parameters changed"
            );
        }
    }
}

/// Pipelines compile on background threads (gpu::Pipeline): a kernel whose WGSL does not compile still gives a
/// plan, and the run that needs it returns an error naming the kernel — never a panic, never a silent skip.
#[test]
fn a_kernel_that_does_not_compile_is_an_error_of_the_run_that_needs_it() {
    use dps_gpu::gpu::{Access, Kernel};
    const BROKEN: Kernel = Kernel {
        family: "broken_for_test",
        source: "@group(0) @binding(0) var<uniform> p: vec4<u32>;\n\
                 @group(0) @binding(1) var<storage, read_write> y: array<f32>;\n\
                 @compute @workgroup_size(64, 1, 1)\n\
                 fn broken(@builtin(global_invocation_id) id: vec3<u32>) { y[id.x] = undeclared_name; }\n",
        entry: "broken",
        bindings: &[Access::ReadWrite],
    };
    let gpu = common::gpu();
    let y = gpu.zeros("y", &[64]).unwrap();
    let pipeline = gpu.pipeline(&BROKEN).unwrap();
    let dispatch = Dispatch::new(
        &gpu,
        pipeline,
        "broken",
        &[0u32; 4],
        &[y.buffer.as_entire_binding()],
        [1, 1, 1],
    )
    .unwrap();
    for attempt in 0..2 {
        let err = gpu.run(std::slice::from_ref(&dispatch)).unwrap_err().to_string();
        assert!(
            err.contains("compiling kernel broken_for_test::broken"),
            "attempt {attempt}: {err}"
        );
    }
    // The device is still usable for other kernels.
    let x = gpu.upload("x", &[2], &[3.0, -1.0]).unwrap();
    assert_eq!(read_all(&gpu, &x), vec![3.0, -1.0]);
}
