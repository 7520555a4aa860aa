//! The backward kernels (convolution with fused ReLU mask and channel slices, max-pool, and the distance side:
//! the pair profile through the unit normalisation, channel mean and sort) against PyTorch autograd (fixtures written by
//! tools/make_backward_fixtures.py) and against central finite differences of the GPU forward kernels.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::Lcg;
use dps_gpu::gpu::{ConvBlock, Dispatch, Gpu, Precision, Tensor};
use dps_gpu::kernels::channel;
use dps_gpu::kernels::conv::{self, ConvBackward, ConvScratch, ConvShape};
use dps_gpu::kernels::distance;
use dps_gpu::kernels::pool::{self, PoolShape};
use serde_json::Value;

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn fixtures() -> (Tensors, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backward");
    let meta = serde_json::from_str(&std::fs::read_to_string(dir.join("backward.json")).unwrap()).unwrap();
    (common::read_tensors(&dir.join("backward.safetensors")), meta)
}

fn upload(gpu: &Gpu, t: &Tensors, key: &str) -> Tensor {
    let (shape, data) = t.get(key).unwrap_or_else(|| panic!("fixture {key} missing"));
    gpu.upload(key, shape, data).unwrap()
}

fn read_all(gpu: &Gpu, t: &Tensor) -> Vec<f32> {
    gpu.read(t, t.numel()).unwrap()
}

fn run(gpu: &Gpu, dispatches: &[Dispatch]) {
    gpu.run(dispatches).unwrap();
}

/// |got − want| ≤ abs + rel·|want| for every value.
fn close(got: &[f32], want: &[f32], rel: f32, abs: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = abs + rel * w.abs();
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (tolerance {tol})");
    }
}

fn plus(v: &[f32], c: f32) -> Vec<f32> {
    v.iter().map(|x| x + c).collect()
}

fn u(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap_or_else(|| panic!("fixture field {key}")) as usize
}

fn conv_shape(c: &Value) -> ConvShape {
    ConvShape {
        cin: u(c, "cin"),
        cout: u(c, "cout"),
        kernel: u(c, "kernel"),
        stride: u(c, "stride"),
        pad: u(c, "pad"),
    }
}

// ---------------------------------------------------------------- convolution

/// Both paths of each gradient: for the weights one reduction per block (CPU adapters, barrier_free, the lanes
/// sharing loads through subgroups and not) and the
/// batch split into partial sums added up by a second dispatch (GPUs, in each tiled block); for the input the
/// forward's barrier-free and tiled kernels, the tiled 3×3 ones as Winograd transforms and as implicit GEMMs, and
/// the tiled kernels without their prefetch. Opened in the fast mode too, whose f16 products the gradients must
/// not take.
#[test]
fn conv_backward_matches_pytorch_autograd() {
    let (t, meta) = fixtures();
    let tiled = ConvBlock::ALL.map(Some);
    let largest = [Some(ConvBlock { rows: 8, columns: 8 })];
    for (precision, barrier_free, blocks, winograd, one_lane, prefetch) in [
        (Precision::F32, true, &[None][..], true, false, true),
        (Precision::F32, true, &[None][..], true, true, true),
        (Precision::F32, false, &tiled[..], true, false, true),
        (Precision::F32, false, &[None][..], false, false, true),
        (Precision::F32, false, &largest[..], false, false, false),
        (Precision::F16, true, &[None][..], true, false, true),
        (Precision::F16, false, &[None][..], true, false, true),
    ] {
        for &block in blocks {
            let mut gpu = common::gpu_for(precision);
            gpu.barrier_free = barrier_free;
            if one_lane {
                gpu.weight_lanes = 1;
            }
            gpu.conv_block = block;
            gpu.winograd = winograd;
            gpu.prefetch = prefetch;
            println!("conv backward on {}", common::conv_variant(&gpu));
            conv_backward_cases(&gpu, &t, &meta);
        }
    }
}

fn conv_backward_cases(gpu: &Gpu, t: &Tensors, meta: &Value) {
    let cases = meta["conv"].as_object().unwrap();
    assert_eq!(cases.len(), 5);
    for (name, m) in cases {
        let key = |k: &str| format!("conv.{name}.{k}");
        let x = upload(gpu, t, &key("x"));
        let y = upload(gpu, t, &key("y"));
        let gy = upload(gpu, t, &key("gy"));
        // Start from non-zero buffers: the first write must overwrite, later ones (accumulate) add.
        let grad_x = gpu.upload("grad_x", &x.shape, &vec![7.0; x.numel()]).unwrap();
        let convs = m["convs"].as_array().unwrap();
        // The convolutions of a case share one output map (a fire module's concat): it is masked once.
        let relu = convs[0]["relu"].as_bool().unwrap();
        assert!(convs.iter().all(|c| c["relu"].as_bool() == Some(relu)));
        if relu {
            run(gpu, &[conv::relu_backward(gpu, &y, &gy).unwrap()]);
        }
        // The images' gradient is never taken, so the strided (first-layer) convolutions have none.
        let strided = convs.iter().any(|c| u(c, "stride") != 1);
        // Every convolution's gradients in one submission, their weight gradients sharing one partial-sum scratch
        // (as in a network's backward pass), then again accumulating (a second micro-batch of the same data).
        let tensors: Vec<_> = (0..convs.len())
            .map(|j| {
                let weight = upload(gpu, t, &key(&format!("{j}.weight")));
                let bias = upload(gpu, t, &key(&format!("{j}.bias")));
                let grad_w = gpu.upload("grad_w", &weight.shape, &vec![3.0; weight.numel()]).unwrap();
                let grad_b = gpu.upload("grad_b", &bias.shape, &vec![3.0; bias.numel()]).unwrap();
                (weight, bias, grad_w, grad_b)
            })
            .collect();
        let backs: Vec<_> = convs
            .iter()
            .zip(&tensors)
            .map(|(c, (weight, bias, _, _))| ConvBackward {
                shape: conv_shape(c),
                x: &x,
                weight,
                bias,
                gy: &gy,
                c_off: u(c, "c_off"),
            })
            .collect();
        let mut scratch = ConvScratch::default();
        for accumulate in [false, true] {
            let mut dispatches = Vec::new();
            for (j, (back, (_, _, grad_w, grad_b))) in backs.iter().zip(&tensors).enumerate() {
                if !accumulate {
                    let input = conv::conv2d_backward_input(gpu, back, &grad_x, j > 0, &mut scratch);
                    assert_eq!(
                        input.is_err(),
                        strided,
                        "{name}: input gradient of a strided convolution"
                    );
                    dispatches.extend(input.into_iter().flatten());
                }
                dispatches
                    .extend(conv::conv2d_backward_params(gpu, back, grad_w, grad_b, accumulate, &mut scratch).unwrap());
            }
            run(gpu, &dispatches);
            let times = if accumulate { 2.0 } else { 1.0 };
            for (j, (_, _, grad_w, grad_b)) in tensors.iter().enumerate() {
                let scaled = |k: String| t[&key(&k)].1.iter().map(|x| times * x).collect::<Vec<_>>();
                let what = if accumulate { "accumulated " } else { "" };
                for (got, field) in [(grad_w, "grad_weight"), (grad_b, "grad_bias")] {
                    close(
                        &read_all(gpu, got),
                        &scaled(format!("{j}.{field}")),
                        1e-4,
                        times * 1e-4,
                        &format!("{name} conv {j} {what}{field}"),
                    );
                }
            }
        }
        if strided {
            continue;
        }
        // Several convolutions reading x (the fire module's expands) sum their input gradients.
        close(
            &read_all(gpu, &grad_x),
            &t[&key("grad_x")].1,
            1e-4,
            1e-4,
            &format!("{name} grad_x"),
        );
    }
}

