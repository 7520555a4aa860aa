//! NumPy `.npy` files (format versions 1, 2 and 3) of float32 or float64 in either byte order, as BAPPS stores
//! its human judgements: one value per file, shape `(1,)`, `()` or `(1, 1)`.

use std::path::Path;

use crate::{bail, Context, Result};

/// Every value of a float `.npy` file in C order, with its shape. Integers and other types are refused rather than
/// guessed at.
pub fn read_npy_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).context(format!("{}: cannot read", path.display()))?;
    parse_npy(&bytes).context(path.display())
}

/// The single value of a `.npy` file holding exactly one float (any shape whose size is 1).
pub fn read_npy_scalar(path: &Path) -> Result<f64> {
    let (shape, values) = read_npy_f64(path)?;
    if values.len() != 1 {
        bail!("{}: expected one value, found shape {shape:?}", path.display());
    }
    Ok(values[0])
}

fn parse_npy(b: &[u8]) -> Result<(Vec<usize>, Vec<f64>)> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        bail!("not a .npy file (no \\x93NUMPY magic)");
    }
    let (header_len, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => bail!(".npy format version {v}.{} is not supported (1, 2 or 3)", b[7]),
    };
    let Some(header) = b.get(start..start + header_len) else {
        bail!(
            "truncated .npy header ({header_len} bytes announced, {} present)",
            b.len() - start
        );
    };
    // Version 3 only differs from 2 by allowing UTF-8 in the header; the keys we need are ASCII either way.
    let header = std::str::from_utf8(header).map_err(|_| crate::Error::msg("the .npy header is not UTF-8 text"))?;
    let h = Header::parse(header).context(format!("bad .npy header {:?}", header.trim_end()))?;
    let (big, size) = match h.descr.as_str() {
        "<f4" => (false, 4),
        ">f4" => (true, 4),
        "<f8" => (false, 8),
        ">f8" => (true, 8),
        other => bail!("dtype {other:?} is not supported (float32 or float64: <f4, >f4, <f8, >f8)"),
    };
    let count = h.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let data = &b[start + header_len..];
    if count.and_then(|c| c.checked_mul(size)) != Some(data.len()) {
        bail!(
            "shape {:?} of {} needs {} data bytes, the file has {}",
            h.shape,
            h.descr,
            count.unwrap_or(0) * size,
            data.len()
        );
    }
    // Fortran order changes nothing unless two dimensions exceed 1, which no BAPPS file has.
    if h.fortran_order && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
        bail!("Fortran-ordered arrays of shape {:?} are not supported", h.shape);
    }
    let values: Vec<f64> = data
        .chunks_exact(size)
        .map(|c| match (size, big) {
            (4, false) => f32::from_le_bytes(c.try_into().unwrap()) as f64,
            (4, true) => f32::from_be_bytes(c.try_into().unwrap()) as f64,
            (_, false) => f64::from_le_bytes(c.try_into().unwrap()),
            (_, true) => f64::from_be_bytes(c.try_into().unwrap()),
        })
        .collect();
    Ok((h.shape, values))
}

/// The header is a Python dict literal, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }`.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    fn parse(text: &str) -> Result<Header> {
        let mut p = Parser(text.trim().as_bytes(), 0);
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        p.expect(b'{')?;
        while !p.eat(b'}') {
            let key = p.string()?;
            p.expect(b':')?;
            match key.as_str() {
                "descr" => descr = Some(p.string()?),
                "fortran_order" => fortran = Some(p.boolean()?),
                "shape" => shape = Some(p.tuple()?),
                other => bail!("unexpected key {other:?}"),
            }
            if !p.eat(b',') {
                p.expect(b'}')?;
                break;
            }
        }
        match (descr, fortran, shape) {
            (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
                descr,
                fortran_order,
                shape,
            }),
            _ => bail!("descr, fortran_order or shape missing"),
        }
    }
}

struct Parser<'a>(&'a [u8], usize);

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.0.get(self.1).is_some_and(|c| c.is_ascii_whitespace()) {
            self.1 += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        let hit = self.0.get(self.1) == Some(&c);
        self.1 += hit as usize;
        hit
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        if !self.eat(c) {
            bail!("expected '{}' at byte {}", c as char, self.1);
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String> {
        self.skip_space();
        let Some(&q @ (b'\'' | b'"')) = self.0.get(self.1) else {
            bail!("expected a quoted string at byte {}", self.1);
        };
        let start = self.1 + 1;
        let Some(len) = self.0[start..].iter().position(|&c| c == q) else {
            bail!("unterminated string at byte {}", self.1);
        };
        self.1 = start + len + 1;
        Ok(String::from_utf8_lossy(&self.0[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool> {
        self.skip_space();
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.0[self.1..].starts_with(word) {
                self.1 += word.len();
                return Ok(value);
            }
        }
        bail!("expected True or False at byte {}", self.1)
    }

    fn tuple(&mut self) -> Result<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        while !self.eat(b')') {
            self.skip_space();
            let start = self.1;
            while self.0.get(self.1).is_some_and(|c| c.is_ascii_digit()) {
                self.1 += 1;
            }
            let digits = std::str::from_utf8(&self.0[start..self.1]).unwrap_or("");
            let Ok(d) = digits.parse::<usize>() else {
                bail!("expected a dimension at byte {start}");
            };
            dims.push(d);
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }
}
