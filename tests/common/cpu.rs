//! Plain CPU references for the kernels and for whole DPS distances, written from PyTorch's documented
//! semantics and PROTOCOL.md §2 and §5, independently of the GPU code: nothing here calls dps_gpu compute. Only
//! the nets' layer descriptions (`NetKind::layers()`, `taps()`) are shared, and `Method` names the method.
//! Sums are accumulated in f64.

use std::collections::HashMap;

use dps_gpu::metric::Method;
use dps_gpu::nets::{Layer, NetKind};

/// Named parameter tensors `(shape, values)` with torchvision's key names (`features.3.weight`, …).
pub type Params = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// A batch of feature maps [n, c, h, w], row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Maps {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Maps {
    pub fn new(n: usize, c: usize, h: usize, w: usize, data: Vec<f32>) -> Maps {
        assert_eq!(data.len(), n * c * h * w, "data does not fill [{n}, {c}, {h}, {w}]");
        Maps { n, c, h, w, data }
    }

    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Maps {
        Maps::new(n, c, h, w, vec![0.0; n * c * h * w])
    }

    pub fn index(&self, b: usize, c: usize, y: usize, x: usize) -> usize {
        ((b * self.c + c) * self.h + y) * self.w + x
    }

    pub fn at(&self, b: usize, c: usize, y: usize, x: usize) -> f32 {
        self.data[self.index(b, c, y, x)]
    }

    /// Positions per channel.
    pub fn positions(&self) -> usize {
        self.h * self.w
    }

    /// Image `b` alone, as a batch of one.
    pub fn image(&self, b: usize) -> Maps {
        let len = self.c * self.h * self.w;
        Maps::new(1, self.c, self.h, self.w, self.data[b * len..(b + 1) * len].to_vec())
    }

    /// `self` and `other` (same n, h, w) concatenated along channels.
    pub fn concat_channels(&self, other: &Maps) -> Maps {
        assert_eq!((self.n, self.h, self.w), (other.n, other.h, other.w));
        let mut out = Maps::zeros(self.n, self.c + other.c, self.h, self.w);
        for b in 0..self.n {
            for c in 0..out.c {
                for y in 0..self.h {
                    for x in 0..self.w {
                        let v = if c < self.c {
                            self.at(b, c, y, x)
                        } else {
                            other.at(b, c - self.c, y, x)
                        };
                        let i = out.index(b, c, y, x);
                        out.data[i] = v;
                    }
                }
            }
        }
        out
    }
}

/// Output side of a convolution: floor((side + 2 pad − k) / stride) + 1.
pub fn conv_output_side(side: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    assert!(side + 2 * pad >= kernel, "the window does not fit");
    (side + 2 * pad - kernel) / stride + 1
}

/// torch.nn.Conv2d (cross-correlation): x [N, Cin, H, W], weight [Cout, Cin, k, k] (OIHW), bias [Cout],
/// zero padding `pad` on every side, then ReLU when `relu`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &Maps,
    weight: &[f32],
    bias: &[f32],
    cout: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    relu: bool,
) -> Maps {
    let cin = x.c;
    assert_eq!(weight.len(), cout * cin * kernel * kernel, "weight size");
    assert_eq!(bias.len(), cout, "bias size");
    let ho = conv_output_side(x.h, kernel, stride, pad);
    let wo = conv_output_side(x.w, kernel, stride, pad);
    let mut y = Maps::zeros(x.n, cout, ho, wo);
    for b in 0..x.n {
        for co in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = bias[co] as f64;
                    for ci in 0..cin {
                        for ky in 0..kernel {
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            if iy < 0 || iy >= x.h as isize {
                                continue;
                            }
                            for kx in 0..kernel {
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if ix < 0 || ix >= x.w as isize {
                                    continue;
                                }
                                let wv = weight[((co * cin + ci) * kernel + ky) * kernel + kx];
                                acc += wv as f64 * x.at(b, ci, iy as usize, ix as usize) as f64;
                            }
                        }
                    }
                    if relu {
                        acc = acc.max(0.0);
                    }
                    let i = y.index(b, co, oy, ox);
                    y.data[i] = acc as f32;
                }
            }
        }
    }
    y
}

/// PyTorch's `pooling_output_shape` for padding 0 and dilation 1:
/// out = (side − k + (ceil ? stride − 1 : 0)) / stride + 1, and in ceil mode one less when the last window
/// would start at or beyond the input's end.
pub fn pool_output_side(side: usize, kernel: usize, stride: usize, ceil_mode: bool) -> usize {
    assert!(side >= kernel, "the window does not fit");
    let extra = if ceil_mode { stride - 1 } else { 0 };
    let mut out = (side - kernel + extra) / stride + 1;
    if ceil_mode && (out - 1) * stride >= side {
        out -= 1;
    }
    out
}

