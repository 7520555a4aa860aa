//! The GPU runtime: one [`Gpu`] context (instance, adapter, device, queue) opened with the adapter's real
//! limits, tensors in storage buffers, compiled kernels cached by name, and [`Dispatch`] lists that are
//! recorded once and replayed. Every wgpu validation or out-of-memory error is captured in an error scope and
//! returned as an [`Error`](crate::Error) instead of panicking.

mod context;
mod dispatch;
pub mod memory;
mod pipeline;
mod tensor;

pub use context::{Access, AdapterChoice, ConvBlock, CoopTile, Gpu, Kernel, PendingRead, Precision};
pub use dispatch::{linear_grid, Dispatch};
pub use pipeline::Pipeline;
pub use tensor::Tensor;
