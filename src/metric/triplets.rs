use crate::context::TripletDraws;
use crate::data::ImageBank;
use crate::distort::DistortionParams;
use crate::gpu::Gpu;
use crate::kernels::distance;
use crate::kernels::distort::DistortPlan;
use crate::kernels::images::ByteImages;
use crate::{bail, Result};

use super::{balanced_chunk, GroupPlan, Metric};

/// Distortion-ranking triplets on the GPU: clean images are uploaded once per chunk (as bytes), distorted there into p0
/// and p1 (each image with its own distortion and parameters), and fed with the references through the
/// metric's recorded plan. Training gathers the pair profiles; evaluation reads the distances.
pub struct TripletRunner {
    chunk: usize,
    raw_reference: bool,
    distort: DistortPlan,
    /// Uploads a chunk's clean images into the first half of the distortion's input.
    clean: ByteImages,
}

impl TripletRunner {
    /// A runner for batches of up to `batch` triplets, split into chunks that fit the adapter. With
    /// `raw_reference` the references skip ImageNet normalisation (the paper's code path).
    pub fn new(gpu: &Gpu, metric: &mut Metric, batch: usize, raw_reference: bool) -> Result<TripletRunner> {
        let chunk = balanced_chunk(metric.groups_per_chunk(gpu, 3)?, batch);
        metric.prepare(gpu, chunk, 3, raw_reference)?;
        TripletRunner::with_chunk(gpu, chunk, metric.size, raw_reference)
    }

    /// A runner for chunks of exactly `chunk` triplets of `size`×`size` images, for plans built elsewhere.
    pub fn with_chunk(gpu: &Gpu, chunk: usize, size: usize, raw_reference: bool) -> Result<TripletRunner> {
        let distort = DistortPlan::new(gpu, 2 * chunk, size)?;
        let clean = ByteImages::new(gpu, &distort.input, chunk * 3 * size * size)?;
        Ok(TripletRunner {
            chunk,
            raw_reference,
            distort,
            clean,
        })
    }

    /// Triplets per chunk.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Runs every chunk of `draws` through distortion, features and pair profile, with the dropout state
    /// `state_for(first triplet of the chunk)`, then calls `on_chunk(plan, chunk, start, count)`.
    pub fn run_batch(
        &mut self,
        gpu: &Gpu,
        metric: &mut Metric,
        images: &ImageBank,
        draws: &TripletDraws,
        state_for: impl Fn(usize) -> [u32; 4],
        on_chunk: impl FnMut(&GroupPlan, usize, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let plan = metric.prepare(gpu, self.chunk, 3, self.raw_reference)?;
        self.run_plans(gpu, &[plan], images, draws, state_for, on_chunk)
    }

    /// [`TripletRunner::run_batch`] on plans for chunks of this runner's size and groups of 3: chunk k runs
    /// on `plans[k % plans.len()]`, so with one plan per chunk every chunk's activations stay in place.
    pub fn run_plans(
        &mut self,
        gpu: &Gpu,
        plans: &[&GroupPlan],
        images: &ImageBank,
        draws: &TripletDraws,
        state_for: impl Fn(usize) -> [u32; 4],
        mut on_chunk: impl FnMut(&GroupPlan, usize, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let chunk = self.chunk;
        for plan in plans {
            if plan.forward.batch != 3 * chunk {
                bail!(
                    "a plan for {} images cannot run chunks of {chunk} triplets",
                    plan.forward.batch
                );
            }
        }
        let mut start = 0;
        while start < draws.len() {
            let plan = plans[(start / chunk) % plans.len()];
            let image_len = 3 * plan.forward.size * plan.forward.size;
            let count = chunk.min(draws.len() - start);
            // Stale images of an earlier chunk would only cost time, but zeros keep runs reproducible.
            let padding = vec![0u8; (chunk - count) * image_len];
            let mut parts = Vec::with_capacity(count + 1);
            for g in 0..count {
                parts.push(images.bytes(draws.images[start + g])?);
            }
            parts.push(&padding);
            let mut params: Vec<Option<DistortionParams>> = vec![None; 2 * chunk];
            for g in 0..count {
                let (p0, p1) = draws.distortions[start + g];
                params[g] = Some(p0);
                params[chunk + g] = Some(p1);
            }
            // Uploaded once, as bytes: the references and the sources of p0 and p1 are copies made on the GPU.
            let clean = chunk * image_len;
            self.clean.write_parts(gpu, &parts)?;
            gpu.copy(&self.distort.input, 0, &plan.forward.input, 0, clean)?;
            gpu.copy(&plan.forward.input, 0, &self.distort.input, clean, clean)?;
            self.distort.set_params(gpu, &params)?;
            gpu.run(&self.distort.dispatches)?;
            gpu.copy(
                &self.distort.output,
                0,
                &plan.forward.input,
                chunk * image_len,
                2 * chunk * image_len,
            )?;
            gpu.write_pod(&plan.state, &state_for(start))?;
            plan.forward.run(gpu)?;
            gpu.run(&plan.dispatches)?;
            on_chunk(plan, chunk, start, count)?;
            start += count;
        }
        Ok(())
    }

    /// d(ref, p0) and d(ref, p1) of every triplet, without dropout.
    pub fn distances(
        &mut self,
        gpu: &Gpu,
        metric: &mut Metric,
        images: &ImageBank,
        draws: &TripletDraws,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        // Every chunk's distances go into one buffer on the GPU, read once: no chunk waits for the one before.
        let n = draws.len();
        let all = gpu.zeros("distances of the batch", &[2, n.max(1)])?;
        self.run_batch(
            gpu,
            metric,
            images,
            draws,
            |start| distance::dropout_state(0, start as u32, 0.0),
            |plan, chunk, start, count| {
                gpu.run(std::slice::from_ref(plan.sum()?))?;
                gpu.copy(&plan.distances, 0, &all, start, count)?;
                gpu.copy(&plan.distances, chunk, &all, n + start, count)
            },
        )?;
        let d = gpu.read(&all, 2 * n)?;
        Ok((d[..n].to_vec(), d[n..].to_vec()))
    }

    /// Mean 2AFC of the triplets under their labels.
    pub fn two_afc(&mut self, gpu: &Gpu, metric: &mut Metric, images: &ImageBank, draws: &TripletDraws) -> Result<f64> {
        let (d0, d1) = self.distances(gpu, metric, images, draws)?;
        crate::eval::two_afc_score(&d0, &d1, &draws.labels)
    }
}
