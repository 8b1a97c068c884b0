//! `shape.*`: data movement (reshape, transpose, gather, scatter, pad, resize...) and shape computation.

use crate::stub_op;

stub_op!(RESHAPE, "shape.reshape");
stub_op!(TRANSPOSE, "shape.transpose");
stub_op!(CONCAT, "shape.concat");
stub_op!(SPLIT, "shape.split");
stub_op!(SLICE, "shape.slice");
stub_op!(GATHER, "shape.gather");
stub_op!(GATHER_ELEMENTS, "shape.gather_elements");
stub_op!(GATHER_ND, "shape.gather_nd");
stub_op!(SCATTER_ND, "shape.scatter_nd");
stub_op!(SCATTER_ELEMENTS, "shape.scatter_elements");
stub_op!(EXPAND, "shape.expand");
stub_op!(SQUEEZE, "shape.squeeze");
stub_op!(UNSQUEEZE, "shape.unsqueeze");
stub_op!(FLATTEN, "shape.flatten");
stub_op!(TILE, "shape.tile");
stub_op!(PAD, "shape.pad");
stub_op!(RESIZE, "shape.resize");
stub_op!(DEPTH_TO_SPACE, "shape.depth_to_space");
stub_op!(SPACE_TO_DEPTH, "shape.space_to_depth");
stub_op!(SHAPE, "shape.shape");
stub_op!(SIZE, "shape.size");
stub_op!(CONSTANT_OF_SHAPE, "shape.constant_of_shape");
stub_op!(RANGE, "shape.range");
stub_op!(TRILU, "shape.trilu");
stub_op!(ONE_HOT, "shape.one_hot");
stub_op!(NON_ZERO, "shape.non_zero");
