//! The report's numbers, defined as the paper uses them (section 4): Table 3's averages, how often adapting beats
//! the baseline, and the Spearman and Pearson correlations over contexts. The definitions are repeated in report.md.

use std::collections::BTreeMap;

use super::grid::{Combo, Grid, Measure};
use super::results::Kind;
use super::stats::{mean, pearson, spearman, summary, Summary};

/// A row of the Table 3-style table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    Baseline,
    Adapted(String),
}

pub struct TableRow {
    /// `None`: all (net, method) combinations pooled.
    pub combo: Option<Combo>,
    pub row: Row,
    /// One per measure of [`Grid::measures`]: over the row's cells (contexts for baselines, contexts × seeds for
    /// adapted metrics).
    pub cells: Vec<Option<Summary>>,
}

/// How often the seed-mean of an adapted metric is strictly above its baseline, over (net, method, context).
pub struct Beats {
    pub variant: String,
    pub measure: Measure,
    pub wins: usize,
    pub total: usize,
    /// The (combo, context, adapted mean, baseline) that did not win, worst first.
    pub losses: Vec<(Combo, String, f64, f64)>,
}

/// Spearman over contexts of the per-context averages of baseline and adapted scores.
pub struct RankCorrelation {
    pub variant: String,
    /// `None`: averaged over the combinations that have the variant (the paper's number).
    pub combo: Option<Combo>,
    pub measure: Measure,
    pub rho: Option<f64>,
    pub contexts: usize,
}

/// Pearson correlations between combinations over contexts.
pub struct PearsonMatrix {
    /// `Row::Baseline` or the adapted variant the scores are of.
    pub row: Row,
    pub measure: Measure,
    pub combos: Vec<Combo>,
    pub r: Vec<Vec<Option<f64>>>,
    /// The mean of the defined entries above the diagonal.
    pub mean_off_diagonal: Option<f64>,
}

pub struct Header {
    pub cells: usize,
    pub baseline_cells: usize,
    pub adapted_cells: BTreeMap<String, usize>,
    pub seeds: Vec<u64>,
    pub nets: Vec<String>,
    pub methods: Vec<String>,
    pub paper_faithful_cells: usize,
    pub wall_seconds: f64,
    /// Adapter → cells run on it.
    pub adapters: BTreeMap<String, usize>,
}

pub struct Analysis {
    pub header: Header,
    pub table: Vec<TableRow>,
    pub beats: Vec<Beats>,
    pub spearman: Vec<RankCorrelation>,
    pub pearson: Vec<PearsonMatrix>,
    /// Per context (in `grid.contexts` order): the baseline score on the colour set averaged over combinations,
    /// and its rank among the contexts (0 = lowest), which the figures colour by.
    pub context_baseline: Vec<Option<f64>>,
    pub context_rank: Vec<Option<usize>>,
}

