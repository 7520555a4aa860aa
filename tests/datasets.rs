//! Dataset loaders on ../shared/data against values computed independently with numpy and PIL
//! (tools/make_data_expectations.py), and clear errors for broken files.

mod common;

use std::path::Path;

use dps_gpu::data::{open_dataset, ImageBank};

fn check(bank: &ImageBank, index: usize, want: &serde_json::Value, what: &str) {
    let mut chw = vec![0.0f32; 3 * 64 * 64];
    bank.write_unit(index, &mut chw).unwrap();
    let bytes: Vec<i64> = chw.iter().map(|v| (v * 255.0).round() as i64).collect();
    assert_eq!(
        bytes.iter().sum::<i64>(),
        want["sum"].as_i64().unwrap(),
        "{what}: pixel sum"
    );
    for (key, (y, x)) in [("pixel_0_0", (0, 0)), ("pixel_40_17", (40, 17))] {
        let got: Vec<i64> = (0..3).map(|c| bytes[c * 4096 + y * 64 + x]).collect();
        let want: Vec<i64> = want[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(got, want, "{what}: {key}");
    }
}

#[test]
fn shared_datasets_load_as_numpy_and_pil_see_them() {
    let Some(data) = common::shared_dir("DPS_DATA_DIR", "datasets") else {
        return;
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/shared_expectations.json");
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let cifar = data.join("cifar-10-batches-bin");
    let train = open_dataset(Some(&cifar), None, "train", None, 64).unwrap();
    assert_eq!(train.len() as u64, want["cifar10_train"]["count"].as_u64().unwrap());
    check(&train, 0, &want["cifar10_train"]["first"], "CIFAR-10 train first");
    check(
        &train,
        train.len() - 1,
        &want["cifar10_train"]["last"],
        "CIFAR-10 train last",
    );
    let test = open_dataset(Some(&cifar), None, "test", Some(7), 64).unwrap();
    assert_eq!(test.len(), 7, "--limit");
    check(&test, 0, &want["cifar10_test"]["first"], "CIFAR-10 test first");
    let single = open_dataset(Some(&cifar.join("test_batch.bin")), None, "train", None, 64).unwrap();
    assert_eq!(single.len() as u64, want["cifar10_test"]["count"].as_u64().unwrap());
    let stl = open_dataset(Some(&data.join("stl10_binary/test_X.bin")), None, "test", None, 64).unwrap();
    assert_eq!(stl.len() as u64, want["stl10_test"]["count"].as_u64().unwrap());
    check(
        &stl,
        0,
        &want["stl10_test"]["first"],
        "STL-10 first (96→64, antialiased)",
    );
    check(&stl, stl.len() - 1, &want["stl10_test"]["last"], "STL-10 last");
    let unlabeled = open_dataset(Some(&data.join("stl10_binary/unlabeled_X.bin")), None, "test", None, 64).unwrap();
    assert_eq!(
        unlabeled.len() as u64,
        want["stl10_unlabeled"]["count"].as_u64().unwrap()
    );
}

#[test]
fn broken_datasets_are_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("dps-gpu-datasets-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::create_dir_all(dir.join("pics/nested")).unwrap();
    let cases: Vec<(std::path::PathBuf, Option<&str>)> = vec![
        (dir.join("odd.bin"), Some("cifar10")),
        (dir.join("odd_X.bin"), None),
        (dir.join("empty"), Some("folder")),
        (dir.join("pics"), None),
        (dir.join("absent"), None),
    ];
    std::fs::write(dir.join("odd.bin"), vec![0u8; 3073 * 2 + 5]).unwrap();
    std::fs::write(dir.join("odd_X.bin"), vec![0u8; 27648 + 1]).unwrap();
    image::RgbImage::new(8, 8).save(dir.join("pics/a.png")).unwrap();
    let bytes = std::fs::read(dir.join("pics/a.png")).unwrap();
    std::fs::write(dir.join("pics/nested/b.png"), &bytes[..bytes.len() / 2]).unwrap();
    for (path, format) in cases {
        let e = match open_dataset(Some(&path), format, "test", None, 64) {
            Ok(_) => panic!("{} should fail", path.display()),
            Err(e) => e.0,
        };
        let name = if path.ends_with("pics") {
            "b.png".to_string()
        } else {
            path.file_name().unwrap().to_string_lossy().into_owned()
        };
        assert!(e.contains(&name), "{e:?} does not name {name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
