//! Per-kernel profiles (`edgec bench --profile`, `docs/profiling.md`): each kernel call of the
//! compiled program with the ONNX nodes it computes, its measured time and share of the run, and
//! the rates its static work (`edgec_backends::profile::work`) implies against the machine's peak;
//! as text, JSON, or a Chrome trace (Trace Event Format).

use edgec_backends::lower::Program;
use edgec_backends::profile::{work, KernelTimes, TimeUnit};
use serde_json::json;

/// The machine's peak rates and where they come from.
#[derive(Clone, Debug)]
pub struct Peak {
    /// f32 floating-point operations per second.
    pub flops: f64,
    pub flops_source: String,
    /// Memory bytes per second.
    pub bytes: f64,
    pub bytes_source: String,
}

/// One kernel call of a profile.
#[derive(Clone, Debug)]
pub struct KernelProfile {
    /// Index in the schedule (the order the entry function calls kernels).
    pub call: usize,
    /// The kernel's name in the kernel IR (`model.kir`).
    pub kernel: String,
    /// The ONNX node(s) the call computes (fused nodes are several).
    pub nodes: Vec<String>,
    /// Mean time per run, in the profile's unit.
    pub time: f64,
    /// Where the call starts in the mean run (the sum of the times of the calls before it).
    pub start: f64,
    pub flops: f64,
    pub int_ops: f64,
    pub bytes: f64,
}

/// A measured per-kernel profile of one compiled model.
#[derive(Clone, Debug)]
pub struct Profile {
    pub model: String,
    pub target: String,
    pub times: KernelTimes,
    /// Kernel calls, in schedule order.
    pub calls: Vec<KernelProfile>,
    /// Host only: the median milliseconds of the same model compiled without hooks (what
    /// `edgec bench` reports), against which the kernels' sum is checked.
    pub uninstrumented_ms: Option<f64>,
    /// Host only: peak rates to compare the kernels with.
    pub peak: Option<Peak>,
}

impl Profile {
    /// Joins measured times with the program's kernels and nodes.
    pub fn new(model: &str, target: &str, p: &Program, times: KernelTimes) -> Profile {
        let mut start = 0.0;
        let calls = p
            .calls
            .iter()
            .zip(&times.calls)
            .enumerate()
            .map(|(i, (c, &t))| {
                let k = &p.kernels[c.kernel.index()];
                let w = work(k);
                let row = KernelProfile {
                    call: i,
                    kernel: k.name.clone(),
                    // Lowering joins the names of fused nodes with `+` (`Call::label`).
                    nodes: c.label.split('+').map(str::to_string).collect(),
                    time: t,
                    start,
                    flops: w.flops,
                    int_ops: w.int_ops,
                    bytes: w.bytes,
                };
                start += t;
                row
            })
            .collect();
        Profile {
            model: model.to_string(),
            target: target.to_string(),
            times,
            calls,
            uninstrumented_ms: None,
            peak: None,
        }
    }

    /// The sum of the kernel calls' times, in the profile's unit.
    pub fn kernels_total(&self) -> f64 {
        self.calls.iter().map(|c| c.time).sum()
    }

    /// Seconds of a time in the profile's unit, when the unit is a real clock.
    fn seconds(&self, t: f64) -> Option<f64> {
        match self.times.unit {
            TimeUnit::Nanoseconds => Some(t * 1e-9),
            TimeUnit::Instructions { .. } => None,
        }
    }

