//! dps-gpu: deep perceptual similarity metrics in hand-written WGSL.
pub mod context;
pub mod data;
pub mod distort;
pub mod error;
pub mod eval;
pub use error::{Context, Error, Result};
pub mod gpu;
pub mod kernels;
pub mod metric;
pub mod nets;
pub mod progress;
pub mod report;
pub mod sweep;
pub mod tensor_file;
pub mod train;
