use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wgpu::util::DeviceExt;

use crate::{bail, Error, Result};

use super::pipeline::{Compile, ModuleSlot, Pipeline};
use super::{memory, Dispatch, Tensor};

/// Which adapter to open: a case-insensitive substring of its name (`--adapter` or `DPS_ADAPTER`), or the
/// default high-performance one. The backend set comes from the standard `WGPU_BACKEND` variable.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    pub name_contains: Option<String>,
    /// The arithmetic asked for; the context falls back to f32 where the adapter has no f16.
    pub precision: Precision,
    /// Bytes a chunk's buffers may take (`--gpu-memory`); `None` picks from the adapter ([`memory::chunk_budget`]).
    pub chunk_budget: Option<u64>,
}

impl AdapterChoice {
    /// `--adapter` wins over `DPS_ADAPTER`.
    pub fn from_flag_or_env(flag: Option<String>) -> Self {
        let name_contains = flag
            .or_else(|| std::env::var("DPS_ADAPTER").ok())
            .filter(|s| !s.is_empty());
        AdapterChoice {
            name_contains,
            precision: Precision::F32,
            chunk_budget: None,
        }
    }
}

/// Arithmetic of the convolutions' forward pass (where nearly all the work is). `F16`, the fast mode, rounds
/// the implicit GEMM's operands to f16: on cooperative matrices with f32 accumulators where the adapter has
/// them ([`CoopTile`]), else in f16 tiles whose 16-deep partial sums are added into f32 accumulators; inputs,
/// outputs, weights and every other kernel stay f32. Backward passes are always f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    pub fn parse(s: &str) -> Result<Precision> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "f16" | "fp16" => Ok(Precision::F16),
            _ => bail!("unknown precision {s:?}: use f32 or f16"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

/// The block of outputs one invocation of conv.wgsl's tiled kernels computes: `rows` output channels ×
/// `columns` GEMM columns, 4 or 8 each; a workgroup of 16×16 invocations computes a 16·rows × 16·columns tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvBlock {
    pub rows: u32,
    pub columns: u32,
}

impl ConvBlock {
    pub const ALL: [ConvBlock; 4] = [
        ConvBlock { rows: 8, columns: 8 },
        ConvBlock { rows: 4, columns: 8 },
        ConvBlock { rows: 8, columns: 4 },
        ConvBlock { rows: 4, columns: 4 },
    ];

    /// "RxC", as `bench --conv-block` takes it.
    pub fn parse(s: &str) -> Result<ConvBlock> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| crate::Error::msg(format!("unknown conv block {s:?}; choose from 8x8, 4x8, 8x4, 4x4")))
    }

    pub fn name(&self) -> String {
        format!("{}x{}", self.rows, self.columns)
    }
}

/// A square f16×f16→f32 cooperative matrix of side `side` (8 or 16) on an adapter whose subgroups always hold
/// `subgroup` invocations, a multiple of `side`: what conv_coop.wgsl is specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoopTile {
    pub side: u32,
    pub subgroup: u32,
}

impl CoopTile {
    /// The largest usable tile among the adapter's cooperative-matrix shapes. WGSL has square 8×8 and 16×16
    /// matrices only; the kernel needs a fixed subgroup size (four subgroups split a workgroup's tile) and
    /// workgroup memory for its f16 A and B slices and its f32 output tile.
    pub fn choose(
        shapes: &[wgpu::CooperativeMatrixProperties],
        info: &wgpu::AdapterInfo,
        limits: &wgpu::Limits,
    ) -> Option<CoopTile> {
        let subgroups = (info.subgroup_min_size, info.subgroup_max_size);
        Self::choose_for(shapes, subgroups, info.device_type == wgpu::DeviceType::Cpu, limits)
    }

