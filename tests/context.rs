//! Contexts and triplet draws: the paper's 20 rankings (the table of PROTOCOL.md §4), labels, parsing.

use dps_gpu::context::{draw_triplet, Ranking, TripletDraws, PAPER_RANKINGS};
use dps_gpu::distort::Distortion;
use rand::SeedableRng;

/// PROTOCOL.md §4, copied by hand from the protocol document (most similar first).
const PROTOCOL_TABLE: [&str; 20] = [
    "hue zoom rotate translate darken blur",
    "darken hue zoom blur rotate translate",
    "darken translate rotate zoom blur hue",
    "darken rotate blur zoom translate hue",
    "blur rotate darken translate hue zoom",
    "blur hue zoom darken translate rotate",
    "blur rotate zoom darken translate hue",
    "blur hue darken rotate translate zoom",
    "translate blur zoom rotate darken hue",
    "rotate zoom darken hue translate blur",
    "darken blur zoom hue rotate translate",
    "blur translate darken zoom rotate hue",
    "darken blur translate hue rotate zoom",
    "translate rotate darken zoom blur hue",
    "zoom translate blur rotate darken hue",
    "zoom blur darken hue rotate translate",
    "zoom blur hue darken translate rotate",
    "hue darken rotate translate zoom blur",
    "blur darken translate rotate zoom hue",
    "rotate translate darken zoom blur hue",
];

#[test]
fn the_twenty_paper_rankings_match_the_protocol() {
    for (i, row) in PROTOCOL_TABLE.iter().enumerate() {
        let r = Ranking::parse(&i.to_string()).unwrap();
        assert_eq!(r.describe(), row.replace(' ', ","), "ranking {i}");
        assert_eq!(PAPER_RANKINGS[i], row.replace(' ', ","));
    }
    assert!(Ranking::parse("20").is_err());
}

#[test]
fn labels_follow_the_ranking() {
    let r = Ranking::parse("7").unwrap(); // blur hue darken rotate translate zoom
    assert_eq!(r.label(Distortion::Blur, Distortion::Zoom), 0.0);
    assert_eq!(r.label(Distortion::Zoom, Distortion::Blur), 1.0);
    assert_eq!(r.label(Distortion::Darken, Distortion::Hue), 1.0);
    let custom = Ranking::parse("blur,hue,zoom,rotate,translate,darken").unwrap();
    assert_eq!(custom.label(Distortion::Hue, Distortion::Zoom), 0.0);
    assert_eq!(
        Ranking::parse("color,brightness,zoom_in,rotate,translate,blur")
            .unwrap()
            .order[0],
        Distortion::Hue
    );
}

#[test]
fn bad_rankings_are_errors() {
    for bad in [
        "blur,hue,zoom,rotate,translate",
        "blur,hue,zoom,rotate,translate,blur",
        "blur,hue,zoom,rotate,translate,sharpen",
        "-1",
        "",
    ] {
        assert!(Ranking::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn triplets_pair_two_different_distortions_uniformly_and_reproducibly() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut counts = std::collections::HashMap::new();
    let n = 30_000;
    for _ in 0..n {
        let (a, b) = draw_triplet(&mut rng, 64);
        assert_ne!(a.kind, b.kind);
        *counts.entry((a.kind, b.kind)).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 30, "all 30 ordered pairs occur");
    for (pair, c) in counts {
        // 1000 expected each; 5 standard deviations ≈ 150
        assert!((850..=1150).contains(&c), "{pair:?} drawn {c} times of {n}");
    }
    let r = Ranking::parse("3").unwrap();
    let images: Vec<usize> = (0..50).collect();
    let a = TripletDraws::draw(&images, &r, &mut rand::rngs::StdRng::seed_from_u64(4), 64);
    let b = TripletDraws::draw(&images, &r, &mut rand::rngs::StdRng::seed_from_u64(4), 64);
    assert_eq!(a.distortions, b.distortions);
    assert_eq!(a.labels, b.labels);
    for ((p0, p1), h) in a.distortions.iter().zip(&a.labels) {
        assert_eq!(*h, r.label(p0.kind, p1.kind));
    }
}