#[test]
fn conv_backward_rejects_tensors_that_do_not_fit() {
    let gpu = common::gpu();
    let shape = ConvShape {
        cin: 3,
        cout: 4,
        kernel: 3,
        stride: 1,
        pad: 1,
    };
    let x = gpu.zeros("x", &[2, 3, 5, 5]).unwrap();
    let w = gpu.zeros("w", &[4, 3, 3, 3]).unwrap();
    let b = gpu.zeros("b", &[4]).unwrap();
    let y = gpu.zeros("y", &[2, 6, 5, 5]).unwrap();
    let gy = gpu.zeros("gy", &[2, 6, 5, 5]).unwrap();
    assert!(conv::relu_backward(&gpu, &y, &gy).is_ok());
    assert!(conv::relu_backward(&gpu, &y, &x).is_err());
    let back = ConvBackward {
        shape,
        x: &x,
        weight: &w,
        bias: &b,
        gy: &gy,
        c_off: 2,
    };
    assert!(conv::conv2d_backward_input(&gpu, &back, &x, false, &mut ConvScratch::default()).is_ok());
    assert!(conv::conv2d_backward_params(&gpu, &back, &w, &b, false, &mut ConvScratch::default()).is_ok());
    let wrong = gpu.zeros("wrong", &[2, 3, 5, 4]).unwrap();
    assert!(conv::conv2d_backward_input(&gpu, &back, &wrong, false, &mut ConvScratch::default()).is_err());
    assert!(conv::conv2d_backward_params(&gpu, &back, &b, &b, false, &mut ConvScratch::default()).is_err());
    let small_gy = gpu.zeros("gy", &[2, 5, 5, 5]).unwrap();
    assert!(conv::conv2d_backward_input(
        &gpu,
        &ConvBackward { gy: &small_gy, ..back },
        &x,
        false,
        &mut ConvScratch::default()
    )
    .is_err());
    assert!(conv::conv2d_backward_input(
        &gpu,
        &ConvBackward { c_off: 3, ..back },
        &x,
        false,
        &mut ConvScratch::default()
    )
    .is_err());
    // Strided, the weight gradient is there and the input's (which the nets never need) is refused.
    let strided = ConvShape { stride: 2, ..shape };
    let gy3 = gpu.zeros("gy", &[2, 6, 3, 3]).unwrap();
    let back = ConvBackward {
        shape: strided,
        gy: &gy3,
        ..back
    };
    assert!(conv::conv2d_backward_params(&gpu, &back, &w, &b, false, &mut ConvScratch::default()).is_ok());
    assert!(conv::conv2d_backward_input(&gpu, &back, &x, false, &mut ConvScratch::default()).is_err());
}

/// The ReLU's mask against the rule written out: the gradient survives only where the output is positive.
#[test]
fn relu_backward_zeroes_the_gradient_where_the_output_is_not_positive() {
    let gpu = common::gpu();
    let mut rng = Lcg(33);
    let dims = [3, 5, 7, 6];
    let n: usize = dims.iter().product();
    // A third of the outputs exactly zero (ReLU's clipped values), the rest either sign.
    let yv: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { 0.0 } else { rng.uniform() - 0.5 })
        .collect();
    // Both maps are views of longer buffers (the kernel reads four values at a time and n is not a multiple of
    // four): the values past the map must keep theirs, though the outputs there are negative.
    let gyv = rng.vec(n + 3, -1.0, 1.0);
    let y_all: Vec<f32> = yv.iter().copied().chain([-1.0; 3]).collect();
    let y = gpu.upload("y", &[n + 3], &y_all).unwrap().view(&dims).unwrap();
    let gy_all = gpu.upload("gy", &[n + 3], &gyv).unwrap();
    let gy = gy_all.view(&dims).unwrap();
    run(&gpu, &[conv::relu_backward(&gpu, &y, &gy).unwrap()]);
    let want: Vec<f32> = y_all
        .iter()
        .zip(&gyv)
        .enumerate()
        .map(|(i, (&y, &g))| if y > 0.0 || i >= n { g } else { 0.0 })
        .collect();
    assert_eq!(read_all(&gpu, &gy_all), want);
}

/// L = Σ gy ⊙ y[:, c_off..c_off+cout] with y the GPU forward, in f64.
fn conv_loss(gpu: &Gpu, fwd: &[Dispatch], y: &Tensor, gy: &[f32], c_off: usize, cout: usize) -> f64 {
    run(gpu, fwd);
    let yv = read_all(gpu, y);
    let [b, ctot, ho, wo] = [y.shape[0], y.shape[1], y.shape[2], y.shape[3]];
    let mut l = 0.0;
    for img in 0..b {
        for c in c_off..c_off + cout {
            for p in 0..ho * wo {
                let i = (img * ctot + c) * ho * wo + p;
                l += gy[i] as f64 * yv[i] as f64;
            }
        }
    }
    l
}

