//! Scoring metrics: distortion-ranking 2AFC on image sets, BAPPS 2AFC and JND (PROTOCOL.md §7).

pub mod bapps;
pub mod score;

pub use score::{jnd_map, two_afc, two_afc_score};
