//! DIR/results.jsonl: one JSON object per finished cell, appended whole and synced, so an interrupted sweep
//! leaves at worst one truncated last line, which the next run cuts off before it appends.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::Context;
use crate::{bail, Result};

pub struct ResultsFile {
    pub path: PathBuf,
    done: HashSet<String>,
    /// Set when a truncated last line was cut off on opening.
    pub repaired: bool,
}

impl ResultsFile {
    /// Opens (or creates) `dir`/results.jsonl, cuts off a truncated last line and collects the finished cells.
    pub fn open(dir: &Path) -> Result<ResultsFile> {
        std::fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
        let path = dir.join("results.jsonl");
        let mut text = String::new();
        if path.exists() {
            File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .context(format!("reading {}", path.display()))?;
        }
        let mut repaired = false;
        if !text.is_empty() && !text.ends_with('\n') {
            // A writer killed mid-line: keep everything up to the last complete line.
            let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .context(format!("opening {}", path.display()))?;
            file.set_len(keep as u64)
                .and_then(|_| file.sync_all())
                .context(format!("cutting the truncated last line of {}", path.display()))?;
            text.truncate(keep);
            repaired = true;
        }
        let mut done = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| crate::Error(format!("{}:{}: not a JSON line ({e})", path.display(), i + 1)))?;
            let Some(cell) = value.get("cell").and_then(Value::as_str) else {
                bail!("{}:{}: a result line without a \"cell\" id", path.display(), i + 1);
            };
            if !done.insert(cell.to_string()) {
                bail!("{}:{}: cell {cell} appears twice", path.display(), i + 1);
            }
        }
        Ok(ResultsFile { path, done, repaired })
    }

    pub fn is_done(&self, cell: &str) -> bool {
        self.done.contains(cell)
    }

    pub fn finished(&self) -> usize {
        self.done.len()
    }

    /// Appends one line in a single write and syncs it to disk before returning.
    pub fn append(&mut self, value: &Value) -> Result<()> {
        let Some(cell) = value.get("cell").and_then(Value::as_str) else {
            bail!("a result without a \"cell\" id");
        };
        if self.done.contains(cell) {
            bail!("cell {cell} is already in {}", self.path.display());
        }
        let mut line = serde_json::to_string(value).expect("JSON values always serialise");
        line.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .context(format!("opening {}", self.path.display()))?;
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_data())
            .context(format!("appending to {}", self.path.display()))?;
        self.done.insert(cell.to_string());
        Ok(())
    }
}
