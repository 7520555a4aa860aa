//! Dataset loaders (SVHN .mat, STL-10, CIFAR-10, BAPPS, image folders) on tiny files in the real layouts, checked
//! against what numpy/scipy/PIL read from them (tools/make_data_fixtures.py → tests/fixtures/data/manifest.json),
//! on ../shared/data when DPS_DATA_DIR is set, and on broken files, which must be one-line errors naming the file.

mod common;

use std::path::{Path, PathBuf};

use dps_gpu::data::{
    is_bapps, open_bapps, open_images, read_npy_f64, Bapps, ImageSource, JndPair, RgbImage8, TwoAfcTriplet,
};
use serde_json::Value;

fn fixtures() -> (PathBuf, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data");
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("tests/fixtures/data/manifest.json");
    (dir, serde_json::from_str(&text).expect("manifest.json is JSON"))
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("{v} is not an integer"))
}

/// Compares an image with the manifest's description: size, sum, position-weighted sum, a few pixels.
fn check_image(img: &RgbImage8, want: &Value, what: &str) {
    assert_eq!(
        (img.width as i64, img.height as i64),
        (num(&want["width"]), num(&want["height"])),
        "{what}: size"
    );
    let sum: i64 = img.data.iter().map(|&v| v as i64).sum();
    let weighted: i64 = img
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| v as i64 * (i as i64 % 251 + 1))
        .sum();
    assert_eq!(sum, num(&want["sum"]), "{what}: sum");
    assert_eq!(weighted, num(&want["weighted"]), "{what}: position-weighted sum");
    for p in want["pixels"].as_array().unwrap() {
        let (y, x) = (num(&p[0]) as usize, num(&p[1]) as usize);
        let at = (y * img.width + x) * 3;
        let want: Vec<i64> = p[2].as_array().unwrap().iter().map(num).collect();
        let got: Vec<i64> = img.data[at..at + 3].iter().map(|&v| v as i64).collect();
        assert_eq!(got, want, "{what}: pixel (y {y}, x {x})");
    }
}

