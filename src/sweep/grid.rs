//! The cells of a sweep: which (net, method, context, seed) runs exist, their ids, and which shard runs each.

use crate::context::{Ranking, PAPER_RANKINGS};
use crate::metric::Method;
use crate::nets::NetKind;
use crate::train::Variant;
use crate::{bail, Result};

/// One result line of the grid: an adapted metric (with its training seed) or a baseline (w = 1).
#[derive(Clone, Debug)]
pub struct GridCell {
    pub net: NetKind,
    pub method: Method,
    pub ranking: Ranking,
    /// None for a baseline.
    pub seed: Option<u64>,
    /// What an adapted cell trains (baselines train nothing).
    pub variant: Variant,
}

impl GridCell {
    /// The cell's stable id, the key of its line in results.jsonl. Adapted-net cells have their own prefix so
    /// that `report` can merge a scalars sweep with a net sweep of the same grid (the paper's Table 3).
    pub fn id(&self) -> String {
        let adapted = match self.variant {
            Variant::Scalars => "adapted",
            Variant::Net => "adapted-net",
        };
        match self.seed {
            Some(s) => format!(
                "{adapted}/{}/{}/r{}/s{s}",
                self.net.name(),
                self.method.name(),
                self.ranking.name
            ),
            None => format!(
                "baseline/{}/{}/r{}",
                self.net.name(),
                self.method.name(),
                self.ranking.name
            ),
        }
    }
}

/// Every cell of the grid in a fixed order: per net its baselines, then its adapted cells seed by seed.
pub fn grid(
    nets: &[NetKind],
    methods: &[Method],
    rankings: &[Ranking],
    seeds: &[u64],
    variant: Variant,
) -> Vec<GridCell> {
    let mut cells = Vec::new();
    for &net in nets {
        for seed in std::iter::once(None).chain(seeds.iter().map(|&s| Some(s))) {
            for &method in methods {
                for ranking in rankings {
                    cells.push(GridCell {
                        net,
                        method,
                        ranking: ranking.clone(),
                        seed,
                        variant,
                    });
                }
            }
        }
    }
    cells
}

/// Shard K of N (K from 1): the cells whose index in [`grid`]'s order is K−1 modulo N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// "K/N" with 1 ≤ K ≤ N.
    pub fn parse(spec: &str) -> Result<Shard> {
        let parsed = spec
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
        match parsed {
            Some((index, count)) if index >= 1 && index <= count => Ok(Shard { index, count }),
            _ => bail!("--shard takes K/N with 1 ≤ K ≤ N (e.g. 3/8), got {spec:?}"),
        }
    }

    pub fn owns(&self, cell_index: usize) -> bool {
        cell_index % self.count == self.index - 1
    }
}

/// A list of paper contexts: numbers and ranges, e.g. "0-19" or "0,3,5-7". Custom rankings are named with
/// `train --ranking`; a sweep runs the paper's.
pub fn parse_rankings(spec: &str) -> Result<Vec<Ranking>> {
    let mut out: Vec<Ranking> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else {
            bail!("--rankings takes paper context numbers and ranges such as 0-19 or 0,3,5-7; got {item:?}");
        };
        if a > b || b >= PAPER_RANKINGS.len() {
            bail!(
                "--rankings: {item:?} is not a range within 0-{}",
                PAPER_RANKINGS.len() - 1
            );
        }
        for i in a..=b {
            let r = Ranking::parse(&i.to_string())?;
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    if out.is_empty() {
        bail!("--rankings names no context");
    }
    Ok(out)
}

/// A comma-separated list parsed item by item, without repeats.
pub fn parse_list<T: PartialEq>(spec: &str, what: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v = parse(item)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        bail!("{what} names nothing");
    }
    Ok(out)
}
