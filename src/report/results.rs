//! Reading `results.jsonl` files written by `dps-gpu sweep` (format "dps-gpu sweep v1") and merging several of
//! them into one set of cells.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{bail, Context, Result};

pub const FORMAT: &str = "dps-gpu sweep v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Baseline,
    Adapted,
}

/// One finished cell of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub cell: String,
    pub kind: Kind,
    pub net: String,
    pub method: String,
    pub ranking: String,
    pub ranking_order: Option<String>,
    pub seed: Option<u64>,
    /// "scalars" or "net" for adapted cells; empty for baselines, whose weights do not depend on it.
    pub variant: String,
    pub paper_faithful: bool,
    pub in_distribution: String,
    /// 2AFC per test set.
    pub tests: BTreeMap<String, f64>,
    /// BAPPS scores by key ("2afc", "jnd_map", ...), empty when the sweep had no BAPPS.
    pub bapps: BTreeMap<String, f64>,
    pub wall_seconds: f64,
    pub adapter: Option<String>,
    /// Where the line came from, for error messages.
    pub source: String,
}

impl Record {
    /// The values two copies of a cell must agree on to be the same result.
    fn scores_equal(&self, other: &Record) -> bool {
        self.tests == other.tests && self.bapps == other.bapps
    }
}

/// Cells of one or more result files, one per cell id, and what was tolerated on the way.
#[derive(Default, Debug)]
pub struct Results {
    pub records: Vec<Record>,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// Identical duplicates dropped.
    pub duplicates: usize,
}

/// Reads `DIR/results.jsonl` of every directory (or the file itself when a path is a file) and merges them.
pub fn read_dirs(paths: &[PathBuf]) -> Result<Results> {
    if paths.is_empty() {
        bail!("no result directories given");
    }
    let mut out = Results::default();
    let mut by_cell: BTreeMap<String, usize> = BTreeMap::new();
    for p in paths {
        let file = if p.is_dir() { p.join("results.jsonl") } else { p.clone() };
        if !file.is_file() {
            bail!(
                "{} not found (expected the results.jsonl that `dps-gpu sweep` writes)",
                file.display()
            );
        }
        let text = std::fs::read_to_string(&file).context(file.display())?;
        let (records, warnings) = parse_file(&text, &file)?;
        out.warnings.extend(warnings);
        for r in records {
            match by_cell.get(&r.cell) {
                Some(&i) if out.records[i].scores_equal(&r) => out.duplicates += 1,
                Some(&i) => bail!(
                    "cell {} has different scores in {} and {}",
                    r.cell,
                    out.records[i].source,
                    r.source
                ),
                None => {
                    by_cell.insert(r.cell.clone(), out.records.len());
                    out.records.push(r);
                }
            }
        }
        out.files.push(file);
    }
    if out.records.is_empty() {
        bail!("no results in {}", list_paths(&out.files));
    }
    let id = &out.records[0].in_distribution;
    if let Some(other) = out.records.iter().find(|r| &r.in_distribution != id) {
        bail!(
            "results mix in-distribution test sets: {} ({}) and {} ({})",
            id,
            out.records[0].source,
            other.in_distribution,
            other.source
        );
    }
    Ok(out)
}

fn list_paths(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses one file's lines. Blank lines are skipped; a last line without its newline that does not parse is what a
/// killed writer leaves, so it is dropped with a warning; any other bad line is an error naming file:line.
pub fn parse_file(text: &str, file: &Path) -> Result<(Vec<Record>, Vec<String>)> {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", file.display(), i + 1);
        let unterminated = i + 1 == lines.len();
        let value = match serde_json::from_str::<Value>(line) {
            Ok(v) => v,
            Err(e) if unterminated => {
                warnings.push(format!(
                    "{at}: ignored an incomplete last line (no newline, not JSON: {e})"
                ));
                continue;
            }
            Err(e) => bail!("{at}: not a JSON line: {e}"),
        };
        records.push(parse_record(&value).map_err(|e| e.context(&at))?);
        records.last_mut().expect("just pushed").source = at;
    }
    Ok((records, warnings))
}