/// Every image and label of `src` against `want` (a list of image descriptions, with `label` when labelled).
fn check_source(src: &dyn ImageSource, want: &[Value], what: &str) {
    assert_eq!(src.len(), want.len(), "{what}: number of images ({})", src.describe());
    for (i, w) in want.iter().enumerate() {
        let img = src.image(i).unwrap_or_else(|e| panic!("{what}: image {i}: {e}"));
        check_image(&img, w, &format!("{what} image {i}"));
        assert_eq!(src.label(i), w.get("label").map(|l| num(l) as u32), "{what}: label {i}");
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_else(|| panic!("{v} is not a list"))
}

#[test]
fn svhn_mat_files_compressed_and_plain() {
    let (dir, m) = fixtures();
    for case in list(&m["svhn"]) {
        let path = dir.join(case["file"].as_str().unwrap());
        let src = open_images(&path, None, None, None).unwrap();
        check_source(src.as_ref(), list(&case["images"]), &path.display().to_string());
        assert!(src.describe().contains("SVHN"), "{}", src.describe());
        assert_eq!(src.label(0), Some(10), "10 is kept for the digit 0");
        let limited = open_images(&path, Some("svhn"), None, Some(1)).unwrap();
        check_source(limited.as_ref(), &list(&case["images"])[..1], "SVHN --limit 1");
    }
}

#[test]
fn stl10_with_and_without_labels() {
    let (dir, m) = fixtures();
    let want = list(&m["stl10"]["images"]);
    let x = dir.join(m["stl10"]["file"].as_str().unwrap());
    check_source(open_images(&x, None, None, None).unwrap().as_ref(), want, "STL-10 file");
    let by_split = open_images(x.parent().unwrap(), None, Some("tiny"), None).unwrap();
    check_source(by_split.as_ref(), want, "STL-10 directory + split");
    check_source(
        open_images(&x, None, None, Some(1)).unwrap().as_ref(),
        &want[..1],
        "STL-10 --limit 1",
    );

    let tmp = TempDir::new("stl10");
    std::fs::copy(&x, tmp.0.join("alone_X.bin")).unwrap();
    let unlabeled = open_images(&tmp.0.join("alone_X.bin"), None, None, None).unwrap();
    let without: Vec<Value> = want.iter().map(strip_label).collect();
    check_source(unlabeled.as_ref(), &without, "STL-10 without *_y.bin");
}

fn strip_label(w: &Value) -> Value {
    let mut w = w.clone();
    w.as_object_mut().unwrap().remove("label");
    w
}

#[test]
fn cifar10_directory_splits_and_single_files() {
    let (dir, m) = fixtures();
    let c = &m["cifar10"];
    let root = dir.join(c["dir"].as_str().unwrap());
    let (train, test) = (list(&c["train"]), list(&c["test"]));
    check_source(
        open_images(&root, None, Some("train"), None).unwrap().as_ref(),
        train,
        "CIFAR-10 train",
    );
    check_source(
        open_images(&root, None, Some("test"), None).unwrap().as_ref(),
        test,
        "CIFAR-10 test",
    );
    let across = open_images(&root, Some("cifar10"), Some("train"), Some(4)).unwrap();
    check_source(
        across.as_ref(),
        &train[..4],
        "CIFAR-10 --limit 4 across two batch files",
    );
    let single = open_images(&root.join("data_batch_2.bin"), None, None, None).unwrap();
    check_source(single.as_ref(), &train[3..], "CIFAR-10 single batch file");
    let e = open_images(&root, None, None, None)
        .err()
        .expect("a CIFAR-10 directory needs a split");
    assert!(e.0.contains("split") && e.0.contains("cifar-10-batches-bin"), "{e}");
    let e = open_images(&root, None, Some("val"), None).err().expect("no val split");
    assert!(e.0.contains("val"), "{e}");
}

#[test]
fn bapps_2afc_and_jnd_trees() {
    let (dir, m) = fixtures();
    for kind in ["2afc", "jnd"] {
        let want = &m["bapps"][kind];
        let split = dir.join(want["dir"].as_str().unwrap());
        assert!(is_bapps(&split), "{}", split.display());
        let subsets = list(&want["subsets"]);
        let got = open_bapps(&split, None).unwrap();
        assert_eq!(got, expected_bapps(&dir, kind, subsets, 2), "{kind} split directory");
        let one = open_bapps(&split.join("traditional"), Some(1)).unwrap();
        assert_eq!(
            one,
            expected_bapps(&dir, kind, &subsets[1..], 1),
            "{kind} subset directory, --limit 1"
        );
        assert!(is_bapps(&split.join("cnn")));
        let e = open_images(&split, None, None, None)
            .err()
            .expect("a BAPPS tree is not an image dataset");
        assert!(e.0.contains("BAPPS"), "{e}");
    }
    assert!(!is_bapps(&dir.join("folder")));
    let e = open_bapps(&dir.join("folder"), None).unwrap_err();
    assert!(e.0.contains("folder") && e.0.contains("BAPPS"), "{e}");

    // Every .npy variant of the fixtures: v1/v2/v3, f4/f8, both byte orders, shapes (1,), () and (1, 1).
    for s in list(&m["bapps"]["2afc"]["subsets"]) {
        for item in list(&s["items"]) {
            let npy = dir.join(
                item["ref"]
                    .as_str()
                    .unwrap()
                    .replace("/ref/", "/judge/")
                    .replace(".png", ".npy"),
            );
            let (shape, values) = read_npy_f64(&npy).unwrap();
            let want_shape = item["npy"]
                .as_str()
                .unwrap()
                .split("shape ")
                .nth(1)
                .unwrap()
                .to_string();
            let shape_text = match shape.len() {
                1 => format!("({},)", shape[0]),
                _ => format!(
                    "({})",
                    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                ),
            };
            assert_eq!(shape_text, want_shape, "{}", npy.display());
            assert_eq!(
                values,
                [item["judge"].as_f64().unwrap()],
                "{} ({})",
                npy.display(),
                item["npy"]
            );
        }
    }
}

fn expected_bapps(dir: &Path, kind: &str, subsets: &[Value], limit: usize) -> Bapps {
    let p = |item: &Value, key: &str| dir.join(item[key].as_str().unwrap());
    let f = |item: &Value, key: &str| item[key].as_f64().unwrap() as f32;
    let name = |s: &Value| s["name"].as_str().unwrap().to_string();
    if kind == "2afc" {
        Bapps::TwoAfc(
            subsets
                .iter()
                .map(|s| {
                    let t = list(&s["items"])[..limit].iter().map(|i| TwoAfcTriplet {
                        reference: p(i, "ref"),
                        p0: p(i, "p0"),
                        p1: p(i, "p1"),
                        judge: f(i, "judge"),
                    });
                    (name(s), t.collect())
                })
                .collect(),
        )
    } else {
        Bapps::Jnd(
            subsets
                .iter()
                .map(|s| {
                    let t = list(&s["items"])[..limit].iter().map(|i| JndPair {
                        p0: p(i, "p0"),
                        p1: p(i, "p1"),
                        same: f(i, "same"),
                    });
                    (name(s), t.collect())
                })
                .collect(),
        )
    }
}

#[test]
fn image_folder_recursive_and_sorted() {
    let (dir, m) = fixtures();
    let root = dir.join(m["folder"]["dir"].as_str().unwrap());
    let want = list(&m["folder"]["images"]);
    let src = open_images(&root, None, None, None).unwrap();
    check_source(src.as_ref(), want, "image folder (hidden files and notes.txt skipped)");
    let files = dps_gpu::data::open_folder(&root, None).unwrap();
    let names: Vec<PathBuf> = files
        .files()
        .iter()
        .map(|f| f.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    let want_names: Vec<PathBuf> = want
        .iter()
        .map(|w| PathBuf::from(w["file"].as_str().unwrap()))
        .collect();
    assert_eq!(names, want_names);
    check_source(
        open_images(&root, Some("folder"), None, Some(2)).unwrap().as_ref(),
        &want[..2],
        "folder --limit 2",
    );
}

#[test]
fn shared_data_reads_as_numpy_reads_it() {
    let Some(data) = common::shared_dir("DPS_DATA_DIR", "data loaders on shared data") else {
        return;
    };
    let (_, m) = fixtures();
    let real = &m["real_data_expectations"];
    let open = |p: &Path, split: Option<&str>| {
        open_images(p, None, split, None).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };

    let svhn = open(&data.join("svhn/test_32x32.mat"), None);
    check_source(svhn.as_ref(), list(&real["svhn_test"]), "SVHN test_32x32.mat");
    check_source(
        open(&data.join("svhn"), Some("test")).as_ref(),
        list(&real["svhn_test"]),
        "SVHN dir + split",
    );

    let stl = open(&data.join("stl10_binary/test_X.bin"), None);
    check_source(stl.as_ref(), list(&real["stl10_test"]), "STL-10 test_X.bin");
    let unlabeled = open(&data.join("stl10_binary"), Some("unlabeled"));
    assert_eq!(unlabeled.len() as i64, num(&real["stl10_unlabeled_count"]));
    assert_eq!(unlabeled.label(0), None);

    let cifar = data.join("cifar-10-batches-bin");
    for split in ["train", "test"] {
        let want = &real[format!("cifar10_{split}").as_str()];
        let src = open(&cifar, Some(split));
        assert_eq!(src.len() as i64, num(&want["count"]), "CIFAR-10 {split} count");
        for (i, key) in [(0, "first"), (src.len() - 1, "last")] {
            let w = &want[key];
            check_image(&src.image(i).unwrap(), w, &format!("CIFAR-10 {split} {key}"));
            assert_eq!(
                src.label(i),
                Some(num(&w["label"]) as u32),
                "CIFAR-10 {split} {key} label"
            );
        }
    }
}

/// A directory under the system's temporary directory, unique to this process and name, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d = std::env::temp_dir().join(format!("dps-gpu-data-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Top-level MAT-file data elements as (offset, byte count).
fn mat_elements(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 128;
    while off + 8 <= bytes.len() {
        let n = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        out.push((off, n));
        off += 8 + n;
    }
    out
}

/// A version 1 .npy header as numpy writes it: magic, version, length, the dict padded with spaces to 64 bytes.
fn npy_v1(dict: &str) -> Vec<u8> {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// The error `result` must be: one line naming `name` and containing every one of `words`.
fn assert_error<T>(result: dps_gpu::Result<T>, name: &str, words: &[&str]) {
    let e = match result {
        Ok(_) => panic!("{name}: should have failed"),
        Err(e) => e.0,
    };
    println!("{name}: {e}");
    assert!(!e.contains('\n'), "not one line: {e:?}");
    assert!(e.contains(name), "{e:?} does not name {name}");
    for w in words {
        assert!(e.contains(w), "{e:?} does not say {w:?}");
    }
}

#[test]
fn broken_inputs_are_clear_errors() {
    let (dir, _) = fixtures();
    let tmp = TempDir::new("broken");
    let t = |name: &str| tmp.0.join(name);
    let open = |p: &Path| open_images(p, None, None, None);

    // SVHN .mat: cut in the middle of X's compressed element; bytes flipped inside it; a plain file cut short;
    // X of the wrong class; not a MAT-file at all.
    let mat = std::fs::read(dir.join("svhn_compressed.mat")).unwrap();
    let &(x_off, x_len) = mat_elements(&mat).iter().max_by_key(|e| e.1).unwrap();
    std::fs::write(t("cut.mat"), &mat[..x_off + 8 + x_len / 2]).unwrap();
    assert_error(open(&t("cut.mat")), "cut.mat", &["truncated"]);
    let mut flipped = mat.clone();
    for b in &mut flipped[x_off + 8 + x_len / 2..x_off + 8 + x_len / 2 + 64] {
        *b ^= 0x5A;
    }
    std::fs::write(t("flipped.mat"), &flipped).unwrap();
    assert_error(
        open(&t("flipped.mat")),
        "flipped.mat",
        &[&format!("byte {x_off}"), "corrupt"],
    );
    let plain = std::fs::read(dir.join("svhn_plain.mat")).unwrap();
    std::fs::write(t("short.mat"), &plain[..plain.len() - 100]).unwrap();
    assert_error(open(&t("short.mat")), "short.mat", &["truncated"]);
    let mut wrong_class = plain.clone();
    let x = mat_elements(&plain).into_iter().max_by_key(|e| e.1).unwrap(); // X is the largest variable
    assert_eq!(
        wrong_class[x.0 + 16],
        9,
        "the class byte of X's array flags (mxUINT8_CLASS)"
    );
    wrong_class[x.0 + 16] = 6; // mxDOUBLE_CLASS
    std::fs::write(t("double_x.mat"), &wrong_class).unwrap();
    assert_error(open(&t("double_x.mat")), "double_x.mat", &["'X'", "double", "uint8"]);
    std::fs::write(t("text.mat"), "not a MAT-file but long enough for a header. ".repeat(5)).unwrap();
    assert_error(open(&t("text.mat")), "text.mat", &["not a MATLAB 5 MAT-file"]);
    std::fs::write(t("tiny.mat"), b"MATLAB 5.0 MAT-file").unwrap();
    assert_error(open(&t("tiny.mat")), "tiny.mat", &["shorter than a MAT-file header"]);

    // Binary records of the wrong size; labels that do not match their images.
    std::fs::write(t("odd.bin"), vec![0u8; 3073 * 2 + 5]).unwrap();
    assert_error(open(&t("odd.bin")), "odd.bin", &["not a whole number", "3073"]);
    std::fs::write(t("odd_X.bin"), vec![0u8; 27648 + 1]).unwrap();
    assert_error(open(&t("odd_X.bin")), "odd_X.bin", &["not a whole number", "27648"]);
    std::fs::write(t("two_X.bin"), vec![0u8; 27648 * 2]).unwrap();
    std::fs::write(t("two_y.bin"), [1u8, 2, 3]).unwrap();
    assert_error(open(&t("two_X.bin")), "two_y.bin", &["3 labels", "2 images"]);
    let mut cifar100ish = vec![0u8; 3073];
    cifar100ish[0] = 42;
    std::fs::write(t("labels.bin"), &cifar100ish).unwrap();
    assert_error(open(&t("labels.bin")), "labels.bin", &["label 42"]);

    // BAPPS: a corrupt .npy header, an integer .npy, a .npy cut short, an image missing.
    let bapps = |name: &str| {
        let d = t(name);
        copy_dir(&dir.join("bapps/2afc/val/cnn"), &d);
        d
    };
    let b = bapps("bad_header");
    std::fs::write(
        b.join("judge/000001.npy"),
        b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4', ",
    )
    .unwrap();
    assert_error(open_bapps(&b, None), "000001.npy", &["header"]);
    let b = bapps("int_npy");
    let mut npy = npy_v1("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }");
    npy.extend_from_slice(&7i64.to_le_bytes());
    std::fs::write(b.join("judge/000000.npy"), &npy).unwrap();
    assert_error(open_bapps(&b, None), "000000.npy", &["dtype", "<i8"]);
    let b = bapps("short_npy");
    let good = std::fs::read(b.join("judge/000000.npy")).unwrap();
    std::fs::write(b.join("judge/000000.npy"), &good[..good.len() - 2]).unwrap();
    assert_error(open_bapps(&b, None), "000000.npy", &["data bytes"]);
    let b = bapps("missing_image");
    std::fs::remove_file(b.join("p1/000001.png")).unwrap();
    assert_error(open_bapps(&b, None), "p1", &["000001"]);

    // A truncated PNG in a folder: listing works, reading that image fails and names it.
    let pics = t("pics");
    copy_dir(&dir.join("folder"), &pics);
    let png = std::fs::read(pics.join("b.png")).unwrap();
    std::fs::write(pics.join("a/d/e.PNG"), &png[..png.len() / 2]).unwrap();
    let src = open(&pics).unwrap();
    assert!(src.image(0).is_ok());
    assert_error(src.image(1), "e.PNG", &[]);

    // Nothing to read, or nothing known.
    std::fs::create_dir_all(t("empty")).unwrap();
    assert_error(open(&t("empty")), "empty", &["no PNG or JPEG images"]);
    std::fs::write(t("readme.txt"), b"hello").unwrap();
    assert_error(open(&t("readme.txt")), "readme.txt", &["not a dataset file"]);
    assert_error(open(&t("absent")), "absent", &["no such file"]);
    assert_error(
        open_images(&pics, Some("imagenet"), None, None),
        "imagenet",
        &["unknown dataset format"],
    );
    assert_error(open_images(&pics, None, None, Some(0)), "pics", &["no images"]);
}

/// A dataset made up on the spot: image i is (5 + i % 7) × (4 + i % 5) pixels of values from i, and images
/// listed in `broken` fail to load.
struct MadeUp {
    n: usize,
    broken: Vec<usize>,
}

impl ImageSource for MadeUp {
    fn len(&self) -> usize {
        self.n
    }
    fn image(&self, i: usize) -> dps_gpu::Result<RgbImage8> {
        if self.broken.contains(&i) {
            return Err(dps_gpu::Error::msg(format!("image {i} is broken")));
        }
        let (w, h) = (5 + i % 7, 4 + i % 5);
        RgbImage8::new(w, h, (0..w * h * 3).map(|k| ((k * 31 + i * 17) % 256) as u8).collect())
    }
    fn label(&self, _i: usize) -> Option<u32> {
        None
    }
    fn describe(&self) -> String {
        format!("{} made-up images", self.n)
    }
}

/// `ImageBank::from_source` loads on all cores: the same bank as loading the images one by one (PIL's resize,
/// checked against Pillow in tests/resize.rs), whatever the threads; of two broken images, the first is named.
#[test]
fn image_banks_load_in_parallel_in_their_order() {
    use dps_gpu::data::ImageBank;
    let source = MadeUp {
        n: 1100,
        broken: vec![],
    };
    let one_by_one = ImageBank::from_images((0..source.n).map(|i| source.image(i)), 12, "made up").unwrap();
    let parallel = ImageBank::from_source(&source, 12).unwrap();
    assert_eq!(parallel.len(), 1100);
    for i in 0..source.n {
        assert_eq!(parallel.bytes(i).unwrap(), one_by_one.bytes(i).unwrap(), "image {i}");
    }
    let broken = MadeUp {
        n: 1100,
        broken: vec![30, 1050],
    };
    let err = ImageBank::from_source(&broken, 12)
        .err()
        .expect("a broken image is an error")
        .to_string();
    assert!(err.contains("image 30 is broken"), "{err}");
    let empty = MadeUp { n: 0, broken: vec![] };
    let err = ImageBank::from_source(&empty, 12)
        .err()
        .expect("no images is an error")
        .to_string();
    assert!(err.contains("no images"), "{err}");
}
