//! Scoring a metric on BAPPS (PROTOCOL.md §7): 2AFC per subset and their unweighted mean, and JND mAP per
//! subset and pooled over the subsets given.

use std::path::Path;

use crate::data::{load_resized_bytes, Bapps};
use crate::gpu::Gpu;
use crate::metric::{GroupDistances, Metric, PendingDistances};
use crate::progress::Progress;
use crate::Result;

use super::{jnd_map, two_afc_score};

/// Images loaded and distances computed per batch of this many triplets or pairs.
const BATCH: usize = 256;

#[derive(Clone, Debug)]
pub struct SubsetScore {
    pub subset: String,
    pub count: usize,
    pub score: f64,
}

/// What [`score_bapps`] found: "2afc" or "jnd", each subset's score, and the summary (the mean of the subsets
/// for 2AFC, the pooled mAP for JND).
#[derive(Clone, Debug)]
pub struct BappsScore {
    pub kind: &'static str,
    pub subsets: Vec<SubsetScore>,
    pub summary: f64,
}

/// The batch whose distances the GPU is working on while the host decodes the next one's images.
#[derive(Default)]
struct Queued(Option<(PendingDistances, usize)>);

impl Queued {
    /// Queues `pending` (a batch of `len`) and returns the distances of the batch queued before it.
    fn swap(
        &mut self,
        gpu: &Gpu,
        pending: PendingDistances,
        len: usize,
        name: &str,
        progress: &mut dyn Progress,
    ) -> Result<Option<GroupDistances>> {
        let previous = self.0.replace((pending, len));
        Self::collect(gpu, previous, name, progress)
    }

    /// The distances of the last batch queued.
    fn finish(&mut self, gpu: &Gpu, name: &str, progress: &mut dyn Progress) -> Result<Option<GroupDistances>> {
        Self::collect(gpu, self.0.take(), name, progress)
    }

    fn collect(
        gpu: &Gpu,
        queued: Option<(PendingDistances, usize)>,
        name: &str,
        progress: &mut dyn Progress,
    ) -> Result<Option<GroupDistances>> {
        let Some((pending, len)) = queued else {
            return Ok(None);
        };
        let d = pending.wait(gpu)?;
        progress.advance(len as u64, name);
        Ok(Some(d))
    }
}

pub fn score_bapps(gpu: &Gpu, metric: &mut Metric, bapps: &Bapps, progress: &mut dyn Progress) -> Result<BappsScore> {
    let size = metric.size;
    match bapps {
        Bapps::TwoAfc(subsets) => {
            progress.start("BAPPS 2AFC", subsets.iter().map(|s| s.1.len() as u64).sum());
            let mut out = Vec::new();
            for (name, triplets) in subsets {
                let (mut d0, mut d1, mut h) = (Vec::new(), Vec::new(), Vec::new());
                let mut queued = Queued::default();
                for batch in triplets.chunks(BATCH) {
                    let paths: Vec<&Path> = batch
                        .iter()
                        .map(|t| t.reference.as_path())
                        .chain(batch.iter().map(|t| t.p0.as_path()))
                        .chain(batch.iter().map(|t| t.p1.as_path()))
                        .collect();
                    let images = load_resized_bytes(&paths, size)?;
                    h.extend(batch.iter().map(|t| t.judge));
                    let refs: Vec<&[u8]> = images.chunks(images.len() / 3).collect();
                    let pending = metric.queue_group_distances_of_bytes(gpu, &refs, false)?;
                    if let Some(d) = queued.swap(gpu, pending, batch.len(), name, progress)? {
                        d0.extend_from_slice(&d[0]);
                        d1.extend_from_slice(&d[1]);
                    }
                }
                if let Some(d) = queued.finish(gpu, name, progress)? {
                    d0.extend_from_slice(&d[0]);
                    d1.extend_from_slice(&d[1]);
                }
                out.push(SubsetScore {
                    subset: name.clone(),
                    count: h.len(),
                    score: two_afc_score(&d0, &d1, &h)?,
                });
            }
            progress.finish();
            let summary = out.iter().map(|s| s.score).sum::<f64>() / out.len().max(1) as f64;
            Ok(BappsScore {
                kind: "2afc",
                subsets: out,
                summary,
            })
        }
        Bapps::Jnd(subsets) => {
            progress.start("BAPPS JND", subsets.iter().map(|s| s.1.len() as u64).sum());
            let (mut all_d, mut all_same, mut out) = (Vec::new(), Vec::new(), Vec::new());
            for (name, pairs) in subsets {
                let (mut d, mut same) = (Vec::new(), Vec::new());
                let mut queued = Queued::default();
                for batch in pairs.chunks(BATCH) {
                    let paths: Vec<&Path> = batch
                        .iter()
                        .map(|p| p.p0.as_path())
                        .chain(batch.iter().map(|p| p.p1.as_path()))
                        .collect();
                    let images = load_resized_bytes(&paths, size)?;
                    same.extend(batch.iter().map(|p| p.same));
                    let refs: Vec<&[u8]> = images.chunks(images.len() / 2).collect();
                    let pending = metric.queue_group_distances_of_bytes(gpu, &refs, false)?;
                    if let Some(got) = queued.swap(gpu, pending, batch.len(), name, progress)? {
                        d.extend_from_slice(&got[0]);
                    }
                }
                if let Some(got) = queued.finish(gpu, name, progress)? {
                    d.extend_from_slice(&got[0]);
                }
                out.push(SubsetScore {
                    subset: name.clone(),
                    count: d.len(),
                    score: jnd_map(&d, &same)?,
                });
                all_d.extend(d);
                all_same.extend(same);
            }
            progress.finish();
            Ok(BappsScore {
                kind: "jnd",
                subsets: out,
                summary: jnd_map(&all_d, &all_same)?,
            })
        }
    }
}
