//! The merged cells arranged as the paper's grid: (net, method) combinations × contexts, baselines and adapted
//! metrics by variant and seed, and the scores (2AFC per test set, BAPPS) that can be read off each cell.

use std::collections::{BTreeMap, BTreeSet};

use super::results::{Kind, Record};

/// A score a cell carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    /// 2AFC on a distortion-ranking test set.
    Test(String),
    /// A BAPPS score by its key ("2afc", "jnd_map", ...).
    Bapps(String),
}

impl Measure {
    pub fn of(&self, r: &Record) -> Option<f64> {
        match self {
            Measure::Test(t) => r.tests.get(t).copied(),
            Measure::Bapps(k) => r.bapps.get(k).copied(),
        }
    }
}

pub type Combo = (String, String);

/// A context: the ranking's name ("7" or a custom one) and its order of distortions where known.
#[derive(Clone, Debug)]
pub struct ContextInfo {
    pub name: String,
    pub order: Option<String>,
}

/// The grid, with the lookups the statistics and figures are built from.
pub struct Grid {
    pub in_distribution: String,
    /// Out-of-distribution test sets, sorted by name.
    pub ood: Vec<String>,
    pub bapps_keys: Vec<String>,
    pub combos: Vec<Combo>,
    pub contexts: Vec<ContextInfo>,
    /// Adapted variants ("scalars" first, then "net", then any other).
    pub variants: Vec<String>,
    pub records: Vec<Record>,
    /// (kind, variant, net, method, ranking) → indices into `records`.
    index: BTreeMap<(Kind, String, String, String, String), Vec<usize>>,
}

const NETS: [&str; 3] = ["alex", "squeeze", "vgg"];
const METHODS: [&str; 5] = ["spatial", "mean", "sort", "spatial+mean", "spatial+sort"];
const VARIANTS: [&str; 2] = ["scalars", "net"];

/// Known names first in their canonical order, any others after them alphabetically.
fn canonical_key<'a>(known: &[&str], name: &'a str) -> (usize, &'a str) {
    (known.iter().position(|k| *k == name).unwrap_or(known.len()), name)
}

/// Paper contexts numerically, custom ones after them by name.
fn context_key(name: &str) -> (u8, u64, &str) {
    match name.parse::<u64>() {
        Ok(n) => (0, n, name),
        Err(_) => (1, 0, name),
    }
}

impl Grid {
    pub fn new(records: Vec<Record>) -> Grid {
        let in_distribution = records.first().map(|r| r.in_distribution.clone()).unwrap_or_default();
        let mut ood = BTreeSet::new();
        let mut bapps_keys = BTreeSet::new();
        let mut combos = BTreeSet::new();
        let mut variants = BTreeSet::new();
        let mut contexts: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut index: BTreeMap<_, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            ood.extend(r.tests.keys().filter(|t| **t != in_distribution).cloned());
            bapps_keys.extend(r.bapps.keys().cloned());
            combos.insert((r.net.clone(), r.method.clone()));
            if r.kind == Kind::Adapted {
                variants.insert(r.variant.clone());
            }
            let order = contexts.entry(r.ranking.clone()).or_default();
            if order.is_none() {
                order.clone_from(&r.ranking_order);
            }
            index
                .entry((
                    r.kind,
                    r.variant.clone(),
                    r.net.clone(),
                    r.method.clone(),
                    r.ranking.clone(),
                ))
                .or_default()
                .push(i);
        }
        let mut combos: Vec<Combo> = combos.into_iter().collect();
        combos.sort_by(|a, b| {
            (canonical_key(&NETS, &a.0), canonical_key(&METHODS, &a.1))
                .cmp(&(canonical_key(&NETS, &b.0), canonical_key(&METHODS, &b.1)))
        });
        let mut variants: Vec<String> = variants.into_iter().collect();
        variants.sort_by(|a, b| canonical_key(&VARIANTS, a).cmp(&canonical_key(&VARIANTS, b)));
        let mut bapps_keys: Vec<String> = bapps_keys.into_iter().collect();
        bapps_keys.sort_by(|a, b| canonical_key(&["2afc", "jnd_map"], a).cmp(&canonical_key(&["2afc", "jnd_map"], b)));
        let mut contexts: Vec<ContextInfo> = contexts
            .into_iter()
            .map(|(name, order)| ContextInfo { name, order })
            .collect();
        contexts.sort_by(|a, b| context_key(&a.name).cmp(&context_key(&b.name)));
        Grid {
            in_distribution,
            ood: ood.into_iter().collect(),
            bapps_keys,
            combos,
            contexts,
            variants,
            records,
            index,
        }
    }

    /// The 2AFC test sets, in-distribution first.
    pub fn test_sets(&self) -> Vec<Measure> {
        std::iter::once(&self.in_distribution)
            .chain(&self.ood)
            .map(|t| Measure::Test(t.clone()))
            .collect()
    }

    /// Every score: the test sets, then BAPPS.
    pub fn measures(&self) -> Vec<Measure> {
        let mut m = self.test_sets();
        m.extend(self.bapps_keys.iter().map(|k| Measure::Bapps(k.clone())));
        m
    }

    /// The set the figures colour contexts by: the first out-of-distribution set, else the in-distribution one.
    pub fn colour_set(&self) -> Measure {
        Measure::Test(self.ood.first().unwrap_or(&self.in_distribution).clone())
    }

    pub fn label(&self, m: &Measure) -> String {
        match m {
            Measure::Test(t) if *t == self.in_distribution => format!("{t} 2AFC (in-distribution)"),
            Measure::Test(t) => format!("{t} 2AFC (out-of-distribution)"),
            Measure::Bapps(k) if k == "2afc" => "BAPPS 2AFC".to_string(),
            Measure::Bapps(k) if k == "jnd_map" => "BAPPS JND mAP".to_string(),
            Measure::Bapps(k) => format!("BAPPS {k}"),
        }
    }

    fn values(&self, kind: Kind, variant: &str, combo: &Combo, ctx: &str, m: &Measure) -> Vec<f64> {
        let key = (
            kind,
            variant.to_string(),
            combo.0.clone(),
            combo.1.clone(),
            ctx.to_string(),
        );
        self.index
            .get(&key)
            .map(|ix| ix.iter().filter_map(|&i| m.of(&self.records[i])).collect())
            .unwrap_or_default()
    }

    /// The baseline's score of a (combo, context); the mean if a merge brought several baseline cells for it.
    pub fn baseline(&self, combo: &Combo, ctx: &str, m: &Measure) -> Option<f64> {
        super::stats::mean(&self.values(Kind::Baseline, "", combo, ctx, m))
    }

    /// The adapted scores of a (variant, combo, context), one per seed.
    pub fn adapted_seeds(&self, variant: &str, combo: &Combo, ctx: &str, m: &Measure) -> Vec<f64> {
        self.values(Kind::Adapted, variant, combo, ctx, m)
    }

    /// The mean over seeds of the adapted scores of a (variant, combo, context).
    pub fn adapted(&self, variant: &str, combo: &Combo, ctx: &str, m: &Measure) -> Option<f64> {
        super::stats::mean(&self.adapted_seeds(variant, combo, ctx, m))
    }

    /// The combinations that have adapted cells of a variant.
    pub fn combos_of(&self, variant: &str) -> Vec<Combo> {
        self.combos
            .iter()
            .filter(|c| {
                self.records
                    .iter()
                    .any(|r| r.kind == Kind::Adapted && r.variant == variant && r.net == c.0 && r.method == c.1)
            })
            .cloned()
            .collect()
    }
}
