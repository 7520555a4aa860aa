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

/// The distances within every group of `members` image files (member 0 the reference), `BATCH` groups at a time,
/// each batch's files decoded while the GPU runs the batch before.
fn file_distances(
    gpu: &Gpu,
    metric: &mut Metric,
    members: usize,
    groups: &[Vec<&Path>],
    name: &str,
    progress: &mut dyn Progress,
) -> Result<GroupDistances> {
    let mut out: GroupDistances = vec![Vec::new(); members - 1];
    let mut collect = |(pending, len): (PendingDistances, usize)| -> Result<()> {
        for (row, d) in out.iter_mut().zip(pending.wait(gpu)?) {
            row.extend(d);
        }
        progress.advance(len as u64, name);
        Ok(())
    };
    let mut queued = None;
    for batch in groups.chunks(BATCH) {
        let paths: Vec<&Path> = (0..members).flat_map(|m| batch.iter().map(move |g| g[m])).collect();
        let images = load_resized_bytes(&paths, metric.size)?;
        let refs: Vec<&[u8]> = images.chunks(images.len() / members).collect();
        let pending = metric.queue_group_distances_of_bytes(gpu, &refs, false)?;
        if let Some(previous) = queued.replace((pending, batch.len())) {
            collect(previous)?;
        }
    }
    if let Some(last) = queued {
        collect(last)?;
    }
    Ok(out)
}

pub fn score_bapps(gpu: &Gpu, metric: &mut Metric, bapps: &Bapps, progress: &mut dyn Progress) -> Result<BappsScore> {
    match bapps {
        Bapps::TwoAfc(subsets) => {
            progress.start("BAPPS 2AFC", subsets.iter().map(|s| s.1.len() as u64).sum());
            let mut out = Vec::new();
            for (name, triplets) in subsets {
                let groups: Vec<Vec<&Path>> = triplets
                    .iter()
                    .map(|t| vec![t.reference.as_path(), t.p0.as_path(), t.p1.as_path()])
                    .collect();
                let d = file_distances(gpu, metric, 3, &groups, name, progress)?;
                let h: Vec<f32> = triplets.iter().map(|t| t.judge).collect();
                out.push(SubsetScore {
                    subset: name.clone(),
                    count: h.len(),
                    score: two_afc_score(&d[0], &d[1], &h)?,
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
                let groups: Vec<Vec<&Path>> = pairs.iter().map(|p| vec![p.p0.as_path(), p.p1.as_path()]).collect();
                let d = file_distances(gpu, metric, 2, &groups, name, progress)?.swap_remove(0);
                let same: Vec<f32> = pairs.iter().map(|p| p.same).collect();
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
