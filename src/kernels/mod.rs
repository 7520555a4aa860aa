//! Typed host wrappers, one per WGSL kernel family in `shaders/`. Each checks shapes, fills the kernel's
//! parameter block and returns a [`Dispatch`](crate::gpu::Dispatch) to be replayed.

pub mod adam;
pub mod channel;
pub mod conv;
pub mod distance;
pub mod distort;
pub mod images;
pub mod pool;
pub mod rank;
pub mod winograd;

pub(crate) const CONV_WGSL: &str = include_str!("../../shaders/conv.wgsl");
pub(crate) const CONV_COOP_WGSL: &str = include_str!("../../shaders/conv_coop.wgsl");
pub(crate) const POOL_WGSL: &str = include_str!("../../shaders/pool.wgsl");
pub(crate) const CHANNEL_WGSL: &str = include_str!("../../shaders/channel.wgsl");
pub(crate) const RANK_WGSL: &str = include_str!("../../shaders/rank.wgsl");
pub(crate) const ADAM_WGSL: &str = include_str!("../../shaders/adam.wgsl");
pub(crate) const DISTORT_WGSL: &str = include_str!("../../shaders/distort.wgsl");
pub(crate) const DISTANCE_WGSL: &str = include_str!("../../shaders/distance.wgsl");
pub(crate) const WINOGRAD_WGSL: &str = include_str!("../../shaders/winograd.wgsl");
pub(crate) const IMAGES_WGSL: &str = include_str!("../../shaders/images.wgsl");

/// Threads per workgroup of the one-dimensional kernels.
pub(crate) const LINEAR_WORKGROUP: u32 = 256;

pub(crate) fn to_u32(v: usize, what: &str) -> crate::Result<u32> {
    u32::try_from(v).map_err(|_| crate::Error::msg(format!("{what} ({v}) is too large for one kernel launch")))
}