/// One results line as a [`Record`] (its `source` left empty).
pub fn parse_record(v: &Value) -> Result<Record> {
    let Some(o) = v.as_object() else {
        bail!("expected a JSON object");
    };
    let format = str_field(o, "format")?;
    if format != FORMAT {
        bail!("format is {format:?}, this dps-gpu reads {FORMAT:?}");
    }
    let kind = match str_field(o, "kind")?.as_str() {
        "adapted" => Kind::Adapted,
        "baseline" => Kind::Baseline,
        k => bail!("kind is {k:?}, expected \"adapted\" or \"baseline\""),
    };
    let seed = match o.get("seed") {
        None | Some(Value::Null) => None,
        Some(s) => Some(
            s.as_u64()
                .ok_or_else(|| crate::Error::msg(format!("seed {s} is not an integer")))?,
        ),
    };
    if kind == Kind::Adapted && seed.is_none() {
        bail!("an adapted cell needs a seed");
    }
    let variant = match (kind, o.get("variant")) {
        (Kind::Baseline, _) => String::new(),
        (Kind::Adapted, None | Some(Value::Null)) => "scalars".to_string(),
        (Kind::Adapted, Some(_)) => str_field(o, "variant")?,
    };
    let in_distribution = str_field(o, "in_distribution")?;
    let tests = scores(o, "tests", |v| v.get("two_afc"))?;
    if !tests.contains_key(&in_distribution) {
        bail!("in_distribution {in_distribution:?} is not one of the test sets in \"tests\"");
    }
    let bapps = match o.get("bapps") {
        None | Some(Value::Null) => BTreeMap::new(),
        // Only the numbers: a sweep may add per-subset detail as nested objects.
        Some(_) => scores(o, "bapps", |v| v.is_number().then_some(v))?,
    };
    let wall_seconds = match o.get("wall_seconds") {
        None | Some(Value::Null) => 0.0,
        Some(w) => w
            .as_f64()
            .filter(|w| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| crate::Error::msg(format!("wall_seconds {w} is not a non-negative number")))?,
    };
    Ok(Record {
        cell: str_field(o, "cell")?,
        kind,
        net: str_field(o, "net")?,
        method: str_field(o, "method")?,
        ranking: ranking_field(o)?,
        ranking_order: o.get("ranking_order").and_then(Value::as_str).map(str::to_string),
        seed,
        variant,
        paper_faithful: o.get("paper_faithful").and_then(Value::as_bool).unwrap_or(false),
        in_distribution,
        tests,
        bapps,
        wall_seconds,
        adapter: o.get("adapter").and_then(Value::as_str).map(str::to_string),
        source: String::new(),
    })
}

fn str_field(o: &Map<String, Value>, key: &str) -> Result<String> {
    match o.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(v) => bail!("\"{key}\" must be a non-empty string, got {v}"),
        None => bail!("\"{key}\" is missing"),
    }
}

/// The ranking is "7" in the contract; a bare number is accepted too.
fn ranking_field(o: &Map<String, Value>) -> Result<String> {
    match o.get("ranking") {
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        _ => str_field(o, "ranking"),
    }
}

/// A map of named scores in [0, 1], each picked out of its entry by `pick`.
fn scores(o: &Map<String, Value>, key: &str, pick: impl Fn(&Value) -> Option<&Value>) -> Result<BTreeMap<String, f64>> {
    let Some(Value::Object(m)) = o.get(key) else {
        bail!("\"{key}\" must be an object");
    };
    let mut out = BTreeMap::new();
    for (name, entry) in m {
        let x = match (key, pick(entry).and_then(Value::as_f64)) {
            (_, Some(x)) => x,
            ("bapps", None) => continue,
            (_, None) => bail!("\"{key}\".\"{name}\" has no score: {entry}"),
        };
        if !(0.0..=1.0).contains(&x) {
            bail!("\"{key}\".\"{name}\" score {x} is outside [0, 1]");
        }
        out.insert(name.clone(), x);
    }
    if key == "tests" && out.is_empty() {
        bail!("\"tests\" is empty");
    }
    Ok(out)
}
