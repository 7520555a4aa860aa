//! Many adaptation runs of one network and one seed at once. The runs ("cells") differ only in their method and
//! context, so they see the same images, split, distortions and dropout masks as they would alone: the frozen
//! network's features of each distorted chunk are computed once and turned into one pair profile per method;
//! each cell then runs its own weighted sum, rank-net loss, backward and Adam on its method's profile with its own
//! labels. Every cell's numbers are those of `dps-gpu train` with the same seed (see the README's sweep notes).

use std::time::Instant;

use rand::seq::SliceRandom;

use crate::context::{Ranking, TripletDraws};
use crate::data::ImageBank;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::adam::Clamp;
use crate::kernels::distance;
use crate::metric::{balanced_chunk, groups_per_chunk, GroupPlan, Method, TripletRunner};
use crate::nets::Network;
use crate::progress::Progress;
use crate::{bail, Result};

use super::run::{run_metadata, split, stream, EpochReport, TrainConfig, TrainedMetric, Variant, DROPOUT};
use super::{gather_profile, init_channel_weights, init_rank_net, lr_multiplier, TrainState};

/// One adaptation run of a group: a comparison method and a context.
#[derive(Clone, Debug)]
pub struct Cell {
    pub method: Method,
    pub ranking: Ranking,
}

/// d = profile · w for one set of channel weights on its method's batch profile.
struct Scorer {
    d: Tensor,
    sum: Dispatch,
}

struct CellState {
    cell: Cell,
    w: Tensor,
    state: TrainState,
    scorer: Scorer,
    reports: Vec<EpochReport>,
}

/// The cells of one network and seed on the GPU, with the network's features shared between them.
pub struct CellGroup {
    config: TrainConfig,
    channels: Vec<usize>,
    heads: Vec<Method>,
    plan: GroupPlan,
    runner: TripletRunner,
    /// Per head, the [2B, columns] profile of the current batch.
    profiles: Vec<Tensor>,
    cells: Vec<CellState>,
    /// Per head, w = 1: the untrained metric.
    baselines: Vec<(Tensor, Scorer)>,
    train_images: usize,
    validation_images: usize,
}

impl CellGroup {
    /// Loads `config.net` and prepares `cells` (their method and ranking replace the config's) and a baseline
    /// per method of `baseline_methods`; batches hold `config.batch` triplets.
    pub fn new(gpu: &Gpu, config: &TrainConfig, cells: &[Cell], baseline_methods: &[Method]) -> Result<CellGroup> {
        let c = config;
        if c.variant != Variant::Scalars {
            bail!("cells trained together adapt the scalars only; train --variant net runs one at a time");
        }
        if c.epochs == 0 || c.batch == 0 || !(c.lr > 0.0 && c.lr.is_finite()) {
            bail!("epochs and batch must be at least 1 and the learning rate positive");
        }
        let mut heads: Vec<Method> = Vec::new();
        for m in cells
            .iter()
            .map(|cell| cell.method)
            .chain(baseline_methods.iter().copied())
        {
            if !heads.contains(&m) {
                heads.push(m);
            }
        }
        if heads.is_empty() {
            bail!("nothing to run: no cells and no baselines");
        }
        let taps = c.net.tap_shapes(c.size)?;
        let channels: Vec<usize> = taps.iter().map(|t| t.0).collect();
        let net = Network::load(gpu, c.net, c.weights_dir.as_deref())?;
        let chunk = balanced_chunk(groups_per_chunk(gpu, &net, c.size, 3, false, None)?, c.batch);
        let plan = GroupPlan::build(gpu, &net, c.size, &heads, (chunk, 3, c.paper_faithful), None, false)?;
        let runner = TripletRunner::with_chunk(gpu, chunk, c.size, c.paper_faithful)?;
        let columns = |m: Method| m.parts().len() * channels.iter().sum::<usize>();
        let profiles = heads
            .iter()
            .map(|&m| gpu.zeros("batch profile", &[2 * c.batch, columns(m)]))
            .collect::<Result<Vec<_>>>()?;
        let clamp = if c.paper_faithful {
            Clamp::BeforeUpdate
        } else {
            Clamp::AfterStep
        };
        let theta0 = init_rank_net(&mut stream(c.seed, "rank net"));
        let scorer = |gpu: &Gpu, head: usize, w: &Tensor| -> Result<Scorer> {
            let d = gpu.zeros("cell distances", &[2 * c.batch])?;
            let sum = distance::weighted_sum(gpu, &profiles[head], w, &d)?;
            Ok(Scorer { d, sum })
        };
        let mut states = Vec::new();
        for cell in cells {
            let head = heads
                .iter()
                .position(|&m| m == cell.method)
                .expect("every method has a head");
            // The same initial weights as a run of this method alone with this seed.
            let w0 = init_channel_weights(&mut stream(c.seed, "w"), &channels, cell.method.parts().len());
            let w = gpu.upload("channel weights", &[w0.len()], &w0)?;
            let state = TrainState::with_profile(gpu, profiles[head].view(&profiles[head].shape)?, &w, &theta0, clamp)?;
            let scorer = scorer(gpu, head, &w)?;
            states.push(CellState {
                cell: cell.clone(),
                w,
                state,
                scorer,
                reports: Vec::new(),
            });
        }
        let mut baselines = Vec::new();
        for &m in baseline_methods {
            let head = heads.iter().position(|&h| h == m).expect("every method has a head");
            let ones = gpu.upload("baseline weights", &[columns(m)], &vec![1.0; columns(m)])?;
            let s = scorer(gpu, head, &ones)?;
            baselines.push((ones, s));
        }
        Ok(CellGroup {
            config: c.clone(),
            channels,
            heads,
            plan,
            runner,
            profiles,
            cells: states,
            baselines,
            train_images: 0,
            validation_images: 0,
        })
    }