/// torch.nn.MaxPool2d(kernel, stride, ceil_mode) without padding: windows that run past the edge are
/// clipped to the input.
pub fn maxpool2d(x: &Maps, kernel: usize, stride: usize, ceil_mode: bool) -> Maps {
    let ho = pool_output_side(x.h, kernel, stride, ceil_mode);
    let wo = pool_output_side(x.w, kernel, stride, ceil_mode);
    let mut y = Maps::zeros(x.n, x.c, ho, wo);
    for b in 0..x.n {
        for c in 0..x.c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut best = f32::NEG_INFINITY;
                    for iy in oy * stride..(oy * stride + kernel).min(x.h) {
                        for ix in ox * stride..(ox * stride + kernel).min(x.w) {
                            best = best.max(x.at(b, c, iy, ix));
                        }
                    }
                    let i = y.index(b, c, oy, ox);
                    y.data[i] = best;
                }
            }
        }
    }
    y
}

pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// (x − mean[c]) / std[c] for images `first..last` (clipped to n) of [n, 3, positions]; others unchanged.
pub fn imagenet_normalize(x: &[f32], n: usize, positions: usize, first: usize, last: usize) -> Vec<f32> {
    assert_eq!(x.len(), n * 3 * positions);
    let mut y = x.to_vec();
    for img in first..last.min(n) {
        for c in 0..3 {
            for p in 0..positions {
                let i = (img * 3 + c) * positions + p;
                y[i] = ((x[i] as f64 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]) as f32;
            }
        }
    }
    y
}

/// y[n, :, p] = x[n, :, p] / max(‖x[n, :, p]‖₂, 1e-12) for x [n, c, positions].
pub fn unit_normalize(x: &[f32], n: usize, c: usize, positions: usize) -> Vec<f32> {
    assert_eq!(x.len(), n * c * positions);
    let mut y = vec![0.0; x.len()];
    for img in 0..n {
        for p in 0..positions {
            let at = |ch: usize| (img * c + ch) * positions + p;
            let norm = (0..c).map(|ch| (x[at(ch)] as f64).powi(2)).sum::<f64>().sqrt();
            let denom = norm.max(1e-12);
            for ch in 0..c {
                y[at(ch)] = (x[at(ch)] as f64 / denom) as f32;
            }
        }
    }
    y
}

/// y[n, c] = mean over positions of x[n, c, :].
pub fn channel_mean(x: &[f32], n: usize, c: usize, positions: usize) -> Vec<f32> {
    assert_eq!(x.len(), n * c * positions);
    x.chunks(positions)
        .map(|row| (row.iter().map(|&v| v as f64).sum::<f64>() / positions as f64) as f32)
        .collect()
}

/// Each row x[n, c, :] sorted ascending (inputs must be free of NaN).
pub fn channel_sort(x: &[f32], n: usize, c: usize, positions: usize) -> Vec<f32> {
    assert_eq!(x.len(), n * c * positions);
    let mut y = x.to_vec();
    for row in y.chunks_mut(positions) {
        row.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    }
    y
}

/// Per pair (i, j) and channel: (1/P) Σ_p (g[i,c,p] − g[j,c,p])² for g [n, c, positions].
pub fn pair_profile(g: &[f32], c: usize, positions: usize, pairs: &[(usize, usize)]) -> Vec<Vec<f64>> {
    assert_eq!(g.len() % (c * positions), 0);
    pairs
        .iter()
        .map(|&(i, j)| {
            (0..c)
                .map(|ch| {
                    let a = &g[(i * c + ch) * positions..][..positions];
                    let b = &g[(j * c + ch) * positions..][..positions];
                    let sum: f64 = a.iter().zip(b).map(|(&u, &v)| (u as f64 - v as f64).powi(2)).sum();
                    sum / positions as f64
                })
                .collect()
        })
        .collect()
}

/// Per pair (i, j): (1/P) Σ_p Σ_c w[c] (g[i,c,p] − g[j,c,p])².
pub fn pair_distance(g: &[f32], c: usize, positions: usize, pairs: &[(usize, usize)], w: &[f32]) -> Vec<f64> {
    assert_eq!(w.len(), c);
    pair_profile(g, c, positions, pairs)
        .iter()
        .map(|row| row.iter().zip(w).map(|(s, &wc)| s * wc as f64).sum())
        .collect()
}