    fn unit_name(&self) -> &'static str {
        match self.times.unit {
            TimeUnit::Nanoseconds => "ns",
            TimeUnit::Instructions { .. } => "instructions",
        }
    }

    /// Kernel calls by decreasing time.
    pub fn by_time(&self) -> Vec<&KernelProfile> {
        let mut rows: Vec<&KernelProfile> = self.calls.iter().collect();
        rows.sort_by(|a, b| b.time.total_cmp(&a.time).then(a.call.cmp(&b.call)));
        rows
    }

    /// (GFLOP/s or GOP/s, GB/s, fraction of peak of the binding resource, that resource) of a
    /// call, where the unit is a real clock.
    fn rates(&self, c: &KernelProfile) -> Option<(f64, f64, Option<(f64, &'static str)>)> {
        let s = self.seconds(c.time).filter(|s| *s > 0.0)?;
        let ops = (c.flops + c.int_ops) / s;
        let bytes = c.bytes / s;
        // The roofline: a call whose flops per byte reach the machine's ratio of the two peaks
        // is bound by compute, any other by memory. (Data that stays in cache moves faster than
        // memory's peak, so a memory-bound fraction can exceed 1.)
        let peak = self.peak.as_ref().map(|p| {
            if c.flops >= c.bytes * p.flops / p.bytes {
                (c.flops / s / p.flops, "compute")
            } else {
                (bytes / p.bytes, "memory")
            }
        });
        Some((ops / 1e9, bytes / 1e9, peak))
    }

    /// The text report: a header, then one line per kernel call by decreasing time.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let total = self.kernels_total();
        let whole = self.times.whole;
        let mut s = String::new();
        let show = |t: f64| match self.times.unit {
            TimeUnit::Nanoseconds => format!("{:.3} ms", t * 1e-6),
            TimeUnit::Instructions { .. } => format!("{:.0} instr", t),
        };
        let _ = writeln!(
            s,
            "{} on {}: {} kernel calls, {} runs; clock: {}",
            self.model,
            self.target,
            self.calls.len(),
            self.times.runs,
            self.times.clock
        );
        let _ = write!(
            s,
            "kernels sum {} = {:.1}% of the instrumented run ({})",
            show(total),
            100.0 * total / whole.max(f64::MIN_POSITIVE),
            show(whole)
        );
        if let Some(ms) = self.uninstrumented_ms {
            let _ =
                write!(s, ", {:.1}% of the run without hooks ({ms:.3} ms median)", 100.0 * total * 1e-6 / ms);
        }
        s.push('\n');
        if let Some(p) = &self.peak {
            let _ = writeln!(
                s,
                "peak: {:.1} GFLOP/s ({}), {:.1} GB/s ({})",
                p.flops / 1e9,
                p.flops_source,
                p.bytes / 1e9,
                p.bytes_source
            );
        }
        let _ = writeln!(
            s,
            "{:>5} {:>14} {:>6} {:>9} {:>8} {:>7}  kernel / ONNX nodes",
            "call",
            format!("time ({})", if self.seconds(1.0).is_some() { "ms" } else { "instr" }),
            "share",
            "G(FL)OP/s",
            "GB/s",
            "%peak"
        );
        for c in self.by_time() {
            let time = match self.times.unit {
                TimeUnit::Nanoseconds => format!("{:.4}", c.time * 1e-6),
                TimeUnit::Instructions { .. } => format!("{:.0}", c.time),
            };
            let (ops, gbs, peak) = match self.rates(c) {
                Some((ops, gbs, peak)) => (
                    format!("{ops:.2}"),
                    format!("{gbs:.2}"),
                    peak.map(|(f, r)| format!("{:.0}% {}", 100.0 * f, &r[..3])).unwrap_or_default(),
                ),
                None => (String::new(), String::new(), String::new()),
            };
            let _ = writeln!(
                s,
                "{:>5} {:>14} {:>5.1}% {:>9} {:>8} {:>7}  {} ({})",
                c.call,
                time,
                100.0 * c.time / total.max(f64::MIN_POSITIVE),
                ops,
                gbs,
                peak,
                c.kernel,
                c.nodes.join(", ")
            );
        }
        s
    }

    /// The profile as one JSON object (`bench --profile --json`).
    pub fn json(&self) -> serde_json::Value {
        let total = self.kernels_total();
        let kernels: Vec<serde_json::Value> = self
            .by_time()
            .into_iter()
            .map(|c| {
                let mut v = json!({
                    "call": c.call,
                    "kernel": c.kernel,
                    "nodes": c.nodes,
                    "time": c.time,
                    "share": c.time / total.max(f64::MIN_POSITIVE),
                    "flops": c.flops,
                    "int_ops": c.int_ops,
                    "bytes": c.bytes,
                });
                if let Some((ops, gbs, peak)) = self.rates(c) {
                    v["gops_per_s"] = ops.into();
                    v["gbytes_per_s"] = gbs.into();
                    if let Some((f, r)) = peak {
                        v["peak_fraction"] = f.into();
                        v["bound"] = r.into();
                    }
                }
                v
            })
            .collect();
        let mut v = json!({
            "model": self.model,
            "target": self.target,
            "unit": self.unit_name(),
            "clock": self.times.clock,
            "runs": self.times.runs,
            "whole": self.times.whole,
            "kernels_total": total,
            "kernels": kernels,
        });
        if let TimeUnit::Instructions { granularity } = self.times.unit {
            v["granularity"] = granularity.into();
        }
        if let Some(ms) = self.uninstrumented_ms {
            v["uninstrumented_median_ms"] = ms.into();
        }
        if let Some(p) = &self.peak {
            v["peak"] = json!({
                "gflops": p.flops / 1e9, "gflops_source": p.flops_source,
                "gbytes_per_s": p.bytes / 1e9, "gbytes_per_s_source": p.bytes_source,
            });
        }
        v
    }

    /// A Chrome trace (Trace Event Format, read by chrome://tracing and Perfetto) of the mean
    /// run: one complete event (`"ph":"X"`) for the run and one per kernel call, back to back in
    /// schedule order. Timestamps are microseconds; for instruction counts, of QEMU's virtual
    /// time (1 ns per instruction).
    pub fn chrome_trace(&self) -> serde_json::Value {
        // ns (or instructions = virtual ns) to the format's microseconds.
        let us = |t: f64| t / 1e3;
        let mut events = vec![
            json!({"name": "process_name", "ph": "M", "pid": 1, "tid": 1,
                   "args": {"name": format!("{} on {}", self.model, self.target)}}),
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "edgec_run"}}),
            json!({"name": "edgec_run", "cat": "model", "ph": "X", "ts": 0.0,
                   "dur": us(self.times.whole.max(self.kernels_total())), "pid": 1, "tid": 1,
                   "args": {"unit": self.unit_name(), "runs": self.times.runs, "clock": self.times.clock}}),
        ];
        for c in &self.calls {
            let mut args = json!({
                "call": c.call, "nodes": c.nodes, "flops": c.flops, "int_ops": c.int_ops, "bytes": c.bytes,
            });
            args[self.unit_name()] = c.time.into();
            events.push(json!({
                "name": c.kernel, "cat": "kernel", "ph": "X", "ts": us(c.start), "dur": us(c.time),
                "pid": 1, "tid": 1, "args": args,
            }));
        }
        json!({ "traceEvents": events, "displayTimeUnit": "ns" })
    }
}

/// Memory bandwidth of this machine: the best of a few copies of a 64 MiB buffer (bytes read
/// plus bytes written per second). Far larger than any cache, so it measures memory.
pub fn measure_memory_bandwidth() -> f64 {
    const LEN: usize = 64 << 20;
    let src = vec![1u8; LEN];
    let mut dst = vec![0u8; LEN];
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let t = std::time::Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * LEN as f64 / best
}
