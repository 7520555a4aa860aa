//! MATLAB 5 MAT-files (what MATLAB's default `-v7` and scipy's `savemat` write), read as a stream: each top-level
//! data element is either a plain miMATRIX or an miCOMPRESSED zlib stream holding one, and only the variables
//! asked for are read, straight into their final buffer. Little-endian files with real, non-sparse numeric arrays
//! only; everything else is refused with a message saying what was found.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::ZlibDecoder;

use crate::{bail, Context, Error, Result};

/// What a caller accepts for a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatWant {
    /// Class uint8, kept as bytes (images).
    Uint8,
    /// Any real numeric class, converted to f64 (labels, which MATLAB may store as double).
    Numeric,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MatData {
    U8(Vec<u8>),
    F64(Vec<f64>),
}

/// One variable: its MATLAB dimensions (column-major, at least two) and values in MATLAB's column-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct MatArray {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: MatData,
}

/// The wanted variables found in a file, and the names of all its variables (for error messages).
#[derive(Debug)]
pub struct MatFile {
    pub arrays: Vec<MatArray>,
    pub names: Vec<String>,
}

impl MatFile {
    /// Removes and returns variable `name`, or None when the file has none.
    pub fn take(&mut self, name: &str) -> Option<MatArray> {
        let i = self.arrays.iter().position(|a| a.name == name)?;
        Some(self.arrays.swap_remove(i))
    }

    /// Like [`MatFile::take`], but a missing variable is an error that lists the ones present.
    pub fn require(&mut self, name: &str) -> Result<MatArray> {
        self.take(name)
            .ok_or_else(|| Error(format!("no variable '{name}' (variables: {})", self.names.join(", "))))
    }
}

// Data types (MAT-File Format, table 1-1) and array classes (table 1-3).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MX_UINT8: u32 = 9;
const CLASS_NAMES: [&str; 16] = [
    "unknown", "cell", "struct", "object", "char", "sparse", "double", "single", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64",
];

/// Reads the variables named in `wanted` from the MAT-file at `path`; variables not named are skipped without
/// being decompressed past their name. Every error names the file.
pub fn read_mat(path: &Path, wanted: &[(&str, MatWant)]) -> Result<MatFile> {
    read_mat_inner(path, wanted).context(path.display())
}

fn read_mat_inner(path: &Path, wanted: &[(&str, MatWant)]) -> Result<MatFile> {
    let file = File::open(path).context("cannot open")?;
    let file_len = file.metadata().context("cannot read")?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; 128];
    r.read_exact(&mut header).map_err(|_| {
        Error::msg(format!(
            "not a MAT-file ({file_len} bytes, shorter than a MAT-file header)"
        ))
    })?;
    check_header(&header)?;
    let mut out = MatFile {
        arrays: Vec::new(),
        names: Vec::new(),
    };
    let mut offset = 128u64;
    while offset < file_len {
        let mut tag = [0u8; 8];
        r.read_exact(&mut tag)
            .map_err(|_| Error(format!("truncated: a data element tag at byte {offset} is cut off")))?;
        let (ty, n, _) = parse_tag(&tag);
        let n = n as u64;
        let left = file_len - offset - 8;
        if n > left {
            bail!("truncated: the data element at byte {offset} announces {n} bytes, only {left} follow");
        }
        let mut body = (&mut r).take(n);
        let what = format!("data element at byte {offset}");
        match ty {
            MI_COMPRESSED => {
                let mut z = ZlibDecoder::new(&mut body);
                let found = read_element(&mut z, wanted, &mut out.names).context(&what)?;
                if let Some(array) = found {
                    // Reading the stream to its end makes zlib verify its checksum over everything we used.
                    io::copy(&mut z, &mut io::sink()).context(format!("{what}: corrupt compressed data"))?;
                    push(&mut out, array)?;
                }
            }
            MI_MATRIX => {
                if let Some(array) = read_matrix(&mut body, n, wanted, &mut out.names).context(&what)? {
                    push(&mut out, array)?;
                }
            }
            _ => {} // other top-level elements (e.g. a subsystem's data) carry no variables we read
        }
        // Whatever the element holds past what was needed is skipped without reading it.
        let rest = body.limit();
        r.seek_relative(rest as i64).context("cannot read")?;
        offset += 8 + n;
    }
    Ok(out)
}