fn conv_layer(params: &Params, prefix: &str, x: &Maps, cout: usize, kernel: usize, stride: usize, pad: usize) -> Maps {
    let (wshape, weight) = &params[&format!("{prefix}.weight")];
    let (bshape, bias) = &params[&format!("{prefix}.bias")];
    assert_eq!(wshape, &[cout, x.c, kernel, kernel], "{prefix}.weight");
    assert_eq!(bshape, &[cout], "{prefix}.bias");
    conv2d(x, weight, bias, cout, kernel, stride, pad, true)
}

/// The `features` stack of `kind` on already-normalised images; returns the maps at the taps, in tap order.
/// Every convolution is followed by a ReLU; a Fire module is squeeze 1×1 + ReLU, then the channel
/// concatenation of expand 1×1 + ReLU and expand 3×3 (padding 1) + ReLU.
pub fn forward(kind: NetKind, params: &Params, images: &Maps) -> Vec<Maps> {
    let taps = kind.taps();
    let mut x = images.clone();
    let mut out = Vec::new();
    for layer in kind.layers() {
        let output_index = match layer {
            Layer::Conv { index, shape } => {
                x = conv_layer(
                    params,
                    &format!("features.{index}"),
                    &x,
                    shape.cout,
                    shape.kernel,
                    shape.stride,
                    shape.pad,
                );
                index + 1 // the ReLU after the conv
            }
            Layer::MaxPool { index, shape } => {
                x = maxpool2d(&x, shape.kernel, shape.stride, shape.ceil_mode);
                index
            }
            Layer::Fire {
                index,
                squeeze,
                expand1,
                expand3,
                ..
            } => {
                let p = format!("features.{index}");
                let s = conv_layer(params, &format!("{p}.squeeze"), &x, squeeze, 1, 1, 0);
                let e1 = conv_layer(params, &format!("{p}.expand1x1"), &s, expand1, 1, 1, 0);
                let e3 = conv_layer(params, &format!("{p}.expand3x3"), &s, expand3, 3, 1, 1);
                x = e1.concat_channels(&e3);
                index
            }
        };
        if taps.contains(&output_index) {
            out.push(x.clone());
        }
        if out.len() == taps.len() {
            break;
        }
    }
    assert_eq!(out.len(), taps.len(), "not every tap was reached");
    out
}

/// The parts of a method, in the order their weight vectors are given (PROTOCOL.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Spatial,
    Mean,
    Sort,
}

pub fn parts(method: Method) -> &'static [Part] {
    match method {
        Method::Spatial => &[Part::Spatial],
        Method::Mean => &[Part::Mean],
        Method::Sort => &[Part::Sort],
        Method::SpatialMean => &[Part::Spatial, Part::Mean],
        Method::SpatialSort => &[Part::Spatial, Part::Sort],
    }
}

/// One tap's term of one part between two single-image maps `a` and `b` [1, C, H, W] with weights `w` [C].
fn part_term(part: Part, a: &Maps, b: &Maps, w: &[f32]) -> f64 {
    assert_eq!((a.n, b.n), (1, 1));
    let (c, hw) = (a.c, a.positions());
    // The compared vectors: [2, C, P] with image a first.
    let (both, positions) = match part {
        Part::Spatial => ([a.data.clone(), b.data.clone()].concat(), hw),
        Part::Mean => (
            [channel_mean(&a.data, 1, c, hw), channel_mean(&b.data, 1, c, hw)].concat(),
            1,
        ),
        Part::Sort => (
            [channel_sort(&a.data, 1, c, hw), channel_sort(&b.data, 1, c, hw)].concat(),
            hw,
        ),
    };
    let unit = unit_normalize(&both, 2, c, positions);
    pair_distance(&unit, c, positions, &[(0, 1)], w)[0]
}

/// The DPS distance (PROTOCOL.md §5) between two images given their taps (each [1, C, H, W]), with
/// `weights[part][tap]` one weight per channel.
pub fn dps_distance(method: Method, weights: &[Vec<Vec<f32>>], a: &[Maps], b: &[Maps]) -> f64 {
    let parts = parts(method);
    assert_eq!(weights.len(), parts.len(), "one weight set per part");
    assert_eq!(a.len(), b.len());
    let mut d = 0.0;
    for (&part, per_tap) in parts.iter().zip(weights) {
        assert_eq!(per_tap.len(), a.len(), "one weight vector per tap");
        for ((ta, tb), w) in a.iter().zip(b).zip(per_tap) {
            d += part_term(part, ta, tb, w);
        }
    }
    d
}
