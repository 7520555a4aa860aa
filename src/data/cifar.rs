//! CIFAR-10 binary batches (`data_batch_*.bin`, `test_batch.bin`): records of one label byte (0..9) and a
//! 32×32 image as three row-major planes R, G, B.

use std::path::PathBuf;

use crate::{bail, Result};

use super::dataset::RecordFiles;
use super::{ImageSource, RgbImage8};

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;

/// CIFAR-10 images read from their files on demand; the labels are read when opened.
pub struct Cifar10 {
    records: RecordFiles,
    labels: Vec<u8>,
}

/// Opens CIFAR-10 batch files (their images in order, file after file), keeping the first `limit` images.
pub fn open_cifar10(files: &[PathBuf], limit: Option<usize>) -> Result<Cifar10> {
    let records = RecordFiles::open(files, RECORD, "CIFAR-10 records", limit)?;
    let mut buf = vec![0u8; RECORD];
    let mut labels = Vec::with_capacity(records.len());
    for i in 0..records.len() {
        records.read(i, &mut buf)?;
        // CIFAR-100's records (two label bytes) or other files of a lucky size show up here.
        if buf[0] > 9 {
            let (path, j) = records.locate(i).expect("i < len");
            bail!(
                "{}: record {j} has label {}, not a CIFAR-10 class (0..9)",
                path.display(),
                buf[0]
            );
        }
        labels.push(buf[0]);
    }
    Ok(Cifar10 { records, labels })
}

impl ImageSource for Cifar10 {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn image(&self, i: usize) -> Result<RgbImage8> {
        let mut rec = vec![0u8; RECORD];
        self.records.read(i, &mut rec)?;
        let planes = &rec[1..];
        let data = (0..PLANE)
            .flat_map(|p| [planes[p], planes[PLANE + p], planes[2 * PLANE + p]])
            .collect();
        RgbImage8::new(SIDE, SIDE, data)
    }

    fn label(&self, i: usize) -> Option<u32> {
        self.labels.get(i).map(|&l| l as u32)
    }

    fn describe(&self) -> String {
        let files: Vec<String> = self.records.paths().iter().map(|p| p.display().to_string()).collect();
        format!(
            "CIFAR-10 {}: {} images 32×32, labels 0..9",
            files.join(" + "),
            self.len()
        )
    }
}