pub fn analyse(grid: &Grid) -> Analysis {
    let header = header(grid);
    let table = table(grid);
    let mut beats = Vec::new();
    let mut spearman = Vec::new();
    let mut pearson_m = Vec::new();
    for v in &grid.variants {
        for m in grid.measures() {
            beats.push(beat(grid, v, &m));
        }
        for m in grid.test_sets() {
            spearman.push(rank_correlation(grid, v, None, &m));
            for c in grid.combos_of(v) {
                spearman.push(rank_correlation(grid, v, Some(c), &m));
            }
        }
    }
    let rows = std::iter::once(Row::Baseline).chain(grid.variants.iter().map(|v| Row::Adapted(v.clone())));
    for row in rows {
        for m in grid.test_sets() {
            pearson_m.push(pearson_matrix(grid, &row, &m));
        }
    }
    let colour = grid.colour_set();
    let context_baseline: Vec<Option<f64>> = grid
        .contexts
        .iter()
        .map(|c| {
            mean(
                &grid
                    .combos
                    .iter()
                    .filter_map(|k| grid.baseline(k, &c.name, &colour))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let mut order: Vec<usize> = (0..context_baseline.len())
        .filter(|&i| context_baseline[i].is_some())
        .collect();
    order.sort_by(|&a, &b| context_baseline[a].unwrap().total_cmp(&context_baseline[b].unwrap()));
    let mut context_rank = vec![None; context_baseline.len()];
    for (rank, &i) in order.iter().enumerate() {
        context_rank[i] = Some(rank);
    }
    Analysis {
        header,
        table,
        beats,
        spearman,
        pearson: pearson_m,
        context_baseline,
        context_rank,
    }
}

fn header(grid: &Grid) -> Header {
    let adapted = grid.records.iter().filter(|r| r.kind == Kind::Adapted);
    let mut seeds: Vec<u64> = adapted.filter_map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut nets = Vec::new();
    let mut methods = Vec::new();
    for (n, m) in &grid.combos {
        if !nets.contains(n) {
            nets.push(n.clone());
        }
        if !methods.contains(m) {
            methods.push(m.clone());
        }
    }
    let mut adapted_cells = BTreeMap::new();
    let mut adapters = BTreeMap::new();
    for r in &grid.records {
        if r.kind == Kind::Adapted {
            *adapted_cells.entry(r.variant.clone()).or_default() += 1;
        }
        *adapters
            .entry(r.adapter.clone().unwrap_or_else(|| "(not recorded)".into()))
            .or_default() += 1;
    }
    Header {
        cells: grid.records.len(),
        baseline_cells: grid.records.iter().filter(|r| r.kind == Kind::Baseline).count(),
        adapted_cells,
        seeds,
        nets,
        methods,
        paper_faithful_cells: grid.records.iter().filter(|r| r.paper_faithful).count(),
        wall_seconds: grid.records.iter().map(|r| r.wall_seconds).sum(),
        adapters,
    }
}

fn table(grid: &Grid) -> Vec<TableRow> {
    let measures = grid.measures();
    let mut rows = Vec::new();
    let groups = grid.combos.iter().map(|c| Some(c.clone())).chain(std::iter::once(None));
    for combo in groups {
        let combos: Vec<Combo> = match &combo {
            Some(c) => vec![c.clone()],
            None => grid.combos.clone(),
        };
        let kinds = std::iter::once(Row::Baseline).chain(grid.variants.iter().map(|v| Row::Adapted(v.clone())));
        for row in kinds {
            let cells: Vec<Option<Summary>> = measures
                .iter()
                .map(|m| {
                    let mut xs = Vec::new();
                    for k in &combos {
                        for ctx in &grid.contexts {
                            match &row {
                                Row::Baseline => xs.extend(grid.baseline(k, &ctx.name, m)),
                                Row::Adapted(v) => xs.extend(grid.adapted_seeds(v, k, &ctx.name, m)),
                            }
                        }
                    }
                    summary(&xs)
                })
                .collect();
            if cells.iter().any(Option::is_some) {
                rows.push(TableRow {
                    combo: combo.clone(),
                    row,
                    cells,
                });
            }
        }
    }
    rows
}

fn beat(grid: &Grid, variant: &str, m: &Measure) -> Beats {
    let (mut wins, mut total, mut losses) = (0, 0, Vec::new());
    for k in &grid.combos {
        for ctx in &grid.contexts {
            let (Some(a), Some(b)) = (grid.adapted(variant, k, &ctx.name, m), grid.baseline(k, &ctx.name, m)) else {
                continue;
            };
            total += 1;
            if a > b {
                wins += 1;
            } else {
                losses.push((k.clone(), ctx.name.clone(), a, b));
            }
        }
    }
    losses.sort_by(|x, y| (x.2 - x.3).total_cmp(&(y.2 - y.3)));
    Beats {
        variant: variant.to_string(),
        measure: m.clone(),
        wins,
        total,
        losses,
    }
}

/// Per context: the baseline averaged over the combinations, and the adapted seed-means averaged over the same
/// combinations; Spearman over the contexts where both exist.
fn rank_correlation(grid: &Grid, variant: &str, combo: Option<Combo>, m: &Measure) -> RankCorrelation {
    let combos = match &combo {
        Some(c) => vec![c.clone()],
        None => grid.combos_of(variant),
    };
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for ctx in &grid.contexts {
        let b: Vec<f64> = combos.iter().filter_map(|k| grid.baseline(k, &ctx.name, m)).collect();
        let a: Vec<f64> = combos
            .iter()
            .filter_map(|k| grid.adapted(variant, k, &ctx.name, m))
            .collect();
        if let (Some(b), Some(a)) = (mean(&b), mean(&a)) {
            xs.push(b);
            ys.push(a);
        }
    }
    RankCorrelation {
        variant: variant.to_string(),
        combo,
        measure: m.clone(),
        rho: spearman(&xs, &ys),
        contexts: xs.len(),
    }
}

/// Entry (i, j): Pearson's r over the contexts where both combinations have a score (seed-means for adapted).
fn pearson_matrix(grid: &Grid, row: &Row, m: &Measure) -> PearsonMatrix {
    let combos = match row {
        Row::Baseline => grid.combos.clone(),
        Row::Adapted(v) => grid.combos_of(v),
    };
    let score = |k: &Combo, ctx: &str| match row {
        Row::Baseline => grid.baseline(k, ctx, m),
        Row::Adapted(v) => grid.adapted(v, k, ctx, m),
    };
    let n = combos.len();
    let mut r = vec![vec![None; n]; n];
    let mut off = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for ctx in &grid.contexts {
                if let (Some(x), Some(y)) = (score(&combos[i], &ctx.name), score(&combos[j], &ctx.name)) {
                    xs.push(x);
                    ys.push(y);
                }
            }
            r[i][j] = pearson(&xs, &ys);
            if j > i {
                off.extend(r[i][j]);
            }
        }
    }
    PearsonMatrix {
        row: row.clone(),
        measure: m.clone(),
        combos,
        r,
        mean_off_diagonal: mean(&off),
    }
}
