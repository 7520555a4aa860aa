//! Image loading and PIL-exact bilinear resizing, against Pillow's outputs (fixtures written by
//! tools/make_resize_fixtures.py) and the torchvision inputs of ../shared/reference.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use dps_gpu::data::{load_rgb8, resize_bilinear_pil, to_unit_chw, RgbImage8};

fn fixtures() -> (PathBuf, serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resize");
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    (dir, serde_json::from_str(&manifest).unwrap())
}

fn load(path: &Path) -> RgbImage8 {
    load_rgb8(path).unwrap_or_else(|e| panic!("{e}"))
}

fn max_abs_diff(a: &RgbImage8, b: &RgbImage8) -> i32 {
    assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
    a.data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| (x as i32 - y as i32).abs())
        .max()
        .unwrap()
}

#[test]
fn resize_matches_pillow_byte_for_byte() {
    let (dir, manifest) = fixtures();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for case in cases {
        let src = load(&dir.join(case["source"].as_str().unwrap()));
        let (w, h) = (
            case["width"].as_u64().unwrap() as usize,
            case["height"].as_u64().unwrap() as usize,
        );
        let want = load(&dir.join(case["expected"].as_str().unwrap()));
        let worst = max_abs_diff(&resize_bilinear_pil(&src, w, h), &want);
        if worst != 0 {
            failures.push(format!("{}: max abs difference {worst}", case["expected"]));
        }
    }
    assert!(
        failures.is_empty(),
        "differs from Pillow {}:\n{}",
        manifest["pillow"],
        failures.join("\n")
    );
}

