use crate::gpu::{Dispatch, Gpu, PendingRead, Tensor};
use crate::kernels::adam::{self, AdamConfig, Clamp};
use crate::kernels::distance;
use crate::kernels::rank::{self, RankBuffers, CACHE_PER_TRIPLET, RANK_PARAMS};
use crate::{bail, Result};

/// Adam as the paper's code configures it (PROTOCOL.md §6).
pub const PAPER_ADAM: AdamConfig = AdamConfig {
    beta1: 0.5,
    beta2: 0.999,
    eps: 1e-8,
};
/// Weight of the L_sync term.
pub const SYNC_WEIGHT: f32 = 10.0;

/// What one training step reports (read back from the GPU: four floats).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean BCE of the rank net.
    pub bce: f32,
    /// The batch's own 2AFC score (from the distances of this step's forward pass).
    pub two_afc: f32,
    /// Whether L_sync was added (the batch's 2AFC was ≤ 0.5).
    pub synced: bool,
    /// Mean BCE of sigmoid(d0 − d1), before the factor 10.
    pub sync_bce: f32,
}

impl StepStats {
    /// The loss that was minimised.
    pub fn loss(&self) -> f32 {
        self.bce + if self.synced { SYNC_WEIGHT * self.sync_bce } else { 0.0 }
    }
}

/// The optimisation state of one adapted metric on the GPU: channel weights `w` (owned by the metric), the rank
/// net `theta`, their gradients and Adam moments, and the recorded dispatches of the step that follows the
/// pair profile: d = S·w, rank-net loss forward and backward, ∂L/∂w = Sᵀ·∂L/∂d, Adam on w and on theta.
pub struct TrainState {
    pub triplets: usize,
    /// [2T, columns]: the pair profile of the whole batch, rows d0 then d1 (member-major).
    pub profile: Tensor,
    pub d: Tensor,
    pub h: Tensor,
    pub theta: Tensor,
    pub stats: Tensor,
    pub grad_w: Tensor,
    pub grad_theta: Tensor,
    /// [2T]: ∂L/∂d of the batch, rows d0 then d1, as the profile.
    pub grad_d: Tensor,
    /// The Adam step scalars ([`adam::step_scalars`]) of the current step, shared with other optimised tensors.
    pub step: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
    _buffers: Vec<Tensor>,
}

impl TrainState {
    pub fn new(gpu: &Gpu, w: &Tensor, theta0: &[f32], triplets: usize, clamp: Clamp) -> Result<TrainState> {
        let profile = gpu.zeros("batch profile", &[2 * triplets, w.numel()])?;
        TrainState::with_profile(gpu, profile, w, theta0, clamp)
    }

    /// A state whose step reads `profile` ([2T, columns]), which several states may share: cells of a sweep
    /// that see the same batch through the same method differ only in w, the rank net and the labels.
    pub fn with_profile(gpu: &Gpu, profile: Tensor, w: &Tensor, theta0: &[f32], clamp: Clamp) -> Result<TrainState> {
        if theta0.len() != RANK_PARAMS {
            bail!("the rank net has {RANK_PARAMS} parameters, {} were given", theta0.len());
        }
        let columns = w.numel();
        if profile.shape.len() != 2 || profile.shape[1] != columns || !profile.shape[0].is_multiple_of(2) {
            bail!(
                "a batch profile of shape {:?} does not match {columns} channel weights",
                profile.shape
            );
        }
        let triplets = profile.shape[0] / 2;
        let d = gpu.zeros("distances", &[2 * triplets])?;
        let h = gpu.zeros("labels", &[triplets])?;
        let theta = gpu.upload("rank net", &[RANK_PARAMS], theta0)?;
        let cache = gpu.zeros("rank cache", &[triplets * CACHE_PER_TRIPLET])?;
        let stats = gpu.zeros("step stats", &[4])?;
        let grad_d = gpu.zeros("grad d", &[2 * triplets])?;
        let grad_theta = gpu.zeros("grad rank net", &[RANK_PARAMS])?;
        let grad_w = gpu.zeros("grad w", &[columns])?;
        let (w_m, w_v) = (gpu.zeros("adam m w", &[columns])?, gpu.zeros("adam v w", &[columns])?);
        let (t_m, t_v) = (
            gpu.zeros("adam m rank", &[RANK_PARAMS])?,
            gpu.zeros("adam v rank", &[RANK_PARAMS])?,
        );
        let step = gpu.upload_pod("adam step", &adam::step_scalars(&PAPER_ADAM, 0.0, 1))?;
        let mut dispatches = vec![distance::weighted_sum(gpu, &profile, w, &d)?];
        let buffers = RankBuffers {
            theta: &theta,
            d: &d,
            h: &h,
            cache: &cache,
            stats: &stats,
            grad_d: &grad_d,
            grad_theta: &grad_theta,
        };
        dispatches.extend(rank::rank_loss(gpu, &buffers, triplets, SYNC_WEIGHT)?);
        dispatches.push(distance::weighted_sum_backward(gpu, &profile, &grad_d, &grad_w)?);
        dispatches.push(adam::adam_step(gpu, &PAPER_ADAM, clamp, w, &grad_w, &w_m, &w_v, &step)?);
        dispatches.push(adam::adam_step(
            gpu,
            &PAPER_ADAM,
            Clamp::None,
            &theta,
            &grad_theta,
            &t_m,
            &t_v,
            &step,
        )?);
        Ok(TrainState {
            triplets,
            profile,
            d,
            h,
            theta,
            stats,
            grad_w,
            grad_theta,
            grad_d,
            step,
            dispatches,
            _buffers: vec![cache, w_m, w_v, t_m, t_v],
        })
    }

