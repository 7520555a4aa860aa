//! How much GPU memory the batch-sized buffers may take: a chunk's activations (and, when a network trains,
//! their gradients). Chunks that are too small waste a large GPU (and make a multi-chunk tune step run its
//! forwards twice); too large ones fail on laptop GPUs. wgpu reports no memory size, so on Vulkan the
//! device-local heap is read from the driver.

use crate::{bail, Result};

/// The budget where nothing better is known: fits laptop GPUs, integrated GPUs and CPU drivers alike.
pub const DEFAULT_CHUNK_BUDGET: u64 = 1 << 30;

const GIB: f64 = (1u64 << 30) as f64;

/// The chunk budget: `requested` (`--gpu-memory`) when given; on a discrete GPU whose driver reports its
/// device-local memory, three quarters of it (the rest is left to weights, Adam's moments, the weight
/// gradients' partial sums, a display and other programs); elsewhere [`DEFAULT_CHUNK_BUDGET`] (integrated GPUs
/// and CPU drivers share the host's memory). It is a cap: a run allocates what its batch needs.
pub fn chunk_budget(requested: Option<u64>, device_type: wgpu::DeviceType, device_local: Option<u64>) -> u64 {
    match (requested, device_type, device_local) {
        (Some(bytes), _, _) => bytes,
        (None, wgpu::DeviceType::DiscreteGpu, Some(bytes)) => (bytes / 4 * 3).max(DEFAULT_CHUNK_BUDGET),
        _ => DEFAULT_CHUNK_BUDGET,
    }
}

/// Parses a `--gpu-memory` value in GiB (fractions allowed) into bytes.
pub fn parse_gib(text: &str) -> Result<u64> {
    let gib: f64 = match text.trim().parse() {
        Ok(v) => v,
        Err(_) => bail!("--gpu-memory takes a size in GiB such as 4 or 0.5, got {text:?}"),
    };
    // At least one 64×64 VGG-16 triplet's activations (~20 MB); at most 1 PiB, far beyond any GPU.
    if !gib.is_finite() || !(0.02..=1048576.0).contains(&gib) {
        bail!("--gpu-memory must be between 0.02 and 1048576 GiB, got {text}");
    }
    Ok((gib * GIB) as u64)
}

/// The largest device-local memory heap the adapter's Vulkan driver reports; `None` on other backends.
#[cfg(any(
    target_os = "linux",
    target_os = "windows",
    target_os = "android",
    target_os = "freebsd"
))]
pub fn device_local_bytes(adapter: &wgpu::Adapter) -> Option<u64> {
    // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT; ash is not a direct dependency, so the flag is compared as a number.
    const DEVICE_LOCAL: u32 = 0x1;
    // SAFETY: only reads the physical device's memory properties through the live adapter the guard borrows;
    // nothing is created or destroyed.
    let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
    let properties = unsafe {
        hal.shared_instance()
            .raw_instance()
            .get_physical_device_memory_properties(hal.raw_physical_device())
    };
    properties
        .memory_heaps_as_slice()
        .iter()
        .filter(|heap| heap.flags.as_raw() & DEVICE_LOCAL != 0)
        .map(|heap| heap.size)
        .max()
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "windows",
    target_os = "android",
    target_os = "freebsd"
)))]
pub fn device_local_bytes(_adapter: &wgpu::Adapter) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::DeviceType;

    #[test]
    fn budget_is_the_request_else_three_quarters_of_a_discrete_gpus_memory_else_one_gib() {
        let gib = 1u64 << 30;
        assert_eq!(chunk_budget(Some(3 * gib), DeviceType::Cpu, Some(24 * gib)), 3 * gib);
        assert_eq!(chunk_budget(None, DeviceType::DiscreteGpu, Some(80 * gib)), 60 * gib);
        assert_eq!(chunk_budget(None, DeviceType::DiscreteGpu, Some(gib)), gib);
        assert_eq!(chunk_budget(None, DeviceType::DiscreteGpu, None), gib);
        assert_eq!(chunk_budget(None, DeviceType::IntegratedGpu, Some(16 * gib)), gib);
        assert_eq!(chunk_budget(None, DeviceType::Cpu, Some(24 * gib)), gib);
    }

    #[test]
    fn gpu_memory_flag_takes_gib_and_refuses_nonsense() {
        assert_eq!(parse_gib("4").unwrap(), 4 << 30);
        assert_eq!(parse_gib("0.5").unwrap(), 1 << 29);
        for bad in ["0", "-1", "nan", "inf", "0.001", "lots", ""] {
            assert!(parse_gib(bad).is_err(), "{bad:?} accepted");
        }
    }
}
