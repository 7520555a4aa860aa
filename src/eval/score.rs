//! The paper's scores (PROTOCOL.md §7), computed on the host from distances read back from the GPU.

use crate::{bail, Result};

/// 2AFC agreement of one triplet with judgement `h` (fraction of people preferring p1): 1 − h when p0 is
/// closer, h when p1 is closer, ½ on a tie.
pub fn two_afc(d0: f32, d1: f32, h: f32) -> f32 {
    if d0 < d1 {
        1.0 - h
    } else if d1 < d0 {
        h
    } else {
        0.5
    }
}

/// Mean 2AFC over a set of triplets.
pub fn two_afc_score(d0: &[f32], d1: &[f32], h: &[f32]) -> Result<f64> {
    if d0.len() != d1.len() || d0.len() != h.len() || d0.is_empty() {
        bail!(
            "2AFC needs equally many d0, d1 and judgements, and at least one ({}, {}, {})",
            d0.len(),
            d1.len(),
            h.len()
        );
    }
    if let Some(i) = d0.iter().chain(d1).position(|d| !d.is_finite()) {
        bail!(
            "2AFC: distance {} of triplet {} is not finite (with --precision f16 an activation may have left \
             f16's range; f32 avoids that)",
            if i < d0.len() { "d0" } else { "d1" },
            i % d0.len()
        );
    }
    Ok(d0
        .iter()
        .zip(d1)
        .zip(h)
        .map(|((&a, &b), &y)| two_afc(a, b, y) as f64)
        .sum::<f64>()
        / d0.len() as f64)
}

/// JND mean average precision: pairs sorted by distance ascending (stable, so ties keep their order), each
/// counting `same` as a true positive and 1 − `same` as a false positive; VOC average precision (precision made
/// monotone from the right, summed over the points where recall changes), as LPIPS scores JND.
pub fn jnd_map(distances: &[f32], same: &[f32]) -> Result<f64> {
    if distances.len() != same.len() || distances.is_empty() {
        bail!("JND needs one 'same' fraction per distance, and at least one pair");
    }
    if let Some(i) = distances.iter().position(|d| d.is_nan()) {
        bail!("JND: distance {i} is NaN");
    }
    let mut order: Vec<usize> = (0..distances.len()).collect();
    order.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]));
    let total_same: f64 = same.iter().map(|&s| s as f64).sum();
    if total_same <= 0.0 {
        bail!("JND: no pair was judged the same by anyone, so precision/recall are undefined");
    }
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let mut recall = vec![0.0];
    let mut precision = vec![0.0];
    for &i in &order {
        tp += same[i] as f64;
        fp += 1.0 - same[i] as f64;
        recall.push(tp / total_same);
        precision.push(tp / (tp + fp));
    }
    recall.push(1.0);
    precision.push(0.0);
    for i in (0..precision.len() - 1).rev() {
        precision[i] = precision[i].max(precision[i + 1]);
    }
    Ok((0..recall.len() - 1)
        .filter(|&i| recall[i + 1] != recall[i])
        .map(|i| (recall[i + 1] - recall[i]) * precision[i + 1])
        .sum())
}