    /// Copies a chunk's profile rows into this state's batch profile at triplet `start` (see [`gather_profile`]).
    pub fn gather_profile(
        &self,
        gpu: &Gpu,
        chunk_profile: &Tensor,
        chunk: usize,
        start: usize,
        count: usize,
    ) -> Result<()> {
        gather_profile(gpu, chunk_profile, chunk, start, count, &self.profile)
    }

    /// The step's recorded dispatches, in order: d = S·w, the rank net's loss and backward, ∂L/∂w, then Adam on w
    /// and on the rank net.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    /// Runs only the weighted sum d = S·w of the step: the distances of the gathered batch under the current w.
    pub fn distances(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.run(&self.dispatches[..1])?;
        gpu.read(&self.d, 2 * self.triplets)
    }

    /// Runs the step on the gathered profile with labels `h` (fraction preferring p1), as Adam step `t` (from 1)
    /// with learning rate `lr`. With `update` false the loss and the gradients are computed but not applied.
    pub fn step(&self, gpu: &Gpu, h: &[f32], lr: f32, t: u32, update: bool) -> Result<StepStats> {
        self.queue_step(gpu, h, lr, t, update)?.wait(gpu)
    }

    /// [`TrainState::step`] without waiting for its statistics: the host can queue more work (the next step's
    /// uploads, other cells' steps) while the GPU runs this one.
    pub fn queue_step(&self, gpu: &Gpu, h: &[f32], lr: f32, t: u32, update: bool) -> Result<PendingStats> {
        if h.len() != self.triplets {
            bail!("{} labels for a batch of {} triplets", h.len(), self.triplets);
        }
        gpu.write(&self.h, 0, h)?;
        gpu.write_pod(&self.step, &adam::step_scalars(&PAPER_ADAM, lr, t.max(1)))?;
        // The last two dispatches are the Adam steps of w and of the rank net.
        let n = if update {
            self.dispatches.len()
        } else {
            self.dispatches.len() - 2
        };
        gpu.run(&self.dispatches[..n])?;
        Ok(PendingStats(gpu.read_later(&self.stats, 4)?))
    }

    /// Applies the Adam updates of w and the rank net computed by `step(.., update: false)`.
    pub fn apply(&self, gpu: &Gpu) -> Result<()> {
        gpu.run(&self.dispatches[self.dispatches.len() - 2..])
    }
}

/// A step's statistics on their way back from the GPU ([`TrainState::queue_step`]).
pub struct PendingStats(PendingRead);

impl PendingStats {
    /// Waits for the step (and the work queued before it) and returns its statistics.
    pub fn wait(self, gpu: &Gpu) -> Result<StepStats> {
        let s = gpu.finish_read(self.0)?;
        Ok(StepStats {
            bce: s[0],
            two_afc: s[1],
            synced: s[2] > 0.0,
            sync_bce: s[3],
        })
    }
}

/// Copies a chunk's profile rows (pairs laid out member-major over `chunk` groups) into a batch profile
/// [2T, columns] at triplet `start`.
pub fn gather_profile(
    gpu: &Gpu,
    chunk_profile: &Tensor,
    chunk: usize,
    start: usize,
    count: usize,
    batch_profile: &Tensor,
) -> Result<()> {
    let columns = batch_profile.shape[1];
    let triplets = batch_profile.shape[0] / 2;
    if chunk_profile.shape[1] != columns || start + count > triplets || count > chunk {
        bail!(
            "cannot gather {count} triplets of a {:?} chunk profile at {start} into a {:?} batch profile",
            chunk_profile.shape,
            batch_profile.shape
        );
    }
    for m in 0..2 {
        gpu.copy(
            chunk_profile,
            m * chunk * columns,
            batch_profile,
            (m * triplets + start) * columns,
            count * columns,
        )?;
    }
    Ok(())
}
