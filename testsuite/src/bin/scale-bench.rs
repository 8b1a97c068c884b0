//! How compile time grows with graph size: synthetic graphs at several sizes, optimized for the
//! host's backend and lowered, with the seconds per 1k ops of every pass and of lowering (CPU
//! time of the compiling thread, so that a busy machine inflates the rows less). Compile time
//! should grow linearly, so each column should stay flat down the rows.
//!
//! `cargo run --release -p edgec-testsuite --bin scale-bench -- [chain|wide|transformer|all] [SIZES...]`
//! (default: all three shapes at 1000 4000 16000 ops; `--print SHAPE N` prints one graph as IR
//! text instead):
//! - `chain`: alternating relu and sigmoid on an 8-element tensor, one op after the other;
//! - `wide`: as many independent two-op branches of the input as fit, summed pairwise (a
//!   balanced tree of adds), so many values are live at once;
//! - `transformer`: pre-norm transformer blocks as exporters write them (decomposed layer norm,
//!   two-head attention with reshapes and transposes, a tanh-GELU MLP), repeated; the
//!   `egraph` pass recognizes layer norms, GELUs and attention in every block.

use edgec::{Session, Target};
use edgec_passes::manager::thread_cpu_time;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A chain of `n` elementwise ops, alternating relu and sigmoid, on `tensor<8xf32>`.
fn chain(n: usize) -> String {
    let mut s = String::from("func @main(%x: tensor<8xf32>) -> (\"y\": tensor<8xf32>) {\n");
    let mut prev = "%x".to_string();
    for i in 0..n {
        let op = if i % 2 == 0 { "math.relu" } else { "math.sigmoid" };
        writeln!(s, "  %{i} = {op} {prev} : tensor<8xf32> loc(\"n{i}\")").unwrap();
        prev = format!("%{i}");
    }
    writeln!(s, "  func.return {prev} loc(unknown)\n}}").unwrap();
    s
}

/// About `n` ops: `n / 3` branches `tanh(x * c_i)` (distinct constants, so nothing is common),
/// then a balanced tree of adds over the branches.
fn wide(n: usize) -> String {
    let branches = (n / 3).max(2);
    let mut s = String::from("func @main(%x: tensor<8xf32>) -> (\"y\": tensor<8xf32>) {\n");
    let mut level: Vec<String> = Vec::new();
    let mut next = 0usize;
    let mut fresh = || {
        next += 1;
        format!("%v{next}")
    };
    for i in 0..branches {
        let (c, m, t) = (fresh(), fresh(), fresh());
        let k = 1.0 + i as f64 / branches as f64;
        writeln!(
            s,
            "  {c} = builtin.constant {{value = dense<[{k}]> : tensor<f32>}} : tensor<f32> loc(\"c{i}\")"
        )
        .unwrap();
        writeln!(s, "  {m} = math.mul %x, {c} : tensor<8xf32> loc(\"m{i}\")").unwrap();
        writeln!(s, "  {t} = math.tanh {m} : tensor<8xf32> loc(\"t{i}\")").unwrap();
        level.push(t);
    }
    while level.len() > 1 {
        let mut up = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            if let [a, b] = pair {
                let v = fresh();
                writeln!(s, "  {v} = math.add {a}, {b} : tensor<8xf32> loc(\"{}\")", &v[1..]).unwrap();
                up.push(v);
            } else {
                up.push(pair[0].clone());
            }
        }
        level = up;
    }
    writeln!(s, "  func.return {} loc(unknown)\n}}", level[0]).unwrap();
    s
}

/// Writes a function body one value at a time.
struct Body {
    text: String,
    next: usize,
    seed: u64,
}

