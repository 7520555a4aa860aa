use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use serde_json::{json, Map, Value};

use crate::context::{Ranking, TripletDraws};
use crate::data::{Bapps, ImageBank};
use crate::error::Context;
use crate::eval::bapps::score_bapps;
use crate::eval::two_afc_score;
use crate::gpu::Gpu;
use crate::metric::{Method, Metric, TripletRunner, WeightsChoice};
use crate::nets::NetKind;
use crate::progress::{Progress, Silent};
use crate::train::{checkpoint, train as train_alone, Cell, CellGroup, TrainConfig, TrainedMetric, Variant};
use crate::{bail, Result};

use super::grid::{grid, GridCell, Shard};
use super::results::ResultsFile;

/// The grid and the settings every cell shares.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub nets: Vec<NetKind>,
    pub methods: Vec<Method>,
    pub rankings: Vec<Ranking>,
    pub seeds: Vec<u64>,
    /// What adapted cells train: the scalars (cells of a net and seed share features) or the whole network
    /// (every cell trains alone: its features change with it).
    pub variant: Variant,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub size: usize,
    pub paper_faithful: bool,
    /// Seed of the test triplets (as `eval --seed`).
    pub eval_seed: u64,
    pub limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub weights_dir: Option<PathBuf>,
    pub shard: Shard,
}

/// A named test set of images; the first one given is the in-distribution test.
pub struct TestSet {
    pub name: String,
    pub images: ImageBank,
}

/// A BAPPS 2afc or jnd split, scored for every cell.
pub struct BappsSet {
    pub path: PathBuf,
    pub bapps: Bapps,
}

/// What a sweep did.
#[derive(Debug)]
pub struct SweepSummary {
    /// Cells of the grid this shard owns.
    pub owned: usize,
    /// Of those, already in results.jsonl when the sweep started.
    pub skipped: usize,
    pub ran: usize,
    pub seconds: f64,
    pub results: PathBuf,
}

impl SweepConfig {
    /// Everything that decides the results (not the shard): a rerun into the same directory must match it.
    pub fn settings(&self, train: &ImageBank, tests: &[TestSet], bapps: &[BappsSet]) -> Value {
        json!({
            "format": "dps-gpu sweep settings v1",
            "train": train.source,
            "tests": tests.iter().map(|t| json!({"name": t.name, "source": t.images.source})).collect::<Vec<_>>(),
            "bapps": bapps.iter().map(|b| b.path.display().to_string()).collect::<Vec<_>>(),
            "nets": self.nets.iter().map(|n| n.name()).collect::<Vec<_>>(),
            "methods": self.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "rankings": self.rankings.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            "seeds": self.seeds,
            "variant": self.variant.name(),
            "epochs": self.epochs, "batch": self.batch, "lr": self.lr, "size": self.size,
            "paper_faithful": self.paper_faithful, "eval_seed": self.eval_seed,
            "limit": self.limit, "test_limit": self.test_limit,
        })
    }
}

/// Writes DIR/sweep.json on the first run and refuses a rerun with other settings.
fn check_settings(dir: &Path, settings: &Value) -> Result<()> {
    let path = dir.join("sweep.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path).context(format!("reading {}", path.display()))?;
        let old: Value = serde_json::from_str(&text).context(format!("{} is not JSON", path.display()))?;
        if &old != settings {
            let differ: Vec<String> = settings
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| old.get(k.as_str()) != Some(v))
                .map(|(k, v)| format!("{k}: {} → {v}", old.get(k.as_str()).unwrap_or(&Value::Null)))
                .collect();
            bail!(
                "{} holds a sweep with other settings ({}); use another --out or the same arguments",
                dir.display(),
                differ.join("; ")
            );
        }
        return Ok(());
    }
    let tmp = dir.join("sweep.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_string_pretty(settings).expect("JSON values always serialise"),
    )
    .and_then(|_| std::fs::rename(&tmp, &path))
    .context(format!("writing {}", path.display()))
}

