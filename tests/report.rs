//! `dps-gpu report` on a small hand-made sweep (2 nets × 2 methods × 3 contexts × 2 seeds, baselines, and an
//! "adapted net" for alex/spatial): the statistics against a plain computation written here, the merge rules of
//! several results files, and the files the command writes. Needs no GPU and no data.

use std::path::{Path, PathBuf};
use std::process::Command;

use dps_gpu::report::analysis::Row;
use dps_gpu::report::grid::Measure;
use dps_gpu::report::{analyse, read_dirs, Grid};
use serde_json::json;

const COMBOS: [(&str, &str); 4] = [
    ("alex", "spatial"),
    ("alex", "mean"),
    ("vgg", "spatial"),
    ("vgg", "mean"),
];
const CONTEXTS: usize = 3;
const SEEDS: usize = 2;
const ID: &str = "svhn";
const OOD: &str = "stl";

// Scores in 64ths, so that every mean below is exact and ties are real ties.
/// Baseline 2AFC per combo and context.
const BASE_ID: [[u32; CONTEXTS]; 4] = [[30, 36, 33], [28, 34, 40], [32, 32, 35], [34, 30, 36]];
const BASE_OOD: [[u32; CONTEXTS]; 4] = [[30, 30, 38], [30, 30, 26], [32, 32, 30], [28, 28, 30]];
/// Adapted scalars per combo, context and seed. alex/mean context 2 loses to its baseline in-distribution,
/// vgg/spatial context 1 ties with it (a tie is not a win), vgg/mean context 2 loses out of distribution.
const AD_ID: [[[u32; SEEDS]; CONTEXTS]; 4] = [
    [[50, 54], [40, 44], [52, 52]],
    [[48, 50], [46, 46], [30, 34]],
    [[44, 46], [28, 36], [50, 54]],
    [[56, 60], [40, 42], [46, 48]],
];
const AD_OOD: [[[u32; SEEDS]; CONTEXTS]; 4] = [
    [[40, 42], [44, 44], [38, 40]],
    [[36, 38], [34, 36], [40, 40]],
    [[42, 42], [30, 34], [36, 38]],
    [[38, 40], [36, 36], [26, 28]],
];
/// The adapted net (alex/spatial, seed 0 only).
const NET_ID: [u32; CONTEXTS] = [60, 50, 58];
const NET_OOD: [u32; CONTEXTS] = [45, 40, 44];
const BASE_BAPPS: [u32; 2] = [44, 36];

fn s(x: u32) -> f64 {
    x as f64 / 64.0
}

fn adapted_bapps(seed: usize) -> [u32; 2] {
    [42 + seed as u32, 35 - seed as u32]
}

/// One results line; `scores` are (in-distribution, out-of-distribution, BAPPS) in 64ths.
fn cell(kind: &str, variant: &str, c: usize, ctx: usize, seed: Option<usize>, scores: (u32, u32, [u32; 2])) -> String {
    let (id, ood, bapps) = scores;
    let (net, method) = COMBOS[c];
    let name = match seed {
        None => format!("baseline/{net}/{method}/r{ctx}"),
        Some(sd) => format!("{kind}-{variant}/{net}/{method}/r{ctx}/s{sd}"),
    };
    let mut v = json!({
        "format": "dps-gpu sweep v1", "cell": name, "kind": kind, "net": net, "method": method,
        "ranking": ctx.to_string(), "ranking_order": "blur,hue,zoom,rotate,translate,darken",
        "seed": seed, "variant": variant, "paper_faithful": false, "in_distribution": ID,
        "tests": {ID: {"two_afc": s(id), "triplets": 64}, OOD: {"two_afc": s(ood), "triplets": 32}},
        "bapps": {"2afc": s(bapps[0]), "jnd_map": s(bapps[1])},
        "wall_seconds": match (kind, variant) { ("baseline", _) => 2.0, (_, "scalars") => 10.0, _ => 20.0 },
        "adapter": "test adapter", "dps_gpu_version": "0.1.0"
    });
    if kind == "adapted" {
        v["train"] = json!({"epochs": 10, "batch": 1024});
    }
    v.to_string()
}

