//! The six distortions on the GPU against torchvision (../shared/reference/bapps_example.safetensors, made by
//! make_reference.py there) and against plain CPU references written here from torchvision 0.11's code; the
//! parameter draws against Table 2; bad parameters.

mod common;

use dps_gpu::distort::{Distortion, DistortionParams};
use dps_gpu::gpu::Gpu;
use dps_gpu::kernels::distort::DistortPlan;
use rand::SeedableRng;

/// Largest share of an image's pixels that may differ from the reference by more than 1e-5 for nearest
/// sampling (a source coordinate an ulp from a .5 tie); every other distortion must agree everywhere.
const TIE_SHARE: f32 = 0.005;

/// Runs one mixed batch: image i of `images` ([n, 3, S, S]) distorted with `params[i]`.
fn distort_on_gpu(gpu: &Gpu, images: &[f32], params: &[Option<DistortionParams>], size: usize) -> Vec<f32> {
    let plan = DistortPlan::new(gpu, params.len(), size).unwrap();
    gpu.write(&plan.input, 0, images).unwrap();
    plan.set_params(gpu, params).unwrap();
    gpu.run(&plan.dispatches).unwrap();
    gpu.read(&plan.output, plan.output.numel()).unwrap()
}

/// Prints and checks one image against its reference: returns nothing, panics with the details.
fn check_image(what: &str, kind: Distortion, got: &[f32], want: &[f32]) {
    let plane = got.len() / 3;
    let differing = (0..plane)
        .filter(|&p| (0..3).any(|c| (got[c * plane + p] - want[c * plane + p]).abs() > 1e-5))
        .count();
    let worst = common::max_abs_diff(got, want);
    println!("{what}: max abs error {worst:.2e}, {differing} of {plane} pixels differ by more than 1e-5");
    let nearest = matches!(kind, Distortion::Rotate | Distortion::Translate | Distortion::Zoom);
    if nearest {
        assert!(
            differing as f32 <= TIE_SHARE * plane as f32,
            "{what}: {differing} pixels differ (max error {worst})"
        );
    } else {
        assert!(worst <= 1e-5, "{what}: max abs error {worst}");
    }
}

#[test]
fn every_distortion_matches_torchvision_in_one_mixed_batch() {
    let Some(rdir) = common::reference_dir("distortions") else {
        return;
    };
    let t = common::read_tensors(&rdir.join("bapps_example.safetensors"));
    let reference = &t["ref_01"].1;
    let cases: Vec<(&str, Distortion, [f32; 2])> = vec![
        ("rotate_45", Distortion::Rotate, [45.0, 0.0]),
        ("rotate_300", Distortion::Rotate, [300.0, 0.0]),
        ("translate_13_-7", Distortion::Translate, [13.0, -7.0]),
        ("darken_0.3", Distortion::Darken, [0.3, 0.0]),
        ("hue_0.25", Distortion::Hue, [0.25, 0.0]),
        ("hue_-0.4", Distortion::Hue, [-0.4, 0.0]),
        ("blur_sigma6", Distortion::Blur, [6.0, 0.0]),
        ("zoom_1.5", Distortion::Zoom, [1.5, 0.0]),
    ];
    let n = 3 * 64 * 64;
    let images: Vec<f32> = (0..=cases.len()).flat_map(|_| reference.iter().copied()).collect();
    let mut params: Vec<_> = cases
        .iter()
        .map(|c| Some(DistortionParams::new(c.1, c.2).unwrap()))
        .collect();
    params.push(None); // an undistorted copy rides along
    let out = distort_on_gpu(&common::gpu(), &images, &params, 64);
    for (i, (name, kind, _)) in cases.iter().enumerate() {
        let want = &t[&format!("distort_{name}")].1;
        check_image(name, *kind, &out[i * n..(i + 1) * n], want);
    }
    assert_eq!(
        &out[cases.len() * n..],
        &reference[..],
        "None copies the image unchanged"
    );
}