    /// [`CoopTile::choose`] from the adapter's subgroup size range and whether it is a CPU.
    pub fn choose_for(
        shapes: &[wgpu::CooperativeMatrixProperties],
        (subgroup, subgroup_max): (u32, u32),
        cpu: bool,
        limits: &wgpu::Limits,
    ) -> Option<CoopTile> {
        if subgroup != subgroup_max || subgroup == 0 {
            return None;
        }
        shapes
            .iter()
            .filter(|p| {
                p.m_size == p.n_size
                    && p.n_size == p.k_size
                    && p.ab_type == wgpu::CooperativeScalarType::F16
                    && p.cr_type == wgpu::CooperativeScalarType::F32
            })
            .map(|p| CoopTile {
                side: p.m_size,
                subgroup,
            })
            // lavapipe (Mesa 26.2) crashes compiling cooperative matrices at subgroup 16
            // (LP_NATIVE_VECTOR_WIDTH=512) and is verified only at its default, subgroup = side = 8.
            .filter(|t| !cpu || t.subgroup == t.side)
            .filter(|t| {
                let side = t.side;
                let workgroup_bytes = 2 * (2 * side) * (4 * side) * 2 + (4 * side) * (4 * side) * 4;
                matches!(side, 8 | 16)
                    && subgroup.is_multiple_of(side)
                    && 4 * subgroup <= limits.max_compute_invocations_per_workgroup
                    && 4 * subgroup <= limits.max_compute_workgroup_size_x
                    && workgroup_bytes <= limits.max_compute_workgroup_storage_size
            })
            .max_by_key(|t| t.side)
    }
}

/// How a kernel uses one of its bindings (must match the WGSL declaration): a storage buffer, or an rgba32float
/// texture read with textureLoad (`texture_2d<f32>`) or written with textureStore
/// (`texture_storage_2d<rgba32float, write>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
    Texture,
    WriteTexture,
}

impl Access {
    fn binding_type(self) -> wgpu::BindingType {
        match self {
            Access::Read | Access::ReadWrite => wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: self == Access::Read,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            Access::Texture => wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            Access::WriteTexture => wgpu::BindingType::StorageTexture {
                access: wgpu::StorageTextureAccess::WriteOnly,
                format: wgpu::TextureFormat::Rgba32Float,
                view_dimension: wgpu::TextureViewDimension::D2,
            },
        }
    }
}

/// A WGSL entry point and the storage buffers (or textures) it binds after its parameter block (bindings 1, 2, …).
#[derive(Clone, Copy)]
pub struct Kernel {
    pub family: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    pub bindings: &'static [Access],
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Prefer kernel variants without workgroup memory and barriers: true on CPU rasterisers (lavapipe, WARP),
    /// where barriers are expensive; tests flip it to check both variants.
    pub barrier_free: bool,
    /// Lanes of a subgroup that share the barrier-free kernels' loads of values common to a workgroup (conv.wgsl's
    /// `from_lane`): the adapter's smallest subgroup, up to 8, where those kernels run and subgroups exist, else
    /// 1 (each lane loads everything itself). Halves lavapipe's convolution time; tests set 1 to check both.
    pub weight_lanes: u32,
    /// The convolutions' forward arithmetic in effect (f16 only where the adapter has SHADER_F16); kernels
    /// pick their variant from it when a plan is built, so tests may flip it between plans.
    pub precision: Precision,
    /// The adapter's cooperative-matrix (tensor core) shapes, as "MxNxK ab→cr"; empty where it has none.
    pub cooperative_matrix: Vec<String>,
    /// The fast mode's tensor-core tiling: set when `precision` is F16 and the adapter offers a cooperative
    /// matrix the conv kernel can use (the device then has EXPERIMENTAL_COOPERATIVE_MATRIX enabled). Tests clear
    /// it to run the plain f16 kernel on the same device.
    pub coop_tile: Option<CoopTile>,
    /// The block every tiled convolution uses, when forced (tests; `bench --conv-block`); None: kernels::conv
    /// picks one per convolution.
    pub conv_block: Option<ConvBlock>,
    /// Run 3×3 stride-1 convolutions in f32 as Winograd F(2×2, 3×3) (kernels::winograd) where the tiled kernels
    /// run (not on CPU adapters): 2.25× fewer multiplications. On by default; tests and `bench --no-winograd`
    /// turn it off to compare.
    pub winograd: bool,
    /// The kernels that stage slices in workgroup memory (tiled, Winograd, tensor-core) load each slice's values
    /// while the slice before is multiplied (their PREFETCH). On by default; `bench --no-prefetch` and tests turn
    /// it off to compare.
    pub prefetch: bool,
    /// The largest device-local memory heap the driver reports (Vulkan only).
    pub device_memory: Option<u64>,
    /// Bytes the buffers of one chunk of images may take (activations and, when a network trains, their
    /// gradients): sizes every chunk. Tests lower it to exercise chunking.
    pub chunk_budget: u64,
    modules: Mutex<HashMap<&'static str, ModuleSlot>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), Pipeline>>,
    /// Errors that escaped every error scope (wgpu would otherwise panic on them).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Nanoseconds the host has spent waiting for the GPU ([`Gpu::waited_seconds`]).
    waited_ns: AtomicU64,
}