fn check_header(h: &[u8; 128]) -> Result<()> {
    let text = String::from_utf8_lossy(&h[..116]);
    let version = u16::from_le_bytes([h[124], h[125]]);
    if text.starts_with("MATLAB 7.3") || (&h[126..] == b"IM" && version == 0x0200) {
        bail!("a MATLAB 7.3 (HDF5) MAT-file, which is not supported; re-save it with save(..., '-v7')");
    }
    if !text.starts_with("MATLAB 5.0 MAT-file") && &h[126..] != b"IM" && &h[126..] != b"MI" {
        bail!("not a MATLAB 5 MAT-file (no 'MATLAB 5.0 MAT-file' header)");
    }
    match &h[126..] {
        b"IM" if version == 0x0100 => Ok(()),
        b"IM" => bail!("MAT-file version {version:#06x} is not supported (0x0100)"),
        b"MI" => bail!("a big-endian MAT-file, which is not supported"),
        other => bail!(
            "bad MAT-file endian indicator {:?} (expected \"IM\")",
            String::from_utf8_lossy(other)
        ),
    }
}

/// (data type, byte count, the data itself when packed into the tag: the small data element format).
fn parse_tag(t: &[u8; 8]) -> (u32, u32, Option<[u8; 4]>) {
    let w0 = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    if w0 >> 16 != 0 {
        (w0 & 0xFFFF, w0 >> 16, Some([t[4], t[5], t[6], t[7]]))
    } else {
        (w0, u32::from_le_bytes([t[4], t[5], t[6], t[7]]), None)
    }
}

fn push(out: &mut MatFile, array: MatArray) -> Result<()> {
    if out.arrays.iter().any(|a| a.name == array.name) {
        bail!("variable '{}' appears twice", array.name);
    }
    out.arrays.push(array);
    Ok(())
}

fn eof_as_truncated(e: io::Error, what: &str) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => Error(format!("{what} is cut off (truncated or corrupt file)")),
        _ => Error(format!("{what}: {e}")),
    }
}

/// The element inside an miCOMPRESSED stream: one miMATRIX.
fn read_element(r: &mut impl Read, wanted: &[(&str, MatWant)], names: &mut Vec<String>) -> Result<Option<MatArray>> {
    let mut tag = [0u8; 8];
    r.read_exact(&mut tag)
        .map_err(|e| eof_as_truncated(e, "the array in the compressed element"))?;
    match parse_tag(&tag) {
        (MI_MATRIX, n, None) => read_matrix(&mut r.take(n as u64), n as u64, wanted, names),
        (ty, _, _) => bail!("compressed element of data type {ty}, expected an array (miMATRIX, 14)"),
    }
}

/// Reads one sub-element's payload, consuming its padding to 8 bytes (none for the small format).
fn read_sub(r: &mut impl Read, what: &str, max: u64) -> Result<(u32, Vec<u8>)> {
    let mut tag = [0u8; 8];
    r.read_exact(&mut tag).map_err(|e| eof_as_truncated(e, what))?;
    match parse_tag(&tag) {
        (ty, n, Some(small)) if n <= 4 => Ok((ty, small[..n as usize].to_vec())),
        (_, n, Some(_)) => bail!("{what}: a small data element cannot hold {n} bytes"),
        (ty, n, None) => {
            if n as u64 > max {
                bail!("{what}: {n} bytes is more than the array element holds");
            }
            let padded = (n as usize).div_ceil(8) * 8;
            let mut v = vec![0u8; padded];
            r.read_exact(&mut v).map_err(|e| eof_as_truncated(e, what))?;
            v.truncate(n as usize);
            Ok((ty, v))
        }
    }
}

