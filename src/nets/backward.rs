use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::conv::{self, ConvBackward};
use crate::kernels::pool;
use crate::{bail, Result};

use super::weights::StageParams;
use super::{ForwardPlan, Layer, Network};

/// Gradient buffers for every convolution of a network, in the order of [`Network::convs`]. The backward pass
/// adds to them, so micro-batches accumulate; [`NetGrads::zero`] starts a step.
pub struct NetGrads {
    pub weights: Vec<Tensor>,
    pub biases: Vec<Tensor>,
}

impl NetGrads {
    pub fn new(gpu: &Gpu, net: &Network) -> Result<NetGrads> {
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        for (name, p) in net.convs() {
            weights.push(gpu.zeros(&format!("grad {name}.weight"), &p.weight.shape)?);
            biases.push(gpu.zeros(&format!("grad {name}.bias"), &p.bias.shape)?);
        }
        Ok(NetGrads { weights, biases })
    }

    pub fn zero(&self, gpu: &Gpu) -> Result<()> {
        for t in self.weights.iter().chain(&self.biases) {
            gpu.write(t, 0, &vec![0.0; t.numel()])?;
        }
        Ok(())
    }
}

/// The recorded backward pass of a [`ForwardPlan`]: the layers in reverse over the activations the forward
/// kept, from the gradients of the taps (`tap_grads`, filled by the distance's backward before `dispatches`
/// run: the layers add to them, and ReLU's mask is then applied to them in place) to the parameter gradients in
/// a [`NetGrads`]. The images get no gradient.
pub struct NetBackward {
    /// One gradient per tap, shaped as the forward's taps.
    pub tap_grads: Vec<Tensor>,
    pub dispatches: Vec<Dispatch>,
    // Every stage's output gradient and the fire modules' squeeze gradients; kept alive for the bind groups.
    _scratch: Vec<Tensor>,
}

impl NetBackward {
    pub fn new(gpu: &Gpu, net: &Network, forward: &ForwardPlan, grads: &NetGrads) -> Result<NetBackward> {
        // The gradient of every stage's output; the taps' are also handed out (views of the same buffers).
        let stage_grads = forward
            .stages
            .iter()
            .map(|stage| gpu.zeros("stage gradient", &stage.output.shape))
            .collect::<Result<Vec<_>>>()?;
        let tap_grads = forward
            .stages
            .iter()
            .zip(&stage_grads)
            .filter(|(stage, _)| stage.is_tap)
            .map(|(_, g)| g.view(&g.shape))
            .collect::<Result<Vec<_>>>()?;
        let mut scratch = Vec::new();
        // Parameter-gradient slots per stage, in the order of Network::convs.
        let mut slots = Vec::new();
        let mut next = 0;
        for params in &net.params {
            slots.push(next);
            next += match params {
                StageParams::Conv(_) => 1,
                StageParams::Fire(_) => 3,
                StageParams::Pool => 0,
            };
        }
        let mut dispatches = Vec::new();
        let mut conv_scratch = conv::ConvScratch::default();
        let mut conv_back = |dispatches: &mut Vec<Dispatch>,
                             slot: usize,
                             c: ConvBackward,
                             grad_x: Option<(&Tensor, bool)>|
         -> Result<()> {
            dispatches.extend(conv::conv2d_backward_params(
                gpu,
                &c,
                &grads.weights[slot],
                &grads.biases[slot],
                true,
                &mut conv_scratch,
            )?);
            if let Some((gx, accumulate)) = grad_x {
                dispatches.extend(conv::conv2d_backward_input(gpu, &c, gx, accumulate, &mut conv_scratch)?);
            }
            Ok(())
        };
        for (i, stage) in forward.stages.iter().enumerate().rev() {
            let gy = &stage_grads[i];
            // The input's gradient: none for the images; added to a tap's (which holds the distance's part).
            let gx_ref = (i > 0).then(|| (&stage_grads[i - 1], forward.stages[i - 1].is_tap));
            match (&net.layers[i], &net.params[i]) {
                (Layer::Conv { shape, .. }, StageParams::Conv(p)) => {
                    dispatches.push(conv::relu_backward(gpu, &stage.output, gy)?);
                    let c = ConvBackward {
                        shape: *shape,
                        x: &stage.input,
                        weight: &p.weight,
                        bias: &p.bias,
                        gy,
                        c_off: 0,
                    };
                    conv_back(&mut dispatches, slots[i], c, gx_ref)?;
                }
                (Layer::MaxPool { shape, .. }, StageParams::Pool) => {
                    if let Some((g, accumulate)) = gx_ref {
                        let Some(argmax) = &stage.argmax else {
                            bail!(
                                "the forward plan did not record its max-pools' argmax: build it with `trains` \
                                 (Metric::set_keeps_gradients(true) before the plan is prepared)"
                            );
                        };
                        dispatches.push(pool::maxpool2d_backward(gpu, *shape, argmax, gy, g, accumulate)?);
                    }
                }
                (Layer::Fire { expand1, .. }, StageParams::Fire([sq, e1, e3])) => {
                    let s = stage
                        .squeeze
                        .as_ref()
                        .expect("the forward keeps every fire's squeeze map");
                    let gs = gpu.zeros("fire squeeze gradient", &s.shape)?;
                    // The concat's backward is each expand reading its channel slice; both feed the squeeze map.
                    dispatches.push(conv::relu_backward(gpu, &stage.output, gy)?);
                    for (j, (p, c_off)) in [(e1, 0), (e3, *expand1)].into_iter().enumerate() {
                        let c = ConvBackward {
                            shape: p.shape,
                            x: s,
                            weight: &p.weight,
                            bias: &p.bias,
                            gy,
                            c_off,
                        };
                        conv_back(&mut dispatches, slots[i] + 1 + j, c, Some((&gs, j > 0)))?;
                    }
                    dispatches.push(conv::relu_backward(gpu, s, &gs)?);
                    let c = ConvBackward {
                        shape: sq.shape,
                        x: &stage.input,
                        weight: &sq.weight,
                        bias: &sq.bias,
                        gy: &gs,
                        c_off: 0,
                    };
                    conv_back(&mut dispatches, slots[i], c, gx_ref)?;
                    scratch.push(gs);
                }
                _ => unreachable!("Network::load pairs every layer with its own kind of parameters"),
            }
        }
        scratch.extend(stage_grads);
        Ok(NetBackward {
            tap_grads,
            dispatches,
            _scratch: scratch,
        })
    }
}