/// Runs every cell of the grid that this shard owns and `dir`/results.jsonl does not hold yet. Cells of one
/// net and seed train together on shared features ([`CellGroup`]); baselines are scored with the net's first
/// group. `log` receives a line per finished cell.
#[allow(clippy::too_many_arguments)]
pub fn run_sweep(
    gpu: &Gpu,
    config: &SweepConfig,
    train: &ImageBank,
    tests: &[TestSet],
    bapps: &[BappsSet],
    dir: &Path,
    progress: &mut dyn Progress,
    log: &mut dyn FnMut(&str),
) -> Result<SweepSummary> {
    let started = Instant::now();
    if tests.is_empty() {
        bail!("a sweep needs at least one --test set (the first is the in-distribution one)");
    }
    if config.seeds.is_empty() {
        bail!("--seeds must be at least 1");
    }
    std::fs::create_dir_all(dir.join("metrics")).context(format!("creating {}", dir.display()))?;
    check_settings(dir, &config.settings(train, tests, bapps))?;
    let mut results = ResultsFile::open(dir)?;
    if results.repaired {
        log(&format!("cut off a truncated last line of {}", results.path.display()));
    }
    let cells = grid(
        &config.nets,
        &config.methods,
        &config.rankings,
        &config.seeds,
        config.variant,
    );
    let owned: Vec<&GridCell> = cells
        .iter()
        .enumerate()
        .filter(|(i, _)| config.shard.owns(*i))
        .map(|(_, c)| c)
        .collect();
    let skipped = owned.iter().filter(|c| results.is_done(&c.id())).count();
    let mut ran = 0;
    for &net in &config.nets {
        let pending: Vec<&GridCell> = owned
            .iter()
            .copied()
            .filter(|c| c.net == net && !results.is_done(&c.id()))
            .collect();
        if pending.is_empty() {
            continue;
        }
        let mut baselines: Vec<&GridCell> = pending.iter().copied().filter(|c| c.seed.is_none()).collect();
        let mut seeds: Vec<Option<u64>> = config
            .seeds
            .iter()
            .filter(|&&s| pending.iter().any(|c| c.seed == Some(s)))
            .map(|&s| Some(s))
            .collect();
        if seeds.is_empty() {
            seeds.push(None); // only baselines left: one group without training
        }
        let draws: Vec<TripletDraws> = tests
            .iter()
            .map(|t| {
                let order: Vec<usize> = (0..t.images.len()).collect();
                let mut rng = rand::rngs::StdRng::seed_from_u64(config.eval_seed);
                TripletDraws::draw(&order, &config.rankings[0], &mut rng, config.size)
            })
            .collect();
        for seed in seeds {
            let group_started = Instant::now();
            let adapted: Vec<&GridCell> = pending
                .iter()
                .copied()
                .filter(|c| seed.is_some() && c.seed == seed)
                .collect();
            let group_baselines = std::mem::take(&mut baselines);
            let mut baseline_methods: Vec<Method> = Vec::new();
            for c in &group_baselines {
                if !baseline_methods.contains(&c.method) {
                    baseline_methods.push(c.method);
                }
            }
            let train_config = TrainConfig {
                net,
                method: adapted.first().map(|c| c.method).unwrap_or(config.methods[0]),
                ranking: config.rankings[0].clone(),
                epochs: config.epochs,
                batch: config.batch,
                lr: config.lr,
                seed: seed.unwrap_or(config.seeds[0]),
                size: config.size,
                paper_faithful: config.paper_faithful,
                variant: Variant::Scalars,
                weights_dir: config.weights_dir.clone(),
                dataset: train.source.clone(),
                limit: config.limit,
            };
            // Adapted-net cells cannot share features (each tunes its own network): they train alone below.
            let (net_cells, adapted): (Vec<&GridCell>, Vec<&GridCell>) =
                adapted.into_iter().partition(|c| c.variant == Variant::Net);
            let group_cells: Vec<Cell> = adapted
                .iter()
                .map(|c| Cell {
                    method: c.method,
                    ranking: c.ranking.clone(),
                })
                .collect();
            let mut adapted_scores = vec![Vec::new(); adapted.len()];
            let mut baseline_scores = vec![Vec::new(); group_baselines.len()];
            let mut trained: Vec<TrainedMetric> = Vec::new();
            if !group_cells.is_empty() || !baseline_methods.is_empty() {
                let mut group = CellGroup::new(gpu, &train_config, &group_cells, &baseline_methods)?;
                if !group.is_empty() {
                    let n = group.len();
                    let mut mean = 0.0;
                    group.train(gpu, train, progress, &mut |i, r| {
                        mean += r.validation_two_afc / n as f64;
                        if i + 1 == n {
                            log(&format!(
                                "{} seed {}: epoch {}/{}, mean validation 2AFC {mean:.4} over {n} cells, {:.0} triplets/s",
                                net.name(),
                                train_config.seed,
                                r.epoch,
                                config.epochs,
                                r.triplets_per_second
                            ));
                            mean = 0.0;
                        }
                    })?;
                }
                // Per test set: the cells' scores and the baselines' distances.
                for (test, draws) in tests.iter().zip(&draws) {
                    let (scores, distances) = group.scores(gpu, &test.images, draws)?;
                    for (row, s) in adapted_scores.iter_mut().zip(scores) {
                        row.push(s);
                    }
                    for (row, cell) in baseline_scores.iter_mut().zip(&group_baselines) {
                        let head = baseline_methods
                            .iter()
                            .position(|&m| m == cell.method)
                            .expect("listed above");
                        let (d0, d1) = &distances[head];
                        row.push(two_afc_score(d0, d1, &draws.labels_for(&cell.ranking))?);
                    }
                }
                trained = (0..adapted.len())
                    .map(|i| group.trained(gpu, i))
                    .collect::<Result<_>>()?;
            }
            let n_lines = adapted.len() + group_baselines.len();
            let group_seconds = group_started.elapsed().as_secs_f64();
            let common = Common {
                config,
                tests,
                draws: &draws,
                group_seconds,
                group_cells: n_lines,
                wall_seconds: group_seconds / n_lines.max(1) as f64,
                adapter: gpu.describe(),
            };
            for (i, cell) in adapted.iter().enumerate() {
                let file = save_metric(dir, cell, &trained[i])?;
                let bapps_scores = score_all_bapps(gpu, config, cell, Some(&dir.join(&file)), bapps)?;
                let line = adapted_line(
                    &common,
                    cell,
                    &adapted_scores[i],
                    bapps_scores,
                    train,
                    &trained[i],
                    &file,
                );
                results.append(&Value::Object(line))?;
                ran += 1;
                log(&format!("{}  {}", cell.id(), summary(tests, &adapted_scores[i])));
            }
            for (cell, scores) in group_baselines.iter().zip(&baseline_scores) {
                let bapps_scores = score_all_bapps(gpu, config, cell, None, bapps)?;
                let line = common.line(cell, scores, bapps_scores);
                results.append(&Value::Object(line))?;
                ran += 1;
                log(&format!("{}  {}", cell.id(), summary(tests, scores)));
            }
            for cell in net_cells {
                let started = Instant::now();
                let cell_config = TrainConfig {
                    method: cell.method,
                    ranking: cell.ranking.clone(),
                    variant: Variant::Net,
                    ..train_config.clone()
                };
                let t = train_alone(gpu, &cell_config, train, progress, &mut |r| {
                    log(&format!(
                        "{}: epoch {}/{}, validation 2AFC {:.4}, {:.1} triplets/s",
                        cell.id(),
                        r.epoch,
                        config.epochs,
                        r.validation_two_afc,
                        r.triplets_per_second
                    ))
                })?;
                let file = save_metric(dir, cell, &t)?;
                let scores = score_metric_file(gpu, config, cell, &dir.join(&file), tests, &draws)?;
                let bapps_scores = score_all_bapps(gpu, config, cell, Some(&dir.join(&file)), bapps)?;
                let seconds = started.elapsed().as_secs_f64();
                let alone = Common {
                    group_seconds: seconds,
                    group_cells: 1,
                    wall_seconds: seconds,
                    ..common.clone()
                };
                let line = adapted_line(&alone, cell, &scores, bapps_scores, train, &t, &file);
                results.append(&Value::Object(line))?;
                ran += 1;
                log(&format!("{}  {}", cell.id(), summary(tests, &scores)));
            }
        }
    }
    Ok(SweepSummary {
        owned: owned.len(),
        skipped,
        ran,
        seconds: started.elapsed().as_secs_f64(),
        results: results.path.clone(),
    })
}