/// Every line of the hand-made sweep.
fn lines() -> Vec<String> {
    let mut out = Vec::new();
    for c in 0..COMBOS.len() {
        for ctx in 0..CONTEXTS {
            let base = (BASE_ID[c][ctx], BASE_OOD[c][ctx], BASE_BAPPS);
            out.push(cell("baseline", "scalars", c, ctx, None, base));
            for sd in 0..SEEDS {
                let scores = (AD_ID[c][ctx][sd], AD_OOD[c][ctx][sd], adapted_bapps(sd));
                out.push(cell("adapted", "scalars", c, ctx, Some(sd), scores));
            }
        }
    }
    for ctx in 0..CONTEXTS {
        out.push(cell(
            "adapted",
            "net",
            0,
            ctx,
            Some(0),
            (NET_ID[ctx], NET_OOD[ctx], [40, 33]),
        ));
    }
    out
}

/// The line with one score replaced.
fn with_score(line: &str, path: &[&str], value: f64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    let mut at = &mut v;
    for key in path {
        at = &mut at[*key];
    }
    assert_ne!(*at, json!(value), "the test changes a score");
    *at = json!(value);
    v.to_string()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dps-gpu-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_results(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("results.jsonl"), text).unwrap();
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

// Plain statistics, written independently of the crate's.

fn plain_mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn plain_sd(xs: &[f64]) -> f64 {
    let m = plain_mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() as f64 - 1.0)).sqrt()
}

fn plain_pearson(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (plain_mean(x), plain_mean(y));
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let vy: f64 = y.iter().map(|b| (b - my) * (b - my)).sum();
    cov / (vx * vy).sqrt()
}

/// Rank = 1 + (values below) + (other values equal) / 2: the average rank of a tie group.
fn plain_ranks(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|a| {
            let below = x.iter().filter(|b| *b < a).count() as f64;
            let equal = x.iter().filter(|b| *b == a).count() as f64;
            1.0 + below + (equal - 1.0) / 2.0
        })
        .collect()
}

fn plain_spearman(x: &[f64], y: &[f64]) -> f64 {
    plain_pearson(&plain_ranks(x), &plain_ranks(y))
}

fn seed_mean(a: &[[[u32; SEEDS]; CONTEXTS]; 4], c: usize, ctx: usize) -> f64 {
    plain_mean(&a[c][ctx].map(s))
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-12, "{what}: got {a}, expected {b}");
}

fn one_dir(name: &str) -> PathBuf {
    let d = temp_dir(name);
    write_results(&d, &joined(&lines()));
    d
}

