use crate::kernels::conv::ConvShape;
use crate::kernels::pool::PoolShape;
use crate::{bail, Result};

/// One stage of a `features` stack. A convolution carries the ReLU that follows it (every conv in the three
/// nets is followed by one), so `index` is the torchvision index of the conv and the ReLU is `index + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Conv {
        index: usize,
        shape: ConvShape,
    },
    MaxPool {
        index: usize,
        shape: PoolShape,
    },
    /// SqueezeNet's Fire(in; squeeze; e1, e3) at `features.<index>`.
    Fire {
        index: usize,
        cin: usize,
        squeeze: usize,
        expand1: usize,
        expand3: usize,
    },
}

impl Layer {
    /// The torchvision module index whose output this stage produces.
    pub fn output_index(&self) -> usize {
        match *self {
            Layer::Conv { index, .. } => index + 1,
            Layer::MaxPool { index, .. } | Layer::Fire { index, .. } => index,
        }
    }

    pub fn out_channels(&self, cin: usize) -> usize {
        match *self {
            Layer::Conv { shape, .. } => shape.cout,
            Layer::MaxPool { .. } => cin,
            Layer::Fire { expand1, expand3, .. } => expand1 + expand3,
        }
    }

    pub fn out_side(&self, side: usize) -> Option<usize> {
        match *self {
            Layer::Conv { shape, .. } => shape.output_side(side),
            Layer::MaxPool { shape, .. } => shape.output_side(side),
            Layer::Fire { .. } => Some(side),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetKind {
    Alex,
    Squeeze,
    Vgg,
}

const fn conv(index: usize, cin: usize, cout: usize, kernel: usize, stride: usize, pad: usize) -> Layer {
    Layer::Conv {
        index,
        shape: ConvShape {
            cin,
            cout,
            kernel,
            stride,
            pad,
        },
    }
}

const fn pool(index: usize, kernel: usize, stride: usize, ceil_mode: bool) -> Layer {
    Layer::MaxPool {
        index,
        shape: PoolShape {
            kernel,
            stride,
            ceil_mode,
        },
    }
}

const fn fire(index: usize, cin: usize, squeeze: usize, expand: usize) -> Layer {
    Layer::Fire {
        index,
        cin,
        squeeze,
        expand1: expand,
        expand3: expand,
    }
}

impl NetKind {
    pub const ALL: [NetKind; 3] = [NetKind::Alex, NetKind::Squeeze, NetKind::Vgg];

    pub fn parse(name: &str) -> Result<NetKind> {
        match name.to_ascii_lowercase().as_str() {
            "alex" | "alexnet" => Ok(NetKind::Alex),
            "squeeze" | "squeezenet" | "squeezenet1_1" => Ok(NetKind::Squeeze),
            "vgg" | "vgg16" => Ok(NetKind::Vgg),
            _ => bail!("unknown net {name:?}; choose alex, squeeze or vgg"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NetKind::Alex => "alex",
            NetKind::Squeeze => "squeeze",
            NetKind::Vgg => "vgg",
        }
    }

    /// File holding the `features.*` weights.
    pub fn weights_file(self) -> &'static str {
        match self {
            NetKind::Alex => "alexnet.safetensors",
            NetKind::Squeeze => "squeezenet1_1.safetensors",
            NetKind::Vgg => "vgg16.safetensors",
        }
    }

    /// File holding the LPIPS v0.1 lin weights.
    pub fn lpips_file(self) -> &'static str {
        match self {
            NetKind::Alex => "lpips_alex_v0.1.safetensors",
            NetKind::Squeeze => "lpips_squeeze_v0.1.safetensors",
            NetKind::Vgg => "lpips_vgg_v0.1.safetensors",
        }
    }

    /// Torchvision module indices whose outputs are the feature taps.
    pub fn taps(self) -> &'static [usize] {
        match self {
            NetKind::Alex => &[1, 4, 7, 9, 11],
            NetKind::Squeeze => &[1, 4, 7, 9, 10, 11, 12],
            NetKind::Vgg => &[3, 8, 15, 22, 29],
        }
    }

    /// The stages up to the last tap (later modules never influence a distance).
    pub fn layers(self) -> Vec<Layer> {
        match self {
            NetKind::Alex => vec![
                conv(0, 3, 64, 11, 4, 2),
                pool(2, 3, 2, false),
                conv(3, 64, 192, 5, 1, 2),
                pool(5, 3, 2, false),
                conv(6, 192, 384, 3, 1, 1),
                conv(8, 384, 256, 3, 1, 1),
                conv(10, 256, 256, 3, 1, 1),
            ],
            NetKind::Squeeze => vec![
                conv(0, 3, 64, 3, 2, 0),
                pool(2, 3, 2, true),
                fire(3, 64, 16, 64),
                fire(4, 128, 16, 64),
                pool(5, 3, 2, true),
                fire(6, 128, 32, 128),
                fire(7, 256, 32, 128),
                pool(8, 3, 2, true),
                fire(9, 256, 48, 192),
                fire(10, 384, 48, 192),
                fire(11, 384, 64, 256),
                fire(12, 512, 64, 256),
            ],
            NetKind::Vgg => {
                let mut layers = Vec::new();
                let blocks: [&[usize]; 5] = [
                    &[64, 64],
                    &[128, 128],
                    &[256, 256, 256],
                    &[512, 512, 512],
                    &[512, 512, 512],
                ];
                let (mut index, mut cin) = (0, 3);
                for (b, block) in blocks.iter().enumerate() {
                    for &cout in block.iter() {
                        layers.push(conv(index, cin, cout, 3, 1, 1));
                        index += 2;
                        cin = cout;
                    }
                    if b + 1 < blocks.len() {
                        layers.push(pool(index, 2, 2, false));
                        index += 1;
                    }
                }
                layers
            }
        }
    }

    /// (channels, side) of every tap for a square input of side `size`, or an error if the input is too small.
    pub fn tap_shapes(self, size: usize) -> Result<Vec<(usize, usize)>> {
        let (mut c, mut side) = (3, size);
        let mut shapes = Vec::new();
        for layer in self.layers() {
            side = match layer.out_side(side) {
                Some(s) if s > 0 => s,
                _ => bail!(
                    "{size}×{size} images are too small for {}; use a larger --size",
                    self.name()
                ),
            };
            c = layer.out_channels(c);
            if self.taps().contains(&layer.output_index()) {
                shapes.push((c, side));
            }
        }
        Ok(shapes)
    }

    /// Multiply-adds × 2 of the convolutions up to the last tap, for one `size`×`size` image.
    pub fn flops_per_image(self, size: usize) -> Result<u64> {
        self.tap_shapes(size)?;
        let conv_flops = |s: &ConvShape, side: usize| -> u64 {
            let out = s.output_side(side).unwrap_or(0) as u64;
            2 * (s.cin * s.kernel * s.kernel * s.cout) as u64 * out * out
        };
        let (mut side, mut total) = (size, 0u64);
        for layer in self.layers() {
            match layer {
                Layer::Conv { shape, .. } => total += conv_flops(&shape, side),
                Layer::Fire {
                    cin,
                    squeeze,
                    expand1,
                    expand3,
                    ..
                } => {
                    total += conv_flops(
                        &ConvShape {
                            cin,
                            cout: squeeze,
                            kernel: 1,
                            stride: 1,
                            pad: 0,
                        },
                        side,
                    );
                    total += conv_flops(
                        &ConvShape {
                            cin: squeeze,
                            cout: expand1,
                            kernel: 1,
                            stride: 1,
                            pad: 0,
                        },
                        side,
                    );
                    total += conv_flops(
                        &ConvShape {
                            cin: squeeze,
                            cout: expand3,
                            kernel: 3,
                            stride: 1,
                            pad: 1,
                        },
                        side,
                    );
                }
                Layer::MaxPool { .. } => {}
            }
            side = layer.out_side(side).unwrap_or(0);
        }
        Ok(total)
    }
}