/// Plain CPU versions of the six distortions on one [3, S, S] image, from torchvision 0.11's tensor code.
mod cpu {
    /// F.rotate / F.affine with NEAREST and fill 0: `_get_inverse_affine_matrix` in double, theta in f32,
    /// `_gen_affine_grid`'s base grid times theta^T / (S/2), grid_sample(nearest, align_corners=False).
    pub fn affine(x: &[f32], s: usize, angle: f64, translate: [f64; 2], scale: f64) -> Vec<f32> {
        let rot = angle.to_radians();
        let (sin, cos) = rot.sin_cos();
        let mut m = [cos / scale, sin / scale, 0.0, -sin / scale, cos / scale, 0.0];
        m[2] += m[0] * -translate[0] + m[1] * -translate[1];
        m[5] += m[3] * -translate[0] + m[4] * -translate[1];
        let half = s as f32 * 0.5;
        let theta = m.map(|v| v as f32 / half);
        let plane = s * s;
        let mut y = vec![0.0; 3 * plane];
        for row in 0..s {
            for col in 0..s {
                let bx = -half + 0.5 + col as f32;
                let by = -half + 0.5 + row as f32;
                // Rust never fuses a * b + c, so every step rounds as torch's does.
                let gx = (bx * theta[0] + by * theta[1]) + theta[2];
                let gy = (bx * theta[3] + by * theta[4]) + theta[5];
                let ix = ((gx + 1.0) * half - 0.5).round_ties_even();
                let iy = ((gy + 1.0) * half - 0.5).round_ties_even();
                if ix >= 0.0 && iy >= 0.0 && ix < s as f32 && iy < s as f32 {
                    let src = iy as usize * s + ix as usize;
                    for c in 0..3 {
                        y[c * plane + row * s + col] = x[c * plane + src];
                    }
                }
            }
        }
        y
    }

    pub fn rotate(x: &[f32], s: usize, degrees: f32) -> Vec<f32> {
        affine(x, s, -(degrees as f64), [0.0, 0.0], 1.0)
    }

    /// adjust_brightness = _blend(img, zeros, b).
    pub fn darken(x: &[f32], b: f32) -> Vec<f32> {
        x.iter().map(|v| (b * v).clamp(0.0, 1.0)).collect()
    }

    /// adjust_hue: _rgb2hsv, h = (h + shift) % 1 (torch.remainder), _hsv2rgb.
    pub fn hue(x: &[f32], shift: f32) -> Vec<f32> {
        let plane = x.len() / 3;
        let mut y = vec![0.0; x.len()];
        for p in 0..plane {
            let (r, g, b) = (x[p], x[plane + p], x[2 * plane + p]);
            let maxc = r.max(g).max(b);
            let minc = r.min(g).min(b);
            let eqc = maxc == minc;
            let cr = maxc - minc;
            let s = cr / if eqc { 1.0 } else { maxc };
            let div = if eqc { 1.0 } else { cr };
            let (rc, gc, bc) = ((maxc - r) / div, (maxc - g) / div, (maxc - b) / div);
            let h = if maxc == r {
                bc - gc
            } else if maxc == g {
                2.0 + rc - bc
            } else {
                4.0 + gc - rc
            };
            let h = (h / 6.0 + 1.0) % 1.0;
            let mut h = (h + shift) % 1.0;
            if h < 0.0 {
                h += 1.0;
            }
            let i = (h * 6.0).floor();
            let f = h * 6.0 - i;
            let v = maxc;
            let pp = (v * (1.0 - s)).clamp(0.0, 1.0);
            let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
            let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
            let rgb = match i as i32 % 6 {
                0 => [v, t, pp],
                1 => [q, v, pp],
                2 => [pp, v, t],
                3 => [pp, q, v],
                4 => [t, pp, v],
                _ => [v, pp, q],
            };
            for c in 0..3 {
                y[c * plane + p] = rgb[c];
            }
        }
        y
    }

    fn kernel1d(taps: usize, sigma: f32) -> Vec<f64> {
        let half = (taps - 1) as f32 / 2.0;
        let pdf: Vec<f32> = (0..taps)
            .map(|i| (-0.5 * ((i as f32 - half) / sigma).powi(2)).exp())
            .collect();
        let sum: f32 = pdf.iter().sum();
        pdf.iter().map(|v| (v / sum) as f64).collect()
    }