    /// Trains every cell on `images` (80/20 train/validation split, drawn from the seed), calling
    /// `on_epoch(cell, report)` as each cell's epoch report is known.
    pub fn train(
        &mut self,
        gpu: &Gpu,
        images: &ImageBank,
        progress: &mut dyn Progress,
        on_epoch: &mut dyn FnMut(usize, &EpochReport),
    ) -> Result<()> {
        let c = self.config.clone();
        if self.cells.is_empty() {
            return Ok(());
        }
        let (val, train) = split(images.len(), c.seed, c.batch)?;
        let (val, train) = (&val[..], &train[..]);
        self.train_images = train.len();
        self.validation_images = val.len();
        // Validation triplets are drawn once, so every epoch is scored on the same ones.
        let val_draws = TripletDraws::draw(
            val,
            &self.cells[0].cell.ranking,
            &mut stream(c.seed, "validation"),
            c.size,
        );
        let mut draw_rng = stream(c.seed, "triplets");
        let mut shuffle_rng = stream(c.seed, "epochs");
        let steps_per_epoch = train.len() / c.batch;
        let mut t = 0u32;
        let mut order = train.to_vec();
        let what = if self.cells.len() == 1 {
            let cell = &self.cells[0].cell;
            format!(
                "training {} {} on ranking {}",
                c.net.name(),
                cell.method.name(),
                cell.ranking.name
            )
        } else {
            format!(
                "training {} cells of {} (seed {})",
                self.cells.len(),
                c.net.name(),
                c.seed
            )
        };
        progress.start(&what, (c.epochs * steps_per_epoch) as u64);
        for epoch in 0..c.epochs {
            let started = Instant::now();
            let lr = c.lr * lr_multiplier(epoch, c.epochs);
            order.shuffle(&mut shuffle_rng);
            let mut sums = vec![(0.0f64, 0.0f64); self.cells.len()];
            for step in 0..steps_per_epoch {
                let batch = &order[step * c.batch..(step + 1) * c.batch];
                let draws = TripletDraws::draw(batch, &self.cells[0].cell.ranking, &mut draw_rng, c.size);
                t += 1;
                let step_seed = (c.seed as u32) ^ t.wrapping_mul(0x9e37_79b9);
                self.profile_batch(gpu, images, &draws, |start| {
                    distance::dropout_state(step_seed, start as u32, DROPOUT)
                })?;
                // Every cell's step is queued before any is waited for.
                let mut queued = Vec::with_capacity(self.cells.len());
                for cell in &self.cells {
                    let labels = draws.labels_for(&cell.cell.ranking);
                    queued.push(cell.state.queue_step(gpu, &labels, lr, t, true)?);
                }
                for ((cell, sum), pending) in self.cells.iter().zip(&mut sums).zip(queued) {
                    let stats = pending.wait(gpu)?;
                    if !stats.loss().is_finite() {
                        bail!(
                            "the loss of {} {} on ranking {} became {} at epoch {} step {} (of {steps_per_epoch}); try a smaller --lr",
                            c.net.name(),
                            cell.cell.method.name(),
                            cell.cell.ranking.name,
                            stats.loss(),
                            epoch + 1,
                            step + 1
                        );
                    }
                    sum.0 += stats.loss() as f64;
                    sum.1 += stats.two_afc as f64;
                }
                progress.advance(
                    1,
                    &format!(
                        "epoch {}/{} loss {:.4}",
                        epoch + 1,
                        c.epochs,
                        sums[0].0 / (step + 1) as f64
                    ),
                );
            }
            let scores = self.cell_scores(gpu, images, &val_draws)?;
            let seconds = started.elapsed().as_secs_f64();
            for (i, (cell, score)) in self.cells.iter_mut().zip(scores).enumerate() {
                let report = EpochReport {
                    epoch: epoch + 1,
                    train_loss: sums[i].0 / steps_per_epoch as f64,
                    train_two_afc: sums[i].1 / steps_per_epoch as f64,
                    validation_two_afc: score,
                    seconds,
                    triplets_per_second: (steps_per_epoch * c.batch) as f64 / seconds,
                };
                on_epoch(i, &report);
                cell.reports.push(report);
            }
        }
        progress.finish();
        Ok(())
    }

