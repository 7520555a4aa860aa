//! Image datasets behind one interface, opened from a path whose layout names the format: SVHN `.mat`, STL-10
//! `*_X.bin`, CIFAR-10 binary batches, or a folder of PNG/JPEG images.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{bail, Context, Error, Result};

use super::{is_bapps, open_cifar10, open_folder, open_stl10, open_svhn, RgbImage8};

/// A dataset of RGB images with optional integer labels, indexed from 0.
pub trait ImageSource {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `i` as 8-bit RGB; an error names the file and what was wrong with it.
    fn image(&self, i: usize) -> Result<RgbImage8>;
    /// The label as the dataset stores it (SVHN 1..10 with 10 for digit 0, STL-10 1..10, CIFAR-10 0..9), or None.
    fn label(&self, i: usize) -> Option<u32>;
    /// One line for reports: the format, the files, the number of images.
    fn describe(&self) -> String;
}

/// Opens the dataset at `path`. `format` forces svhn, stl10, cifar10 or folder; otherwise it is detected:
/// a `.mat` file is SVHN, `*_X.bin` STL-10 (labels from the `*_y.bin` beside it when present), another `.bin`
/// CIFAR-10, and a directory is CIFAR-10 (`cifar-10-batches-bin`), STL-10 (`stl10_binary`) or SVHN when it holds
/// those files, else a folder of images. For a dataset directory, `split` picks the files: CIFAR-10 `train`
/// (data_batch_*.bin) or `test` (test_batch.bin); STL-10 `<split>_X.bin` (train, test, unlabeled); SVHN
/// `<split>_32x32.mat` (train, test, extra). `split` is not used for a single file or an image folder. `limit`
/// keeps the first N images.
pub fn open_images(
    path: &Path,
    format: Option<&str>,
    split: Option<&str>,
    limit: Option<usize>,
) -> Result<Box<dyn ImageSource + Send + Sync>> {
    if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    }
    let format = match format {
        Some(f) => f.to_ascii_lowercase(),
        None => detect(path)?.to_string(),
    };
    let file = |pattern: &str, choices: &str| split_file(path, split, pattern, choices, &format);
    let source: Box<dyn ImageSource + Send + Sync> = match format.as_str() {
        "svhn" => Box::new(open_svhn(&file("{}_32x32.mat", "train, test, extra")?, limit)?),
        "stl10" => Box::new(open_stl10(&file("{}_X.bin", "train, test, unlabeled")?, limit)?),
        "cifar10" => Box::new(open_cifar10(&cifar10_files(path, split)?, limit)?),
        "folder" => Box::new(open_folder(path, limit)?),
        other => bail!(
            "{}: unknown dataset format {other:?}; choose svhn, stl10, cifar10 or folder",
            path.display()
        ),
    };
    if source.is_empty() {
        bail!("{}: no images", path.display());
    }
    Ok(source)
}