    /// gaussian_blur(kernel [11 wide, 21 high]): the 2-D kernel as the outer product, reflect padding, one
    /// direct convolution per channel (summed in f64).
    pub fn blur(x: &[f32], s: usize, sigma: f32) -> Vec<f32> {
        let (kx, ky) = (kernel1d(11, sigma), kernel1d(21, sigma));
        let reflect = |i: isize| -> usize {
            let j = i.unsigned_abs();
            if j >= s {
                2 * (s - 1) - j
            } else {
                j
            }
        };
        let plane = s * s;
        let mut y = vec![0.0; x.len()];
        for c in 0..3 {
            for row in 0..s {
                for col in 0..s {
                    let mut acc = 0.0f64;
                    for (a, wy) in ky.iter().enumerate() {
                        let r = reflect(row as isize + a as isize - 10);
                        for (b, wx) in kx.iter().enumerate() {
                            let q = reflect(col as isize + b as isize - 5);
                            acc += ((wy * wx) as f32) as f64 * x[c * plane + r * s + q] as f64;
                        }
                    }
                    y[c * plane + row * s + col] = acc as f32;
                }
            }
        }
        y
    }
}

fn cpu_distort(x: &[f32], s: usize, p: &DistortionParams) -> Vec<f32> {
    let [v, w] = p.values;
    match p.kind {
        Distortion::Rotate => cpu::rotate(x, s, v),
        Distortion::Translate => cpu::affine(x, s, 0.0, [v as f64, w as f64], 1.0),
        Distortion::Zoom => cpu::affine(x, s, 0.0, [0.0, 0.0], v as f64),
        Distortion::Darken => cpu::darken(x, v),
        Distortion::Hue => cpu::hue(x, v),
        Distortion::Blur => cpu::blur(x, s, v),
    }
}

/// Random images with some grey and two-equal-channel pixels (the hue formulas' special branches).
fn test_images(n: usize, s: usize, seed: u64) -> Vec<f32> {
    let plane = s * s;
    let mut x = common::Lcg(seed).vec(n * 3 * plane, 0.0, 1.0);
    for img in x.chunks_mut(3 * plane) {
        for p in (0..plane).step_by(5) {
            img[plane + p] = img[p];
        }
        for p in (0..plane).step_by(7) {
            img[2 * plane + p] = img[p];
        }
    }
    x
}

#[test]
fn gpu_matches_the_cpu_references_on_other_sizes() {
    let gpu = common::gpu();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for s in [11, 32, 40] {
        let p = |kind, values| DistortionParams::new(kind, values).unwrap();
        let half = (s / 2) as f32;
        let mut params = vec![
            p(Distortion::Rotate, [90.0, 0.0]),
            p(Distortion::Rotate, [180.0, 0.0]),
            p(Distortion::Rotate, [-30.0, 0.0]),
            p(Distortion::Rotate, [765.0, 0.0]),
            p(Distortion::Translate, [half, -half]),
            p(Distortion::Translate, [s as f32, 0.0]),
            p(Distortion::Translate, [-3.0, 5.0]),
            p(Distortion::Zoom, [0.5, 0.0]),
            p(Distortion::Zoom, [1.0, 0.0]),
            p(Distortion::Darken, [0.0, 0.0]),
            p(Distortion::Darken, [2.5, 0.0]),
            p(Distortion::Hue, [-0.5, 0.0]),
            p(Distortion::Hue, [0.5, 0.0]),
            p(Distortion::Hue, [0.0, 0.0]),
            p(Distortion::Blur, [0.5, 0.0]),
            p(Distortion::Blur, [30.0, 0.0]),
        ];
        for _ in 0..3 {
            params.extend(Distortion::ALL.map(|k| DistortionParams::draw(k, &mut rng, s)));
        }
        let x = test_images(params.len(), s, s as u64);
        let batch: Vec<_> = params.iter().copied().map(Some).collect();
        let out = distort_on_gpu(&gpu, &x, &batch, s);
        let len = 3 * s * s;
        for (i, p) in params.iter().enumerate() {
            let want = cpu_distort(&x[i * len..(i + 1) * len], s, p);
            check_image(
                &format!("{s}×{s} {}", p.describe()),
                p.kind,
                &out[i * len..(i + 1) * len],
                &want,
            );
        }
    }
}