impl Gpu {
    pub fn new(choice: &AdapterChoice) -> Result<Gpu> {
        pollster::block_on(Self::open(choice))
    }

    async fn open(choice: &AdapterChoice) -> Result<Gpu> {
        // Vulkan, Metal and DX12 first: starting the GL backend too costs every run (~10 ms on this project's
        // machine, EGL's start-up) and is only needed where none of those has an adapter. WGPU_BACKEND, when set,
        // decides alone.
        let chosen = std::env::var_os("WGPU_BACKEND").is_some();
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::PRIMARY;
        let (_instance, adapter) = match find_adapter(desc.with_env(), choice).await {
            Ok(found) => found,
            Err(e) if chosen => return Err(e),
            Err(_) => find_adapter(wgpu::InstanceDescriptor::new_without_display_handle(), choice).await?,
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let shapes = if adapter
            .features()
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        {
            adapter.cooperative_matrix_properties()
        } else {
            Vec::new()
        };
        let cooperative_matrix = shapes
            .iter()
            .map(|p| format!("{}x{}x{} {:?}→{:?}", p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type))
            .collect();
        let barrier_free = info.device_type == wgpu::DeviceType::Cpu;
        let device_memory = memory::device_local_bytes(&adapter);
        let chunk_budget = memory::chunk_budget(choice.chunk_budget, info.device_type, device_memory);
        // Only features the kernels may use; requesting everything can fail on some drivers.
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let mut features = adapter.features() & wanted;
        // wgpu's cooperative matrices are experimental, so they are enabled only for the fast mode, which is
        // the only user, and only where its kernel fits the adapter.
        let coop_tile = (choice.precision == Precision::F16 && features.contains(wgpu::Features::SHADER_F16))
            .then(|| CoopTile::choose(&shapes, &info, &limits))
            .flatten();
        let experimental_features = if coop_tile.is_some() {
            features |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
            // SAFETY: wgpu asks callers of experimental features to accept that they may have bugs; the fast
            // mode's coop kernel is checked against the f32 CPU reference in tests/kernels.rs.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("dps-gpu"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features,
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::msg(format!("could not open GPU device {:?}: {e}", info.name)))?;
        let precision = if choice.precision == Precision::F16 && !features.contains(wgpu::Features::SHADER_F16) {
            eprintln!(
                "note: {} has no f16 shader support (SHADER_F16); running in f32 instead of --precision f16",
                info.name
            );
            Precision::F32
        } else {
            choice.precision
        };
        let weight_lanes = if barrier_free && features.contains(wgpu::Features::SUBGROUP) {
            weight_lanes(info.subgroup_min_size)
        } else {
            1
        };
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            barrier_free,
            weight_lanes,
            precision,
            cooperative_matrix,
            coop_tile,
            conv_block: None,
            winograd: true,
            prefetch: true,
            device_memory,
            chunk_budget,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
            waited_ns: AtomicU64::new(0),
        })
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they caught into an error.
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        scoped(&self.device, &self.uncaptured, what, f)
    }

    /// The compute pipeline of `kernel`, compiled once per process on a thread of its own (see [`Pipeline`]),
    /// with an explicit layout (binding 0 the parameter block, then the kernel's bindings) so every entry point of
    /// a family binds alike.
    pub fn pipeline(&self, kernel: &Kernel) -> Result<Pipeline> {
        let key = (kernel.family, kernel.entry);
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let bind_group_layout = self.checked(&format!("laying out the bindings of {}", kernel.entry), || {
            let uniform = wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            };
            let mut entries = vec![wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: uniform,
                count: None,
            }];
            for (i, access) in kernel.bindings.iter().enumerate() {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: i as u32 + 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: access.binding_type(),
                    count: None,
                });
            }
            self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.entry),
                entries: &entries,
            })
        })?;
        let module = self.modules.lock().unwrap().entry(kernel.family).or_default().clone();
        let pipeline = Pipeline::start(Compile {
            device: self.device.clone(),
            uncaptured: self.uncaptured.clone(),
            module,
            kernel: *kernel,
            bind_group_layout,
        });
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Whether f32 3×3 stride-1 convolutions run as Winograd F(2×2, 3×3): asked for, and not on a CPU adapter
    /// (see kernels::winograd).
    pub fn uses_winograd(&self) -> bool {
        self.winograd && !self.barrier_free
    }

    /// Largest number of bytes one storage binding may cover on this adapter.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    fn check_size(&self, bytes: u64, label: &str) -> Result<()> {
        if bytes > self.max_binding_bytes() {
            bail!(
                "tensor {label} needs {bytes} bytes, more than this adapter binds at once ({}); use a smaller batch",
                self.max_binding_bytes()
            );
        }
        Ok(())
    }

    /// A zero-filled f32 tensor.
    pub fn zeros(&self, label: &str, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let bytes = tensor_bytes(numel);
        self.check_size(bytes, label)?;
        let buffer = self.checked(&format!("allocating {label}"), || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(Tensor::new(buffer, shape))
    }

    /// An f32 tensor holding `data`.
    pub fn upload(&self, label: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            bail!(
                "tensor {label}: shape {shape:?} holds {numel} values but {} were given",
                data.len()
            );
        }
        let bytes = tensor_bytes(numel);
        self.check_size(bytes, label)?;
        let mut contents = vec![0u8; bytes as usize];
        contents[..4 * numel].copy_from_slice(bytemuck::cast_slice(data));
        let buffer = self.checked(&format!("uploading {label}"), || {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &contents,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            })
        })?;
        Ok(Tensor::new(buffer, shape))
    }

    /// A storage buffer holding plain records (index lists such as image pairs, per-image parameters).
    pub fn upload_pod<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let contents: &[u8] = if data.is_empty() {
            &[0u8; 16]
        } else {
            bytemuck::cast_slice(data)
        };
        self.check_size(contents.len() as u64, label)?;
        self.checked(&format!("uploading {label}"), || {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            })
        })
    }

    /// A small uniform buffer holding one kernel's parameters.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> Result<wgpu::Buffer> {
        self.checked(&format!("allocating {label} parameters"), || {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            })
        })
    }

    /// Overwrites `tensor` from value `offset` on with `data`.
    pub fn write(&self, tensor: &Tensor, offset: usize, data: &[f32]) -> Result<()> {
        if offset + data.len() > tensor.numel() {
            bail!(
                "writing {} values at {offset} into a tensor of {}",
                data.len(),
                tensor.numel()
            );
        }
        if data.is_empty() {
            return Ok(());
        }
        self.checked("writing a tensor", || {
            self.queue
                .write_buffer(&tensor.buffer, (offset * 4) as u64, bytemuck::cast_slice(data))
        })
    }

    /// Overwrites the start of a record buffer made by [`Gpu::upload_pod`].
    pub fn write_pod<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, data: &[T]) -> Result<()> {
        self.write_pod_at(buffer, 0, data)
    }

    /// Overwrites a record buffer from byte `offset` (offset and length in whole 4-byte words, as wgpu writes).
    pub fn write_pod_at<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, offset: u64, data: &[T]) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if offset + bytes.len() as u64 > buffer.size() || !offset.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            bail!(
                "writing {} bytes at {offset} into a buffer of {} (whole words only)",
                bytes.len(),
                buffer.size()
            );
        }
        self.checked("writing a buffer", || self.queue.write_buffer(buffer, offset, bytes))
    }

    /// Writes the concatenation of `parts` into `buffer` at `offset`, zero-padded to whole words, straight into
    /// the transfer's staging memory (no joined copy on the host, one staging buffer however many parts).
    pub fn write_parts(&self, buffer: &wgpu::Buffer, offset: u64, parts: &[&[u8]]) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let padded = total.div_ceil(4) * 4;
        if offset + padded as u64 > buffer.size() || !offset.is_multiple_of(4) {
            bail!("writing {total} bytes at {offset} into a buffer of {}", buffer.size());
        }
        let Some(size) = wgpu::BufferSize::new(padded as u64) else {
            return Ok(());
        };
        self.checked("writing a buffer", || {
            let Some(mut view) = self.queue.write_buffer_with(buffer, offset, size) else {
                bail!(
                    "wgpu refused a write of {padded} bytes at {offset} into a buffer of {}",
                    buffer.size()
                );
            };
            let mut at = 0;
            for part in parts {
                view.slice(at..at + part.len()).copy_from_slice(part);
                at += part.len();
            }
            view.slice(total..).fill(0);
            Ok(())
        })?
    }

    /// Copies `count` values from `src` at `src_offset` to `dst` at `dst_offset` (offsets in values).
    pub fn copy(&self, src: &Tensor, src_offset: usize, dst: &Tensor, dst_offset: usize, count: usize) -> Result<()> {
        if src_offset + count > src.numel() || dst_offset + count > dst.numel() {
            bail!(
                "copying {count} values from {src_offset} of {:?} to {dst_offset} of {:?}",
                src.shape,
                dst.shape
            );
        }
        self.checked("copying a tensor", || {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(
                &src.buffer,
                (src_offset * 4) as u64,
                &dst.buffer,
                (dst_offset * 4) as u64,
                (count * 4) as u64,
            );
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Records `dispatches` into one compute pass and submits it (waiting for their pipelines' compiles).
    pub fn run(&self, dispatches: &[Dispatch]) -> Result<()> {
        let pipelines = dispatches.iter().map(Dispatch::pipeline).collect::<Result<Vec<_>>>()?;
        self.checked("running kernels", || {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for (d, pipeline) in dispatches.iter().zip(pipelines) {
                    d.record(&mut pass, pipeline);
                }
            }
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Copies the first `count` values of `tensor` back to the host (waits for queued work).
    pub fn read(&self, tensor: &Tensor, count: usize) -> Result<Vec<f32>> {
        let pending = self.read_later(tensor, count)?;
        self.finish_read(pending)
    }

    /// Starts copying the first `count` values of `tensor` back, behind the work queued so far, without waiting:
    /// the host can queue more work before [`Gpu::finish_read`] collects them, which then waits only for the
    /// work queued before this call.
    pub fn read_later(&self, tensor: &Tensor, count: usize) -> Result<PendingRead> {
        if count > tensor.numel() {
            bail!("reading {count} values from a tensor of {}", tensor.numel());
        }
        let bytes = (count.max(1) * 4) as u64;
        let (staging, submission) = self.checked("allocating a read-back buffer", || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&tensor.buffer, 0, &staging, 0, bytes);
            let submission = self.queue.submit([encoder.finish()]);
            (staging, submission)
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        Ok(PendingRead {
            staging,
            count,
            submission,
            mapped: rx,
        })
    }

    /// The values of a [`Gpu::read_later`], once the work queued before it has finished.
    pub fn finish_read(&self, pending: PendingRead) -> Result<Vec<f32>> {
        self.poll(Some(pending.submission))?;
        match pending.mapped.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("reading results back from the GPU: {e}"),
            Err(_) => bail!("reading results back from the GPU: the map callback never ran"),
        }
        let slice = pending.staging.slice(..);
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::msg(format!("mapping the read-back buffer: {e}")))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view)[..pending.count].to_vec();
        drop(view);
        pending.staging.unmap();
        Ok(out)
    }

    /// Waits until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        self.poll(None)
    }

    /// Seconds the host has spent waiting for the GPU since the context opened: beside a wall time, how far the
    /// host kept the GPU fed (`bench` reports it).
    pub fn waited_seconds(&self) -> f64 {
        self.waited_ns.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// Waits for the work up to `submission` (all of it with None).
    fn poll(&self, submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let start = Instant::now();
        let polled = self.device.poll(wgpu::PollType::Wait {
            submission_index: submission,
            timeout: None,
        });
        self.waited_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        polled
            .map(|_| ())
            .map_err(|e| Error::msg(format!("waiting for the GPU: {e}")))
    }

    /// A one-line description: adapter name, backend, driver.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "{} ({:?}, {:?}, driver {} {}, {} convolutions{})",
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info,
            self.precision.name(),
            match self.coop_tile {
                Some(t) => format!(" on {0}x{0}x{0} cooperative matrices", t.side),
                None => String::new(),
            }
        )
    }
}