impl Body {
    fn new(header: &str) -> Body {
        Body { text: format!("{header}\n"), next: 0, seed: 1 }
    }
    /// `%vN = rhs : ty`, returning `%vN`.
    fn op(&mut self, rhs: &str, ty: &str) -> String {
        self.next += 1;
        let n = self.next;
        writeln!(self.text, "  %v{n} = {rhs} : {ty} loc(\"v{n}\")").unwrap();
        format!("%v{n}")
    }
    fn scalar(&mut self, v: f64) -> String {
        self.op(&format!("builtin.constant {{value = dense<[{v}]> : tensor<f32>}}"), "tensor<f32>")
    }
    fn shape(&mut self, dims: &[i64]) -> String {
        let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        let n = dims.len();
        self.op(
            &format!("builtin.constant {{value = dense<[{}]> : tensor<{n}xi64>}}", d.join(", ")),
            &format!("tensor<{n}xi64>"),
        )
    }
    /// `x · W` with a fresh pseudo-random `rows × cols` weight.
    fn project(&mut self, x: &str, rows: usize, cols: usize, ty: &str) -> String {
        let vals: Vec<String> = (0..rows * cols)
            .map(|_| {
                self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                format!("{:.4}", ((self.seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 0.5)
            })
            .collect();
        let wty = format!("tensor<{rows}x{cols}xf32>");
        let w = self.op(&format!("builtin.constant {{value = dense<[{}]> : {wty}}}", vals.join(", ")), &wty);
        self.op(&format!("nn.matmul {x}, {w}"), ty)
    }
    /// Layer norm over the last axis as exporters decompose it (no affine part).
    fn layer_norm(&mut self, x: &str, act: &str, stat: &str) -> String {
        let axes = self.shape(&[-1]);
        let mean = self.op(&format!("nn.reduce_mean {x}, {axes} {{keepdims = 1}}"), stat);
        let d = self.op(&format!("math.sub {x}, {mean}"), act);
        let two = self.scalar(2.0);
        let sq = self.op(&format!("math.pow {d}, {two}"), act);
        let var = self.op(&format!("nn.reduce_mean {sq}, {axes} {{keepdims = 1}}"), stat);
        let eps = self.scalar(1e-5);
        let ve = self.op(&format!("math.add {var}, {eps}"), stat);
        let sd = self.op(&format!("math.sqrt {ve}"), stat);
        self.op(&format!("math.div {d}, {sd}"), act)
    }
    /// `[1, 4, 8]` split into two heads and transposed by `perm`.
    fn heads(&mut self, x: &str, perm: &str) -> String {
        let shape = self.shape(&[1, 4, 2, 4]);
        let r = self.op(&format!("shape.reshape {x}, {shape}"), "tensor<1x4x2x4xf32>");
        self.op(&format!("shape.transpose {r} {{perm = {perm}}}"), "tensor<1x2x4x4xf32>")
    }
}

/// Pre-norm transformer blocks on `[1, 4, 8]` activations (two heads of 4), as many as make
/// about `n` ops (67 a block, constants included); weights are distinct per block.
fn transformer(n: usize) -> String {
    let (act, stat, wide, scores) =
        ("tensor<1x4x8xf32>", "tensor<1x4x1xf32>", "tensor<1x4x16xf32>", "tensor<1x2x4x4xf32>");
    let mut b = Body::new("func @main(%x: tensor<1x4x8xf32>) -> (\"y\": tensor<1x4x8xf32>) {");
    let mut h = "%x".to_string();
    for _ in 0..(n / 67).max(1) {
        let y = b.layer_norm(&h, act, stat);
        let (q, k, v) = (b.project(&y, 8, 8, act), b.project(&y, 8, 8, act), b.project(&y, 8, 8, act));
        let q = b.heads(&q, "[0, 2, 1, 3]");
        let k = b.heads(&k, "[0, 2, 3, 1]");
        let v = b.heads(&v, "[0, 2, 1, 3]");
        let qk = b.op(&format!("nn.matmul {q}, {k}"), scores);
        let scale = b.scalar(0.5);
        let qk = b.op(&format!("math.mul {qk}, {scale}"), scores);
        let p = b.op(&format!("nn.softmax {qk} {{axis = -1}}"), scores);
        let o = b.op(&format!("nn.matmul {p}, {v}"), scores);
        let o = b.op(&format!("shape.transpose {o} {{perm = [0, 2, 1, 3]}}"), "tensor<1x4x2x4xf32>");
        let shape = b.shape(&[1, 4, 8]);
        let o = b.op(&format!("shape.reshape {o}, {shape}"), act);
        let o = b.project(&o, 8, 8, act);
        h = b.op(&format!("math.add {h}, {o}"), act);
        // The MLP, with the tanh GELU as exporters write it.
        let y = b.layer_norm(&h, act, stat);
        let u = b.project(&y, 8, 16, wide);
        let three = b.scalar(3.0);
        let cube = b.op(&format!("math.pow {u}, {three}"), wide);
        let c = b.scalar(0.044715);
        let t = b.op(&format!("math.mul {cube}, {c}"), wide);
        let t = b.op(&format!("math.add {u}, {t}"), wide);
        let c = b.scalar(0.7978845608028654);
        let t = b.op(&format!("math.mul {t}, {c}"), wide);
        let t = b.op(&format!("math.tanh {t}"), wide);
        let one = b.scalar(1.0);
        let t = b.op(&format!("math.add {t}, {one}"), wide);
        let half = b.scalar(0.5);
        let g = b.op(&format!("math.mul {u}, {half}"), wide);
        let g = b.op(&format!("math.mul {g}, {t}"), wide);
        let d = b.project(&g, 16, 8, act);
        h = b.op(&format!("math.add {h}, {d}"), act);
    }
    writeln!(b.text, "  func.return {h} loc(unknown)\n}}").unwrap();
    b.text
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--print SHAPE N` writes the synthetic graph as IR text (to compile it with the CLI).
    if args.first().is_some_and(|a| a == "--print") {
        let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
        match args.get(1).map(String::as_str) {
            Some("wide") => print!("{}", wide(n)),
            Some("transformer") => print!("{}", transformer(n)),
            _ => print!("{}", chain(n)),
        }
        return;
    }
    const SHAPES: [&str; 3] = ["chain", "wide", "transformer"];
    let shapes: Vec<&str> = match args.first().and_then(|a| SHAPES.iter().find(|s| **s == a)) {
        Some(s) => {
            args.remove(0);
            vec![*s]
        }
        None => {
            if args.first().is_some_and(|a| a == "all") {
                args.remove(0);
            }
            SHAPES.to_vec()
        }
    };
    let sizes: Vec<usize> = if args.is_empty() {
        vec![1000, 4000, 16000]
    } else {
        args.iter().map(|a| a.parse().expect("sizes are integers")).collect()
    };
    for shape in shapes {
        bench(shape, &sizes);
    }
}

fn bench(shape: &str, sizes: &[usize]) {
    let host = Target::parse("host").expect("host parses");
    let backend = edgec::target::lookup(&host).expect("this build has the host backend");
    let mut rows: Vec<(usize, BTreeMap<String, f64>)> = Vec::new();
    for &requested in sizes {
        let text = match shape {
            "chain" => chain(requested),
            "wide" => wide(requested),
            _ => transformer(requested),
        };
        let module = edgec_ir::parser::parse_module(&text).expect("the synthetic graph parses");
        let n = module.functions.iter().map(|f| f.blocks[f.body].ops.len()).sum::<usize>();
        // Small graphs run several times (the least time of each pass counts), so that every
        // row measures at least ~16k ops of work and the small rows are not noise.
        let reps = (16_000 / n.max(1)).clamp(1, 16);
        let mut per_pass: BTreeMap<String, f64> = BTreeMap::new();
        let mut calls = 0;
        for _ in 0..reps {
            let mut session = Session::from_module(module.clone()).expect("the synthetic graph verifies");
            session.set_target(host.clone());
            let opt = session.optimize_for(backend.as_ref()).expect("the pipeline runs");
            let mut this: BTreeMap<String, f64> = BTreeMap::new();
            for t in &opt.timings {
                *this.entry(t.pass.to_string()).or_default() += t.cpu.as_secs_f64();
            }
            let start = thread_cpu_time();
            let f = opt.module.main().expect("a main function");
            let program = edgec_backends::lower::lower(f, &edgec_backends::lower::LowerOptions::default())
                .expect("the graph lowers");
            this.insert("(lower)".into(), thread_cpu_time().saturating_sub(start).as_secs_f64());
            calls = program.calls.len();
            for (k, v) in this {
                per_pass.entry(k).and_modify(|m| *m = m.min(v)).or_insert(v);
            }
        }
        eprintln!("{shape} {n} ops: {calls} kernel calls ({reps} runs)");
        rows.push((n, per_pass));
    }
    let columns: Vec<String> = rows[0].1.keys().cloned().collect();
    print!("{:>8}", "ops");
    for c in &columns {
        print!(" {c:>15}");
    }
    println!(" {:>10} {:>10}   (seconds per 1k ops, {shape})", "all", "total s");
    for (n, per_pass) in &rows {
        print!("{n:>8}");
        for c in &columns {
            print!(" {:>15.4}", per_pass.get(c).copied().unwrap_or(0.0) * 1000.0 / *n as f64);
        }
        let total: f64 = per_pass.values().sum();
        println!(" {:>10.4} {total:>10.2}", total * 1000.0 / *n as f64);
    }
}
