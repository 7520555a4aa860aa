use std::path::PathBuf;

use clap::Args;

use dps_gpu::data::{open_dataset, ImageBank};
use dps_gpu::Result;

/// Options that pick an image dataset.
#[derive(Args, Clone)]
pub struct DatasetArgs {
    /// Force the format: cifar10, stl10 or folder (otherwise detected from the path).
    #[arg(long)]
    pub format: Option<String>,
    /// Split of a CIFAR-10 directory: train (data_batch_*.bin) or test (test_batch.bin).
    #[arg(long)]
    pub split: Option<String>,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
}

impl DatasetArgs {
    pub fn open(&self, path: Option<&PathBuf>, default_split: &str, size: usize) -> Result<ImageBank> {
        let split = self.split.as_deref().unwrap_or(default_split);
        open_dataset(
            path.map(|p| p.as_path()),
            self.format.as_deref(),
            split,
            self.limit,
            size,
        )
    }
}