fn detect(path: &Path) -> Result<&'static str> {
    let name = file_name(path).to_ascii_lowercase();
    if path.is_file() {
        return Ok(if name.ends_with(".mat") {
            "svhn"
        } else if name.ends_with("_x.bin") {
            "stl10"
        } else if name.ends_with(".bin") {
            "cifar10"
        } else {
            bail!(
                "{}: not a dataset file (expected an SVHN .mat, an STL-10 *_X.bin, a CIFAR-10 .bin, or a directory)",
                path.display()
            )
        });
    }
    let names = dir_names(path)?;
    let has = |f: &dyn Fn(&str) -> bool| names.iter().any(|n| f(&n.to_ascii_lowercase()));
    if has(&|n| n == "test_batch.bin" || (n.starts_with("data_batch_") && n.ends_with(".bin"))) {
        Ok("cifar10")
    } else if has(&|n| n.ends_with("_x.bin")) {
        Ok("stl10")
    } else if has(&|n| n.ends_with("_32x32.mat")) {
        Ok("svhn")
    } else if is_bapps(path) {
        bail!(
            "{}: a BAPPS 2AFC/JND directory, not an image dataset (open it as BAPPS, or force --format folder)",
            path.display()
        )
    } else {
        Ok("folder")
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(super) fn dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).context(format!("{}: cannot list", dir.display()))? {
        let entry = entry.context(format!("{}: cannot list", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// A single file as given, or `pattern` with `{}` replaced by the split inside a dataset directory.
fn split_file(path: &Path, split: Option<&str>, pattern: &str, choices: &str, format: &str) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let Some(split) = split else {
        bail!("{}: a {format} directory; choose a split ({choices})", path.display());
    };
    let f = path.join(pattern.replace("{}", split));
    if !f.is_file() {
        bail!("{}: no such file (split {split:?}; splits are {choices})", f.display());
    }
    Ok(f)
}

/// CIFAR-10's files: a single `.bin` as given, or a `cifar-10-batches-bin` directory's train or test batches.
fn cifar10_files(path: &Path, split: Option<&str>) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let files: Vec<PathBuf> = match split {
        Some("train") => dir_names(path)?
            .into_iter()
            .filter(|n| n.starts_with("data_batch_") && n.ends_with(".bin"))
            .map(|n| path.join(n))
            .collect(),
        Some("test") => vec![path.join("test_batch.bin")],
        Some(other) => bail!(
            "{}: unknown CIFAR-10 split {other:?}; choose train or test",
            path.display()
        ),
        None => bail!("{}: a CIFAR-10 directory; choose a split (train, test)", path.display()),
    };
    if files.is_empty() || !files[0].is_file() {
        bail!(
            "{}: no CIFAR-10 {} batches (data_batch_*.bin, test_batch.bin)",
            path.display(),
            split.unwrap_or("")
        );
    }
    Ok(files)
}

/// Fixed-size records across one or more files, read on demand so a dataset of any size costs no memory. The
/// file sizes are checked when opened, so a record that cannot be read later means the file changed.
pub(super) struct RecordFiles {
    record: usize,
    /// Each file with the number of its records in use; a file is shared between threads through its lock.
    files: Vec<(PathBuf, Mutex<File>, usize)>,
}

impl RecordFiles {
    /// Opens `paths` (every one must hold a whole number of `record`-byte records) and keeps the first `limit`
    /// records in all. `kind` names the records in errors, e.g. "CIFAR-10 records".
    pub fn open(paths: &[PathBuf], record: usize, kind: &str, limit: Option<usize>) -> Result<RecordFiles> {
        let mut left = limit.unwrap_or(usize::MAX);
        let mut files = Vec::new();
        for p in paths {
            let f = File::open(p).context(format!("{}: cannot open", p.display()))?;
            let len = f.metadata().context(format!("{}: cannot read", p.display()))?.len();
            if len == 0 || len % record as u64 != 0 {
                bail!(
                    "{}: {len} bytes is not a whole number of {kind} ({record} bytes each)",
                    p.display()
                );
            }
            if left == 0 {
                break;
            }
            let n = ((len / record as u64) as usize).min(left);
            left -= n;
            files.push((p.clone(), Mutex::new(f), n));
        }
        Ok(RecordFiles { record, files })
    }

    pub fn len(&self) -> usize {
        self.files.iter().map(|f| f.2).sum()
    }

    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.0.as_path()).collect()
    }

    /// The file holding record `i` (of all files in order) and the record's index within it.
    pub fn locate(&self, mut i: usize) -> Option<(&Path, usize)> {
        for (path, _, n) in &self.files {
            if i < *n {
                return Some((path, i));
            }
            i -= n;
        }
        None
    }

    /// Record `i` (of all files in order) into `buf` (`record` bytes).
    pub fn read(&self, mut i: usize, buf: &mut [u8]) -> Result<()> {
        for (path, file, n) in &self.files {
            if i >= *n {
                i -= n;
                continue;
            }
            let mut f = file
                .lock()
                .map_err(|_| Error(format!("{}: a reader panicked", path.display())))?;
            f.seek(SeekFrom::Start((i * self.record) as u64))
                .and_then(|_| f.read_exact(buf))
                .context(format!("{}: cannot read record {i}", path.display()))?;
            return Ok(());
        }
        bail!("record {i} is past the end ({} records)", self.len())
    }
}
