// images.wgsl: 8-bit images, as decoded, into the [0, 1] f32 images every other kernel reads. Uploading bytes
// instead of floats moves a quarter of the data from the host per image.
//
// Layout: `bytes` holds the image values in their tensor order, four to a u32, little-endian (value i is
// byte i % 4 of word i / 4); `unit` is the table b -> b / 255 made on the host (WGSL's division may be
// inexact, and a table keeps every value bit-identical to the host's conversion); `y` is f32, of at least n
// values.
//   unit_from_bytes  y[i] = unit[byte i] for i < n; one thread per value, linear workgroup index x + z*groups_x.

struct ImagesParams {
    n: u32, groups_x: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ImagesParams;
@group(0) @binding(1) var<storage, read> bytes: array<u32>;
@group(0) @binding(2) var<storage, read> unit: array<f32, 256>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn unit_from_bytes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.x + wid.z * p.groups_x) * 256u + li;
    if (i >= p.n) {
        return;
    }
    let byte = (bytes[i / 4u] >> (8u * (i % 4u))) & 0xffu;
    y[i] = unit[byte];
}
