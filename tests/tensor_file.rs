//! `tensor_file::read_metadata` reads only a safetensors header: it must agree with the safetensors crate's own
//! parse of the whole file, and refuse what is not such a file.

use std::collections::HashMap;

#[test]
fn header_metadata_matches_the_safetensors_crate_and_bad_files_are_errors() {
    let dir = std::env::temp_dir().join(format!("dps-gpu-tensor-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let metadata: HashMap<String, String> = [("net", "squeeze"), ("method", "spatial+sort"), ("ranking", "7")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let tensors = vec![("spatial.0".to_string(), vec![3], vec![1.0, 2.0, 3.0])];
    dps_gpu::tensor_file::write(&path, &tensors, metadata.clone()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let from_crate = header.metadata().clone().unwrap_or_default();
    assert_eq!(from_crate, metadata);
    assert_eq!(dps_gpu::tensor_file::read_metadata(&path).unwrap(), from_crate);

    let bad = dir.join("bad.safetensors");
    for contents in [&b"abc"[..], &[8, 0, 0, 0, 0, 0, 0, 0, b'{', b'x'][..], &[255; 16][..]] {
        std::fs::write(&bad, contents).unwrap();
        let err = dps_gpu::tensor_file::read_metadata(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.safetensors"), "{err}");
    }
    assert!(dps_gpu::tensor_file::read_metadata(&dir.join("missing.safetensors")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