#[test]
fn statistics_match_a_plain_computation() {
    let dir = one_dir("stats");
    let results = read_dirs(&[dir]).unwrap();
    assert!(results.warnings.is_empty(), "{:?}", results.warnings);
    let grid = Grid::new(results.records);
    let a = analyse(&grid);

    // Header.
    let h = &a.header;
    assert_eq!(h.cells, 4 * 3 * (1 + 2) + 3);
    assert_eq!(h.baseline_cells, 12);
    assert_eq!(h.adapted_cells["scalars"], 24);
    assert_eq!(h.adapted_cells["net"], 3);
    assert_eq!(h.seeds, vec![0, 1]);
    assert_eq!(h.nets, vec!["alex", "vgg"]);
    assert_eq!(h.methods, vec!["spatial", "mean"]);
    assert_eq!(grid.contexts.len(), 3);
    assert_eq!(
        (grid.in_distribution.as_str(), grid.ood.clone()),
        (ID, vec![OOD.to_string()])
    );
    close(h.wall_seconds, 12.0 * 2.0 + 24.0 * 10.0 + 3.0 * 20.0, "wall seconds");

    // Table 3: mean ± sd over contexts (baselines) or contexts × seeds (adapted).
    let measures = grid.measures();
    assert_eq!(
        measures,
        vec![
            Measure::Test(ID.into()),
            Measure::Test(OOD.into()),
            Measure::Bapps("2afc".into()),
            Measure::Bapps("jnd_map".into())
        ]
    );
    let find_row = |combo: Option<usize>, row: Row| {
        let combo = combo.map(|c| (COMBOS[c].0.to_string(), COMBOS[c].1.to_string()));
        a.table
            .iter()
            .find(|r| r.combo == combo && r.row == row)
            .expect("table row")
    };
    let check = |got: &Option<dps_gpu::report::stats::Summary>, xs: &[f64], what: &str| {
        let got = got.expect(what);
        assert_eq!(got.n, xs.len(), "{what} count");
        close(got.mean, plain_mean(xs), what);
        close(got.sd, plain_sd(xs), what);
    };
    let mut all_base = [vec![], vec![], vec![], vec![]];
    let mut all_ad = [vec![], vec![], vec![], vec![]];
    for c in 0..4 {
        let base = [
            BASE_ID[c].map(s).to_vec(),
            BASE_OOD[c].map(s).to_vec(),
            vec![s(BASE_BAPPS[0]); 3],
            vec![s(BASE_BAPPS[1]); 3],
        ];
        let flat = |a: &[[[u32; SEEDS]; CONTEXTS]; 4]| a[c].iter().flatten().map(|&x| s(x)).collect::<Vec<_>>();
        let seeds_bapps = |k: usize| {
            (0..3)
                .flat_map(|_| (0..SEEDS).map(move |sd| s(adapted_bapps(sd)[k])))
                .collect()
        };
        let ad: [Vec<f64>; 4] = [flat(&AD_ID), flat(&AD_OOD), seeds_bapps(0), seeds_bapps(1)];
        let br = find_row(Some(c), Row::Baseline);
        let ar = find_row(Some(c), Row::Adapted("scalars".into()));
        for m in 0..4 {
            check(&br.cells[m], &base[m], &format!("baseline {:?} measure {m}", COMBOS[c]));
            check(&ar.cells[m], &ad[m], &format!("adapted {:?} measure {m}", COMBOS[c]));
            all_base[m].extend(&base[m]);
            all_ad[m].extend(&ad[m]);
        }
    }
    let net = find_row(Some(0), Row::Adapted("net".into()));
    check(&net.cells[0], &NET_ID.map(s), "adapted net in-distribution");
    check(&net.cells[1], &NET_OOD.map(s), "adapted net out-of-distribution");
    assert!(
        a.table
            .iter()
            .all(|r| !(r.row == Row::Adapted("net".into()) && r.combo.as_ref().is_some_and(|c| c.0 == "vgg"))),
        "no adapted-net row for combinations without one"
    );
    for m in 0..4 {
        check(&find_row(None, Row::Baseline).cells[m], &all_base[m], "all baselines");
        check(
            &find_row(None, Row::Adapted("scalars".into())).cells[m],
            &all_ad[m],
            "all adapted",
        );
    }

    // Adapted (mean over seeds) strictly above the baseline, per (combo, context).
    let wins = |ad: &[[[u32; SEEDS]; CONTEXTS]; 4], base: &[[u32; CONTEXTS]; 4]| {
        let cells = (0..4).flat_map(|c| (0..3).map(move |ctx| (c, ctx)));
        cells
            .filter(|&(c, ctx)| seed_mean(ad, c, ctx) > s(base[c][ctx]))
            .count()
    };
    let beats = |v: &str, m: &str| {
        a.beats
            .iter()
            .find(|b| b.variant == v && b.measure == Measure::Test(m.into()))
            .expect("beats")
    };
    let b = beats("scalars", ID);
    assert_eq!((b.wins, b.total), (wins(&AD_ID, &BASE_ID), 12));
    assert_eq!(
        b.wins, 10,
        "the hand-made grid has one loss and one tie in-distribution"
    );
    let b = beats("scalars", OOD);
    assert_eq!((b.wins, b.total), (wins(&AD_OOD, &BASE_OOD), 12));
    let b = beats("net", ID);
    assert_eq!((b.wins, b.total), (3, 3));

    // Spearman over contexts of the per-context averages over combinations.
    let ctx_avg = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
        (0..3)
            .map(|ctx| plain_mean(&(0..4).map(|c| f(c, ctx)).collect::<Vec<_>>()))
            .collect()
    };
    let sp = |v: &str, combo: Option<(&str, &str)>, m: &str| {
        let want = combo.map(|(n, me)| (n.to_string(), me.to_string()));
        a.spearman
            .iter()
            .find(|x| x.variant == v && x.combo == want && x.measure == Measure::Test(m.into()))
            .expect("spearman")
    };
    for (m, base, ad) in [(ID, &BASE_ID, &AD_ID), (OOD, &BASE_OOD, &AD_OOD)] {
        let b = ctx_avg(&|c, ctx| s(base[c][ctx]));
        let ad_avg = ctx_avg(&|c, ctx| seed_mean(ad, c, ctx));
        let got = sp("scalars", None, m);
        assert_eq!(got.contexts, 3);
        close(
            got.rho.expect("defined"),
            plain_spearman(&b, &ad_avg),
            &format!("spearman {m}"),
        );
        let one = sp("scalars", Some(("alex", "spatial")), m);
        let b1: Vec<f64> = (0..3).map(|ctx| s(base[0][ctx])).collect();
        let a1: Vec<f64> = (0..3).map(|ctx| seed_mean(ad, 0, ctx)).collect();
        close(
            one.rho.expect("defined"),
            plain_spearman(&b1, &a1),
            &format!("alex/spatial spearman {m}"),
        );
    }
    // The out-of-distribution baseline averages tie in contexts 0 and 1, alex/spatial's adapted ID means too.
    let b_ood = ctx_avg(&|c, ctx| s(BASE_OOD[c][ctx]));
    assert_eq!(b_ood[0], b_ood[1]);
    close(
        sp("scalars", None, OOD).rho.unwrap(),
        -0.8660254037844387,
        "spearman with a tie",
    );
    let net_sp = sp("net", None, ID);
    let b1: Vec<f64> = BASE_ID[0].map(s).to_vec();
    close(
        net_sp.rho.unwrap(),
        plain_spearman(&b1, &NET_ID.map(s)),
        "adapted net spearman",
    );

    // Pearson between combinations over contexts, of adapted seed means; average above the diagonal.
    for (m, ad) in [(ID, &AD_ID), (OOD, &AD_OOD)] {
        let p = a
            .pearson
            .iter()
            .find(|p| p.row == Row::Adapted("scalars".into()) && p.measure == Measure::Test(m.into()))
            .expect("pearson");
        let series: Vec<Vec<f64>> = (0..4)
            .map(|c| (0..3).map(|ctx| seed_mean(ad, c, ctx)).collect())
            .collect();
        let mut off = Vec::new();
        for i in 0..4 {
            for j in 0..4 {
                let gi = p
                    .combos
                    .iter()
                    .position(|k| (k.0.as_str(), k.1.as_str()) == COMBOS[i])
                    .unwrap();
                let gj = p
                    .combos
                    .iter()
                    .position(|k| (k.0.as_str(), k.1.as_str()) == COMBOS[j])
                    .unwrap();
                let want = plain_pearson(&series[i], &series[j]);
                close(p.r[gi][gj].expect("defined"), want, &format!("pearson {m} {i} {j}"));
                if i < j {
                    off.push(want);
                }
            }
        }
        close(
            p.mean_off_diagonal.unwrap(),
            plain_mean(&off),
            &format!("mean pearson {m}"),
        );
    }
    let p = a
        .pearson
        .iter()
        .find(|p| p.row == Row::Baseline && p.measure == Measure::Test(ID.into()))
        .unwrap();
    let series: Vec<Vec<f64>> = (0..4).map(|c| BASE_ID[c].map(s).to_vec()).collect();
    let mut off = Vec::new();
    for i in 0..4 {
        for j in i + 1..4 {
            off.push(plain_pearson(&series[i], &series[j]));
        }
    }
    close(p.mean_off_diagonal.unwrap(), plain_mean(&off), "mean baseline pearson");
    // One combination only: no pair to average.
    let p = a.pearson.iter().find(|p| p.row == Row::Adapted("net".into())).unwrap();
    assert_eq!(p.mean_off_diagonal, None);

    // Colour order: contexts by their mean out-of-distribution baseline; context 2 is the highest.
    assert_eq!(a.context_rank[2], Some(2));
}

