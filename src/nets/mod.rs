//! The three ImageNet loss networks (`features` part only), their feature taps (PROTOCOL.md §2), weights read
//! from safetensors with torchvision's key names, and a forward plan that runs them on batches.

mod architecture;
mod backward;
mod forward;
mod weights;

pub use architecture::{Layer, NetKind};
pub use backward::{NetBackward, NetGrads};
pub use forward::{ForwardPlan, StageMaps};
pub use weights::{
    find_weights_file, random_weights, read_safetensors as read_safetensors_file, ConvParams, Network, StageParams,
    WeightPacks,
};
