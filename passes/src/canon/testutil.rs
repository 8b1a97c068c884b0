//! Test helpers: deterministic pseudo-random inputs and a differential check that runs the
//! reference interpreter before and after a pipeline.

use crate::PassManager;
use edgec_ir::interp::run_function;
use edgec_ir::parser::parse_module;
use edgec_ir::printer::print_module;
use edgec_ir::{Module, ScalarType, Tensor};
use ndarray::{ArrayD, IxDyn};

/// A small xorshift generator: deterministic and dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A value in [-2, 2) on a 1/64 grid, or a signed zero one time in eight (to catch rewrites
    /// that lose the sign of zero).
    pub fn float(&mut self) -> f64 {
        let r = self.next_u64();
        if r & 7 == 0 {
            return if r & 16 == 0 { 0.0 } else { -0.0 };
        }
        ((r >> 8) % 256) as f64 / 64.0 - 2.0
    }
}

/// One input per parameter of the entry function (static types only).
pub fn random_inputs(m: &Module, seed: u64) -> Vec<Tensor> {
    let f = m.main().expect("a function");
    let mut rng = Rng::new(seed);
    f.params()
        .iter()
        .map(|&p| {
            let ty = &f.values[p].ty;
            let shape = ty.static_shape().expect("static parameter types in tests");
            let n: usize = shape.iter().product();
            let vals: Vec<f64> = (0..n)
                .map(|_| if ty.scalar().is_float() { rng.float() } else { (rng.next_u64() % 7) as f64 })
                .collect();
            let s = IxDyn(&shape);
            match ty.scalar() {
                ScalarType::F32 => {
                    Tensor::F32(ArrayD::from_shape_vec(s, vals.iter().map(|&v| v as f32).collect()).unwrap())
                }
                ScalarType::F64 => Tensor::F64(ArrayD::from_shape_vec(s, vals).unwrap()),
                ScalarType::I64 => {
                    Tensor::I64(ArrayD::from_shape_vec(s, vals.iter().map(|&v| v as i64).collect()).unwrap())
                }
                ScalarType::I32 => {
                    Tensor::I32(ArrayD::from_shape_vec(s, vals.iter().map(|&v| v as i32).collect()).unwrap())
                }
                ScalarType::Bool => {
                    Tensor::Bool(ArrayD::from_shape_vec(s, vals.iter().map(|&v| v > 0.0).collect()).unwrap())
                }
                other => panic!("test inputs of type {other} are not supported"),
            }
        })
        .collect()
}

/// Runs `pipeline` (verifying after each pass) and returns the printed result.
pub fn run_pipeline(m: &mut Module, pipeline: &str) -> String {
    let mut pm = PassManager::parse(pipeline).unwrap();
    pm.verify_each = true;
    pm.run(m).unwrap_or_else(|e| panic!("{e}\n{}", print_module(m)));
    print_module(m)
}

/// Parses `src`, runs `pipeline`, and checks on a few random inputs that the interpreter gives
/// the same outputs before and after: bit for bit when `rel_tol` is `None`, else within the
/// relative tolerance (absolute near zero). Returns the printed module after the pipeline.
pub fn check_differential(src: &str, pipeline: &str, rel_tol: Option<f64>) -> String {
    let before = parse_module(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let mut after = before.clone();
    let printed = run_pipeline(&mut after, pipeline);
    for seed in 1..=4 {
        let inputs = random_inputs(&before, seed);
        let want = run_function(before.main().unwrap(), inputs.clone()).unwrap();
        let have = run_function(after.main().unwrap(), inputs).unwrap();
        assert_eq!(want.len(), have.len());
        for (i, (w, h)) in want.iter().zip(&have).enumerate() {
            assert_eq!(w.shape(), h.shape(), "result {i} shape\n{printed}");
            assert_eq!(w.scalar_type(), h.scalar_type(), "result {i} type\n{printed}");
            match rel_tol {
                None => assert_eq!(w.to_le_bytes(), h.to_le_bytes(), "result {i}: {w:?} vs {h:?}\n{printed}"),
                Some(tol) => {
                    for (a, b) in w.to_f64_vec().iter().zip(h.to_f64_vec()) {
                        let err = (a - b).abs() / a.abs().max(1.0);
                        assert!(err <= tol, "result {i}: {a} vs {b} (rel err {err})\n{printed}");
                    }
                }
            }
        }
    }
    printed
}
