use std::sync::Arc;

use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{channel, conv, pool};
use crate::Result;

use super::weights::{StageParams, WeightPacks};
use super::{Layer, Network};

/// The recorded forward pass of a network over a fixed batch of `batch` images of `size`×`size`:
/// upload [0,1] images into `input`, [`ForwardPlan::run`] it, read or consume the `taps`.
pub struct ForwardPlan {
    pub batch: usize,
    pub size: usize,
    /// [batch, 3, size, size] images in [0, 1], written by the caller.
    pub input: Tensor,
    /// One [batch, C, H, W] map per tap, in tap order.
    pub taps: Vec<Tensor>,
    /// The pass, reading the network's packed weights where it has them: run through [`ForwardPlan::run`],
    /// which packs them first if they changed.
    dispatches: Vec<Dispatch>,
    packs: Arc<WeightPacks>,
    /// Per layer of the network (up to the last tap): the maps it read and wrote, for the backward pass.
    pub stages: Vec<StageMaps>,
    // Intermediate maps that are not taps; kept alive for the bind groups.
    _scratch: Vec<Tensor>,
}

/// The maps around one layer of a recorded forward pass (views sharing the plan's buffers).
pub struct StageMaps {
    /// The layer's input: the normalised images for the first layer, else the previous layer's output.
    pub input: Tensor,
    pub output: Tensor,
    /// Whether `output` is a feature tap (it then also receives gradient from the distance).
    pub is_tap: bool,
    /// The fire module's squeeze output.
    pub squeeze: Option<Tensor>,
    /// A max-pool's argmax map (u32, the output's shape), where the plan trains.
    pub argmax: Option<Tensor>,
}

impl ForwardPlan {
    /// `normalize` is the range of images that get ImageNet mean/std normalisation (all of them normally;
    /// the paper-faithful reference images are left out). With `trains` the pass also records what only a
    /// backward reads (where each max-pool window's maximum is, [`StageMaps::argmax`]).
    pub fn new(
        gpu: &Gpu,
        net: &Network,
        batch: usize,
        size: usize,
        normalize: std::ops::Range<usize>,
        trains: bool,
    ) -> Result<ForwardPlan> {
        net.kind.tap_shapes(size)?;
        let input = gpu.zeros("images", &[batch, 3, size, size])?;
        let mut scratch = vec![gpu.zeros("normalised images", &[batch, 3, size, size])?];
        let mut dispatches = vec![channel::imagenet_normalize(
            gpu,
            &input,
            &scratch[0],
            normalize.start,
            normalize.end,
        )?];
        let mut taps = Vec::new();
        let mut stages = Vec::new();
        // `current` indexes the tensor holding the latest stage output: scratch (false) or taps (true).
        let mut current: (bool, usize) = (false, 0);
        let mut conv_scratch = conv::ConvScratch::default();
        let (mut c, mut side) = (3usize, size);
        for (layer, params) in net.layers.iter().zip(&net.params) {
            let out_c = layer.out_channels(c);
            let out_side = layer.out_side(side).expect("checked by tap_shapes");
            let is_tap = net.kind.taps().contains(&layer.output_index());
            let out = gpu.zeros(
                &format!("features.{}", layer.output_index()),
                &[batch, out_c, out_side, out_side],
            )?;
            let x = if current.0 {
                &taps[current.1]
            } else {
                &scratch[current.1]
            };
            let mut stage = StageMaps {
                input: x.view(&x.shape)?,
                output: out.view(&out.shape)?,
                is_tap,
                squeeze: None,
                argmax: None,
            };
            match (layer, params) {
                (Layer::Conv { .. }, StageParams::Conv(p)) => {
                    dispatches.extend(conv::conv2d_prepacked(
                        gpu,
                        p.shape,
                        x,
                        &p.weight,
                        p.packed.as_ref(),
                        &p.bias,
                        &out,
                        0,
                        true,
                        &mut conv_scratch,
                    )?);
                }
                (Layer::MaxPool { shape, .. }, StageParams::Pool) => {
                    if trains {
                        stage.argmax = Some(gpu.zeros("max-pool argmax", &out.shape)?);
                    }
                    dispatches.push(pool::maxpool2d(gpu, *shape, x, &out, stage.argmax.as_ref())?);
                }
                (Layer::Fire { squeeze, expand1, .. }, StageParams::Fire([sq, e1, e3])) => {
                    let s = gpu.zeros("fire squeeze", &[batch, *squeeze, side, side])?;
                    dispatches.extend(conv::conv2d_prepacked(
                        gpu,
                        sq.shape,
                        x,
                        &sq.weight,
                        sq.packed.as_ref(),
                        &sq.bias,
                        &s,
                        0,
                        true,
                        &mut conv_scratch,
                    )?);
                    dispatches.extend(conv::conv2d_prepacked(
                        gpu,
                        e1.shape,
                        &s,
                        &e1.weight,
                        e1.packed.as_ref(),
                        &e1.bias,
                        &out,
                        0,
                        true,
                        &mut conv_scratch,
                    )?);
                    dispatches.extend(conv::conv2d_prepacked(
                        gpu,
                        e3.shape,
                        &s,
                        &e3.weight,
                        e3.packed.as_ref(),
                        &e3.bias,
                        &out,
                        *expand1,
                        true,
                        &mut conv_scratch,
                    )?);
                    stage.squeeze = Some(s.view(&s.shape)?);
                    scratch.push(s);
                }
                _ => {
                    unreachable!("Network::load pairs every layer with its own kind of parameters")
                }
            }
            stages.push(stage);
            if is_tap {
                taps.push(out);
                current = (true, taps.len() - 1);
            } else {
                scratch.push(out);
                current = (false, scratch.len() - 1);
            }
            c = out_c;
            side = out_side;
            if taps.len() == net.kind.taps().len() {
                break;
            }
        }
        Ok(ForwardPlan {
            batch,
            size,
            input,
            taps,
            dispatches,
            packs: net.packs.clone(),
            stages,
            _scratch: scratch,
        })
    }

    /// Runs the pass (after packing the network's weights, if they changed since they were last packed).
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        self.packs.refresh(gpu)?;
        gpu.run(&self.dispatches)
    }

    /// The pass's dispatches alone, without the packing [`ForwardPlan::run`] adds when the weights changed: for
    /// timing them one by one after a run.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    /// Bytes of GPU memory one image needs across all maps of the plan (used to size chunks).
    pub fn bytes_per_image(net: &Network, size: usize) -> Result<(u64, u64)> {
        let (mut c, mut side) = (3usize, size);
        let mut total = 2 * 3 * size * size;
        let mut largest = 3 * size * size;
        for layer in &net.layers {
            let out_side = layer.out_side(side).unwrap_or(0);
            c = layer.out_channels(c);
            let n = c * out_side * out_side;
            total += n;
            largest = largest.max(n);
            if let Layer::Fire { squeeze, .. } = layer {
                total += squeeze * side * side;
            }
            side = out_side;
        }
        Ok((4 * total as u64, 4 * largest as u64))
    }
}
