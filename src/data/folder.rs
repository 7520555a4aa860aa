//! A folder of PNG/JPEG images, searched recursively, in sorted path order so every run sees the same sequence.

use std::path::{Path, PathBuf};

use crate::{bail, Context, Result};

use super::{load_rgb8, ImageSource, RgbImage8};

/// Image files found under a directory; each is decoded when asked for.
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<PathBuf>,
}

/// Lists the `.png`, `.jpg` and `.jpeg` files (any case) under `dir`, sorted, keeping the first `limit`. Hidden
/// files and directories (names starting with '.', e.g. macOS's `._x.png` resource forks) are skipped, and
/// symbolic links to directories are not followed, so a link cannot make the walk loop.
pub fn open_folder(dir: &Path, limit: Option<usize>) -> Result<ImageFolder> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).context(format!("{}: cannot list", d.display()))? {
            let entry = entry.context(format!("{}: cannot list", d.display()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type().context(format!("{}: cannot stat", path.display()))?;
            if kind.is_dir() {
                stack.push(path);
            } else if [".png", ".jpg", ".jpeg"].iter().any(|e| name.ends_with(e)) && path.is_file() {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        bail!("{}: no PNG or JPEG images (searched recursively)", dir.display());
    }
    files.sort();
    files.truncate(limit.unwrap_or(usize::MAX));
    Ok(ImageFolder {
        root: dir.to_path_buf(),
        files,
    })
}

impl ImageFolder {
    /// The image files, in the order of their indices.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn image(&self, i: usize) -> Result<RgbImage8> {
        match self.files.get(i) {
            Some(f) => load_rgb8(f),
            None => bail!("{}: image {i} of {}", self.root.display(), self.files.len()),
        }
    }

    fn label(&self, _i: usize) -> Option<u32> {
        None
    }

    fn describe(&self) -> String {
        format!("image folder {}: {} images", self.root.display(), self.files.len())
    }
}