#[test]
fn blur_needs_room_for_its_reflect_padding() {
    let gpu = common::gpu();
    let plan = DistortPlan::new(&gpu, 2, 10).unwrap();
    let rotate = DistortionParams::new(Distortion::Rotate, [40.0, 0.0]).unwrap();
    let blur = DistortionParams::new(Distortion::Blur, [5.0, 0.0]).unwrap();
    plan.set_params(&gpu, &[Some(rotate), None]).unwrap();
    let err = plan.set_params(&gpu, &[Some(rotate), Some(blur)]).unwrap_err();
    assert!(err.to_string().contains("blur needs images larger than 10×10"), "{err}");
    assert!(plan.set_params(&gpu, &[None]).is_err(), "one record per image");
    let bad = DistortionParams {
        kind: Distortion::Zoom,
        values: [0.0, 0.0],
    };
    assert!(
        plan.set_params(&gpu, &[Some(bad), None]).is_err(),
        "records are checked"
    );
}

#[test]
fn draws_stay_in_table_2_and_repeat_with_the_seed() {
    let draw_all = |seed| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..2000)
            .flat_map(|_| Distortion::ALL.map(|k| DistortionParams::draw(k, &mut rng, 64)))
            .collect::<Vec<_>>()
    };
    let a = draw_all(5);
    assert_eq!(a, draw_all(5));
    assert_ne!(a, draw_all(6));
    for p in &a {
        assert!(DistortionParams::new(p.kind, p.values).is_ok(), "{p:?} is not valid");
        // Closed intervals: rounding a draw to f32 may land on the upper end.
        let [v, w] = p.values;
        let ok = match p.kind {
            Distortion::Rotate => (30.0..=330.0).contains(&v),
            Distortion::Translate => [v, w].iter().all(|t| t.fract() == 0.0 && (-32.0..=32.0).contains(t)),
            Distortion::Darken => (0.1..=0.5).contains(&v),
            Distortion::Hue => (-0.5..=0.5).contains(&v),
            Distortion::Blur => (4.0..=10.0).contains(&v),
            Distortion::Zoom => (1.1..=2.0).contains(&v),
        };
        assert!(ok, "{p:?} outside Table 2");
    }
    // The draws spread over the intervals rather than sitting at one end.
    let rotations: Vec<f32> = a
        .iter()
        .filter(|p| p.kind == Distortion::Rotate)
        .map(|p| p.values[0])
        .collect();
    assert!(rotations.iter().any(|&v| v < 60.0) && rotations.iter().any(|&v| v > 300.0));
    let dx: Vec<f32> = a
        .iter()
        .filter(|p| p.kind == Distortion::Translate)
        .map(|p| p.values[0])
        .collect();
    assert!(dx.contains(&-32.0) || dx.contains(&-31.0));
    assert!(dx.contains(&32.0) || dx.contains(&31.0));
}

#[test]
fn bad_parameters_and_names_are_errors() {
    let err = Distortion::parse("sharpen").unwrap_err().to_string();
    assert!(err.contains("rotate, translate, darken, hue, blur, zoom"), "{err}");
    for (alias, kind) in [
        ("color", Distortion::Hue),
        ("brightness", Distortion::Darken),
        ("zoom_in", Distortion::Zoom),
        ("Rotate", Distortion::Rotate),
    ] {
        assert_eq!(Distortion::parse(alias).unwrap(), kind);
    }
    for kind in Distortion::ALL {
        assert_eq!(Distortion::parse(kind.name()).unwrap(), kind);
    }
    let bad = [
        (Distortion::Translate, "3"),
        (Distortion::Translate, "1.5,2"),
        (Distortion::Translate, "1,2,3"),
        (Distortion::Blur, "0"),
        (Distortion::Blur, "-2"),
        (Distortion::Zoom, "nan"),
        (Distortion::Zoom, "0"),
        (Distortion::Darken, "-0.1"),
        (Distortion::Hue, "0.7"),
        (Distortion::Rotate, "abc"),
        (Distortion::Rotate, "inf"),
        (Distortion::Rotate, "10,20"),
    ];
    for (kind, text) in bad {
        assert!(
            DistortionParams::parse_param(kind, text).is_err(),
            "{} {text:?}",
            kind.name()
        );
    }
    assert!(DistortionParams::new(Distortion::Darken, [0.3, 1.0]).is_err());
    let ok = |kind, text| DistortionParams::parse_param(kind, text).unwrap().values;
    assert_eq!(ok(Distortion::Translate, "3,-4"), [3.0, -4.0]);
    assert_eq!(ok(Distortion::Rotate, "-725.5"), [-725.5, 0.0]);
    assert_eq!(ok(Distortion::Darken, "0"), [0.0, 0.0]);
    assert_eq!(ok(Distortion::Zoom, " 1.5 "), [1.5, 0.0]);
}
