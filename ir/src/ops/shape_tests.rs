//! Unit tests of the `shape.*` family. Expected values were computed with numpy and
//! `onnx.reference` (ONNX 1.23).

use super::*;
use crate::attr::Attr;
use crate::ops::{EvalCtx, InferCtx, OpDef};
use crate::tensor::ConstTensor;

fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
}

fn i64t(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::I64(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
}

fn arange(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f32t(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
}

fn attrs(list: &[(&str, Attr)]) -> Attrs {
    let mut a = Attrs::new();
    for (k, v) in list {
        a.set(k, v.clone());
    }
    a
}

fn infer(
    op: &OpDef,
    a: &Attrs,
    types: &[TensorType],
    consts: &[Option<Tensor>],
    n: usize,
) -> OpResult<Vec<TensorType>> {
    (op.infer)(&InferCtx { attrs: a, operands: types, consts, num_results: n })
}

/// Infers with every operand constant (the result must then be fully static), evaluates, and
/// checks that both agree.
fn run_n(op: &OpDef, a: &Attrs, inputs: &[Tensor], n: usize) -> Vec<Tensor> {
    let types: Vec<TensorType> = inputs.iter().map(Tensor::ty).collect();
    let consts: Vec<Option<Tensor>> = inputs.iter().map(|t| Some(t.clone())).collect();
    let inferred = infer(op, a, &types, &consts, n).unwrap_or_else(|e| panic!("{}: infer: {e}", op.name));
    let out = (op.eval)(&EvalCtx { attrs: a, inputs, operand_types: &types, result_types: &inferred })
        .unwrap_or_else(|e| panic!("{}: eval: {e}", op.name));
    assert_eq!(out.len(), inferred.len());
    for (t, ty) in out.iter().zip(&inferred) {
        assert_eq!(&t.ty(), ty, "{}: inferred type differs from the evaluated one", op.name);
    }
    out
}

fn run(op: &OpDef, a: &Attrs, inputs: &[Tensor]) -> Tensor {
    run_n(op, a, inputs, 1).remove(0)
}

fn eval_err(op: &OpDef, a: &Attrs, inputs: &[Tensor]) -> String {
    let types: Vec<TensorType> = inputs.iter().map(Tensor::ty).collect();
    (op.eval)(&EvalCtx { attrs: a, inputs, operand_types: &types, result_types: &[] }).unwrap_err()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}

fn st(n: u64) -> Dim {
    Dim::Static(n)
}

fn ty(dims: Vec<Dim>, s: ScalarType) -> TensorType {
    TensorType::new(dims, s)
}

#[test]
fn reshape_resolves_zero_and_minus_one() {
    let x = arange(&[2, 3, 4]);
    let y = run(&RESHAPE, &Attrs::new(), &[x.clone(), i64t(&[3], &[0, -1, 2])]);
    assert_eq!(y.shape(), &[2, 6, 2]);
    let y = run(&RESHAPE, &Attrs::new(), &[arange(&[0, 3]), i64t(&[2], &[-1, 3])]);
    assert_eq!(y.shape(), &[0, 3]);
    assert!(
        eval_err(&RESHAPE, &Attrs::new(), &[arange(&[0, 3]), i64t(&[2], &[3, 0])]).contains("cannot reshape")
    );
    let az = attrs(&[("allowzero", Attr::Int(1))]);
    let y = run(&RESHAPE, &az, &[arange(&[0, 3]), i64t(&[2], &[3, 0])]);
    assert_eq!(y.shape(), &[3, 0]);
    // to a scalar with an empty shape
    let y = run(&RESHAPE, &Attrs::new(), &[arange(&[1, 1]), i64t(&[0], &[])]);
    assert_eq!(y.shape(), &[] as &[usize]);
    assert!(eval_err(&RESHAPE, &Attrs::new(), &[x.clone(), i64t(&[2], &[5, -1])]).contains("cannot reshape"));
    assert!(eval_err(&RESHAPE, &Attrs::new(), &[x, i64t(&[2], &[-1, -1])]).contains("more than one"));
}

#[test]
fn reshape_keeps_symbolic_dims() {
    let x = ty(vec![sym("B"), sym("S"), st(768)], ScalarType::F32);
    let shape_ty = TensorType::of(&[4], ScalarType::I64);
    let r = infer(
        &RESHAPE,
        &Attrs::new(),
        &[x.clone(), shape_ty.clone()],
        &[None, Some(i64t(&[4], &[0, 0, 12, -1]))],
        1,
    )
    .unwrap();
    assert_eq!(r[0].dims, vec![sym("B"), sym("S"), st(12), st(64)]);
    // [B, S, 768] -> [B, -1, 64]: the -1 is S*12, unknown
    let r = infer(
        &RESHAPE,
        &Attrs::new(),
        &[x.clone(), TensorType::of(&[3], ScalarType::I64)],
        &[None, Some(i64t(&[3], &[0, -1, 64]))],
        1,
    )
    .unwrap();
    assert_eq!(r[0].dims, vec![sym("B"), Dim::Unknown, st(64)]);
    // [B, S, 768] -> [0, 768, -1]... -1 is S
    let r = infer(
        &RESHAPE,
        &Attrs::new(),
        &[x.clone(), TensorType::of(&[3], ScalarType::I64)],
        &[None, Some(i64t(&[3], &[0, 768, -1]))],
        1,
    )
    .unwrap();
    assert_eq!(r[0].dims, vec![sym("B"), st(768), sym("S")]);
    // non-constant shape: rank from the operand's length
    let r = infer(&RESHAPE, &Attrs::new(), &[x, shape_ty], &[None, None], 1).unwrap();
    assert_eq!(r[0].dims, vec![Dim::Unknown; 4]);
}

#[test]
fn transpose_default_and_perm() {
    let x = arange(&[2, 3]);
    let y = run(&TRANSPOSE, &Attrs::new(), &[x.clone()]);
    assert_eq!(y.shape(), &[3, 2]);
    assert_eq!(vals(&y), vec![0., 3., 1., 4., 2., 5.]);
    let x = arange(&[2, 3, 4]);
    let y = run(&TRANSPOSE, &attrs(&[("perm", Attr::Ints(vec![1, 2, 0]))]), &[x]);
    assert_eq!(y.shape(), &[3, 4, 2]);
    assert_eq!(vals(&y)[..4], [0., 12., 1., 13.]);
}

#[test]
fn concat_and_split() {
    let a = arange(&[2, 2]);
    let b = f32t(&[2, 1], &[9., 8.]);
    let y = run(&CONCAT, &attrs(&[("axis", Attr::Int(-1))]), &[a, b]);
    assert_eq!(vals(&y), vec![0., 1., 9., 2., 3., 8.]);
    // uneven split: 7 into 3 parts -> 3, 3, 1
    let parts = run_n(&SPLIT, &Attrs::new(), &[arange(&[7])], 3);
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert_eq!(lens, vec![3, 3, 1]);
    assert_eq!(vals(&parts[2]), vec![6.]);
    let parts = run_n(&SPLIT, &attrs(&[("axis", Attr::Int(1))]), &[arange(&[2, 6]), i64t(&[2], &[2, 4])], 2);
    assert_eq!(vals(&parts[0]), vec![0., 1., 6., 7.]);
    let parts = run_n(&SPLIT, &attrs(&[("num_outputs", Attr::Int(2))]), &[arange(&[4])], 2);
    assert_eq!(vals(&parts[1]), vec![2., 3.]);
    // zero-size parts
    let parts = run_n(&SPLIT, &Attrs::new(), &[arange(&[2]), i64t(&[3], &[0, 2, 0])], 3);
    assert_eq!(parts[0].shape(), &[0]);
}

#[test]
fn slice_clamps_and_steps_backwards() {
    let x = arange(&[10]);
    let y = run(
        &SLICE,
        &Attrs::new(),
        &[x.clone(), i64t(&[1], &[-1]), i64t(&[1], &[i64::MIN]), i64t(&[1], &[0]), i64t(&[1], &[-3])],
    );
    assert_eq!(vals(&y), vec![9., 6., 3., 0.]);
    let y = run(&SLICE, &Attrs::new(), &[x.clone(), i64t(&[1], &[2]), i64t(&[1], &[i64::MAX])]);
    assert_eq!(y.len(), 8);
    let y = run(&SLICE, &Attrs::new(), &[x.clone(), i64t(&[1], &[20]), i64t(&[1], &[30])]);
    assert_eq!(y.len(), 0);
    let y = run(
        &SLICE,
        &Attrs::new(),
        &[x.clone(), i64t(&[1], &[8]), i64t(&[1], &[2]), i64t(&[1], &[-1]), i64t(&[1], &[-2])],
    );
    assert_eq!(vals(&y), vec![8., 6., 4.]);
    let x2 = arange(&[3, 4]);
    let y =
        run(&SLICE, &Attrs::new(), &[x2, i64t(&[2], &[0, 1]), i64t(&[2], &[-1, 1000]), i64t(&[2], &[1, 0])]);
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(vals(&y), vec![4., 5., 6., 8., 9., 10.]);
    // Symbolic dim sliced to the end keeps its name; otherwise unknown.
    let t = ty(vec![sym("S"), st(8)], ScalarType::F32);
    let i1 = TensorType::of(&[2], ScalarType::I64);
    let r = infer(
        &SLICE,
        &Attrs::new(),
        &[t.clone(), i1.clone(), i1.clone()],
        &[None, Some(i64t(&[2], &[0, 2])), Some(i64t(&[2], &[i64::MAX, 4]))],
        1,
    )
    .unwrap();
    assert_eq!(r[0].dims, vec![sym("S"), st(2)]);
    let r = infer(&SLICE, &Attrs::new(), &[t, i1.clone(), i1], &[None, None, None], 1).unwrap();
    assert_eq!(r[0].dims, vec![Dim::Unknown, Dim::Unknown]);
}

#[test]
fn squeeze_unsqueeze_flatten() {
    let x = arange(&[1, 3, 1, 2]);
    assert_eq!(run(&SQUEEZE, &Attrs::new(), &[x.clone()]).shape(), &[3, 2]);
    assert_eq!(run(&SQUEEZE, &Attrs::new(), &[x.clone(), i64t(&[1], &[-2])]).shape(), &[1, 3, 2]);
    assert!(eval_err(&SQUEEZE, &Attrs::new(), &[x.clone(), i64t(&[1], &[1])]).contains("size 3"));
    let y = run(&UNSQUEEZE, &Attrs::new(), &[arange(&[3, 4]), i64t(&[2], &[3, 0])]);
    assert_eq!(y.shape(), &[1, 3, 4, 1]);
    let r = infer(
        &UNSQUEEZE,
        &Attrs::new(),
        &[ty(vec![sym("S")], ScalarType::F32), TensorType::of(&[2], ScalarType::I64)],
        &[None, None],
        1,
    )
    .unwrap();
    assert_eq!(r[0].rank(), 3);
    assert_eq!(run(&FLATTEN, &Attrs::new(), &[x.clone()]).shape(), &[1, 6]);
    assert_eq!(run(&FLATTEN, &attrs(&[("axis", Attr::Int(0))]), &[x.clone()]).shape(), &[1, 6]);
    assert_eq!(run(&FLATTEN, &attrs(&[("axis", Attr::Int(-1))]), &[x]).shape(), &[3, 2]);
}

#[test]
fn expand_and_tile() {
    let x = f32t(&[3, 1], &[1., 2., 3.]);
    let y = run(&EXPAND, &Attrs::new(), &[x.clone(), i64t(&[3], &[2, 1, 2])]);
    assert_eq!(y.shape(), &[2, 3, 2]);
    assert_eq!(vals(&y)[..6], [1., 1., 2., 2., 3., 3.]);
    let y = run(&TILE, &Attrs::new(), &[f32t(&[2], &[1., 2.]), i64t(&[1], &[3])]);
    assert_eq!(vals(&y), vec![1., 2., 1., 2., 1., 2.]);
    let y = run(&TILE, &Attrs::new(), &[x, i64t(&[2], &[1, 2])]);
    assert_eq!(vals(&y), vec![1., 1., 2., 2., 3., 3.]);
}

#[test]
fn depth_space_round_trip() {
    let x = arange(&[1, 8, 2, 3]);
    for mode in ["DCR", "CRD"] {
        let a = attrs(&[("blocksize", Attr::Int(2)), ("mode", Attr::Str(mode.into()))]);
        let s = run(&DEPTH_TO_SPACE, &a, &[x.clone()]);
        assert_eq!(s.shape(), &[1, 2, 4, 6]);
        if mode == "DCR" {
            let back = run(&SPACE_TO_DEPTH, &a, &[s.clone()]);
            assert_eq!(back, x);
        }
    }
    // DCR: y[0,0,0,:4] = x[0, [0,2,0,2]... ] (numpy reference)
    let s = run(&DEPTH_TO_SPACE, &attrs(&[("blocksize", Attr::Int(2))]), &[x.clone()]);
    assert_eq!(vals(&s)[..6], [0., 12., 1., 13., 2., 14.]);
    let s =
        run(&DEPTH_TO_SPACE, &attrs(&[("blocksize", Attr::Int(2)), ("mode", Attr::Str("CRD".into()))]), &[x]);
    assert_eq!(vals(&s)[..6], [0., 6., 1., 7., 2., 8.]);
}

#[test]
fn shape_size_constant_of_shape_range() {
    let x = arange(&[2, 3, 4]);
    let y = run(&SHAPE, &attrs(&[("start", Attr::Int(-2))]), &[x.clone()]);
    assert_eq!(y, i64t(&[2], &[3, 4]));
    let y = run(&SHAPE, &attrs(&[("start", Attr::Int(2)), ("end", Attr::Int(1))]), &[x.clone()]);
    assert_eq!(y.shape(), &[0]);
    assert_eq!(run(&SIZE, &Attrs::new(), &[x]), Tensor::I64(ArrayD::from_elem(IxDyn(&[]), 24)));
    let v = ConstTensor::from_tensor(&i64t(&[1], &[7]));
    let y = run(&CONSTANT_OF_SHAPE, &attrs(&[("value", Attr::Tensor(v))]), &[i64t(&[2], &[2, 2])]);
    assert_eq!(y, i64t(&[2, 2], &[7, 7, 7, 7]));
    let y = run(&CONSTANT_OF_SHAPE, &Attrs::new(), &[i64t(&[0], &[])]);
    assert_eq!(y, f32t(&[], &[0.]));
    let sc = |v: i64| i64t(&[], &[v]);
    assert_eq!(run(&RANGE, &Attrs::new(), &[sc(10), sc(4), sc(-3)]), i64t(&[2], &[10, 7]));
    assert_eq!(run(&RANGE, &Attrs::new(), &[sc(3), sc(9), sc(3)]).len(), 2);
    let f = |v: f32| f32t(&[], &[v]);
    let y = run(&RANGE, &Attrs::new(), &[f(1.), f(2.), f(0.3)]);
    close(&vals(&y), &[1., 1.3, 1.6, 1.9]);
    let h = |v: f32| Tensor::F16(ArrayD::from_elem(IxDyn(&[]), f16::from_f32(v)));
    assert_eq!(run(&RANGE, &Attrs::new(), &[h(0.), h(1.), h(0.25)]).len(), 4);
}

#[test]
fn pad_modes_and_crop() {
    let x = f32t(&[3], &[0., 1., 2.]);
    let refl = attrs(&[("mode", Attr::Str("reflect".into()))]);
    let y = run(&PAD, &refl, &[x.clone(), i64t(&[2], &[7, 5])]);
    assert_eq!(vals(&y), vec![1., 2., 1., 0., 1., 2., 1., 0., 1., 2., 1., 0., 1., 2., 1.]);
    let wrap = attrs(&[("mode", Attr::Str("wrap".into()))]);
    let y = run(&PAD, &wrap, &[x.clone(), i64t(&[2], &[4, 5])]);
    assert_eq!(vals(&y), vec![2., 0., 1., 2., 0., 1., 2., 0., 1., 2., 0., 1.]);
    let edge = attrs(&[("mode", Attr::Str("edge".into()))]);
    let y = run(&PAD, &edge, &[x.clone(), i64t(&[2], &[2, -1])]);
    assert_eq!(vals(&y), vec![0., 0., 0., 1.]);
    let y = run(&PAD, &Attrs::new(), &[x.clone(), i64t(&[2], &[-1, 2]), f32t(&[], &[9.])]);
    assert_eq!(vals(&y), vec![1., 2., 9., 9.]);
    // axes, with the constant value operand absent in the middle
    let y =
        run(&PAD, &Attrs::new(), &[arange(&[2, 2]), i64t(&[2], &[1, 0]), f32t(&[0], &[]), i64t(&[1], &[-1])]);
    assert_eq!(vals(&y), vec![0., 0., 1., 0., 2., 3.]);
}

#[test]
fn resize_linear_cubic_nearest() {
    let x = arange(&[4, 4]);
    let lin = |ctm: &str| {
        attrs(&[
            ("mode", Attr::Str("linear".into())),
            ("coordinate_transformation_mode", Attr::Str(ctm.into())),
        ])
    };
    let none = f32t(&[0], &[]);
    let y = run(&RESIZE, &lin("align_corners"), &[x.clone(), none.clone(), f32t(&[2], &[0.6, 0.6])]);
    close(&vals(&y), &[0., 2.14285714, 8.57142857, 10.71428571]);
    let cub = attrs(&[
        ("mode", Attr::Str("cubic".into())),
        ("cubic_coeff_a", Attr::Float(-0.5)),
        ("exclude_outside", Attr::Int(1)),
    ]);
    let y = run(&RESIZE, &cub, &[arange(&[5]), none.clone(), f32t(&[1], &[1.6])]);
    close(
        &vals(&y),
        &[
            -0.07195571955719557,
            0.3444457129809339,
            1.0625,
            1.6875,
            2.3125,
            2.9375,
            3.6555542870190663,
            4.071955719557196,
        ],
    );
    let sq: Vec<f32> = (0..8).map(|i| (i * i) as f32).collect();
    let aa = attrs(&[("mode", Attr::Str("linear".into())), ("antialias", Attr::Int(1))]);
    let y = run(&RESIZE, &aa, &[f32t(&[8], &sq), none.clone(), f32t(&[1], &[0.5])]);
    close(&vals(&y), &[0.875, 7.0, 21.0, 41.125]);
    // nearest upsample by sizes along one axis
    let near = attrs(&[("axes", Attr::Ints(vec![1]))]);
    let y = run(&RESIZE, &near, &[arange(&[1, 2]), none.clone(), none, i64t(&[1], &[4])]);
    assert_eq!(vals(&y), vec![0., 0., 1., 1.]);
}

#[test]
fn gathers() {
    let x = arange(&[3, 2]);
    let y = run(&GATHER, &Attrs::new(), &[x.clone(), i64t(&[2, 2], &[0, 1, -1, 1])]);
    assert_eq!(y.shape(), &[2, 2, 2]);
    assert_eq!(vals(&y), vec![0., 1., 2., 3., 4., 5., 2., 3.]);
    let y = run(&GATHER, &attrs(&[("axis", Attr::Int(1))]), &[x.clone(), i64t(&[], &[1])]);
    assert_eq!(vals(&y), vec![1., 3., 5.]);
    assert!(eval_err(&GATHER, &Attrs::new(), &[x.clone(), i64t(&[1], &[3])]).contains("out of range"));
    let y =
        run(&GATHER_ELEMENTS, &attrs(&[("axis", Attr::Int(1))]), &[x.clone(), i64t(&[3, 1], &[1, 0, -1])]);
    assert_eq!(vals(&y), vec![1., 2., 5.]);
    // gather_nd with batch_dims = 1 (ONNX example 5)
    let d = arange(&[2, 2, 2]);
    let y = run(&GATHER_ND, &attrs(&[("batch_dims", Attr::Int(1))]), &[d.clone(), i64t(&[2, 1], &[1, 0])]);
    assert_eq!(vals(&y), vec![2., 3., 4., 5.]);
    let y = run(&GATHER_ND, &Attrs::new(), &[d, i64t(&[2, 3], &[0, 1, 1, 1, 0, 0])]);
    assert_eq!(vals(&y), vec![3., 4.]);
}

#[test]
fn scatters() {
    let d = f32t(&[4], &[1., 2., 3., 4.]);
    let add = attrs(&[("reduction", Attr::Str("add".into()))]);
    let y = run(&SCATTER_ND, &add, &[d.clone(), i64t(&[2, 1], &[1, 1]), f32t(&[2], &[10., 20.])]);
    assert_eq!(vals(&y), vec![1., 32., 3., 4.]);
    let mx = attrs(&[("reduction", Attr::Str("max".into()))]);
    let y = run(&SCATTER_ND, &mx, &[d.clone(), i64t(&[2, 1], &[0, -1]), f32t(&[2], &[0., 5.])]);
    assert_eq!(vals(&y), vec![1., 2., 3., 5.]);
    let m = arange(&[2, 2]);
    let y = run(&SCATTER_ND, &Attrs::new(), &[m.clone(), i64t(&[1, 1], &[1]), f32t(&[1, 2], &[7., 8.])]);
    assert_eq!(vals(&y), vec![0., 1., 7., 8.]);
    let mul = attrs(&[("reduction", Attr::Str("mul".into())), ("axis", Attr::Int(1))]);
    let y =
        run(&SCATTER_ELEMENTS, &mul, &[m, i64t(&[2, 2], &[1, 1, 0, -2]), f32t(&[2, 2], &[2., 3., 4., 5.])]);
    assert_eq!(vals(&y), vec![0., 6., 40., 3.]);
}

#[test]
fn one_hot_non_zero_trilu() {
    let v = f32t(&[2], &[0., 1.]);
    let y =
        run(&ONE_HOT, &attrs(&[("axis", Attr::Int(0))]), &[i64t(&[2], &[2, -1]), i64t(&[], &[3]), v.clone()]);
    assert_eq!(y.shape(), &[3, 2]);
    assert_eq!(vals(&y), vec![0., 0., 0., 0., 1., 1.]);
    let y = run(&ONE_HOT, &Attrs::new(), &[i64t(&[2], &[5, 0]), i64t(&[], &[3]), v]);
    assert_eq!(vals(&y), vec![0., 0., 0., 1., 0., 0.]);
    let x = Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![true, false, true, true]).unwrap());
    let types = [x.ty()];
    let r = infer(&NON_ZERO, &Attrs::new(), &types, &[None], 1).unwrap();
    assert_eq!(r[0].dims, vec![st(2), Dim::Unknown]);
    let y = (NON_ZERO.eval)(&EvalCtx {
        attrs: &Attrs::new(),
        inputs: &[x],
        operand_types: &types,
        result_types: &r,
    })
    .unwrap();
    assert_eq!(y[0], i64t(&[2, 3], &[0, 1, 1, 0, 0, 1]));
    let m = i64t(&[3, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(
        run(&TRILU, &Attrs::new(), &[m.clone(), i64t(&[], &[1])]),
        i64t(&[3, 3], &[0, 2, 3, 0, 0, 6, 0, 0, 0])
    );
    let lower = attrs(&[("upper", Attr::Int(0))]);
    assert_eq!(
        run(&TRILU, &lower, &[m.clone(), i64t(&[], &[-1])]),
        i64t(&[3, 3], &[0, 0, 0, 4, 0, 0, 7, 8, 0])
    );
}

#[test]
fn generic_over_element_types() {
    for s in ScalarType::ALL {
        let x = Tensor::zeros(s, &[2, 3]);
        let y = run(&TRANSPOSE, &Attrs::new(), &[x.clone()]);
        assert_eq!(y.scalar_type(), s);
        let y = run(&CONCAT, &attrs(&[("axis", Attr::Int(0))]), &[x.clone(), x.clone()]);
        assert_eq!(y.shape(), &[4, 3]);
        let y = run(&PAD, &Attrs::new(), &[x.clone(), i64t(&[4], &[0, 1, 0, 1])]);
        assert_eq!(y.shape(), &[2, 5]);
        let y = run(
            &SCATTER_ELEMENTS,
            &attrs(&[("reduction", Attr::Str("add".into()))]),
            &[x.clone(), i64t(&[1, 1], &[1]), Tensor::zeros(s, &[1, 1])],
        );
        assert_eq!(y.scalar_type(), s);
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let scalar = f32t(&[], &[1.]);
    let st = |ty: &TensorType| vec![ty.clone()];
    let sty = scalar.ty();
    assert!(infer(&SPLIT, &Attrs::new(), &st(&sty), &[None], 2).is_err());
    assert!(eval_err(&SQUEEZE, &Attrs::new(), &[scalar.clone(), i64t(&[1], &[0])]).contains("scalar"));
    assert!(eval_err(
        &SLICE,
        &Attrs::new(),
        &[scalar.clone(), i64t(&[1], &[0]), i64t(&[1], &[1]), i64t(&[1], &[0])]
    )
    .contains("scalar"));
    assert!(eval_err(
        &PAD,
        &Attrs::new(),
        &[scalar.clone(), i64t(&[2], &[1, 1]), f32t(&[0], &[]), i64t(&[1], &[0])]
    )
    .contains("scalar"));
    assert!(eval_err(&GATHER, &Attrs::new(), &[scalar.clone(), i64t(&[1], &[0])]).contains("rank"));
    assert!(eval_err(&CONCAT, &attrs(&[("axis", Attr::Int(0))]), &[scalar.clone()]).contains("scalar"));
    let big = attrs(&[("blocksize", Attr::Int(1 << 40))]);
    assert!(eval_err(&DEPTH_TO_SPACE, &big, &[arange(&[1, 4, 1, 1])]).contains("blocksize"));
    let huge = TensorType::new(vec![st_dim(u64::MAX / 2)], ScalarType::F32);
    assert!(infer(
        &TILE,
        &Attrs::new(),
        &[huge, TensorType::of(&[1], ScalarType::I64)],
        &[None, Some(i64t(&[1], &[3]))],
        1
    )
    .is_err());
    assert!(eval_err(&TRILU, &Attrs::new(), &[f32t(&[2], &[1., 2.])]).contains("rank"));
    assert!(
        eval_err(&GATHER_ND, &Attrs::new(), &[arange(&[2, 2]), i64t(&[1, 3], &[0, 0, 0])]).contains("exceed")
    );
    assert!(eval_err(&SCATTER_ND, &Attrs::new(), &[arange(&[2]), i64t(&[1, 1], &[5]), f32t(&[1], &[0.])])
        .contains("out of range"));
    assert!(eval_err(&RESIZE, &Attrs::new(), &[arange(&[2]), f32t(&[0], &[])]).contains("exactly one"));
}

fn st_dim(n: u64) -> Dim {
    Dim::Static(n)
}