    /// Runs `draws` through distortion, features and every head's pair profile, a batch at a time, calling
    /// `after_batch(start, count)` once each batch's profiles are gathered.
    fn profile_batches(
        &mut self,
        gpu: &Gpu,
        images: &ImageBank,
        draws: &TripletDraws,
        mut after_batch: impl FnMut(&Self, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let batch = self.config.batch;
        let mut start = 0;
        while start < draws.len() {
            let count = batch.min(draws.len() - start);
            let slice = draws.slice(start, start + count);
            self.profile_batch(gpu, images, &slice, |s| distance::dropout_state(0, s as u32, 0.0))?;
            after_batch(&*self, start, count)?;
            start += count;
        }
        Ok(())
    }

    /// Fills every head's batch profile with one batch of (at most `config.batch`) triplets.
    fn profile_batch(
        &mut self,
        gpu: &Gpu,
        images: &ImageBank,
        draws: &TripletDraws,
        state_for: impl Fn(usize) -> [u32; 4],
    ) -> Result<()> {
        let profiles = &self.profiles;
        self.runner.run_plans(
            gpu,
            &[&self.plan],
            images,
            draws,
            state_for,
            |plan, chunk, start, count| {
                for (head, batch_profile) in profiles.iter().enumerate() {
                    gather_profile(gpu, &plan.profiles[head], chunk, start, count, batch_profile)?;
                }
                Ok(())
            },
        )
    }

    /// (d0, d1) of every triplet of `draws`, without dropout, for every cell and then every baseline.
    fn distances(&mut self, gpu: &Gpu, images: &ImageBank, draws: &TripletDraws) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let n = self.cells.len() + self.baselines.len();
        let mut out = vec![(Vec::with_capacity(draws.len()), Vec::with_capacity(draws.len())); n];
        let batch = self.config.batch;
        // Every read is queued behind its scorer's sum and collected at the end: no chunk waits for another.
        let mut reads = Vec::new();
        self.profile_batches(gpu, images, draws, |group, _, count| {
            let scorers = group
                .cells
                .iter()
                .map(|c| &c.scorer)
                .chain(group.baselines.iter().map(|b| &b.1));
            for (i, scorer) in scorers.enumerate() {
                gpu.run(std::slice::from_ref(&scorer.sum))?;
                reads.push((i, count, gpu.read_later(&scorer.d, 2 * batch)?));
            }
            Ok(())
        })?;
        for (i, count, read) in reads {
            let d = gpu.finish_read(read)?;
            out[i].0.extend_from_slice(&d[..count]);
            out[i].1.extend_from_slice(&d[batch..batch + count]);
        }
        Ok(out)
    }

    /// 2AFC of every cell on `draws`, each under its own context's labels.
    pub fn cell_scores(&mut self, gpu: &Gpu, images: &ImageBank, draws: &TripletDraws) -> Result<Vec<f64>> {
        Ok(self.scores(gpu, images, draws)?.0)
    }

    /// 2AFC of every cell on `draws` under its own context's labels, and per baseline method the distances
    /// (d0, d1) of every triplet, from which the untrained metric's score under any context follows.
    #[allow(clippy::type_complexity)]
    pub fn scores(
        &mut self,
        gpu: &Gpu,
        images: &ImageBank,
        draws: &TripletDraws,
    ) -> Result<(Vec<f64>, Vec<(Vec<f32>, Vec<f32>)>)> {
        let mut distances = self.distances(gpu, images, draws)?;
        let baselines = distances.split_off(self.cells.len());
        let scores = self
            .cells
            .iter()
            .zip(&distances)
            .map(|(cell, (d0, d1))| crate::eval::two_afc_score(d0, d1, &draws.labels_for(&cell.cell.ranking)))
            .collect::<Result<Vec<_>>>()?;
        Ok((scores, baselines))
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The methods of the group's pair profiles, in head order.
    pub fn methods(&self) -> &[Method] {
        &self.heads
    }

    /// Cell `i`'s trained parameters, epoch reports and metadata, read back from the GPU.
    pub fn trained(&self, gpu: &Gpu, i: usize) -> Result<TrainedMetric> {
        let c = &self.config;
        let cell = &self.cells[i];
        let w = gpu.read(&cell.w, cell.w.numel())?;
        let rank_net = gpu.read(&cell.state.theta, cell.state.theta.numel())?;
        let metadata = run_metadata(
            gpu,
            c,
            cell.cell.method,
            &cell.cell.ranking,
            (self.train_images, self.validation_images),
            &cell.reports,
        );
        Ok(TrainedMetric {
            w,
            rank_net,
            network: Vec::new(),
            channels: self.channels.clone(),
            epochs: cell.reports.clone(),
            metadata,
        })
    }
}
