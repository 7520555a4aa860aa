use crate::Result;

use super::{Gpu, Pipeline};

/// One recorded kernel launch: pipeline, its bound resources, and the workgroup grid. Plans build these once
/// and replay them for every batch, so a batch costs no host-side allocation.
pub struct Dispatch {
    pipeline: Pipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    label: String,
    // Keeps the parameter buffer alive as long as the bind group that refers to it.
    _params: wgpu::Buffer,
}

impl Dispatch {
    /// Binds `resources` to bindings 1.. of group 0 (binding 0 is the parameter block `params`).
    pub fn new<P: bytemuck::Pod>(
        gpu: &Gpu,
        pipeline: Pipeline,
        label: &str,
        params: &P,
        resources: &[wgpu::BindingResource<'_>],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        let params_buffer = gpu.uniform(label, params)?;
        let bind_group = gpu.checked(&format!("binding {label}"), || {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: params_buffer.as_entire_binding(),
            }];
            for (i, r) in resources.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: r.clone(),
                });
            }
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: pipeline.bind_group_layout(),
                entries: &entries,
            })
        })?;
        Ok(Dispatch {
            pipeline,
            bind_group,
            groups,
            label: label.to_string(),
            _params: params_buffer,
        })
    }

    /// The name it was recorded under: its kernel's entry point (`bench --what profile` groups by it).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its compiled pipeline (waits for the compile the first time).
    pub fn pipeline(&self) -> Result<&wgpu::ComputePipeline> {
        self.pipeline
            .compiled()
            .map_err(|e| crate::Error::msg(format!("{}: {e}", self.label)))
    }

    /// Records it with `pipeline`, its own (from [`Dispatch::pipeline`]).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, pipeline: &wgpu::ComputePipeline) {
        if self.groups.contains(&0) {
            return;
        }
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// Spreads `count` workgroups over x and z so neither exceeds the per-dimension limit; kernels rebuild the
/// linear index as `x + z * groups_x` and skip the few extra groups. Returns `(x, z)`.
pub fn linear_grid(gpu: &Gpu, count: u32) -> (u32, u32) {
    let max = gpu.limits.max_compute_workgroups_per_dimension.max(1);
    if count <= max {
        (count, 1)
    } else {
        let z = count.div_ceil(max);
        (count.div_ceil(z), z)
    }
}