fn summary(tests: &[TestSet], scores: &[f64]) -> String {
    tests
        .iter()
        .zip(scores)
        .map(|(t, s)| format!("{} {s:.4}", t.name))
        .collect::<Vec<_>>()
        .join("  ")
}

/// What every line of a group shares.
#[derive(Clone)]
struct Common<'a> {
    config: &'a SweepConfig,
    tests: &'a [TestSet],
    draws: &'a [TripletDraws],
    group_seconds: f64,
    group_cells: usize,
    wall_seconds: f64,
    adapter: String,
}

impl Common<'_> {
    fn line(&self, cell: &GridCell, scores: &[f64], bapps: Option<Value>) -> Map<String, Value> {
        let mut tests = Map::new();
        for ((t, d), s) in self.tests.iter().zip(self.draws).zip(scores) {
            tests.insert(t.name.clone(), json!({"two_afc": s, "triplets": d.len()}));
        }
        let mut line = json!({
            "format": "dps-gpu sweep v1",
            "cell": cell.id(),
            "kind": if cell.seed.is_some() { "adapted" } else { "baseline" },
            "net": cell.net.name(), "method": cell.method.name(),
            "ranking": cell.ranking.name, "ranking_order": cell.ranking.describe(),
            "seed": cell.seed, "variant": cell.variant.name(), "paper_faithful": self.config.paper_faithful,
            "in_distribution": self.tests[0].name, "tests": tests,
            "eval_seed": self.config.eval_seed, "size": self.config.size,
            // The group's time shared evenly by its lines: cells of a group are trained together.
            "wall_seconds": self.wall_seconds, "group_seconds": self.group_seconds, "group_cells": self.group_cells,
            "adapter": self.adapter, "dps_gpu_version": env!("CARGO_PKG_VERSION"),
        });
        let map = line.as_object_mut().expect("an object");
        if let Some(b) = bapps {
            map.insert("bapps".into(), b);
        }
        map.clone()
    }
}

