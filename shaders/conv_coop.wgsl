// conv_coop.wgsl: the fast mode's convolution forward on cooperative matrices (tensor cores), the same
// computation as conv2d_forward in conv.wgsl: y[:, c_off..c_off+Cout] = conv(x, weight) + bias, then ReLU.
// It lives in its own file because its `enable wgpu_cooperative_matrix;` is rejected by adapters without them.
//
// Layout: as conv.wgsl (x [B, Cin, H, W], weight OIHW, bias [Cout], y [B, Ctot, Ho, Wo], all f32).
// GEMM view: rows m = output channel, columns n = (b, oy, ox), depth k = (ci, ky, kx).
// Specialised by the host (kernels::conv) for the adapter: S, the side of its square f16×f16→f32 cooperative
// matrix (8 or 16), and SUBGROUP, its fixed subgroup size (a multiple of S). The lines below hold the values for
// an NVIDIA GPU (16×16×16, subgroup 32) and are replaced as whole lines.
// Dispatch: workgroup 4 subgroups (4·SUBGROUP invocations) computes a TM×TN = 4S×4S output tile; grid x*z covers
//           ceil(N/TN) column tiles (z only past the per-dimension limit), y covers ceil(Cout/TM) row tiles.
//           Each subgroup owns a 2S×2S quarter as 2×2 accumulator matrices in f32; every TK = 2S-deep slice of
//           A (weights) and B (input patches) is converted to f16 and staged in workgroup memory by all
//           invocations (loaded during the slice before: PREFETCH), then each subgroup multiplies it with 2×2×2
//           cooperative multiply-adds.
// Precision: operands rounded to f16, products accumulated in f32 by the hardware (the fast mode's contract).

enable f16;
enable wgpu_cooperative_matrix;

// The parameter block, bindings and the column, patch_value, weight_value and store_output helpers come from conv.wgsl's shared part,
// which kernels::conv inserts after the `enable` lines.

const S: u32 = 16u;
alias TileA = coop_mat16x16<f16, A>;
alias TileB = coop_mat16x16<f16, B>;
alias TileC = coop_mat16x16<f32, C>;
const SUBGROUP: u32 = 32u;

const WG: u32 = 4u * SUBGROUP;
const TM: u32 = 4u * S;
const TN: u32 = 4u * S;
const TK: u32 = 2u * S;
// A and B values an invocation stages per slice: A rows a_m0 + (WG / TK)·j, B rows row0 + (WG / TN)·j.
const A_PER: u32 = (TM + WG / TK - 1u) / (WG / TK);
const B_PER: u32 = (TK + WG / TN - 1u) / (WG / TN);
// Whether each slice's values are loaded while the slice before is multiplied (conv.wgsl's PREFETCH);
// kernels::conv compiles a copy without it for `bench --no-prefetch`.
const PREFETCH: bool = true;

var<workgroup> a_tile: array<f16, TK * TM>; // [TK][TM]: A column-major
var<workgroup> b_tile: array<f16, TK * TN>; // [TK][TN]: B row-major
var<workgroup> c_tile: array<f32, TM * TN>; // [TM][TN]: zeros in, results out

// The values of slice k0 an invocation stages, rounded to f16: weight k0 + a_k of rows m + (WG / TK)·j (m is
// the row of j = 0, from m0), and the patch values at depths k0 + row0 + (WG / TN)·j of the column `col`.
fn load_coop_slice(
    k0: u32,
    m: u32,
    a_k: u32,
    col: Column,
    row0: u32,
    a: ptr<function, array<f16, A_PER>>,
    b: ptr<function, array<f16, B_PER>>,
) {
    for (var j = 0u; j < A_PER; j++) {
        (*a)[j] = f16(weight_value(m + (WG / TK) * j, k0 + a_k));
    }
    for (var j = 0u; j < B_PER; j++) {
        (*b)[j] = f16(patch_value(col, k0 + row0 + (WG / TN) * j));
    }
}

@compute @workgroup_size(WG, 1, 1)
fn conv2d_forward_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n0 = (wid.x + wid.z * p.groups_x) * TN;
    let m0 = wid.y * TM;
    let depth = p.cin * p.kh * p.kw;

    // WG is a multiple of TN (SUBGROUP is a multiple of S), so the B column an invocation stages and the output
    // column it writes never change: decode it once.
    let b_col = li % TN;
    let col = column(n0 + b_col);
    let row0 = li / TN;
    // A is staged with neighbouring invocations on neighbouring k: contiguous in OIHW.
    let a_k = li % TK;
    let a_m0 = li / TK;

    for (var e = li; e < TM * TN; e += WG) {
        c_tile[e] = 0.0;
    }
    workgroupBarrier();
    let sg = li / SUBGROUP;
    let qm = (sg / 2u) * 2u * S;
    let qn = (sg % 2u) * 2u * S;
    var c00 = coopLoadT<TileC>(&c_tile[qm * TN + qn], TN);
    var c01 = coopLoadT<TileC>(&c_tile[qm * TN + qn + S], TN);
    var c10 = coopLoadT<TileC>(&c_tile[(qm + S) * TN + qn], TN);
    var c11 = coopLoadT<TileC>(&c_tile[(qm + S) * TN + qn + S], TN);

    var a_next: array<f16, A_PER>;
    var b_next: array<f16, B_PER>;
    if (PREFETCH) {
        load_coop_slice(0u, m0 + a_m0, a_k, col, row0, &a_next, &b_next);
    }
    for (var k0 = 0u; k0 < depth; k0 += TK) {
        workgroupBarrier(); // the previous slice has been multiplied (and c_tile read) by every subgroup
        if (!PREFETCH) {
            load_coop_slice(k0, m0 + a_m0, a_k, col, row0, &a_next, &b_next);
        }
        for (var j = 0u; j < A_PER; j++) {
            let m = a_m0 + (WG / TK) * j;
            if (m < TM) {
                a_tile[a_k * TM + m] = a_next[j];
            }
        }
        for (var j = 0u; j < B_PER; j++) {
            let kk = row0 + (WG / TN) * j;
            if (kk < TK) {
                b_tile[kk * TN + b_col] = b_next[j];
            }
        }
        workgroupBarrier();
        if (PREFETCH && k0 + TK < depth) {
            load_coop_slice(k0 + TK, m0 + a_m0, a_k, col, row0, &a_next, &b_next);
        }
        for (var s = 0u; s < TK; s += S) {
            let a0 = coopLoad<TileA>(&a_tile[s * TM + qm], TM);
            let a1 = coopLoad<TileA>(&a_tile[s * TM + qm + S], TM);
            let b0 = coopLoadT<TileB>(&b_tile[s * TN + qn], TN);
            let b1 = coopLoadT<TileB>(&b_tile[s * TN + qn + S], TN);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
    }

    coopStoreT(c00, &c_tile[qm * TN + qn], TN);
    coopStoreT(c01, &c_tile[qm * TN + qn + S], TN);
    coopStoreT(c10, &c_tile[(qm + S) * TN + qn], TN);
    coopStoreT(c11, &c_tile[(qm + S) * TN + qn + S], TN);
    workgroupBarrier();

    if (!col.ok) {
        return;
    }
    for (var m = row0; m < TM && m0 + m < p.cout; m += WG / TN) {
        store_output(col, m0 + m, c_tile[m * TN + b_col]);
    }
}