/// On both paths (barrier-free, with and without the lanes sharing loads, and tiled in each block) of each
/// gradient, the tiled 3×3 convolutions as Winograd transforms (in each block) and as implicit GEMMs.
#[test]
fn conv_backward_matches_finite_differences_of_the_forward() {
    for (barrier_free, winograd, lanes) in [(true, true, None), (true, true, Some(1)), (false, false, None)] {
        let mut gpu = common::gpu();
        gpu.barrier_free = barrier_free;
        gpu.winograd = winograd;
        if let Some(lanes) = lanes {
            gpu.weight_lanes = lanes;
        }
        println!("conv backward on {}", common::conv_variant(&gpu));
        conv_finite_difference_cases(&gpu);
    }
    for block in ConvBlock::ALL {
        let mut gpu = common::gpu();
        gpu.barrier_free = false;
        gpu.conv_block = Some(block);
        println!("conv backward on {}", common::conv_variant(&gpu));
        conv_finite_difference_cases(&gpu);
    }
}

fn conv_finite_difference_cases(gpu: &Gpu) {
    let mut scratch = ConvScratch::default();
    let mut rng = Lcg(31);
    // (batch, cin, h, w, cout, kernel, stride, pad, ctot, c_off): AlexNet's first conv and SqueezeNet's (weight
    // gradients only: the images get none; rows of 5 outputs, more than the 4 CPU adapters' forward takes), a
    // 3×3 writing a middle channel slice, AlexNet's 5×5 with padding 2, an unpadded 3×3 on a non-square map, a
    // 1×1 expand writing the last channels of its concatenation, and 297 output columns, which GPUs' weight
    // gradient splits into 5 ranges of 60 that cut across images; then a 3×3 and a 5×5 with more output channels
    // than CPU adapters' forward (16) and weight gradient (16 and 12) take per invocation.
    let cases = [
        (2, 3, 17, 23, 5, 11, 4, 2, 5, 0),
        (2, 3, 9, 11, 6, 3, 2, 0, 6, 0),
        (1, 5, 6, 6, 3, 3, 1, 1, 7, 2),
        (2, 4, 7, 6, 5, 5, 1, 2, 5, 0),
        (2, 6, 5, 4, 3, 3, 1, 0, 4, 1),
        (1, 7, 4, 5, 4, 1, 1, 0, 9, 5),
        (3, 4, 11, 9, 6, 3, 1, 1, 6, 0),
        (1, 2, 5, 4, 20, 3, 1, 1, 20, 0),
        (1, 2, 6, 5, 18, 5, 1, 2, 18, 0),
    ];
    for (b, cin, h, w, cout, k, s, pad, ctot, c_off) in cases {
        let shape = ConvShape {
            cin,
            cout,
            kernel: k,
            stride: s,
            pad,
        };
        let (ho, wo) = (shape.output_side(h).unwrap(), shape.output_side(w).unwrap());
        let xv = rng.vec(b * cin * h * w, -1.0, 1.0);
        let wv = rng.vec(cout * cin * k * k, -0.5, 0.5);
        let bv = rng.vec(cout, -0.5, 0.5);
        let gyv = rng.vec(b * ctot * ho * wo, -1.0, 1.0);
        let x = gpu.upload("x", &[b, cin, h, w], &xv).unwrap();
        let weight = gpu.upload("w", &[cout, cin, k, k], &wv).unwrap();
        let bias = gpu.upload("b", &[cout], &bv).unwrap();
        let y = gpu.zeros("y", &[b, ctot, ho, wo]).unwrap();
        let gy = gpu.upload("gy", &y.shape, &gyv).unwrap();
        // Without the ReLU the loss is linear in each tensor, so a wide central difference is exact up to f32
        // rounding of the forward.
        let fwd = conv::conv2d(gpu, shape, &x, &weight, &bias, &y, c_off, false, &mut scratch).unwrap();
        let back = ConvBackward {
            shape,
            x: &x,
            weight: &weight,
            bias: &bias,
            gy: &gy,
            c_off,
        };
        let grad_x = gpu.zeros("grad_x", &x.shape).unwrap();
        let grad_w = gpu.zeros("grad_w", &weight.shape).unwrap();
        let grad_b = gpu.zeros("grad_b", &bias.shape).unwrap();
        let mut dispatches = conv::conv2d_backward_params(gpu, &back, &grad_w, &grad_b, false, &mut scratch).unwrap();
        let mut checked = vec![(&weight, &wv, &grad_w, "weight"), (&bias, &bv, &grad_b, "bias")];
        if s == 1 {
            dispatches.extend(conv::conv2d_backward_input(gpu, &back, &grad_x, false, &mut scratch).unwrap());
            checked.push((&x, &xv, &grad_x, "x"));
        }
        run(gpu, &dispatches);
        for (tensor, values, grad, what) in checked {
            let analytic = read_all(gpu, grad);
            let n = values.len();
            let picks: Vec<usize> = (0..12).map(|_| (rng.uniform() * n as f32) as usize % n).collect();
            for i in picks.into_iter().chain([0, n - 1]) {
                let h = 0.5f32;
                let at = |v: f32| {
                    gpu.write(tensor, i, &[v]).unwrap();
                    conv_loss(gpu, &fwd, &y, &gyv, c_off, cout)
                };
                let fd = (at(values[i] + h) - at(values[i] - h)) / (2.0 * h as f64);
                at(values[i]);
                let a = analytic[i] as f64;
                assert!(
                    (fd - a).abs() <= 1e-3 + 1e-3 * a.abs(),
                    "conv {shape:?} grad {what}[{i}]: analytic {a}, finite difference {fd}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- max-pool

/// The max-pool's backward as a training pass runs it: the forward recording where each window's maximum is
/// (writing `y`), then the gather into grad_x.
fn maxpool_backward(
    gpu: &Gpu,
    shape: PoolShape,
    x: &Tensor,
    y: &Tensor,
    gy: &Tensor,
    grad_x: &Tensor,
    accumulate: bool,
) -> Vec<Dispatch> {
    let argmax = gpu.zeros("argmax", &y.shape).unwrap();
    vec![
        pool::maxpool2d(gpu, shape, x, y, Some(&argmax)).unwrap(),
        pool::maxpool2d_backward(gpu, shape, &argmax, gy, grad_x, accumulate).unwrap(),
    ]
}

#[test]
fn maxpool_backward_matches_pytorch_autograd_with_ties() {
    let (t, meta) = fixtures();
    let gpu = common::gpu();
    let cases = meta["pool"].as_object().unwrap();
    assert_eq!(cases.len(), 4);
    for (name, m) in cases {
        let key = |k: &str| format!("pool.{name}.{k}");
        let shape = PoolShape {
            kernel: u(m, "kernel"),
            stride: u(m, "stride"),
            ceil_mode: m["ceil_mode"].as_bool().unwrap(),
        };
        let x = upload(&gpu, &t, &key("x"));
        let gy = upload(&gpu, &t, &key("gy"));
        let want = &t[&key("grad_x")].1;
        let grad_x = gpu.upload("grad_x", &x.shape, &vec![5.0; x.numel()]).unwrap();
        let y = gpu.zeros("y", &gy.shape).unwrap();
        run(&gpu, &maxpool_backward(&gpu, shape, &x, &y, &gy, &grad_x, false));
        close(
            &read_all(&gpu, &grad_x),
            want,
            1e-6,
            1e-6,
            &format!("pool {name} grad_x"),
        );
        run(&gpu, &maxpool_backward(&gpu, shape, &x, &y, &gy, &grad_x, true));
        let doubled: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
        close(
            &read_all(&gpu, &grad_x),
            &doubled,
            1e-6,
            1e-6,
            &format!("pool {name} accumulated"),
        );
        // An argmax map or a gradient of the input's shape instead of the output's is refused.
        let argmax = gpu.zeros("argmax", &gy.shape).unwrap();
        assert!(pool::maxpool2d_backward(&gpu, shape, &x, &gy, &grad_x, false).is_err());
        assert!(pool::maxpool2d_backward(&gpu, shape, &argmax, &x, &grad_x, false).is_err());
        assert!(pool::maxpool2d(&gpu, shape, &x, &y, Some(&x)).is_err());
    }
}

#[test]
fn maxpool_backward_matches_finite_differences_of_the_forward() {
    let gpu = common::gpu();
    let mut rng = Lcg(32);
    for (shape, dims) in [
        (
            PoolShape {
                kernel: 3,
                stride: 2,
                ceil_mode: true,
            },
            [2, 2, 8, 7],
        ),
        (
            PoolShape {
                kernel: 3,
                stride: 2,
                ceil_mode: false,
            },
            [1, 3, 7, 9],
        ),
        // Windows more than two strides wide (the looping path) and windows with gaps between them.
        (
            PoolShape {
                kernel: 5,
                stride: 2,
                ceil_mode: true,
            },
            [1, 2, 10, 9],
        ),
        (
            PoolShape {
                kernel: 2,
                stride: 3,
                ceil_mode: false,
            },
            [1, 2, 8, 9],
        ),
    ] {
        let n: usize = dims.iter().product();
        // Distinct values a whole unit apart: a ±0.25 step never changes which value wins a window.
        let mut keys: Vec<(f32, usize)> = (0..n).map(|i| (rng.uniform(), i)).collect();
        keys.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut xv = vec![0.0; n];
        for (rank, &(_, i)) in keys.iter().enumerate() {
            xv[i] = rank as f32 - n as f32 / 2.0;
        }
        let (ho, wo) = (shape.output_side(dims[2]).unwrap(), shape.output_side(dims[3]).unwrap());
        let x = gpu.upload("x", &dims, &xv).unwrap();
        let y = gpu.zeros("y", &[dims[0], dims[1], ho, wo]).unwrap();
        let gyv = rng.vec(y.numel(), -1.0, 1.0);
        let gy = gpu.upload("gy", &y.shape, &gyv).unwrap();
        // Not zero to begin with: every value, those no window reaches too, must be written.
        let grad_x = gpu.upload("grad_x", &dims, &vec![7.0; n]).unwrap();
        run(&gpu, &maxpool_backward(&gpu, shape, &x, &y, &gy, &grad_x, false));
        let analytic = read_all(&gpu, &grad_x);
        let fwd = pool::maxpool2d(&gpu, shape, &x, &y, None).unwrap();
        let loss = |i: usize, v: f32| {
            gpu.write(&x, i, &[v]).unwrap();
            run(&gpu, std::slice::from_ref(&fwd));
            let yv = read_all(&gpu, &y);
            yv.iter().zip(&gyv).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>()
        };
        for i in 0..n {
            let fd = (loss(i, xv[i] + 0.25) - loss(i, xv[i] - 0.25)) / 0.5;
            loss(i, xv[i]);
            assert!(
                (fd - analytic[i] as f64).abs() < 1e-4,
                "max-pool {shape:?} grad[{i}]: analytic {}, finite difference {fd}",
                analytic[i]
            );
        }
    }
}

/// Windows of nothing but -inf: PyTorch's max-pool starts each window at (-inf, its first element's index) and
/// only a greater value or a NaN replaces it, so such a window's gradient goes to its first element. Two such
/// windows in a row (3×3 at stride 2 over [[-inf; 5]; 3]: columns 0–2 and 2–4), and a second plane with a finite
/// value in the second window only.
#[test]
fn maxpool_routes_the_gradient_of_an_all_minus_infinity_window_to_its_first_element() {
    let gpu = common::gpu();
    let shape = PoolShape {
        kernel: 3,
        stride: 2,
        ceil_mode: false,
    };
    let ninf = f32::NEG_INFINITY;
    // Plane 0 all -inf; plane 1 the same but for a -5 at (1, 4), inside the second window only.
    let mut xv = vec![ninf; 2 * 15];
    xv[15 + 5 + 4] = -5.0;
    let x = gpu.upload("x", &[1, 2, 3, 5], &xv).unwrap();
    let y = gpu.zeros("y", &[1, 2, 1, 2]).unwrap();
    let gy = gpu.upload("gy", &y.shape, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let grad_x = gpu.zeros("grad_x", &x.shape).unwrap();
    run(&gpu, &maxpool_backward(&gpu, shape, &x, &y, &gy, &grad_x, false));
    assert_eq!(read_all(&gpu, &y), [ninf, ninf, ninf, -5.0]);
    let mut want = vec![0.0; 2 * 15];
    want[0] = 1.0; // window (0, 0) of plane 0: its first element (0, 0)
    want[2] = 2.0; // window (0, 1): its first element (0, 2)
    want[15] = 3.0; // plane 1, window (0, 0)
    want[15 + 5 + 4] = 4.0; // plane 1, window (0, 1): the -5
    assert_eq!(read_all(&gpu, &grad_x), want);
}

/// NaNs in a window: PyTorch's max-pool keeps `val > maxval || isnan(val)` while scanning a window in row-major
/// order, so the window's value is NaN and its gradient goes to the last NaN (torch 2.15 on the CPU: index 3 for
/// the window [[1, nan, 2], [nan, 0, 3], [1, 1, 1]]). A plain CPU reference of that rule.
#[test]
fn maxpool_propagates_nan_and_routes_its_gradient_as_pytorch() {
    let gpu = common::gpu();
    let shape = PoolShape {
        kernel: 3,
        stride: 2,
        ceil_mode: false,
    };
    let (h, w) = (7, 7);
    let (ho, wo) = (3, 3);
    let mut xv: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32).collect();
    for i in [9, 11, 30] {
        xv[i] = f32::NAN;
    }
    let gyv: Vec<f32> = (0..ho * wo).map(|i| 1.0 + i as f32).collect();
    let (mut want_y, mut want_g) = (vec![0.0f32; ho * wo], vec![0.0f32; h * w]);
    for oy in 0..ho {
        for ox in 0..wo {
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
            for yy in 2 * oy..2 * oy + 3 {
                for xx in 2 * ox..2 * ox + 3 {
                    let v = xv[yy * w + xx];
                    if v > best || v.is_nan() {
                        (best, arg) = (v, yy * w + xx);
                    }
                }
            }
            want_y[oy * wo + ox] = best;
            want_g[arg] += gyv[oy * wo + ox];
        }
    }
    assert!(want_y.iter().any(|v| v.is_nan()) && want_y.iter().any(|v| !v.is_nan()));
    let x = gpu.upload("x", &[1, 1, h, w], &xv).unwrap();
    let y = gpu.zeros("y", &[1, 1, ho, wo]).unwrap();
    let gy = gpu.upload("gy", &y.shape, &gyv).unwrap();
    let grad_x = gpu.zeros("grad_x", &x.shape).unwrap();
    // The forward that records the maxima writes y as the plain one does.
    run(&gpu, &maxpool_backward(&gpu, shape, &x, &y, &gy, &grad_x, false));
    let got_y = read_all(&gpu, &y);
    for (i, (g, e)) in got_y.iter().zip(&want_y).enumerate() {
        assert!(
            g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
            "y[{i}]: {g} vs {e}"
        );
    }
    assert_eq!(read_all(&gpu, &grad_x), want_g);
}

// ---------------------------------------------------------------- distance side

/// The buffers of one tap's distance term on the GPU: maps t [N, C, P], the transformed maps v, their unit
/// normalisation u (for the backward) and its factors r (for the forward's pair profile), and everything the pair
/// profile and its backward read.
struct DistanceCase {
    part: String,
    chunk: usize,
    n_pairs: usize,
    offset: usize,
    seed: u32,
    t: Tensor,
    v: Tensor,
    r: Tensor,
    order: Tensor,
    w: Tensor,
    grad_d: Tensor,
    pairs: wgpu::Buffer,
    state: wgpu::Buffer,
    profile: Tensor,
    d: Tensor,
}

impl DistanceCase {
    #[allow(clippy::too_many_arguments)]
    fn new(
        gpu: &Gpu,
        part: &str,
        chunk: usize,
        group_len: usize,
        c: usize,
        p: usize,
        offset: usize,
        seed: u32,
        state: [u32; 4],
        t: &[f32],
        w: &[f32],
        grad_d: &[f32],
    ) -> DistanceCase {
        let n = chunk * group_len;
        let n_pairs = chunk * (group_len - 1);
        let pairs: Vec<u32> = (0..n_pairs)
            .flat_map(|k| [(k % chunk) as u32, ((k / chunk + 1) * chunk + k % chunk) as u32])
            .collect();
        let vp = if part == "mean" { 1 } else { p };
        DistanceCase {
            part: part.to_string(),
            chunk,
            n_pairs,
            offset,
            seed,
            t: gpu.upload("t", &[n, c, p], t).unwrap(),
            v: gpu.zeros("v", &[n, c, vp]).unwrap(),
            r: gpu.zeros("r", &[n, vp]).unwrap(),
            order: gpu.zeros("order", &[n, c, p]).unwrap(),
            w: gpu.upload("w", &[w.len()], w).unwrap(),
            grad_d: gpu.upload("grad_d", &[n_pairs], grad_d).unwrap(),
            pairs: gpu.upload_pod("pairs", &pairs).unwrap(),
            state: gpu.upload_pod("state", &state).unwrap(),
            profile: gpu.zeros("profile", &[n_pairs, w.len()]).unwrap(),
            d: gpu.zeros("d", &[n_pairs]).unwrap(),
        }
    }

    /// Transform, the columns' inverse norms, the pair profile's column block (normalising as it reads) and
    /// d = s·w.
    fn forward(&self, gpu: &Gpu) -> Vec<Dispatch> {
        let mut out = match self.part.as_str() {
            "spatial" => vec![],
            "mean" => vec![channel::channel_mean(gpu, &self.t, &self.v).unwrap()],
            _ => vec![channel::channel_sort_with_order(gpu, &self.t, &self.v, &self.order).unwrap()],
        };
        let v = if self.part == "spatial" { &self.t } else { &self.v };
        out.push(channel::inverse_norm(gpu, v, &self.r).unwrap());
        out.push(
            distance::pair_profile(
                gpu,
                v,
                &self.r,
                &self.pairs,
                self.n_pairs,
                self.chunk,
                &self.state,
                &self.profile,
                self.offset,
                self.seed,
            )
            .unwrap(),
        );
        out.push(distance::weighted_sum(gpu, &self.profile, &self.w, &self.d).unwrap());
        out
    }

    /// The backward into grad_v (the compared maps', written) and grad_t (the tap's, accumulated onto what it
    /// holds): for the spatial part both are the normalised pair profile's backward, for the others grad_t is
    /// grad_v's through the mean or sort.
    fn backward(&self, gpu: &Gpu, grad_v: &Tensor, grad_t: &Tensor) -> Vec<Dispatch> {
        let v = if self.part == "spatial" { &self.t } else { &self.v };
        let profile_backward = |grad: &Tensor, accumulate: bool| {
            distance::pair_profile_backward(
                gpu,
                v,
                self.n_pairs,
                self.chunk,
                &self.state,
                &self.grad_d,
                &self.w,
                self.offset,
                self.seed,
                grad,
                accumulate,
            )
            .unwrap()
        };
        vec![
            profile_backward(grad_v, false),
            match self.part.as_str() {
                "spatial" => profile_backward(grad_t, true),
                "mean" => channel::channel_mean_backward(gpu, grad_v, grad_t, true).unwrap(),
                _ => channel::channel_sort_backward(gpu, grad_v, &self.order, grad_t, true).unwrap(),
            },
        ]
    }

    /// L = Σ grad_d ⊙ d from the GPU forward, in f64.
    fn loss(&self, gpu: &Gpu, forward: &[Dispatch], grad_d: &[f32]) -> f64 {
        run(gpu, forward);
        let d = read_all(gpu, &self.d);
        d.iter().zip(grad_d).map(|(a, b)| *a as f64 * *b as f64).sum()
    }
}

#[test]
fn distance_backward_matches_pytorch_autograd() {
    let (t, meta) = fixtures();
    let gpu = common::gpu();
    let cases = meta["distance"].as_object().unwrap();
    assert_eq!(cases.len(), 4);
    for (name, m) in cases {
        let key = |k: &str| format!("distance.{name}.{k}");
        let (c, p) = (u(m, "c"), u(m, "h") * u(m, "w"));
        let state = distance::dropout_state(
            u(m, "step_seed") as u32,
            u(m, "first_group") as u32,
            m["drop"].as_f64().unwrap() as f32,
        );
        let case = DistanceCase::new(
            &gpu,
            m["part"].as_str().unwrap(),
            u(m, "chunk"),
            u(m, "group_len"),
            c,
            p,
            u(m, "offset"),
            u(m, "seed") as u32,
            state,
            &t[&key("t")].1,
            &t[&key("w")].1,
            &t[&key("grad_d")].1,
        );
        // grad_u, the gradient at the normalised maps, is not formed: the backward goes through the
        // normalisation in the same kernel.
        let grad_v = gpu.upload("grad_v", &case.v.shape, &vec![9.0; case.v.numel()]).unwrap();
        let grad_t = gpu.upload("grad_t", &case.t.shape, &vec![0.5; case.t.numel()]).unwrap();
        let mut dispatches = case.forward(&gpu);
        dispatches.extend(case.backward(&gpu, &grad_v, &grad_t));
        run(&gpu, &dispatches);
        close(
            &read_all(&gpu, &grad_v),
            &t[&key("grad_v")].1,
            1e-4,
            1e-5,
            &format!("{name} grad_v"),
        );
        close(
            &read_all(&gpu, &grad_t),
            &plus(&t[&key("grad_t")].1, 0.5),
            1e-4,
            1e-5,
            &format!("{name} grad_t (accumulated onto 0.5)"),
        );
    }
}

#[test]
fn distance_backward_matches_finite_differences_of_the_forward() {
    let gpu = common::gpu();
    let mut rng = Lcg(33);
    // (part, chunk, group_len, channels, positions, dropout)
    let cases = [
        ("spatial", 2, 3, 5, 6, 0.5),
        ("mean", 3, 2, 4, 5, 0.0),
        ("sort", 2, 3, 4, 7, 0.5),
        // The largest group the backward takes (a reference and three members).
        ("spatial", 2, 4, 3, 5, 0.3),
        ("mean", 2, 4, 2, 3, 0.0),
    ];
    for (part, chunk, group_len, c, p, drop) in cases {
        let n = chunk * group_len;
        // Every row a shuffled ladder: values at least 0.05 apart, so a small step never reorders a sort.
        let mut tv = Vec::with_capacity(n * c * p);
        for _ in 0..n * c {
            let mut keys: Vec<(f32, usize)> = (0..p).map(|i| (rng.uniform(), i)).collect();
            keys.sort_by(|a, b| a.0.total_cmp(&b.0));
            let lo = rng.uniform() * 2.0 - 1.5;
            tv.extend(
                keys.iter()
                    .map(|&(_, rank)| lo + 0.1 * rank as f32 + 0.05 * rng.uniform()),
            );
        }
        let offset = 1;
        let columns = offset + c + 2;
        let w = rng.vec(columns, -0.2, 1.0);
        let grad_d = rng.vec(chunk * (group_len - 1), -1.0, 1.0);
        let state = distance::dropout_state(11, 3, drop);
        let case = DistanceCase::new(&gpu, part, chunk, group_len, c, p, offset, 5, state, &tv, &w, &grad_d);
        let grad_v = gpu.zeros("grad_v", &case.v.shape).unwrap();
        let grad_t = gpu.zeros("grad_t", &case.t.shape).unwrap();
        let forward = case.forward(&gpu);
        run(&gpu, &forward);
        run(&gpu, &case.backward(&gpu, &grad_v, &grad_t));
        let analytic = read_all(&gpu, &grad_t);
        let h = 2e-3f32;
        for _ in 0..24 {
            let i = (rng.uniform() * tv.len() as f32) as usize % tv.len();
            let at = |v: f32| {
                gpu.write(&case.t, i, &[v]).unwrap();
                case.loss(&gpu, &forward, &grad_d)
            };
            let fd = (at(tv[i] + h) - at(tv[i] - h)) / (2.0 * h as f64);
            at(tv[i]);
            let a = analytic[i] as f64;
            assert!(
                (fd - a).abs() <= 2e-3 + 2e-2 * a.abs(),
                "{part} grad_t[{i}]: analytic {a}, finite difference {fd}"
            );
        }
    }
}

/// ∂L/∂g of L = Σ_k grad_d[k]·d[k], d[k] = Σ_c w[off + c]·(1/P)·Σ_p (u_i − u_j)² over the member-major pairs of
/// `chunk` groups, u = g / max(‖g[n,:,p]‖, 1e-12) (F.normalize): written plainly in f64, without dropout.
#[allow(clippy::too_many_arguments)]
fn cpu_distance_backward(
    g: &[f32],
    chunk: usize,
    group_len: usize,
    c: usize,
    p: usize,
    w: &[f32],
    off: usize,
    grad_d: &[f32],
) -> Vec<f64> {
    let n = chunk * group_len;
    let at = |img: usize, ch: usize, q: usize| (img * c + ch) * p + q;
    let mut norm = vec![0.0f64; n * p];
    for img in 0..n {
        for q in 0..p {
            norm[img * p + q] = (0..c).map(|ch| (g[at(img, ch, q)] as f64).powi(2)).sum::<f64>().sqrt();
        }
    }
    let u = |img: usize, ch: usize, q: usize| g[at(img, ch, q)] as f64 / norm[img * p + q].max(1e-12);
    // ∂L/∂u, then through the normalisation column by column.
    let mut gu = vec![0.0f64; n * c * p];
    for m in 1..group_len {
        for grp in 0..chunk {
            let (i, j) = (grp, m * chunk + grp);
            let gd = grad_d[(m - 1) * chunk + grp] as f64;
            for ch in 0..c {
                for q in 0..p {
                    let t = gd * w[off + ch] as f64 * 2.0 / p as f64 * (u(i, ch, q) - u(j, ch, q));
                    gu[at(i, ch, q)] += t;
                    gu[at(j, ch, q)] -= t;
                }
            }
        }
    }
    let mut out = vec![0.0f64; n * c * p];
    for img in 0..n {
        for q in 0..p {
            let nrm = norm[img * p + q];
            let dot: f64 = (0..c).map(|ch| u(img, ch, q) * gu[at(img, ch, q)]).sum();
            for ch in 0..c {
                let k = at(img, ch, q);
                // Below the clamp the denominator is the constant 1e-12: only the numerator carries gradient.
                out[k] = if nrm > 1e-12 {
                    (gu[k] - u(img, ch, q) * dot) / nrm
                } else {
                    gu[k] / 1e-12
                };
            }
        }
    }
    out
}

#[test]
fn distance_backward_matches_a_plain_cpu_backward_with_zero_columns_and_refuses_groups_of_five() {
    let gpu = common::gpu();
    let mut rng = Lcg(35);
    for (chunk, group_len, c, p, accumulate) in [(3, 3, 7, 10, false), (2, 4, 5, 3, true), (4, 2, 2, 1, false)] {
        let n = chunk * group_len;
        let mut g = rng.vec(n * c * p, -1.0, 2.0);
        // An all-zero column in a reference and one in a member: F.normalize's gradient there is ∂L/∂u / 1e-12.
        for ch in 0..c {
            g[ch * p] = 0.0;
            g[((chunk + 1) * c + ch) * p + p - 1] = 0.0;
        }
        let (off, columns) = (2, c + 5);
        let w = rng.vec(columns, 0.0, 1.0);
        let grad_d = rng.vec(chunk * (group_len - 1), -1.0, 1.0);
        let gt = gpu.upload("g", &[n, c, p], &g).unwrap();
        let start = rng.vec(n * c * p, -1.0, 1.0);
        let grad = gpu.upload("grad", &[n, c, p], &start).unwrap();
        let state = gpu.upload_pod("state", &distance::dropout_state(3, 0, 0.0)).unwrap();
        let wt = gpu.upload("w", &[columns], &w).unwrap();
        let gdt = gpu.upload("grad_d", &[grad_d.len()], &grad_d).unwrap();
        let n_pairs = chunk * (group_len - 1);
        let backward = |grad: &Tensor, accumulate| {
            distance::pair_profile_backward(&gpu, &gt, n_pairs, chunk, &state, &gdt, &wt, off, 0, grad, accumulate)
        };
        run(&gpu, &[backward(&grad, accumulate).unwrap()]);
        let got = read_all(&gpu, &grad);
        let want = cpu_distance_backward(&g, chunk, group_len, c, p, &w, off, &grad_d);
        for (i, (&gv, &wv)) in got.iter().zip(&want).enumerate() {
            let wv = wv + if accumulate { start[i] as f64 } else { 0.0 };
            assert!(
                (gv as f64 - wv).abs() <= 1e-5 * (1.0 + wv.abs()),
                "groups of {group_len}, {c}×{p}: grad[{i}] = {gv}, want {wv}"
            );
        }
        assert!(
            want[0].abs() > 1e9,
            "the zero column's gradient is ∂L/∂u / 1e-12, here {}",
            want[0]
        );
    }
    // Groups of five (a reference and four members) are refused with a clear error.
    let (chunk, group_len, c, p) = (2, 5, 3, 4);
    let g = gpu.zeros("g", &[chunk * group_len, c, p]).unwrap();
    let grad = gpu.zeros("grad", &[chunk * group_len, c, p]).unwrap();
    let state = gpu.upload_pod("state", &distance::dropout_state(3, 0, 0.0)).unwrap();
    let w = gpu.zeros("w", &[c]).unwrap();
    let grad_d = gpu.zeros("grad_d", &[chunk * (group_len - 1)]).unwrap();
    let err = distance::pair_profile_backward(&gpu, &g, chunk * 4, chunk, &state, &grad_d, &w, 0, 0, &grad, false)
        .err()
        .expect("groups of five must be refused")
        .to_string();
    assert!(err.contains("at most 4"), "{err}");
}

#[test]
fn channel_sort_order_is_the_permutation_of_the_sort() {
    let gpu = common::gpu();
    let mut rng = Lcg(34);
    for (n, c, p) in [(2, 3, 1), (1, 2, 37), (2, 1, 256), (1, 1, 4096)] {
        let xv = rng.vec(n * c * p, -3.0, 3.0);
        let x = gpu.upload("x", &[n, c, p], &xv).unwrap();
        let y = gpu.zeros("y", &[n, c, p]).unwrap();
        let order = gpu.zeros("order", &[n, c, p]).unwrap();
        run(&gpu, &[channel::channel_sort_with_order(&gpu, &x, &y, &order).unwrap()]);
        let yv = read_all(&gpu, &y);
        let ov: Vec<usize> = read_all(&gpu, &order).iter().map(|v| v.to_bits() as usize).collect();
        for row in 0..n * c {
            let mut seen = vec![false; p];
            for k in 0..p {
                let o = ov[row * p + k];
                assert!(
                    o < p && !seen[o],
                    "row {row}: order {o} at rank {k} is not a permutation"
                );
                seen[o] = true;
                assert_eq!(yv[row * p + k], xv[row * p + o], "row {row} rank {k}");
                if k > 0 {
                    assert!(yv[row * p + k - 1] <= yv[row * p + k], "row {row} not ascending at {k}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------- a whole "Adapted Net" step

/// |got − want| within `rel`·|want| + `scale_rel`·max|want| (f32 GPU against float64 PyTorch through a deep
/// net: the second term absorbs rounding relative to the tensor's scale).
fn close_scaled(got: &[f32], want: &[f32], rel: f32, scale_rel: f32, what: &str) {
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    close(got, want, rel, scale_rel * scale, what);
}

#[test]
fn adapted_net_step_matches_pytorch_autograd_and_adam_alexnet_spatial() {
    adapted_net_step("alex_spatial_step");
}

#[test]
fn adapted_net_step_matches_pytorch_autograd_and_adam_alexnet_spatial_mean() {
    adapted_net_step("alex_spatial_mean_step");
}

#[test]
fn adapted_net_step_matches_pytorch_autograd_and_adam_squeezenet_spatial_sort() {
    adapted_net_step("squeeze_spatial_sort_step");
}

/// One whole training step of `train --variant net` (dropout off, 3 triplets in chunks of 2: a full chunk and a
/// padded one) against the fixture's PyTorch step: distances, the gradients of w, the rank net and every conv,
/// and every parameter's Adam update; on both kernel paths (CPU adapters' barrier-free kernels, GPUs' tiled ones).
fn adapted_net_step(name: &str) {
    for barrier_free in [true, false] {
        eprintln!("{name}: barrier_free = {barrier_free}");
        adapted_net_step_on(name, barrier_free);
    }
}

fn adapted_net_step_on(name: &str, barrier_free: bool) {
    use dps_gpu::kernels::adam::Clamp;
    use dps_gpu::metric::{run_chunk, ChannelWeights, GroupImages, Method, Metric};
    use dps_gpu::nets::{NetKind, Network};
    use dps_gpu::train::{NetTrainer, TrainState};

    let (t, meta) = fixtures();
    let m = &meta["steps"][name];
    let (triplets, size, lr) = (u(m, "triplets"), u(m, "size"), m["lr"].as_f64().unwrap() as f32);
    let kind = NetKind::parse(m["net"].as_str().unwrap()).unwrap();
    let method = Method::parse(m["method"].as_str().unwrap()).unwrap();
    let key = |k: &str| format!("{name}.{k}");
    let mut gpu = common::gpu();
    gpu.barrier_free = barrier_free;
    // AlexNet's ImageNet weights are embedded in the repository (weights/, the same values as shared/weights);
    // the other nets need DPS_WEIGHTS_DIR.
    let net = if kind == NetKind::Alex {
        Network::load(&gpu, kind, None).unwrap()
    } else {
        let Some(dir) = common::shared_dir("DPS_WEIGHTS_DIR", &format!("adapted_net_step ({name})")) else {
            return;
        };
        Network::load(&gpu, kind, Some(&dir)).unwrap()
    };
    let channels: Vec<usize> = kind.tap_shapes(size).unwrap().iter().map(|s| s.0).collect();
    let w0 = &t[&key("w0")].1;
    let weights = ChannelWeights::from_flat(w0, &channels, method, "fixture");
    let mut metric = Metric::new(&gpu, net, method, weights, size).unwrap();
    metric.set_keeps_gradients(true);
    let chunk = 2;
    metric.prepare(&gpu, chunk, 3, false).unwrap();
    let state = TrainState::new(
        &gpu,
        &metric.all_weights,
        &t[&key("theta0")].1,
        triplets,
        Clamp::AfterStep,
    )
    .unwrap();
    let plan = metric.current_plan().unwrap();
    let trainer = NetTrainer::new(&gpu, &metric, &[plan], &state).unwrap();
    let images = &t["step_images"].1;
    let per_member = triplets * 3 * size * size;
    let members: Vec<&[f32]> = images.chunks(per_member).collect();
    let pass = |backward: bool| {
        let mut start = 0;
        while start < triplets {
            let count = chunk.min(triplets - start);
            let dropout_off = distance::dropout_state(0, start as u32, 0.0);
            run_chunk(&gpu, plan, size, GroupImages::Unit(&members), start, count, dropout_off).unwrap();
            if backward {
                trainer.backward_chunk(&gpu, &state, chunk, start, count).unwrap();
            } else {
                state.gather_profile(&gpu, &plan.profile, chunk, start, count).unwrap();
            }
            start += count;
        }
    };
    pass(false);
    let stats = state.step(&gpu, &t[&key("h")].1, lr, 1, false).unwrap();
    assert_eq!(stats.synced, m["synced"].as_bool().unwrap());
    close(&read_all(&gpu, &state.d), &t[&key("d")].1, 1e-4, 1e-6, "distances");
    trainer.grads.zero(&gpu).unwrap();
    pass(true);
    let convs: Vec<(String, Vec<f32>, Vec<f32>)> = metric
        .net
        .convs()
        .iter()
        .map(|(name, p)| (name.clone(), read_all(&gpu, &p.weight), read_all(&gpu, &p.bias)))
        .collect();
    state.apply(&gpu).unwrap();
    trainer.apply(&gpu).unwrap();

    // Gradients, then the updates. Adam's first step moves each parameter by lr·g/(|g| + eps), so the update
    // agrees within 1e-4 relative wherever the gradient's sign is resolvable in f32 (|g| above 1e-4 of the
    // tensor's largest, or exactly 0: a channel dead on every image), widened by the gradient's own tolerance
    // only where |g| is near eps = 1e-8 and the update starts to depend on its size; elsewhere within 2·lr.
    // Most updates must be resolvable.
    let check = |what: &str, old: &[f32], grad: &[f32], new: &[f32]| {
        let want_grad = &t[&key(&format!("{what}.grad"))].1;
        let want_new = &t[&key(&format!("{what}.new"))].1;
        let (rel, scale_rel) = (2e-3f64, 2e-4f64);
        close_scaled(
            grad,
            want_grad,
            rel as f32,
            scale_rel as f32,
            &format!("{what} gradient"),
        );
        let scale = want_grad.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let mut unresolved = 0;
        for i in 0..old.len() {
            let (got, want) = ((new[i] - old[i]) as f64, (want_new[i] - old[i]) as f64);
            let g = want_grad[i].abs() as f64;
            let tol = if g == 0.0 {
                1e-9
            } else if g > 1e-4 * scale {
                let grad_rel = (rel * g + scale_rel * scale) / g;
                (1e-4 + 1e-8 / (g + 1e-8) * grad_rel) * want.abs() + 1e-9
            } else {
                unresolved += 1;
                2.0 * lr as f64
            };
            assert!(
                (got - want).abs() <= tol,
                "{what}[{i}] update: got {got}, PyTorch {want} (gradient {} vs {})",
                grad[i],
                want_grad[i]
            );
        }
        println!("{what}: {unresolved} of {} updates unresolvable", old.len());
        assert!(
            unresolved * 4 <= old.len(),
            "{what}: {unresolved} of {} gradients near zero",
            old.len()
        );
    };
    check(
        "w",
        w0,
        &read_all(&gpu, &state.grad_w),
        &read_all(&gpu, &metric.all_weights),
    );
    check(
        "theta",
        &t[&key("theta0")].1,
        &read_all(&gpu, &state.grad_theta),
        &read_all(&gpu, &state.theta),
    );
    for (k, ((name, p), (_, old_w, old_b))) in metric.net.convs().iter().zip(&convs).enumerate() {
        let idx: Vec<usize> = t[&key(&format!("{name}.weight.index"))]
            .1
            .iter()
            .map(|&v| v as usize)
            .collect();
        let pick = |v: Vec<f32>| idx.iter().map(|&i| v[i]).collect::<Vec<f32>>();
        check(
            &format!("{name}.weight"),
            &pick(old_w.clone()),
            &pick(read_all(&gpu, &trainer.grads.weights[k])),
            &pick(read_all(&gpu, &p.weight)),
        );
        check(
            &format!("{name}.bias"),
            old_b,
            &read_all(&gpu, &trainer.grads.biases[k]),
            &read_all(&gpu, &p.bias),
        );
    }
}