/// Writes an adapted cell's metric to DIR/metrics/ and returns its path relative to DIR.
fn save_metric(dir: &Path, cell: &GridCell, t: &TrainedMetric) -> Result<PathBuf> {
    let file = PathBuf::from("metrics").join(format!("{}.safetensors", cell.id().replace('/', "_")));
    checkpoint::save(
        &dir.join(&file),
        cell.method,
        &t.channels,
        &t.w,
        &t.rank_net,
        &t.network,
        t.metadata.clone(),
    )?;
    Ok(file)
}

/// An adapted cell's line: the common fields and what its training did.
fn adapted_line(
    common: &Common,
    cell: &GridCell,
    scores: &[f64],
    bapps: Option<Value>,
    train: &ImageBank,
    t: &TrainedMetric,
    file: &Path,
) -> Map<String, Value> {
    let c = common.config;
    let mut line = common.line(cell, scores, bapps);
    let train_info = json!({
        "epochs": c.epochs, "batch": c.batch, "lr": c.lr,
        "dataset": train.source, "limit": c.limit,
        "train_images": t.metadata.get("train_images"),
        "validation_images": t.metadata.get("validation_images"),
        "final_validation_2afc": t.epochs.last().map(|r| r.validation_two_afc),
        "final_train_loss": t.epochs.last().map(|r| r.train_loss),
        "metric_file": file,
    });
    line.insert("train".into(), train_info);
    line
}

/// A cell's metric as `eval` loads it: the adapted one saved in `file` (with its tuned network, if any), else the
/// baseline.
fn load_metric(gpu: &Gpu, config: &SweepConfig, cell: &GridCell, file: Option<&Path>) -> Result<Metric> {
    let choice = match file {
        Some(f) => WeightsChoice::Scalars(f.to_path_buf()),
        None => WeightsChoice::Baseline,
    };
    Metric::load(
        gpu,
        cell.net,
        cell.method,
        &choice,
        config.weights_dir.as_deref(),
        config.size,
    )
}

/// The 2AFC of a saved adapted metric on every test set under the cell's context, as `eval --scalars FILE`
/// computes it (for adapted-net cells, whose file carries the tuned network).
fn score_metric_file(
    gpu: &Gpu,
    config: &SweepConfig,
    cell: &GridCell,
    file: &Path,
    tests: &[TestSet],
    draws: &[TripletDraws],
) -> Result<Vec<f64>> {
    let mut metric = load_metric(gpu, config, cell, Some(file))?;
    let mut runner = TripletRunner::new(gpu, &mut metric, config.batch, config.paper_faithful)?;
    let mut scores = Vec::new();
    for (test, draws) in tests.iter().zip(draws) {
        let (d0, d1) = runner.distances(gpu, &mut metric, &test.images, draws)?;
        scores.push(two_afc_score(&d0, &d1, &draws.labels_for(&cell.ranking))?);
    }
    Ok(scores)
}

/// BAPPS scores of one metric (the adapted one saved in `file`, else the baseline), or None without --bapps.
fn score_all_bapps(
    gpu: &Gpu,
    config: &SweepConfig,
    cell: &GridCell,
    file: Option<&Path>,
    sets: &[BappsSet],
) -> Result<Option<Value>> {
    if sets.is_empty() {
        return Ok(None);
    }
    let mut metric = load_metric(gpu, config, cell, file)?;
    let mut out = Map::new();
    for set in sets {
        let score = score_bapps(gpu, &mut metric, &set.bapps, &mut Silent)?;
        let key = if score.kind == "2afc" { "2afc" } else { "jnd_map" };
        if out.contains_key(key) {
            bail!("--bapps: give at most one 2afc and one jnd directory");
        }
        out.insert(key.into(), json!(score.summary));
    }
    Ok(Some(Value::Object(out)))
}