/// An miMATRIX body of `n` bytes: array flags, dimensions, name, then the real part. Returns None for a variable
/// that is not wanted, leaving the rest of the element unread.
fn read_matrix(
    r: &mut impl Read,
    n: u64,
    wanted: &[(&str, MatWant)],
    names: &mut Vec<String>,
) -> Result<Option<MatArray>> {
    if n == 0 {
        return Ok(None); // MATLAB writes empty cells' placeholders this way; nothing to read
    }
    let (ty, flags) = read_sub(r, "array flags", n)?;
    if ty != MI_UINT32 || flags.len() != 8 {
        bail!(
            "array flags of data type {ty} and {} bytes (expected miUINT32, 8 bytes)",
            flags.len()
        );
    }
    let flags = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
    let class = flags & 0xFF;
    let (ty, dims) = read_sub(r, "dimensions", n)?;
    if ty != MI_INT32 || dims.len() < 8 || dims.len() % 4 != 0 {
        bail!(
            "dimensions of data type {ty} and {} bytes (expected two or more miINT32)",
            dims.len()
        );
    }
    let dims: Vec<usize> = dims
        .chunks_exact(4)
        .map(|d| i32::from_le_bytes([d[0], d[1], d[2], d[3]]))
        .map(|d| usize::try_from(d).map_err(|_| Error(format!("negative dimension {d}"))))
        .collect::<Result<_>>()?;
    let (ty, name) = read_sub(r, "array name", n)?;
    if ty != MI_INT8 && ty != MI_UINT8 {
        bail!("array name of data type {ty} (expected miINT8)");
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    names.push(name.clone());
    let Some(&(_, want)) = wanted.iter().find(|(w, _)| *w == name) else {
        return Ok(None);
    };
    let class_name = CLASS_NAMES.get(class as usize).copied().unwrap_or("unknown");
    let numeric = (6..=15).contains(&class);
    if flags & 0x0800 != 0 || !numeric || (want == MatWant::Uint8 && class != MX_UINT8) {
        let complex = if flags & 0x0800 != 0 { "complex " } else { "" };
        let expected = if want == MatWant::Uint8 {
            "real uint8"
        } else {
            "real numeric"
        };
        bail!("variable '{name}' is a {complex}{class_name} array {dims:?}; expected {expected}");
    }
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let count = count.ok_or_else(|| Error(format!("variable '{name}': dimensions {dims:?} overflow")))?;
    let data = read_real(r, n, count, want).context(format!("variable '{name}' ({class_name} {dims:?})"))?;
    Ok(Some(MatArray { name, dims, data }))
}

/// The real part: `count` values of the array's class, which MATLAB may store in a smaller type (a double array
/// of small integers is often written as miUINT8).
fn read_real(r: &mut impl Read, n: u64, count: usize, want: MatWant) -> Result<MatData> {
    let mut tag = [0u8; 8];
    r.read_exact(&mut tag).map_err(|e| eof_as_truncated(e, "data tag"))?;
    let (ty, bytes, small) = parse_tag(&tag);
    let size = match ty {
        1 | 2 => 1,
        3 | 4 => 2,
        5..=7 => 4,
        9 | 12 | 13 => 8,
        _ => bail!("values of data type {ty}, which is not a numeric type"),
    };
    if want == MatWant::Uint8 && ty != MI_UINT8 {
        bail!("uint8 values stored as data type {ty}, expected miUINT8 (2)");
    }
    if count.checked_mul(size) != Some(bytes as usize) {
        bail!(
            "{count} values need {} bytes of data type {ty}, the element has {bytes}",
            count.saturating_mul(size)
        );
    }
    if small.is_none() && bytes as u64 > n {
        bail!("{bytes} bytes of data is more than the array element holds");
    }
    let raw = match small {
        Some(s) => s[..bytes as usize].to_vec(),
        None => {
            // Reserved up front and filled by the reader: one allocation, no zero-fill, no copies.
            let mut v = Vec::new();
            v.try_reserve_exact(bytes as usize)
                .map_err(|_| Error(format!("cannot allocate {bytes} bytes")))?;
            r.take(bytes as u64)
                .read_to_end(&mut v)
                .map_err(|e| eof_as_truncated(e, "data"))?;
            if v.len() != bytes as usize {
                bail!(
                    "data is cut off after {} of {bytes} bytes (truncated or corrupt file)",
                    v.len()
                );
            }
            v
        }
    };
    if want == MatWant::Uint8 {
        return Ok(MatData::U8(raw));
    }
    let values = raw
        .chunks_exact(size)
        .map(|c| match ty {
            1 => c[0] as i8 as f64,
            2 => c[0] as f64,
            3 => i16::from_le_bytes([c[0], c[1]]) as f64,
            4 => u16::from_le_bytes([c[0], c[1]]) as f64,
            5 => i32::from_le_bytes(c.try_into().unwrap()) as f64,
            6 => u32::from_le_bytes(c.try_into().unwrap()) as f64,
            7 => f32::from_le_bytes(c.try_into().unwrap()) as f64,
            9 => f64::from_le_bytes(c.try_into().unwrap()),
            12 => i64::from_le_bytes(c.try_into().unwrap()) as f64,
            _ => u64::from_le_bytes(c.try_into().unwrap()) as f64,
        })
        .collect();
    Ok(MatData::F64(values))
}
