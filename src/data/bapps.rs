//! BAPPS (Zhang et al. 2018), the perceptual similarity set LPIPS is scored on:
//! `2afc/<split>/<subset>/{ref,p0,p1}/NAME.png` with `judge/NAME.npy` (the fraction of people preferring p1), and
//! `jnd/<split>/<subset>/{p0,p1}/NAME.png` with `same/NAME.npy` (the fraction who saw no difference).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{bail, Result};

use super::dataset::dir_names;
use super::read_npy_scalar;

#[derive(Clone, Debug, PartialEq)]
pub struct TwoAfcTriplet {
    pub reference: PathBuf,
    pub p0: PathBuf,
    pub p1: PathBuf,
    /// Fraction of people who judged p1 closer to the reference, in [0, 1].
    pub judge: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JndPair {
    pub p0: PathBuf,
    pub p1: PathBuf,
    /// Fraction of people who judged the two the same, in [0, 1].
    pub same: f32,
}

/// A BAPPS split: its subsets by name (sorted), each with its items in file-name order.
#[derive(Clone, Debug, PartialEq)]
pub enum Bapps {
    TwoAfc(Vec<(String, Vec<TwoAfcTriplet>)>),
    Jnd(Vec<(String, Vec<JndPair>)>),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    TwoAfc,
    Jnd,
}

impl Kind {
    /// The image directories and the judgement directory of a subset.
    fn layout(self) -> (&'static [&'static str], &'static str) {
        match self {
            Kind::TwoAfc => (&["ref", "p0", "p1"], "judge"),
            Kind::Jnd => (&["p0", "p1"], "same"),
        }
    }
}

/// A subset directory is recognised by its judgement directory; the image directories are checked when read.
fn subset_kind(dir: &Path) -> Option<Kind> {
    if dir.join("judge").is_dir() {
        Some(Kind::TwoAfc)
    } else if dir.join("same").is_dir() {
        Some(Kind::Jnd)
    } else {
        None
    }
}

fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let names = dir_names(dir)?;
    Ok(names
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .map(|n| dir.join(n))
        .filter(|p| p.is_dir())
        .collect())
}

/// Whether `path` is a BAPPS subset directory (e.g. `2afc/val/cnn`) or a split directory of them (`2afc/val`).
pub fn is_bapps(path: &Path) -> bool {
    subset_kind(path).is_some()
        || child_dirs(path).is_ok_and(|children| children.iter().any(|c| subset_kind(c).is_some()))
}

/// Reads a BAPPS split directory (every subset in it) or one subset directory, keeping the first `limit` items
/// of each subset. Images are only listed here; the judgements are read and checked to lie in [0, 1].
pub fn open_bapps(path: &Path, limit: Option<usize>) -> Result<Bapps> {
    if !path.is_dir() {
        bail!("{}: not a BAPPS directory (no such directory)", path.display());
    }
    let subsets = match subset_kind(path) {
        Some(kind) => vec![(kind, path.to_path_buf())],
        None => {
            let mut subsets = Vec::new();
            for child in child_dirs(path)? {
                match subset_kind(&child) {
                    Some(kind) => subsets.push((kind, child)),
                    None => bail!(
                        "{}: not a BAPPS subset (no judge/ or same/ directory) inside the split directory {}",
                        child.display(),
                        path.display()
                    ),
                }
            }
            subsets
        }
    };
    let Some(&(kind, _)) = subsets.first() else {
        bail!(
            "{}: not a BAPPS directory: expected a subset ({{ref,p0,p1}}/ + judge/, or {{p0,p1}}/ + same/) or a \
             split directory of subsets such as 2afc/val",
            path.display()
        );
    };
    if let Some((_, other)) = subsets.iter().find(|(k, _)| *k != kind) {
        bail!(
            "{}: mixes 2AFC and JND subsets ({} differs)",
            path.display(),
            other.display()
        );
    }
    let mut read = Vec::new();
    for (_, dir) in &subsets {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        read.push((name, read_subset(dir, kind, limit)?));
    }
    // read_subset returns one path per image directory of the layout, in its order.
    Ok(match kind {
        Kind::TwoAfc => Bapps::TwoAfc(map_items(read, |p, judge| {
            let [reference, p0, p1] = <[PathBuf; 3]>::try_from(p).expect("ref, p0, p1");
            TwoAfcTriplet {
                reference,
                p0,
                p1,
                judge,
            }
        })),
        Kind::Jnd => Bapps::Jnd(map_items(read, |p, same| {
            let [p0, p1] = <[PathBuf; 2]>::try_from(p).expect("p0, p1");
            JndPair { p0, p1, same }
        })),
    })
}

type Items = Vec<(Vec<PathBuf>, f32)>;

fn map_items<T>(subsets: Vec<(String, Items)>, f: impl Fn(Vec<PathBuf>, f32) -> T) -> Vec<(String, Vec<T>)> {
    subsets
        .into_iter()
        .map(|(name, items)| (name, items.into_iter().map(|(p, v)| f(p, v)).collect()))
        .collect()
}

/// Files of `dir` by stem (the name without its extension), keeping those whose extension is in `exts`.
fn by_stem(dir: &Path, exts: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: missing (a BAPPS subset needs it)", dir.display());
    }
    let mut out = BTreeMap::new();
    for name in dir_names(dir)? {
        let Some((stem, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !name.starts_with('.') && exts.contains(&ext.to_ascii_lowercase().as_str()) {
            if let Some(old) = out.insert(stem.to_string(), dir.join(&name)) {
                bail!("{}: two files named {stem} ({})", dir.display(), old.display());
            }
        }
    }
    Ok(out)
}

/// One subset: for each judgement file (in name order), the image paths of the same name and the judgement.
fn read_subset(dir: &Path, kind: Kind, limit: Option<usize>) -> Result<Items> {
    let (image_dirs, values_dir) = kind.layout();
    let values = by_stem(&dir.join(values_dir), &["npy"])?;
    if values.is_empty() {
        bail!("{}: no .npy files", dir.join(values_dir).display());
    }
    let images: Vec<BTreeMap<String, PathBuf>> = image_dirs
        .iter()
        .map(|d| by_stem(&dir.join(d), &["png", "jpg", "jpeg"]))
        .collect::<Result<_>>()?;
    // Every judgement needs all its images and every image a judgement: a mismatch means a broken copy, and
    // pairing files by position (as LPIPS does) would silently misalign the rest.
    for (d, files) in image_dirs.iter().zip(&images) {
        if let Some(stem) = values.keys().find(|s| !files.contains_key(*s)) {
            bail!(
                "{}: no image named {stem} for {}",
                dir.join(d).display(),
                values[stem].display()
            );
        }
        if let Some((stem, f)) = files.iter().find(|(s, _)| !values.contains_key(*s)) {
            bail!("{}: no {values_dir}/{stem}.npy for it", f.display());
        }
    }
    let mut out = Vec::new();
    for (stem, npy) in values.iter().take(limit.unwrap_or(usize::MAX)) {
        let v = read_npy_scalar(npy)?;
        if !(0.0..=1.0).contains(&v) {
            bail!("{}: {v} is not a fraction of people (0..1)", npy.display());
        }
        out.push((images.iter().map(|m| m[stem].clone()).collect(), v as f32));
    }
    Ok(out)
}
