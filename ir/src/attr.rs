//! Attributes: compile-time constants attached to ops by name.
//!
//! Text forms: `42`, `1.5`, `-inf`, `nan`, `"text"`, `[1, 2]`, `[0.5, 1.0]`, `["a", "b"]`, a scalar
//! type (`f32`), and tensors as `dense<[1.0, 2.0]> : tensor<2xf32>` (small) or
//! `dense<0x0000803F...> : tensor<...>` (raw little-endian bytes).

use crate::tensor::ConstTensor;
use crate::types::ScalarType;
use std::collections::BTreeMap;

/// One attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f64),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Strs(Vec<String>),
    Type(ScalarType),
    Tensor(ConstTensor),
}

impl Attr {
    pub fn kind(&self) -> AttrKind {
        match self {
            Attr::Int(_) => AttrKind::Int,
            Attr::Float(_) => AttrKind::Float,
            Attr::Str(_) => AttrKind::Str,
            Attr::Ints(_) => AttrKind::Ints,
            Attr::Floats(_) => AttrKind::Floats,
            Attr::Strs(_) => AttrKind::Strs,
            Attr::Type(_) => AttrKind::Type,
            Attr::Tensor(_) => AttrKind::Tensor,
        }
    }

    /// Whether this value is acceptable where `kind` is declared. An empty list prints as `[]`
    /// whatever its element kind, and an integer literal is a valid float.
    pub fn fits(&self, kind: AttrKind) -> bool {
        match (self, kind) {
            (a, k) if a.kind() == k => true,
            (Attr::Int(_), AttrKind::Float) => true,
            (Attr::Ints(v), AttrKind::Floats | AttrKind::Strs) => v.is_empty(),
            _ => false,
        }
    }
}

/// The kind of value an attribute declaration accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    Int,
    Float,
    Str,
    Ints,
    Floats,
    Strs,
    Type,
    Tensor,
}

impl AttrKind {
    pub fn name(self) -> &'static str {
        match self {
            AttrKind::Int => "int",
            AttrKind::Float => "float",
            AttrKind::Str => "string",
            AttrKind::Ints => "ints",
            AttrKind::Floats => "floats",
            AttrKind::Strs => "strings",
            AttrKind::Type => "type",
            AttrKind::Tensor => "tensor",
        }
    }
}

/// An op's attributes, sorted by name so printing is deterministic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attrs(pub BTreeMap<String, Attr>);

impl Attrs {
    pub fn new() -> Self {
        Attrs(BTreeMap::new())
    }

    pub fn with(mut self, name: &str, value: Attr) -> Self {
        self.0.insert(name.to_string(), value);
        self
    }

    pub fn set(&mut self, name: &str, value: Attr) {
        self.0.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.0.get(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Attr> {
        self.0.remove(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Attr)> {
        self.0.iter()
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Attr::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Attr::Float(v) => Some(*v),
            Attr::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Attr::Str(v) => Some(v),
            _ => None,
        }
    }

    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        match self.get(name)? {
            Attr::Ints(v) => Some(v),
            _ => None,
        }
    }

    pub fn floats(&self, name: &str) -> Option<Vec<f64>> {
        match self.get(name)? {
            Attr::Floats(v) => Some(v.clone()),
            Attr::Ints(v) => Some(v.iter().map(|&i| i as f64).collect()),
            _ => None,
        }
    }

    pub fn strs(&self, name: &str) -> Option<&[String]> {
        match self.get(name)? {
            Attr::Strs(v) => Some(v),
            Attr::Ints(v) if v.is_empty() => Some(&[]),
            _ => None,
        }
    }

    pub fn ty(&self, name: &str) -> Option<ScalarType> {
        match self.get(name)? {
            Attr::Type(t) => Some(*t),
            _ => None,
        }
    }

    pub fn tensor(&self, name: &str) -> Option<&ConstTensor> {
        match self.get(name)? {
            Attr::Tensor(t) => Some(t),
            _ => None,
        }
    }
}
