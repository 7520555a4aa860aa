//! Contexts (PROTOCOL.md §4): a ranking of the six distortions, first = most similar to the original, and the
//! distortion-ranking triplets labelled by it.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::distort::{Distortion, DistortionParams};
use crate::{bail, Result};

/// The paper's 20 rankings: Python's `random.seed(0)` then 20 × `random.sample(('rotate', 'translate', 'darken',
/// 'color', 'blur', 'zoom_in'), 6)`, with color = hue and zoom_in = zoom.
pub const PAPER_RANKINGS: [&str; 20] = [
    "hue,zoom,rotate,translate,darken,blur",
    "darken,hue,zoom,blur,rotate,translate",
    "darken,translate,rotate,zoom,blur,hue",
    "darken,rotate,blur,zoom,translate,hue",
    "blur,rotate,darken,translate,hue,zoom",
    "blur,hue,zoom,darken,translate,rotate",
    "blur,rotate,zoom,darken,translate,hue",
    "blur,hue,darken,rotate,translate,zoom",
    "translate,blur,zoom,rotate,darken,hue",
    "rotate,zoom,darken,hue,translate,blur",
    "darken,blur,zoom,hue,rotate,translate",
    "blur,translate,darken,zoom,rotate,hue",
    "darken,blur,translate,hue,rotate,zoom",
    "translate,rotate,darken,zoom,blur,hue",
    "zoom,translate,blur,rotate,darken,hue",
    "zoom,blur,darken,hue,rotate,translate",
    "zoom,blur,hue,darken,translate,rotate",
    "hue,darken,rotate,translate,zoom,blur",
    "blur,darken,translate,rotate,zoom,hue",
    "rotate,translate,darken,zoom,blur,hue",
];

/// A ranking of the six distortions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranking {
    pub order: [Distortion; 6],
    /// "7" for a paper ranking, or the names as given.
    pub name: String,
}

impl Ranking {
    /// A paper ranking by number (`7`), or six distinct distortion names (`blur,hue,zoom,rotate,translate,darken`).
    pub fn parse(spec: &str) -> Result<Ranking> {
        let spec = spec.trim();
        if let Ok(i) = spec.parse::<usize>() {
            let Some(names) = PAPER_RANKINGS.get(i) else {
                bail!("ranking {i} does not exist: the paper's rankings are numbered 0 to 19");
            };
            let mut r = Self::from_names(names)?;
            r.name = i.to_string();
            return Ok(r);
        }
        Self::from_names(spec)
    }

    fn from_names(names: &str) -> Result<Ranking> {
        let kinds = names
            .split(',')
            .map(|n| Distortion::parse(n.trim()))
            .collect::<Result<Vec<_>>>()?;
        let order: [Distortion; 6] = match kinds.try_into() {
            Ok(o) => o,
            Err(v) => bail!("a ranking names all six distortions once, {names:?} names {}", v.len()),
        };
        for d in Distortion::ALL {
            if !order.contains(&d) {
                bail!(
                    "ranking {names:?} is not a permutation of the six distortions: {} is missing",
                    d.name()
                );
            }
        }
        let name = order.iter().map(|d| d.name()).collect::<Vec<_>>().join(",");
        Ok(Ranking { order, name })
    }

    /// Place of a distortion in the ranking (0 = most similar).
    pub fn position(&self, d: Distortion) -> usize {
        self.order
            .iter()
            .position(|&x| x == d)
            .expect("a ranking holds every distortion")
    }

    /// The label h of a triplet: 0 when p0's distortion ranks earlier (p0 is closer), else 1.
    pub fn label(&self, p0: Distortion, p1: Distortion) -> f32 {
        if self.position(p0) < self.position(p1) {
            0.0
        } else {
            1.0
        }
    }

    /// Names in order, comma-separated.
    pub fn describe(&self) -> String {
        self.order.iter().map(|d| d.name()).collect::<Vec<_>>().join(",")
    }
}

/// The two distortions of one triplet: the first two of a random permutation of the six (so they differ, and
/// the 30 ordered pairs are equally likely), each with freshly drawn parameters. Draw order: the permutation,
/// then p0's parameters, then p1's.
pub fn draw_triplet(rng: &mut impl Rng, size: usize) -> (DistortionParams, DistortionParams) {
    let mut kinds = Distortion::ALL;
    kinds.shuffle(rng);
    let p0 = DistortionParams::draw(kinds[0], rng, size);
    let p1 = DistortionParams::draw(kinds[1], rng, size);
    (p0, p1)
}

/// One labelled triplet per listed image: which image, its two distortions, and the label under a ranking.
#[derive(Clone, Debug)]
pub struct TripletDraws {
    pub images: Vec<usize>,
    pub distortions: Vec<(DistortionParams, DistortionParams)>,
    pub labels: Vec<f32>,
}

impl TripletDraws {
    /// Draws, image by image in the given order, a triplet as [`draw_triplet`] does.
    pub fn draw(images: &[usize], ranking: &Ranking, rng: &mut impl Rng, size: usize) -> TripletDraws {
        let distortions: Vec<_> = images.iter().map(|_| draw_triplet(rng, size)).collect();
        let labels = distortions.iter().map(|(a, b)| ranking.label(a.kind, b.kind)).collect();
        TripletDraws {
            images: images.to_vec(),
            distortions,
            labels,
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// The labels of these triplets under another context (labels depend only on the two distortions).
    pub fn labels_for(&self, ranking: &Ranking) -> Vec<f32> {
        self.distortions
            .iter()
            .map(|(a, b)| ranking.label(a.kind, b.kind))
            .collect()
    }

    /// Triplets `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> TripletDraws {
        TripletDraws {
            images: self.images[start..end].to_vec(),
            distortions: self.distortions[start..end].to_vec(),
            labels: self.labels[start..end].to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}