/// [`Gpu::weight_lanes`] for an adapter whose subgroups hold at least `subgroup_min` invocations: the largest
/// power of two within it, up to 8 (the barrier-free kernels' blocks hold 8 rows, and a lane's share must be whole).
fn weight_lanes(subgroup_min: u32) -> u32 {
    match subgroup_min {
        0 | 1 => 1,
        n => (1u32 << n.ilog2()).min(8),
    }
}

/// Bytes of a tensor's buffer: its values rounded up to whole vec4s (at least one), so that kernels may read any
/// tensor four values at a time (array<vec4<f32>>) and reach its last values.
fn tensor_bytes(numel: usize) -> u64 {
    (numel.max(1).div_ceil(4) * 16) as u64
}

/// The adapter `choice` asks for among those of `desc`'s backends, with the instance that found it.
async fn find_adapter(
    desc: wgpu::InstanceDescriptor,
    choice: &AdapterChoice,
) -> Result<(wgpu::Instance, wgpu::Adapter)> {
    let instance = wgpu::Instance::new(desc);
    let adapter = match &choice.name_contains {
        Some(want) => {
            let lower = want.to_lowercase();
            let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
            let names: Vec<String> = adapters
                .iter()
                .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
                .collect();
            match adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&lower))
            {
                Some(a) => a,
                None => bail!(
                    "no GPU adapter whose name contains {want:?}; found: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            }
        }
        None => instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::msg(format!(
                    "no GPU adapter found ({e}); on Linux without a GPU install Mesa's software Vulkan driver \
                     (apt-get install mesa-vulkan-drivers)"
                ))
            })?,
    };
    Ok((instance, adapter))
}