#[test]
fn files_load_as_pillow_converts_them_to_rgb() {
    let (dir, manifest) = fixtures();
    let mut failures = Vec::new();
    for case in manifest["loads"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let got = load(&dir.join(file));
        let want = load(&dir.join(case["expected"].as_str().unwrap()));
        let worst = max_abs_diff(&got, &want);
        println!("{file}: max abs difference {worst}");
        if worst as u64 > case["tolerance"].as_u64().unwrap() {
            failures.push(format!("{file}: max abs difference {worst}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn example_images_match_the_torchvision_inputs() {
    let Some(rdir) = common::reference_dir("example resize") else {
        return;
    };
    let data = PathBuf::from(std::env::var("DPS_DATA_DIR").unwrap());
    let t = common::read_tensors(&rdir.join("bapps_example.safetensors"));
    for (file, key) in [("ex_ref.png", "ref_01"), ("ex_p0.png", "p0_01"), ("ex_p1.png", "p1_01")] {
        let img = load(&data.join("bapps-example").join(file));
        let got = to_unit_chw(&resize_bilinear_pil(&img, 64, 64));
        assert_eq!(t[key].0, [1, 3, 64, 64], "{key}");
        let err = common::max_abs_diff(&got, &t[key].1);
        assert!(err <= 1e-6, "{file}: max abs error {err} against PIL + to_tensor");
    }
}

#[test]
fn to_unit_chw_is_channel_planes_over_255() {
    let img = RgbImage8::new(2, 1, vec![0, 51, 255, 1, 2, 3]).unwrap();
    let want = [0.0, 1.0 / 255.0, 51.0 / 255.0, 2.0 / 255.0, 1.0, 3.0 / 255.0];
    assert_eq!(to_unit_chw(&img), want);
}

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("dps-gpu-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn encoded(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[test]
fn unreadable_files_are_errors_naming_the_file() {
    let tmp = TempDir::new("unreadable");
    let good = image::RgbImage::from_fn(9, 5, |x, y| image::Rgb([x as u8, y as u8, 3]));
    let png = encoded(&good, image::ImageFormat::Png);
    let cases = [
        ("absent.png", None),
        ("notes.png", Some(b"hello, not an image".to_vec())),
        ("empty.png", Some(Vec::new())),
        ("cut.png", Some(png[..png.len() - 20].to_vec())),
        (
            "cut.jpg",
            Some(encoded(&good, image::ImageFormat::Jpeg)[..200].to_vec()),
        ),
    ];
    for (name, bytes) in cases {
        let path = tmp.0.join(name);
        if let Some(b) = bytes {
            std::fs::write(&path, b).unwrap();
        }
        let e = load_rgb8(&path).expect_err(name);
        println!("{e}");
        assert!(
            e.0.starts_with(&path.display().to_string()),
            "{e} does not start with the path"
        );
        assert!(!e.0.contains('\n'), "{e} is not one line");
    }
    let e = load_rgb8(&tmp.0).expect_err("a directory");
    assert!(e.0.starts_with(&tmp.0.display().to_string()), "{e}");

    // The content decides the format, not the name.
    let renamed = tmp.0.join("really_a_png.jpg");
    std::fs::write(&renamed, &png).unwrap();
    let img = load(&renamed);
    assert_eq!((img.width, img.height), (9, 5));
    assert_eq!(img.data, good.into_raw());
}

/// Every prefix of a file either fails or, when only trailing bytes are gone, decodes to the whole image: never
/// a partly decoded image, never a panic.
#[test]
fn truncated_files_never_load_partly() {
    let tmp = TempDir::new("truncated");
    let img = image::RgbImage::from_fn(21, 13, |x, y| {
        image::Rgb([(x * 12) as u8, (y * 19) as u8, (x * y) as u8])
    });
    let formats = [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Bmp,
        image::ImageFormat::Gif,
        image::ImageFormat::Tiff,
        image::ImageFormat::WebP,
    ];
    for format in formats {
        let bytes = encoded(&img, format);
        let path = tmp.0.join(format!("img.{}", format.extensions_str()[0]));
        std::fs::write(&path, &bytes).unwrap();
        let whole = load(&path);
        for len in 0..bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            if let Ok(partial) = load_rgb8(&path) {
                assert_eq!(
                    partial,
                    whole,
                    "{format:?} cut to {len} of {} bytes loads differently",
                    bytes.len()
                );
            }
        }
    }
}

/// `load_resized_bytes` decodes many files on all cores: 7 sources × 20 in a shuffled order (enough files for
/// several threads), each image in its place as Pillow resizes it to 64×64, in CHW order; a batch with two
/// missing files names the first.
#[test]
fn many_files_load_in_parallel_in_their_order() {
    use dps_gpu::data::load_resized_bytes;
    let (dir, _) = fixtures();
    let sides = ["1x7", "200x31", "256x256", "32x32", "37x23", "65x64", "96x96"];
    let order: Vec<usize> = (0..140).map(|i| (i * 3 + i / 7) % sides.len()).collect();
    let sources: Vec<PathBuf> = order
        .iter()
        .map(|&s| dir.join(format!("src_{}.png", sides[s])))
        .collect();
    let paths: Vec<&Path> = sources.iter().map(|p| p.as_path()).collect();
    let got = load_resized_bytes(&paths, 64).unwrap();
    assert_eq!(got.len(), paths.len() * 3 * 64 * 64);
    for (i, (&s, image)) in order.iter().zip(got.chunks_exact(3 * 64 * 64)).enumerate() {
        let want = load(&dir.join(format!("pillow_{}_to_64x64.png", sides[s])));
        for (p, px) in want.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                assert_eq!(
                    image[c * 64 * 64 + p],
                    px[c],
                    "file {i} ({}), pixel {p}, channel {c}",
                    sides[s]
                );
            }
        }
    }
    let missing = [dir.join("missing_a.png"), dir.join("missing_b.png")];
    let mut broken = paths.clone();
    broken[20] = &missing[0];
    broken[130] = &missing[1];
    let err = load_resized_bytes(&broken, 64).unwrap_err().to_string();
    assert!(err.contains("missing_a.png") && !err.contains("missing_b.png"), "{err}");
    assert!(load_resized_bytes(&[], 64).unwrap().is_empty());
}
