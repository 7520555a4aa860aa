//! Compute pipelines compiled in the background. A plan asks for its kernels one after another while it is
//! being built; compiling each on the spot (naga's parsing and SPIR-V, then the driver's compiler, tens of
//! milliseconds a kernel on a GPU's driver) would add them all up before the first result. So [`Pipeline`] is a
//! handle whose bind group layout exists at once (plans bind their resources with it) while a thread compiles
//! the pipeline; the first run that records it waits for that thread. Kernels of one family share one shader
//! module, parsed once by whichever thread gets to it first.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::{Error, Result};

use super::Kernel;

/// A family's shader module, parsed once by the first compile that needs it.
pub(super) type ModuleSlot = Arc<OnceLock<wgpu::ShaderModule>>;

type Compiled = std::result::Result<wgpu::ComputePipeline, String>;

/// A kernel's compute pipeline, compiled by a background thread; clones share it.
#[derive(Clone)]
pub struct Pipeline(Arc<Slot>);

struct Slot {
    bind_group_layout: wgpu::BindGroupLayout,
    job: Mutex<Option<JoinHandle<Compiled>>>,
    compiled: OnceLock<Compiled>,
}

/// What a compile needs from the context, owned so it can move to the compiling thread.
#[derive(Clone)]
pub(super) struct Compile {
    pub device: wgpu::Device,
    pub uncaptured: Arc<Mutex<Vec<String>>>,
    pub module: ModuleSlot,
    pub kernel: Kernel,
    pub bind_group_layout: wgpu::BindGroupLayout,
}

impl Pipeline {
    /// Starts compiling on a thread of its own (or here, where no thread can be started).
    pub(super) fn start(compile: Compile) -> Pipeline {
        let bind_group_layout = compile.bind_group_layout.clone();
        let slot = Slot {
            bind_group_layout,
            job: Mutex::new(None),
            compiled: OnceLock::new(),
        };
        let for_thread = compile.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("compile {}", compile.kernel.entry))
            .spawn(move || compile_now(for_thread));
        match spawned {
            Ok(handle) => *slot.job.lock().unwrap() = Some(handle),
            Err(_) => {
                let _ = slot.compiled.set(compile_now(compile));
            }
        }
        Pipeline(Arc::new(slot))
    }

    /// The layout of bind group 0 (binding 0 the parameter block, then the kernel's bindings).
    pub fn bind_group_layout(&self) -> &wgpu::BindGroupLayout {
        &self.0.bind_group_layout
    }

    /// The compiled pipeline, waiting for its thread the first time; a compile error is returned to every caller.
    pub fn compiled(&self) -> Result<&wgpu::ComputePipeline> {
        let compiled = self.0.compiled.get_or_init(|| match self.0.job.lock().unwrap().take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err("the thread compiling it panicked".to_string())),
            None => Err("it was never compiled".to_string()),
        });
        compiled.as_ref().map_err(|e| Error::msg(e.clone()))
    }
}

fn compile_now(c: Compile) -> Compiled {
    let what = format!("compiling kernel {}::{}", c.kernel.family, c.kernel.entry);
    // Error scopes are per thread: this one catches only this compile's errors.
    super::context::scoped(&c.device, &c.uncaptured, &what, || {
        let module = c.module.get_or_init(|| {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(c.kernel.family),
                source: wgpu::ShaderSource::Wgsl(c.kernel.source.into()),
            };
            // naga bounds every loop by default (a counter and a branch in each, which also keeps drivers from
            // unrolling the inner products): 1.2–1.8× on lavapipe without it. Bounds and integer-division
            // checks stay.
            let checks = wgpu::ShaderRuntimeChecks {
                force_loop_bounding: false,
                ..wgpu::ShaderRuntimeChecks::checked()
            };
            // SAFETY: only the loop bounding is off, which needs every loop to end: each loop in shaders/ counts
            // over a range bounded by its parameters (checked to fit u32 by the host), and conv.wgsl's `advance`
            // steps toward an output plane of at least one pixel.
            unsafe { c.device.create_shader_module_trusted(desc, checks) }
        });
        let layout = c.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(c.kernel.entry),
            bind_group_layouts: &[Some(&c.bind_group_layout)],
            immediate_size: 0,
        });
        c.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(c.kernel.entry),
            layout: Some(&layout),
            module,
            entry_point: Some(c.kernel.entry),
            compilation_options: Default::default(),
            cache: None,
        })
    })
    .map_err(|e| e.to_string())
}