/// A read-back in flight ([`Gpu::read_later`]).
pub struct PendingRead {
    staging: wgpu::Buffer,
    count: usize,
    submission: wgpu::SubmissionIndex,
    mapped: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

/// Runs `f` inside validation and out-of-memory error scopes of `device` (this thread's: wgpu keeps them per
/// thread) and turns what they caught, or what escaped every scope into `uncaptured`, into an error.
pub(super) fn scoped<T>(
    device: &wgpu::Device,
    uncaptured: &Mutex<Vec<String>>,
    what: &str,
    f: impl FnOnce() -> T,
) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let v = pollster::block_on(validation.pop());
    let o = pollster::block_on(oom.pop());
    if let Some(e) = v.or(o) {
        bail!("GPU error while {what}: {e}");
    }
    if let Some(e) = uncaptured.lock().unwrap().pop() {
        bail!("GPU error while {what}: {e}");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::weight_lanes;

    #[test]
    fn weight_lanes_is_the_largest_power_of_two_in_the_subgroup_up_to_8() {
        let got: Vec<u32> = [0, 1, 2, 3, 4, 7, 8, 16, 32, 64].map(weight_lanes).to_vec();
        assert_eq!(got, [1, 1, 2, 2, 4, 4, 8, 8, 8, 8]);
    }
}