#[test]
fn merging_two_directories_keeps_one_copy_of_identical_duplicates() {
    let all = lines();
    let root = temp_dir("merge");
    let (a, b) = (root.join("a"), root.join("b"));
    // Both hold the middle third.
    write_results(&a, &joined(&all[..2 * all.len() / 3]));
    write_results(&b, &joined(&all[all.len() / 3..]));
    let merged = read_dirs(&[a, b]).unwrap();
    let dups = 2 * all.len() / 3 - all.len() / 3;
    assert_eq!(merged.duplicates, dups);
    assert_eq!(merged.records.len(), all.len());
    let single = read_dirs(&[one_dir("merge-single")]).unwrap();
    let cells = |r: &dps_gpu::report::Results| {
        let mut v: Vec<String> = r.records.iter().map(|x| x.cell.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(cells(&merged), cells(&single));
}

#[test]
fn a_conflicting_duplicate_names_the_cell_and_both_files() {
    let all = lines();
    let root = temp_dir("conflict");
    let (a, b) = (root.join("a"), root.join("b"));
    write_results(&a, &joined(&all));
    let changed = with_score(&all[5], &["tests", ID, "two_afc"], 0.25);
    write_results(&b, &joined(&[all[0].clone(), changed.clone()]));
    let err = read_dirs(&[a.clone(), b.clone()]).unwrap_err().to_string();
    let id = serde_json::from_str::<serde_json::Value>(&changed).unwrap()["cell"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains(&id), "{err}");
    assert!(
        err.contains(&format!("{}:6", a.join("results.jsonl").display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:2", b.join("results.jsonl").display())),
        "{err}"
    );
}

#[test]
fn a_truncated_last_line_is_ignored_with_a_warning() {
    let all = lines();
    let d = temp_dir("truncated");
    let cut = &all[3][..all[3].len() / 2];
    write_results(&d, &format!("{}{cut}", joined(&all[..3])));
    let r = read_dirs(std::slice::from_ref(&d)).unwrap();
    assert_eq!(r.records.len(), 3);
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("results.jsonl:4"), "{}", r.warnings[0]);
    // With its newline the same line is not the work of a killed writer: an error.
    write_results(&d, &format!("{}{cut}\n", joined(&all[..3])));
    let err = read_dirs(&[d]).unwrap_err().to_string();
    assert!(err.contains("results.jsonl:4"), "{err}");
}

#[test]
fn a_malformed_middle_line_is_an_error_with_file_and_line() {
    let all = lines();
    let d = temp_dir("malformed");
    let mut bad = all[..6].to_vec();
    bad[2] = "{\"format\": \"dps-gpu sweep v1\", \"cell\": ".to_string();
    write_results(&d, &joined(&bad));
    let err = read_dirs(std::slice::from_ref(&d)).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{}:3", d.join("results.jsonl").display())),
        "{err}"
    );
    // Valid JSON that breaks the contract is reported the same way.
    let mut bad = all[..6].to_vec();
    bad[4] = bad[4].replace("dps-gpu sweep v1", "dps-gpu sweep v9");
    write_results(&d, &joined(&bad));
    let err = read_dirs(&[d]).unwrap_err().to_string();
    assert!(err.contains("results.jsonl:5") && err.contains("v9"), "{err}");
}

fn dps(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dps-gpu"))
        .args(args)
        .output()
        .expect("the dps-gpu binary runs")
}

#[test]
fn the_cli_writes_the_report_and_figures() {
    let all = lines();
    let root = temp_dir("cli");
    let (a, b, out) = (root.join("a"), root.join("b"), root.join("out"));
    write_results(&a, &joined(&all[..20]));
    write_results(&b, &format!("{}{}", joined(&all[15..]), "{\"format\":\"dps-gpu"));
    let args = |extra: &[&str]| {
        let mut v = vec!["report".to_string(), a.display().to_string(), b.display().to_string()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = dps(&args(&["--out", &out.display().to_string()])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "failed: {stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("results.jsonl"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = out.join("report.md");
    assert!(stdout.contains(&report.display().to_string()), "{stdout}");
    let md = std::fs::read_to_string(&report).unwrap();
    for needle in [
        "Table 3",
        "fig2_contexts.png",
        "fig3_networks.svg",
        "Spearman",
        "Pearson",
        "alex / spatial",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    for stem in ["fig2_contexts", "fig3_networks"] {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert!(png.len() > 1000, "{stem}.png is {} bytes", png.len());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png signature");
        assert!(stdout.contains(&format!("{stem}.png")), "{stdout}");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg is not an SVG"
        );
        assert!(svg.contains("<text"), "{stem}.svg has no text");
    }

    // --json: one object; default OUTDIR is the first directory.
    let run = dps(&args(&["--json"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "failed: {}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("one JSON object");
    assert_eq!(v["cells"], all.len());
    assert_eq!(v["duplicates_dropped"], 5);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    assert!(a.join("report.md").is_file() && a.join("fig2_contexts.png").is_file());

    // A conflicting duplicate fails with one error line.
    let changed = with_score(&all[16], &["bapps", "2afc"], 0.125);
    std::fs::write(b.join("results.jsonl"), joined(&[changed])).unwrap();
    let run = dps(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && !stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("different scores"), "{stderr}");
}

/// With three contexts any value shared by a tied pair gives the same rho, so average ranks are checked on longer
/// series here: a three-way and a two-way tie.
#[test]
fn spearman_gives_ties_their_average_rank() {
    use dps_gpu::report::stats::{pearson, spearman};
    let x = [0.5, 0.7, 0.7, 0.2, 0.9, 0.7, 0.1];
    let y = [0.1, 0.3, 0.2, 0.2, 0.8, 0.9, 0.4];
    close(spearman(&x, &y).unwrap(), plain_spearman(&x, &y), "spearman with ties");
    assert_eq!(plain_ranks(&x), vec![3.0, 5.0, 5.0, 2.0, 7.0, 5.0, 1.0]);
    close(pearson(&x, &y).unwrap(), plain_pearson(&x, &y), "pearson");
    assert_eq!(
        spearman(&[0.5, 0.5, 0.5], &[0.1, 0.2, 0.3]),
        None,
        "constant series have no correlation"
    );
}
