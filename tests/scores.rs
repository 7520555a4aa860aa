//! The 2AFC and JND mAP scorers on hand-made cases whose values are worked out by hand in the comments.

use dps_gpu::eval::{jnd_map, two_afc, two_afc_score};

#[test]
fn two_afc_follows_the_judgement_and_splits_ties() {
    assert_eq!(two_afc(0.1, 0.2, 0.0), 1.0); // p0 closer, everybody preferred p0
    assert_eq!(two_afc(0.1, 0.2, 0.25), 0.75);
    assert_eq!(two_afc(0.3, 0.2, 0.25), 0.25); // p1 closer, a quarter preferred p1
    assert_eq!(two_afc(0.2, 0.2, 1.0), 0.5); // tie
                                             // (1 + 0.25 + 0.5 + 0) / 4
    let s = two_afc_score(&[0.1, 0.3, 0.2, 0.5], &[0.2, 0.2, 0.2, 0.1], &[0.0, 0.25, 1.0, 0.0]).unwrap();
    assert!((s - 0.4375).abs() < 1e-12, "{s}");
    assert!(two_afc_score(&[0.1], &[0.2, 0.3], &[0.0]).is_err());
    assert!(two_afc_score(&[], &[], &[]).is_err());
    // A non-finite distance (e.g. an f16 overflow) is an error, not a silently wrong score.
    let e = two_afc_score(&[0.1, 0.2], &[0.3, f32::INFINITY], &[0.0, 0.0]).unwrap_err();
    assert!(e.to_string().contains("d1 of triplet 1"), "{e}");
    assert!(two_afc_score(&[f32::NAN], &[0.2], &[0.0]).is_err());
}

#[test]
fn jnd_map_is_voc_average_precision() {
    // Sorted by distance: same = 1, 0, 1, 0. tp = 1,1,2,2; fp = 0,1,1,2; recall = .5,.5,1,1;
    // precision = 1, .5, 2/3, .5 -> monotone from the right: 1, 2/3, 2/3, .5.
    // AP = .5 * 1 + .5 * 2/3 = 5/6.
    let ap = jnd_map(&[0.3, 0.1, 0.4, 0.2], &[1.0, 1.0, 0.0, 0.0]).unwrap();
    assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
    // All same pairs first: perfect ranking.
    assert!((jnd_map(&[0.1, 0.2, 0.9], &[1.0, 1.0, 0.0]).unwrap() - 1.0).abs() < 1e-12);
    // Soft judgements: same = .5, 1 -> tp .5, 1.5; fp .5, .5; recall 1/3, 1; precision .5, .75
    // -> monotone .75, .75; AP = 1/3 * .75 + 2/3 * .75 = .75.
    assert!((jnd_map(&[0.1, 0.2], &[0.5, 1.0]).unwrap() - 0.75).abs() < 1e-12);
    // Ties keep input order (stable sort): [same 0 at 0.1, same 1 at 0.1] -> precision 0, .5 -> AP .5.
    assert!((jnd_map(&[0.1, 0.1], &[0.0, 1.0]).unwrap() - 0.5).abs() < 1e-12);
    assert!(jnd_map(&[0.1, 0.2], &[0.0, 0.0]).is_err());
    assert!(jnd_map(&[f32::NAN], &[1.0]).is_err());
}
