//! The paper's experiment grid in one run (nets × methods × contexts × seeds, and the baselines), appended cell
//! by cell to DIR/results.jsonl so it survives interruption and can be split over machines with `--shard`.

mod grid;
mod results;
mod run;

pub use grid::{grid, parse_list, parse_rankings, GridCell, Shard};
pub use results::ResultsFile;
pub use run::{run_sweep, BappsSet, SweepConfig, SweepSummary, TestSet};
