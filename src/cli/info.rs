use clap::Args;
use serde_json::json;

use dps_gpu::gpu::{AdapterChoice, Gpu, Precision};
use dps_gpu::Result;

use super::print_json;

#[derive(Args)]
pub struct InfoArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &AdapterChoice, args: InfoArgs) -> Result<()> {
    // Opened for the fast mode, whatever --precision says, so the report can say which kernel it gets.
    let gpu = Gpu::new(&AdapterChoice {
        precision: Precision::F16,
        ..choice.clone()
    })?;
    let fast_mode = match (gpu.precision, gpu.coop_tile) {
        (Precision::F16, Some(t)) => format!(
            "f16 convolutions on {0}x{0}x{0} cooperative matrices (subgroup {1})",
            t.side, t.subgroup
        ),
        (Precision::F16, None) => "f16 convolution tiles (no usable cooperative matrix)".to_string(),
        (Precision::F32, _) => "unavailable (no SHADER_F16): --precision f16 runs in f32".to_string(),
    };
    // gpu.barrier_free picks the kernels of the default f32 mode (CPU adapters: no workgroup memory).
    let kernels = match (gpu.barrier_free, gpu.weight_lanes) {
        (true, 1) => "barrier-free".to_string(),
        (true, lanes) => format!("barrier-free, {lanes} lanes sharing each weight load"),
        (false, _) => "tiled in workgroup memory".to_string(),
    };
    let f32_mode = if gpu.barrier_free {
        format!("implicit-GEMM convolutions, those 3 or more wide by output rows; kernels {kernels}")
    } else if !gpu.uses_winograd() {
        format!("implicit-GEMM convolutions; kernels {kernels}")
    } else {
        format!("implicit-GEMM convolutions, 3×3 stride-1 ones as Winograd F(2×2, 3×3); kernels {kernels}")
    };
    let l = &gpu.limits;
    let i = &gpu.info;
    let limits = [
        ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
        ("max_buffer_size", l.max_buffer_size),
        (
            "max_compute_workgroup_storage_size",
            l.max_compute_workgroup_storage_size as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            l.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroups_per_dimension",
            l.max_compute_workgroups_per_dimension as u64,
        ),
        (
            "max_storage_buffers_per_shader_stage",
            l.max_storage_buffers_per_shader_stage as u64,
        ),
    ];
    let features = [
        ("shader_f16", wgpu::Features::SHADER_F16),
        ("subgroup", wgpu::Features::SUBGROUP),
        ("timestamp_query", wgpu::Features::TIMESTAMP_QUERY),
    ];
    let subgroups = format!("{}..{}", i.subgroup_min_size, i.subgroup_max_size);
    let gib = |bytes: u64| format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64);
    let memory = format!(
        "{} device-local; a chunk of images may take {} (--gpu-memory)",
        gpu.device_memory.map_or("unknown".to_string(), gib),
        gib(gpu.chunk_budget)
    );
    if args.json {
        let lim: serde_json::Map<String, serde_json::Value> =
            limits.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let feat: serde_json::Map<String, serde_json::Value> = features
            .iter()
            .map(|(k, f)| (k.to_string(), json!(gpu.features.contains(*f))))
            .collect();
        print_json(&json!({
            "adapter": i.name, "backend": format!("{:?}", i.backend), "device_type": format!("{:?}", i.device_type),
            "driver": i.driver, "driver_info": i.driver_info, "vendor": i.vendor, "device": i.device, "subgroup_sizes": subgroups,
            "limits": lim, "features": feat, "cooperative_matrix": gpu.cooperative_matrix,
            "f32_mode": f32_mode, "fast_mode": fast_mode, "device_memory_bytes": gpu.device_memory, "chunk_budget_bytes": gpu.chunk_budget,
        }));
        return Ok(());
    }
    println!("adapter      {}", i.name);
    println!("backend      {:?}", i.backend);
    println!("device type  {:?}", i.device_type);
    println!("driver       {} {}", i.driver, i.driver_info);
    println!("subgroups    {subgroups}");
    println!("memory       {memory}");
    println!("limits");
    for (k, v) in limits {
        println!("  {k:<40} {v}");
    }
    println!("features");
    for (k, f) in features {
        println!("  {k:<40} {}", if gpu.features.contains(f) { "yes" } else { "no" });
    }
    println!(
        "  {:<40} {}",
        "cooperative_matrix (tensor cores)",
        if gpu.cooperative_matrix.is_empty() {
            "no".to_string()
        } else {
            gpu.cooperative_matrix.join(", ")
        }
    );
    println!("f32 mode     {f32_mode}");
    println!("fast mode    {fast_mode}");
    Ok(())
}
