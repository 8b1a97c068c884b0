//! Parser for the text form written by `printer.rs` (grammar in `docs/ir.md`).
//!
//! It is a hand-written recursive-descent parser working directly on characters rather than on
//! a token stream, because the type syntax is not tokenizable on its own: in `tensor<4x3xf32>`
//! the `x` separators glue dims to the element type, and `dense<0x...>` (hex bytes) and
//! `tensor<0x4xf32>` (a zero dim) start alike. Whitespace and `//` line comments may appear
//! between any two tokens, except inside a tensor type's dim list.
//!
//! What the parser checks: syntax, that every op name is registered, that every value is
//! defined exactly once in its function, that each op lists one type per result, that `dense`
//! literals fit their type, and that the signature's results match the `func.return` operands.
//! It does *not* run the verifier (structure, dominance, attribute kinds, shape rules): callers
//! do, so that invalid IR can still be read back and diagnosed.
//!
//! Values may be used before their definition in the text (the use is resolved when the
//! function ends); the verifier then reports the dominance violation. This keeps every module
//! the printer can write readable, even an invalid one, which is what one wants when debugging
//! a pass.

use crate::attr::{Attr, Attrs};
use crate::entity::{Block, EntityRef, Op, SecondaryMap, Value};
use crate::error::IrError;
use crate::module::{BlockData, Function, Loc, Module, Region};
use crate::ops::OpKind;
use crate::printer::{is_bare_value_name, quote};
use crate::tensor::ConstTensor;
use crate::types::{Dim, ElemType, QuantParams, QuantType, ScalarType, TensorType};
use std::collections::HashMap;
use std::fmt;

type PResult<T> = Result<T, IrError>;

/// Parses a module in the text form.
pub fn parse_module(src: &str) -> Result<Module, IrError> {
    parse_module_with_lines(src).map(|(m, _)| m)
}

/// Parses a module and also returns where each function and op starts in `src`, so that a
/// later diagnostic (e.g. from the verifier, which names ops by handle) can point at a line.
pub fn parse_module_with_lines(src: &str) -> Result<(Module, SourceLines), IrError> {
    let mut p = Parser::new(src);
    let mut module = Module::new();
    let mut lines = SourceLines::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        p.skip_ws();
        if p.at_end() {
            break;
        }
        let start = p.pos;
        let (f, fl) = p.function()?;
        if let Some(&prev) = seen.get(&f.name) {
            return Err(p.error_at(
                start,
                format!("function @{} is already defined at line {}", f.name, p.line_of(prev)),
            ));
        }
        seen.insert(f.name.clone(), start);
        module.functions.push(f);
        lines.functions.push(fl);
    }
    Ok((module, lines))
}

/// Parses a tensor type alone, e.g. `tensor<1x{seq}xf32>`.
pub fn parse_type(src: &str) -> Result<TensorType, IrError> {
    let mut p = Parser::new(src);
    let t = p.ty()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error_here(format!("unexpected {} after the type", p.describe_next())));
    }
    Ok(t)
}

/// Start lines (1-based) of the functions and ops of a parsed module, in module order.
#[derive(Clone, Debug, Default)]
pub struct SourceLines {
    pub functions: Vec<FunctionLines>,
}

/// Start lines of one function and of its ops.
#[derive(Clone, Debug)]
pub struct FunctionLines {
    /// The line of the `func` keyword.
    pub line: usize,
    ops: SecondaryMap<Op, usize>,
}

impl FunctionLines {
    /// The line where `op` starts (its first result, or its name when it has none).
    pub fn op_line(&self, op: Op) -> Option<usize> {
        let l = *self.ops.get(op);
        (l > 0).then_some(l)
    }
}

/// How a value is written: `%7` (numbered; renumbered by the printer) or `%name` / `%"name"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ValueKey {
    Num(u32),
    Name(String),
}

impl fmt::Display for ValueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueKey::Num(n) => write!(f, "%{n}"),
            ValueKey::Name(s) if is_bare_value_name(s) => write!(f, "%{s}"),
            ValueKey::Name(s) => write!(f, "%{}", quote(s)),
        }
    }
}

/// An operand as written, resolved when its op is created or, for a use that precedes the
/// definition, when the function ends.
struct OperandRef {
    key: ValueKey,
    pos: usize,
}

/// One element of a `dense<[...]>` list, kept as text until the type (written after the list)
/// says how to read it.
enum Elem {
    Num(String),
    Bool(bool),
}

/// Per-function state.
struct FuncState {
    f: Function,
    /// Every value defined so far, with the position of its definition.
    values: HashMap<ValueKey, (Value, usize)>,
    /// Uses of values not yet defined when their op was parsed: (op, operand index, use).
    pending: Vec<(Op, usize, OperandRef)>,
    lines: SecondaryMap<Op, usize>,
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    /// Byte offsets at which lines start, for position → line/column.
    line_starts: Vec<usize>,
    func: Option<FuncState>,
    /// Current region nesting, bounded so that hostile input cannot overflow the stack.
    depth: usize,
}

/// How deeply regions may nest (the parser, verifier, printer and interpreter recurse on them).
const MAX_REGION_DEPTH: usize = 64;

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '_' | '.' | '$')
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Parser { src, pos: 0, line_starts, func: None, depth: 0 }
    }

    // ---- positions and errors ----

    fn line_of(&self, pos: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= pos)
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> IrError {
        let line = self.line_of(pos);
        let start = self.line_starts[line - 1];
        let col = self.src.get(start..pos).map_or(1, |s| s.chars().count() + 1);
        // Messages quote names and tokens from the file, and a quoted name may hold a newline
        // (`"a\nb"`): escape control characters so that the error stays one line (found by
        // fuzzing).
        let message: String = message.into();
        let message = if message.chars().any(char::is_control) {
            message
                .chars()
                .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
                .collect()
        } else {
            message
        };
        IrError::Parse { line, col, message }
    }

    fn error_here(&self, message: impl Into<String>) -> IrError {
        self.error_at(self.pos, message)
    }

    /// A short description of what comes next, for "expected X, found Y" messages.
    fn describe_next(&self) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            return "end of input".into();
        }
        let word: String = rest.chars().take_while(|c| !c.is_whitespace()).take(16).collect();
        format!("`{word}`")
    }

    // ---- characters ----

    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Skips whitespace and `//` comments.
    fn skip_ws(&mut self) {
        loop {
            let r = self.rest();
            let t = r.trim_start();
            self.pos += r.len() - t.len();
            if t.starts_with("//") {
                self.pos = match t.find('\n') {
                    Some(i) => self.pos + i,
                    None => self.src.len(),
                };
            } else {
                break;
            }
        }
    }

    /// Whether `s` comes next (after whitespace).
    fn at(&mut self, s: &str) -> bool {
        self.skip_ws();
        self.rest().starts_with(s)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.at(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str, context: &str) -> PResult<()> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.error_here(format!("expected `{s}` {context}, found {}", self.describe_next())))
        }
    }

    /// Consumes a run of identifier characters (no whitespace skipping).
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.src[start..self.pos]
    }

    /// The identifier that comes next, without consuming it.
    fn peek_ident(&mut self) -> Option<&'s str> {
        self.skip_ws();
        let rest = self.rest();
        let mut chars = rest.char_indices();
        match chars.next() {
            Some((_, c)) if is_ident_start(c) => {}
            _ => return None,
        }
        let end = chars.find(|&(_, c)| !is_ident_char(c)).map_or(rest.len(), |(i, _)| i);
        Some(&rest[..end])
    }

    fn ident(&mut self, what: &str) -> PResult<&'s str> {
        match self.peek_ident() {
            Some(id) => {
                self.pos += id.len();
                Ok(id)
            }
            None => Err(self.error_here(format!("expected {what}, found {}", self.describe_next()))),
        }
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.peek_ident() == Some(kw) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    // ---- literals ----

    /// A double-quoted string with `\"`, `\\`, `\n`, `\t`, `\r`, `\0`, `\'` and `\u{HEX}` escapes.
    fn string(&mut self) -> PResult<String> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() != Some('"') {
            return Err(self.error_here(format!("expected a string, found {}", self.describe_next())));
        }
        self.bump();
        let mut out = String::new();
        loop {
            let here = self.pos;
            match self.bump() {
                None | Some('\n') => return Err(self.error_at(start, "unterminated string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('\'') => out.push('\''),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('u') => {
                        if self.bump() != Some('{') {
                            return Err(self.error_at(here, "expected `{` after `\\u`"));
                        }
                        let hex = self.take_while(|c| c.is_ascii_hexdigit());
                        let c = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                        match (c, self.bump()) {
                            (Some(c), Some('}')) => out.push(c),
                            _ => return Err(self.error_at(here, "invalid `\\u{...}` escape")),
                        }
                    }
                    _ => return Err(self.error_at(here, "unknown escape sequence in string")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// A numeric literal as text: `-12`, `0.5`, `1e-7`, `-2.5E+3`, `inf`, `-inf`, `nan`.
    /// Returns the start position, the text, and whether it is written as a float.
    fn number(&mut self) -> PResult<(usize, &'s str, bool)> {
        self.skip_ws();
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.bump();
        }
        let word_len = self.rest().find(|c: char| !is_ident_char(c)).unwrap_or(self.rest().len());
        if matches!(&self.rest()[..word_len], "inf" | "nan" | "NaN") {
            self.pos += word_len;
            return Ok((start, &self.src[start..self.pos], true));
        }
        let int_part = self.take_while(|c| c.is_ascii_digit());
        if int_part.is_empty() {
            self.pos = start;
            return Err(self.error_here(format!("expected a number, found {}", self.describe_next())));
        }
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek2().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.take_while(|c| c.is_ascii_digit());
            is_float = true;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.pos;
            self.bump();
            if matches!(self.peek(), Some('-' | '+')) {
                self.bump();
            }
            if self.take_while(|c| c.is_ascii_digit()).is_empty() {
                self.pos = save;
            } else {
                is_float = true;
            }
        }
        if self.peek().is_some_and(is_ident_char) {
            return Err(self.error_here(format!("unexpected {} after a number", self.describe_next())));
        }
        Ok((start, &self.src[start..self.pos], is_float))
    }

    fn int_of(&self, pos: usize, text: &str, is_float: bool) -> PResult<i64> {
        if is_float {
            return Err(self.error_at(pos, format!("expected an integer, found `{text}`")));
        }
        text.parse::<i64>()
            .map_err(|_| self.error_at(pos, format!("integer `{text}` does not fit in 64 bits")))
    }

    fn float_of(&self, pos: usize, text: &str) -> PResult<f64> {
        let v = parse_f64(text).ok_or_else(|| self.error_at(pos, format!("invalid number `{text}`")))?;
        if v.is_infinite() && !text.contains("inf") {
            return Err(self.error_at(pos, format!("`{text}` is out of range for f64")));
        }
        Ok(v)
    }

    // ---- types ----

    /// `tensor<DIMS ELEM>` where each dim is `N`, `{name}`, `{"name"}` or `?`, followed by `x`.
    fn ty(&mut self) -> PResult<TensorType> {
        self.skip_ws();
        let start = self.pos;
        if !self.rest().starts_with("tensor<") {
            return Err(
                self.error_here(format!("expected a type `tensor<...>`, found {}", self.describe_next()))
            );
        }
        self.pos += "tensor<".len();
        let mut dims = Vec::new();
        let elem = loop {
            let dim_pos = self.pos;
            let dim = match self.peek() {
                Some(c) if c.is_ascii_digit() => {
                    let digits = self.take_while(|c| c.is_ascii_digit());
                    let n = digits
                        .parse::<u64>()
                        .map_err(|_| self.error_at(dim_pos, format!("dim `{digits}` is too large")))?;
                    Dim::Static(n)
                }
                Some('?') => {
                    self.bump();
                    Dim::Unknown
                }
                Some('{') => {
                    self.bump();
                    let name = if self.peek() == Some('"') {
                        self.string()?
                    } else {
                        self.take_while(is_ident_char).to_string()
                    };
                    if name.is_empty() {
                        return Err(self.error_at(dim_pos, "a symbolic dim needs a name: `{seq}`"));
                    }
                    if self.bump() != Some('}') {
                        return Err(self.error_at(dim_pos, "expected `}` to close the symbolic dim"));
                    }
                    Dim::Sym(name)
                }
                _ => break self.elem_type()?,
            };
            if self.peek() != Some('x') {
                return Err(self.error_here(format!(
                    "expected `x` after dim `{}` in a tensor type, found {}",
                    &self.src[dim_pos..self.pos],
                    self.describe_next()
                )));
            }
            self.bump();
            dims.push(dim);
        };
        self.skip_ws();
        if self.peek() != Some('>') {
            return Err(self.error_here(format!(
                "expected `>` to close the tensor type, found {}",
                self.describe_next()
            )));
        }
        self.bump();
        let ty = TensorType { dims, elem };
        if let ElemType::Quant(q) = &ty.elem {
            if let QuantParams::PerAxis { axis, scales, .. } = &q.params {
                match ty.dims.get(*axis) {
                    None => {
                        return Err(self.error_at(
                            start,
                            format!("quantization axis {axis} is out of range for rank {}", ty.rank()),
                        ))
                    }
                    Some(Dim::Static(n)) if *n != scales.len() as u64 => {
                        return Err(self.error_at(
                            start,
                            format!(
                                "per-axis quantization along axis {axis} needs {n} scales, found {}",
                                scales.len()
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(ty)
    }

    fn scalar_type(&mut self) -> PResult<ScalarType> {
        self.skip_ws();
        let pos = self.pos;
        let name = self.take_while(is_ident_char);
        ScalarType::from_name(name).ok_or_else(|| {
            if name.is_empty() {
                self.error_at(pos, format!("expected an element type, found {}", self.describe_next()))
            } else {
                self.error_at(pos, format!("unknown element type `{name}`"))
            }
        })
    }

    /// A scalar type name or `!q.uniform<storage:expressed[:axis], params>`.
    fn elem_type(&mut self) -> PResult<ElemType> {
        if !self.rest().starts_with("!q.uniform<") {
            return Ok(ElemType::Scalar(self.scalar_type()?));
        }
        let start = self.pos;
        self.pos += "!q.uniform<".len();
        let storage = self.scalar_type()?;
        self.expect(":", "between the storage and expressed types")?;
        let expressed = self.scalar_type()?;
        if !storage.is_int() {
            return Err(self.error_at(
                start,
                format!("quantized storage type must be an integer type, found {storage}"),
            ));
        }
        if !expressed.is_float() {
            return Err(self.error_at(
                start,
                format!("quantized expressed type must be a float type, found {expressed}"),
            ));
        }
        let params = if self.eat(":") {
            let (p, text, f) = self.number()?;
            let axis = self.int_of(p, text, f)?;
            let axis = usize::try_from(axis)
                .map_err(|_| self.error_at(p, format!("quantization axis must be >= 0, found {axis}")))?;
            self.expect(",", "after the quantization axis")?;
            self.expect("{", "to open the per-axis `{scale:zero_point, ...}` list")?;
            let (mut scales, mut zero_points) = (Vec::new(), Vec::new());
            if !self.eat("}") {
                loop {
                    let (p, text, _) = self.number()?;
                    scales.push(self.float_of(p, text)?);
                    self.expect(":", "between a scale and its zero point")?;
                    let (p, text, f) = self.number()?;
                    zero_points.push(self.int_of(p, text, f)?);
                    if !self.eat(",") {
                        break;
                    }
                }
                self.expect("}", "to close the per-axis list")?;
            }
            QuantParams::PerAxis { axis, scales, zero_points }
        } else {
            self.expect(",", "before the scale")?;
            let (p, text, _) = self.number()?;
            let scale = self.float_of(p, text)?;
            self.expect(",", "before the zero point")?;
            let (p, text, f) = self.number()?;
            let zero_point = self.int_of(p, text, f)?;
            QuantParams::PerTensor { scale, zero_point }
        };
        self.expect(">", "to close `!q.uniform<...>`")?;
        Ok(ElemType::Quant(Box::new(QuantType { storage, expressed, params })))
    }

    // ---- attributes ----

    /// `{name = value, ...}` (the `{` is next).
    fn attr_dict(&mut self) -> PResult<Attrs> {
        self.expect("{", "to open the attributes")?;
        let mut attrs = Attrs::new();
        if self.eat("}") {
            return Ok(attrs);
        }
        loop {
            self.skip_ws();
            let pos = self.pos;
            let name = if self.peek() == Some('"') {
                self.string()?
            } else {
                self.ident("an attribute name")?.to_string()
            };
            self.expect("=", &format!("after attribute name `{name}`"))?;
            let value = self.attr_value()?;
            if attrs.get(&name).is_some() {
                return Err(self.error_at(pos, format!("attribute `{name}` is given twice")));
            }
            attrs.set(&name, value);
            if !self.eat(",") {
                break;
            }
        }
        self.expect("}", "to close the attributes")?;
        Ok(attrs)
    }

    fn attr_value(&mut self) -> PResult<Attr> {
        self.skip_ws();
        let pos = self.pos;
        match self.peek() {
            Some('"') => Ok(Attr::Str(self.string()?)),
            Some('[') => self.attr_list(),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
                let (p, text, is_float) = self.number()?;
                if is_float {
                    Ok(Attr::Float(self.float_of(p, text)?))
                } else {
                    Ok(Attr::Int(self.int_of(p, text, false)?))
                }
            }
            _ => match self.peek_ident() {
                Some("dense") => self.dense(),
                Some("dense_elided") => Err(self.error_at(
                    pos,
                    "elided constants (`dense_elided<...>`) cannot be parsed: the data was left out \
                     when printing; print without eliding constants to get a parseable module",
                )),
                Some("inf" | "nan" | "NaN") => {
                    let (p, text, _) = self.number()?;
                    Ok(Attr::Float(self.float_of(p, text)?))
                }
                Some(word) => match ScalarType::from_name(word) {
                    Some(t) => {
                        self.pos += word.len();
                        Ok(Attr::Type(t))
                    }
                    None => Err(self.error_at(pos, format!("unknown attribute value `{word}`"))),
                },
                None => Err(self
                    .error_at(pos, format!("expected an attribute value, found {}", self.describe_next()))),
            },
        }
    }

    /// `[1, 2]` (ints), `[0.5, inf]` (floats; an int element is read as a float), `["a"]`
    /// (strings), `[]` (an empty list; fits any list kind).
    fn attr_list(&mut self) -> PResult<Attr> {
        self.expect("[", "")?;
        if self.eat("]") {
            return Ok(Attr::Ints(Vec::new()));
        }
        self.skip_ws();
        if self.peek() == Some('"') {
            let mut v = Vec::new();
            loop {
                v.push(self.string()?);
                if !self.eat(",") {
                    break;
                }
            }
            self.expect("]", "to close the list")?;
            return Ok(Attr::Strs(v));
        }
        let mut nums = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some('"') {
                return Err(self.error_here("a list cannot mix strings and numbers"));
            }
            nums.push(self.number()?);
            if !self.eat(",") {
                break;
            }
        }
        self.expect("]", "to close the list")?;
        if nums.iter().any(|&(_, _, f)| f) {
            nums.iter().map(|&(p, t, _)| self.float_of(p, t)).collect::<PResult<_>>().map(Attr::Floats)
        } else {
            nums.iter().map(|&(p, t, _)| self.int_of(p, t, false)).collect::<PResult<_>>().map(Attr::Ints)
        }
    }

    /// `dense<[e, ...]> : TYPE` or `dense<0xHEX> : TYPE` (raw little-endian bytes).
    fn dense(&mut self) -> PResult<Attr> {
        self.skip_ws();
        let start = self.pos;
        self.pos += "dense".len();
        self.expect("<", "after `dense`")?;
        self.skip_ws();
        enum Data {
            Hex(Vec<u8>),
            List(Vec<(usize, Elem)>),
        }
        let data = if self.rest().starts_with("0x") || self.rest().starts_with("0X") {
            self.pos += 2;
            let hex_pos = self.pos;
            let hex = self.take_while(|c| c.is_ascii_hexdigit());
            if hex.len() % 2 != 0 {
                return Err(self.error_at(hex_pos, "hex data must have an even number of digits"));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits checked"))
                .collect();
            Data::Hex(bytes)
        } else {
            self.expect("[", "or `0x` to start the dense data")?;
            let mut elems = Vec::new();
            if !self.eat("]") {
                loop {
                    self.skip_ws();
                    let p = self.pos;
                    if self.eat_keyword("true") {
                        elems.push((p, Elem::Bool(true)));
                    } else if self.eat_keyword("false") {
                        elems.push((p, Elem::Bool(false)));
                    } else {
                        let (p, text, _) = self.number()?;
                        elems.push((p, Elem::Num(text.to_string())));
                    }
                    if !self.eat(",") {
                        break;
                    }
                }
                self.expect("]", "to close the dense list")?;
            }
            Data::List(elems)
        };
        self.expect(">", "to close `dense<...>`")?;
        self.expect(":", "and the constant's type after `dense<...>`")?;
        let ty_pos = {
            self.skip_ws();
            self.pos
        };
        let ty = self.ty()?;
        let Some(n) = ty.num_elements() else {
            return Err(self.error_at(ty_pos, format!("a dense constant needs a static type, found {ty}")));
        };
        let bytes = match data {
            Data::Hex(bytes) => {
                // Checked: a huge declared shape must be an error, not an overflow.
                let size = n.checked_mul(ty.elem.storage().bits() as u64).map(|b| b.div_ceil(8));
                if let Some(size) = size.filter(|&s| s != bytes.len() as u64) {
                    return Err(self.error_at(
                        start,
                        format!("dense data has {} bytes but {ty} needs {size}", bytes.len()),
                    ));
                }
                if size.is_none() {
                    return Err(self.error_at(start, format!("{ty} is too large for a constant")));
                }
                bytes
            }
            Data::List(elems) => {
                if elems.len() as u64 != n {
                    return Err(self.error_at(
                        start,
                        format!("dense list has {} elements but {ty} has {n}", elems.len()),
                    ));
                }
                self.encode(&elems, ty.elem.storage())?
            }
        };
        Ok(Attr::Tensor(ConstTensor { ty, bytes: bytes.into() }))
    }

    /// Little-endian bytes of list elements read as `st` (4-bit types packed two per byte, low
    /// nibble first, like `Tensor::to_le_bytes`).
    fn encode(&self, elems: &[(usize, Elem)], st: ScalarType) -> PResult<Vec<u8>> {
        let mut out = Vec::with_capacity(elems.len() * st.bits().div_ceil(8));
        for (i, (p, e)) in elems.iter().enumerate() {
            let p = *p;
            match (st, e) {
                (ScalarType::Bool, Elem::Bool(b)) => out.push(*b as u8),
                (ScalarType::Bool, Elem::Num(t)) => {
                    return Err(self.error_at(p, format!("expected `true` or `false` for bool, found `{t}`")))
                }
                (_, Elem::Bool(_)) => {
                    return Err(self.error_at(p, format!("a boolean is not a valid {st} element")))
                }
                (ScalarType::F64, Elem::Num(t)) => out.extend(self.float_of(p, t)?.to_le_bytes()),
                (ScalarType::F32 | ScalarType::F16 | ScalarType::BF16, Elem::Num(t)) => {
                    // Read as f32 directly: going through f64 could round twice.
                    let v = parse_f32(t).ok_or_else(|| self.error_at(p, format!("invalid number `{t}`")))?;
                    let v_inf = match st {
                        ScalarType::F16 => {
                            let h = half::f16::from_f32(v);
                            out.extend(h.to_le_bytes());
                            h.is_infinite()
                        }
                        ScalarType::BF16 => {
                            let h = half::bf16::from_f32(v);
                            out.extend(h.to_le_bytes());
                            h.is_infinite()
                        }
                        _ => {
                            out.extend(v.to_le_bytes());
                            v.is_infinite()
                        }
                    };
                    if v_inf && !t.contains("inf") {
                        return Err(self.error_at(p, format!("`{t}` is out of range for {st}")));
                    }
                }
                (_, Elem::Num(t)) => {
                    let v: i128 = t.parse().map_err(|_| {
                        self.error_at(p, format!("expected an integer for {st}, found `{t}`"))
                    })?;
                    let (lo, hi): (i128, i128) = match st {
                        ScalarType::I4 => (-8, 7),
                        ScalarType::U4 => (0, 15),
                        s if s.is_signed_int() => (-(1i128 << (s.bits() - 1)), (1i128 << (s.bits() - 1)) - 1),
                        s => (0, (1i128 << s.bits()) - 1),
                    };
                    if v < lo || v > hi {
                        return Err(self.error_at(p, format!("{v} is out of range for {st}")));
                    }
                    if st.bits() == 4 {
                        let nib = (v as u8) & 0xf;
                        if i % 2 == 0 {
                            out.push(nib);
                        } else if let Some(last) = out.last_mut() {
                            *last |= nib << 4;
                        }
                    } else {
                        out.extend_from_slice(&v.to_le_bytes()[..st.bits() / 8]);
                    }
                }
            }
        }
        Ok(out)
    }

    /// `loc(unknown)`, `loc("name")` or `loc(fused["a", "b"])`.
    fn loc(&mut self) -> PResult<Loc> {
        self.expect("(", "after `loc`")?;
        let loc = if self.eat_keyword("unknown") {
            Loc::Unknown
        } else if self.eat_keyword("fused") {
            self.expect("[", "after `fused`")?;
            let mut names = Vec::new();
            if !self.eat("]") {
                loop {
                    names.push(self.string()?);
                    if !self.eat(",") {
                        break;
                    }
                }
                self.expect("]", "to close the fused location")?;
            }
            Loc::Fused(names)
        } else if self.at("\"") {
            Loc::Name(self.string()?)
        } else {
            return Err(self.error_here(format!(
                "expected `unknown`, a string or `fused[...]` in a location, found {}",
                self.describe_next()
            )));
        };
        self.expect(")", "to close the location")?;
        Ok(loc)
    }

    // ---- values ----

    /// `%name`, `%"any name"` or `%N`.
    fn value_ref(&mut self) -> PResult<(ValueKey, usize)> {
        self.skip_ws();
        let pos = self.pos;
        if self.peek() != Some('%') {
            return Err(
                self.error_here(format!("expected a value (`%name`), found {}", self.describe_next()))
            );
        }
        self.bump();
        if self.peek() == Some('"') {
            return Ok((ValueKey::Name(self.string()?), pos));
        }
        let text = self.take_while(is_ident_char);
        if text.is_empty() {
            return Err(self.error_at(pos, "expected a value name or number after `%`"));
        }
        if text.chars().all(|c| c.is_ascii_digit()) {
            let n = text
                .parse::<u32>()
                .map_err(|_| self.error_at(pos, format!("value number %{text} is too large")))?;
            return Ok((ValueKey::Num(n), pos));
        }
        if text.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(
                self.error_at(pos, format!("value name `{text}` starts with a digit; quote it: %\"{text}\""))
            );
        }
        Ok((ValueKey::Name(text.to_string()), pos))
    }

    fn state(&mut self) -> &mut FuncState {
        self.func.as_mut().expect("inside a function")
    }

    /// Records the definition of `key` as `v` (and gives `v` its name).
    fn define(&mut self, key: ValueKey, pos: usize, v: Value) -> PResult<()> {
        if let Some(&(_, prev)) = self.state().values.get(&key) {
            let line = self.line_of(prev);
            return Err(self.error_at(pos, format!("value {key} is already defined at line {line}")));
        }
        let st = self.state();
        if let ValueKey::Name(n) = &key {
            st.f.values[v].name = Some(n.clone());
        }
        st.values.insert(key, (v, pos));
        Ok(())
    }

    // ---- structure ----

    /// `func @name(%a: T, ...) -> ("r": T, ...) { ops }`
    fn function(&mut self) -> PResult<(Function, FunctionLines)> {
        self.skip_ws();
        let start = self.pos;
        if !self.eat_keyword("func") {
            return Err(self.error_here(format!("expected `func`, found {}", self.describe_next())));
        }
        self.expect("@", "before the function name")?;
        let name = if self.peek() == Some('"') {
            self.string()?
        } else {
            let n = self.take_while(is_ident_char);
            if n.is_empty() {
                return Err(self.error_here("expected a function name after `@`"));
            }
            n.to_string()
        };
        self.func = Some(FuncState {
            f: Function::new(name),
            values: HashMap::new(),
            pending: Vec::new(),
            lines: SecondaryMap::with_default(0),
        });
        self.expect("(", "to open the parameter list")?;
        if !self.eat(")") {
            loop {
                let (key, pos) = self.value_ref()?;
                self.expect(":", "after the parameter")?;
                let ty = self.ty()?;
                let v = self.state().f.add_param(ty, None);
                self.define(key, pos, v)?;
                if !self.eat(",") {
                    break;
                }
            }
            self.expect(")", "to close the parameter list")?;
        }
        self.expect("->", "before the result list")?;
        self.expect("(", "to open the result list")?;
        let sig_pos = self.pos;
        let mut results: Vec<(usize, String, TensorType)> = Vec::new();
        if !self.eat(")") {
            loop {
                self.skip_ws();
                let p = self.pos;
                let n = self.string()?;
                self.expect(":", "after the result name")?;
                let ty = self.ty()?;
                results.push((p, n, ty));
                if !self.eat(",") {
                    break;
                }
            }
            self.expect(")", "to close the result list")?;
        }
        self.expect("{", "to open the function body")?;
        let body = self.state().f.body;
        self.ops(body, false)?;
        self.expect("}", "to close the function body")?;

        let mut st = self.func.take().expect("inside a function");
        for (op, index, r) in std::mem::take(&mut st.pending) {
            match st.values.get(&r.key) {
                Some(&(v, _)) => st.f.ops[op].operands[index] = v,
                None => return Err(self.error_at(r.pos, format!("undefined value {}", r.key))),
            }
        }
        let returned = st.f.results().to_vec();
        if returned.len() != results.len() {
            let what = if st.f.return_op().is_some() {
                format!("`func.return` returns {}", returned.len())
            } else {
                "the body does not end with `func.return`".to_string()
            };
            return Err(
                self.error_at(sig_pos, format!("the signature names {} result(s) but {what}", results.len()))
            );
        }
        for (i, ((p, name, ty), &v)) in results.iter().zip(&returned).enumerate() {
            let actual = &st.f.values[v].ty;
            if actual != ty {
                return Err(self.error_at(
                    *p,
                    format!(
                        "result #{i} ({}) is declared {ty} but `func.return` returns {actual}",
                        quote(name)
                    ),
                ));
            }
        }
        st.f.result_names = results.into_iter().map(|(_, n, _)| n).collect();
        let line = self.line_of(start);
        Ok((st.f, FunctionLines { line, ops: st.lines }))
    }

    /// Parses ops into `block` until `}` (or, in a region, the next `^bb` header).
    fn ops(&mut self, block: Block, in_region: bool) -> PResult<()> {
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some('}') => return Ok(()),
                Some('^') if in_region => return Ok(()),
                Some('^') => {
                    return Err(self.error_here("block headers (`^bb`) are only allowed inside regions"))
                }
                _ => self.op(block)?,
            }
        }
    }

    /// `[%r, ... =] dialect.op [%a, ...] [{attrs}] [({region}, ...)] [: T, ...] [loc(...)]`
    fn op(&mut self, block: Block) -> PResult<()> {
        self.skip_ws();
        let start = self.pos;
        let mut results = Vec::new();
        if self.peek() == Some('%') {
            loop {
                results.push(self.value_ref()?);
                if !self.eat(",") {
                    break;
                }
            }
            self.expect("=", "after the op's results")?;
        }
        self.skip_ws();
        let name_pos = self.pos;
        let name = self.ident("an op name")?;
        let kind =
            OpKind::from_name(name).ok_or_else(|| self.error_at(name_pos, format!("unknown op `{name}`")))?;
        let mut operands = Vec::new();
        if self.at("%") {
            loop {
                let (key, pos) = self.value_ref()?;
                operands.push(OperandRef { key, pos });
                if !self.eat(",") {
                    break;
                }
            }
        }
        let attrs = if self.at("{") { self.attr_dict()? } else { Attrs::new() };
        let mut regions = Vec::new();
        if self.eat("(") {
            loop {
                regions.push(self.region()?);
                if !self.eat(",") {
                    break;
                }
            }
            self.expect(")", "to close the op's regions")?;
        }
        let mut types = Vec::new();
        let types_pos = self.pos;
        if self.eat(":") {
            loop {
                types.push(self.ty()?);
                if !self.eat(",") {
                    break;
                }
            }
        }
        if types.len() != results.len() {
            return Err(self.error_at(
                if types.is_empty() { types_pos } else { start },
                format!("`{name}` has {} result(s) but {} result type(s)", results.len(), types.len()),
            ));
        }
        let loc = if self.eat_keyword("loc") { self.loc()? } else { Loc::Unknown };

        let placeholder = Value::new(u32::MAX as usize);
        let st = self.state();
        let mut resolved = Vec::with_capacity(operands.len());
        let mut unresolved = Vec::new();
        for (i, r) in operands.into_iter().enumerate() {
            match st.values.get(&r.key) {
                Some(&(v, _)) => resolved.push(v),
                None => {
                    resolved.push(placeholder);
                    unresolved.push((i, r));
                }
            }
        }
        let op = st.f.create_op(kind, resolved, types, attrs, loc);
        st.f.ops[op].regions = regions;
        st.f.append_op(block, op);
        st.pending.extend(unresolved.into_iter().map(|(i, r)| (op, i, r)));
        let line = self.line_of(start);
        self.state().lines.set(op, line);
        let values = self.state().f.ops[op].results.clone();
        for ((key, pos), v) in results.into_iter().zip(values) {
            self.define(key, pos, v)?;
        }
        Ok(())
    }

    /// `{ ^bb(%a: T, ...): ops ... }`
    fn region(&mut self) -> PResult<Region> {
        self.skip_ws();
        if self.depth >= MAX_REGION_DEPTH {
            return Err(self.error_here(format!("regions are nested more than {MAX_REGION_DEPTH} deep")));
        }
        self.depth += 1;
        let r = self.region_inner();
        self.depth -= 1;
        r
    }

    fn region_inner(&mut self) -> PResult<Region> {
        self.expect("{", "to open a region")?;
        let mut blocks = Vec::new();
        loop {
            if self.eat("}") {
                return Ok(Region { blocks });
            }
            if !self.at("^") {
                return Err(self.error_here(format!(
                    "expected a block header `^bb(...):` or `}}`, found {}",
                    self.describe_next()
                )));
            }
            self.bump();
            // The label is decoration: blocks are not referenced by name (there are no branches).
            self.take_while(is_ident_char);
            let b = self.state().f.blocks.push(BlockData::default());
            self.expect("(", "to open the block arguments")?;
            if !self.eat(")") {
                loop {
                    let (key, pos) = self.value_ref()?;
                    self.expect(":", "after the block argument")?;
                    let ty = self.ty()?;
                    let v = self.state().f.add_block_arg(b, ty, None);
                    self.define(key, pos, v)?;
                    if !self.eat(",") {
                        break;
                    }
                }
                self.expect(")", "to close the block arguments")?;
            }
            self.expect(":", "after the block header")?;
            self.ops(b, true)?;
            if self.at_end() {
                return Err(self.error_here("expected `}` to close the region, found end of input"));
            }
            blocks.push(b);
        }
    }
}

fn parse_f64(text: &str) -> Option<f64> {
    match text {
        "nan" | "NaN" | "+nan" | "-nan" => Some(f64::NAN),
        _ => text.parse::<f64>().ok(),
    }
}

fn parse_f32(text: &str) -> Option<f32> {
    match text {
        "nan" | "NaN" | "+nan" | "-nan" => Some(f32::NAN),
        _ => text.parse::<f32>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::Builder;
    use crate::printer::print_module;
    use crate::tensor::Tensor;
    use ndarray::{ArrayD, IxDyn};

    fn round_trip(text: &str) {
        let m = parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(print_module(&m), text);
    }

    fn parse_err(text: &str) -> (usize, usize, String) {
        match parse_module(text) {
            Err(IrError::Parse { line, col, message }) => (line, col, message),
            Err(e) => panic!("not a parse error: {e}"),
            Ok(m) => panic!("parsed:\n{}", print_module(&m)),
        }
    }

    #[test]
    fn round_trips_printer_output() {
        round_trip(
            "func @main(%x: tensor<1x{seq}x?xf32>, %\"in put\": tensor<2x!q.uniform<i8:f32, 0.5, -3>>) -> (\"y\": tensor<4xf32>, \"\": tensor<2xi4>) {
  %0 = builtin.constant {value = dense<[1.0, -0.0, inf, 1e-7]> : tensor<4xf32>} : tensor<4xf32> loc(\"w\")
  %1 = builtin.constant {value = dense<[-8, 7]> : tensor<2xi4>} : tensor<2xi4> loc(fused[\"a\", \"b\\n\"])
  %2, %3 = builtin.subgraph %0, %1 {target = \"tpu\"} ({
  ^bb(%4: tensor<4xf32>, %named: tensor<2xi4>):
    builtin.yield %4, %named loc(unknown)
  }) : tensor<4xf32>, tensor<2xi4> loc(unknown)
  func.return %2, %3 loc(unknown)
}

func @\"second fn\"() -> () {
  func.return loc(unknown)
}
",
        );
    }

    #[test]
    fn numbered_values_are_renumbered() {
        let m = parse_module(
            "func @f() -> (\"a\": tensor<i64>) {
  %7 = builtin.constant {value = dense<[3]> : tensor<i64>} : tensor<i64>
  func.return %7
}",
        )
        .unwrap();
        assert_eq!(
            print_module(&m),
            "func @f() -> (\"a\": tensor<i64>) {
  %0 = builtin.constant {value = dense<[3]> : tensor<i64>} : tensor<i64> loc(unknown)
  func.return %0 loc(unknown)
}
"
        );
    }

    #[test]
    fn attribute_forms() {
        let m = parse_module(
            "func @f() -> () {
  func.return {a = 1, b = -2.5e-3, c = inf, d = -inf, e = nan, f = \"s\\\"q\\u{1}\", g = [], h = [1, -2],
    i = [0.5, 1], j = [\"x\", \"y\"], k = bf16, l = dense<0x0000803F> : tensor<1xf32>, \"m n\" = 3}
}",
        )
        .unwrap();
        let f = &m.functions[0];
        let a = &f.ops[f.body_ops()[0]].attrs;
        assert_eq!(a.get("a"), Some(&Attr::Int(1)));
        assert_eq!(a.get("b"), Some(&Attr::Float(-2.5e-3)));
        assert_eq!(a.get("c"), Some(&Attr::Float(f64::INFINITY)));
        assert_eq!(a.get("d"), Some(&Attr::Float(f64::NEG_INFINITY)));
        assert!(matches!(a.get("e"), Some(Attr::Float(v)) if v.is_nan()));
        assert_eq!(a.str("f"), Some("s\"q\u{1}"));
        assert_eq!(a.get("g"), Some(&Attr::Ints(vec![])));
        assert_eq!(a.get("h"), Some(&Attr::Ints(vec![1, -2])));
        assert_eq!(a.get("i"), Some(&Attr::Floats(vec![0.5, 1.0])));
        assert_eq!(a.strs("j"), Some(&["x".to_string(), "y".to_string()][..]));
        assert_eq!(a.ty("k"), Some(ScalarType::BF16));
        assert_eq!(a.tensor("l").unwrap().to_tensor().unwrap().to_f64_vec(), vec![1.0]);
        assert_eq!(a.int("m n"), Some(3));
    }

    #[test]
    fn dense_lists_of_every_type_round_trip() {
        for st in ScalarType::ALL {
            let vals: Vec<f64> = vec![0.0, 1.0, 3.0, 5.0];
            let t = match st {
                ScalarType::Bool => Tensor::Bool(
                    ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![true, false, true, true]).unwrap(),
                ),
                _ => {
                    let bytes: Vec<u8> = match st {
                        ScalarType::F32 => {
                            vals.iter().flat_map(|&v| (v as f32 - 0.25).to_le_bytes()).collect()
                        }
                        ScalarType::F64 => vals.iter().flat_map(|&v| (v / 3.0).to_le_bytes()).collect(),
                        ScalarType::F16 => {
                            vals.iter().flat_map(|&v| half::f16::from_f64(v / 3.0).to_le_bytes()).collect()
                        }
                        ScalarType::BF16 => {
                            vals.iter().flat_map(|&v| half::bf16::from_f64(-v).to_le_bytes()).collect()
                        }
                        ScalarType::I4 => vec![0x9f, 0x53],
                        ScalarType::U4 => vec![0xff, 0x03],
                        s => {
                            let n = s.bits() / 8;
                            vals.iter().flat_map(|&v| (v as i64 - 1).to_le_bytes()[..n].to_vec()).collect()
                        }
                    };
                    Tensor::from_le_bytes(st, &[2, 2], &bytes).unwrap()
                }
            };
            let c = ConstTensor::from_tensor(&t);
            let mut f = Function::new("f");
            let v = Builder::new(&mut f).constant(c.clone(), Loc::Unknown);
            Builder::new(&mut f).ret(vec![v]);
            f.result_names = vec!["out".into()];
            let m = Module { functions: vec![f] };
            let text = print_module(&m);
            let back = parse_module(&text).unwrap_or_else(|e| panic!("{st}: {e}\n{text}"));
            let g = &back.functions[0];
            assert_eq!(g.ops[g.body_ops()[0]].attrs.tensor("value"), Some(&c), "{st}: {text}");
            assert_eq!(print_module(&back), text);
        }
    }

    /// The test the brief asks for: build with the Builder, print, parse, print again.
    #[test]
    fn builder_module_round_trips() {
        let mut f = Function::new("main");
        let x = f.add_param(
            TensorType::new(vec![Dim::Sym("batch".into()), Dim::Static(4)], ScalarType::F32),
            Some("x".into()),
        );
        let y = f.add_param(TensorType::of(&[3], ScalarType::I64), None);
        let mut b = Builder::new(&mut f);
        let w = b.constant(
            ConstTensor::from_tensor(&Tensor::F32(
                ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0, 2.5, -3.0, 1e-9]).unwrap(),
            )),
            Loc::name("w"),
        );
        let big = b.constant(
            ConstTensor::from_tensor(&Tensor::zeros(ScalarType::I32, &[5, 5])),
            Loc::Fused(vec!["a".into(), "b".into()]),
        );
        let x_ty = b.func.values[x].ty.clone();
        let sg = b.op_typed(
            OpKind::Subgraph,
            vec![x, w],
            vec![x_ty, TensorType::of(&[4], ScalarType::F32)],
            Attrs::new().with("target", Attr::Str("edgetpu".into())),
            Loc::name("sg"),
        );
        let rb = f.blocks.push(BlockData::default());
        let a0 = f.add_block_arg(rb, f.values[x].ty.clone(), Some("inner".into()));
        let a1 = f.add_block_arg(rb, TensorType::of(&[4], ScalarType::F32), None);
        let mut inner = Builder { func: &mut f, block: rb };
        inner.ret(vec![a0, a1]);
        f.ops[sg].regions.push(Region { blocks: vec![rb] });
        let r0 = f.ops[sg].results[0];
        // Ops whose result types come from their shape rules.
        let mut b = Builder::new(&mut f);
        let sum = b.op(OpKind::Add, vec![r0, w], Attrs::new(), Loc::name("Add")).unwrap();
        let k = b.constant(
            ConstTensor::from_tensor(&Tensor::I64(ArrayD::from_elem(IxDyn(&[1]), 2))),
            Loc::Unknown,
        );
        let top = b
            .op_n(OpKind::TopK, vec![y, k], Attrs::new().with("largest", Attr::Int(0)), Loc::name("TopK"), 2)
            .unwrap();
        let idx = b.func.ops[top].results[1];
        let cast = b
            .op(OpKind::Cast, vec![idx], Attrs::new().with("to", Attr::Type(ScalarType::F16)), Loc::Unknown)
            .unwrap();
        b.ret(vec![sum, y, big, cast]);
        f.result_names = vec!["out".into(), "y copy".into(), "".into(), "indices".into()];
        let m = Module { functions: vec![f] };
        crate::verify::verify_module(&m).unwrap();
        let text = print_module(&m);
        assert!(text.contains("%6 = math.add %3, %1 : tensor<{batch}x4xf32> loc(\"Add\")"), "{text}");
        assert!(
            text.contains("%8, %9 = nn.top_k %0, %7 {largest = 0} : tensor<2xi64>, tensor<2xi64>"),
            "{text}"
        );
        let parsed = parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        crate::verify::verify_module(&parsed).unwrap();
        assert_eq!(print_module(&parsed), text);
    }

    #[test]
    fn types_parse() {
        let e = parse_type("tensor<3x{\"a b\"}x?x{s.1}x!q.uniform<u8:f16:0, {}>>").unwrap_err();
        assert!(e.message().contains("along axis 0 needs 3 scales, found 0"), "{e}");
        let e = parse_type("tensor<3x!q.uniform<u8:f16:1, {}>>").unwrap_err();
        assert!(e.message().contains("quantization axis 1 is out of range for rank 1"), "{e}");
        let e = parse_type("tensor<3x!q.uniform<f32:f16, 1.0, 0>>").unwrap_err();
        assert!(e.message().contains("storage type must be an integer type"), "{e}");
        assert!(parse_type("tensor<0x{\"a b\"}x?x{s.1}x!q.uniform<u8:f16:0, {}>>").is_ok());
        let t = parse_type("tensor<2x{\"a b\"}x?x!q.uniform<u8:f16:0, {0.5:1, 2.0:-1}>>").unwrap();
        assert_eq!(t.to_string(), "tensor<2x{\"a b\"}x?x!q.uniform<u8:f16:0, {0.5:1, 2.0:-1}>>");
        assert_eq!(parse_type("tensor<0x4xf32>").unwrap(), TensorType::of(&[0, 4], ScalarType::F32));
        assert!(parse_type("tensor<4xf33>").unwrap_err().message().contains("unknown element type `f33`"));
        assert!(parse_type("tensor<4 x f32>").is_err());
    }

    #[test]
    fn errors_have_positions() {
        let (l, c, m) = parse_err("func @f() -> () {\n  %0 = math.nope %1 : tensor<f32>\n}");
        assert_eq!((l, c), (2, 8));
        assert!(m.contains("unknown op `math.nope`"), "{m}");

        let (l, c, m) = parse_err("func @f() -> (\"r\": tensor<f32>) {\n  func.return %zz\n}");
        assert_eq!((l, c), (2, 15));
        assert_eq!(m, "undefined value %zz");

        let (l, _, m) = parse_err(
            "func @f(%a: tensor<f32>) -> () {\n  %a = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32>\n  func.return\n}",
        );
        assert_eq!(l, 2);
        assert!(m.contains("value %a is already defined at line 1"), "{m}");

        let (l, _, m) = parse_err("func @f() -> () {\n  %0 = builtin.constant {value = dense<[1.0, 2.0]> : tensor<3xf32>} : tensor<3xf32>\n  func.return\n}");
        assert_eq!(l, 2);
        assert!(m.contains("dense list has 2 elements but tensor<3xf32> has 3"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  %0 = builtin.constant {value = dense<0x0000> : tensor<1xf32>} : tensor<1xf32>\n  func.return\n}");
        assert!(m.contains("dense data has 2 bytes but tensor<1xf32> needs 4"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  %0 = builtin.constant {value = dense<[300]> : tensor<1xi8>} : tensor<1xi8>\n  func.return\n}");
        assert!(m.contains("300 is out of range for i8"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  %0 = builtin.constant {value = dense<[1.5]> : tensor<1xi32>} : tensor<1xi32>\n  func.return\n}");
        assert!(m.contains("expected an integer for i32"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  %0 = builtin.constant {value = dense_elided<16 bytes, fnv:0123456789abcdef> : tensor<4xf32>} : tensor<4xf32>\n  func.return\n}");
        assert!(m.contains("elided constants"), "{m}");

        let (l, _, m) = parse_err("func @f() -> (\"a\": tensor<f32>, \"b\": tensor<f32>) {\n  %0 = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32>\n  func.return %0\n}");
        assert_eq!(l, 1);
        assert!(m.contains("the signature names 2 result(s) but `func.return` returns 1"), "{m}");

        let (_, _, m) = parse_err("func @f() -> (\"a\": tensor<i32>) {\n  %0 = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32>\n  func.return %0\n}");
        assert!(m.contains("is declared tensor<i32> but `func.return` returns tensor<f32>"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  %0, %1 = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32>\n  func.return\n}");
        assert!(m.contains("has 2 result(s) but 1 result type(s)"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  func.return {a = 1, a = 2}\n}");
        assert!(m.contains("attribute `a` is given twice"), "{m}");

        let (l, c, m) = parse_err("func @f() -> () {\n  func.return loc(\"abc\n}");
        assert_eq!((l, c), (2, 19));
        assert!(m.contains("unterminated string"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  func.return\n}\nfunc @f() -> () {\n  func.return\n}");
        assert!(m.contains("function @f is already defined at line 1"), "{m}");

        let (_, _, m) = parse_err("func @f() -> () {\n  func.return\n");
        assert!(m.contains("expected `}` to close the function body, found end of input"), "{m}");
    }

    #[test]
    fn comments_and_forward_references() {
        let m = parse_module(
            "// leading comment
func @f() -> (\"r\": tensor<f32>) { // trailing
  // inside
  %0 = builtin.subgraph %later ({
  ^bb(%i: tensor<f32>):
    builtin.yield %i
  }) : tensor<f32>
  %later = builtin.constant {value = dense<[2.0]> : tensor<f32>} : tensor<f32>
  func.return %0
}
",
        )
        .unwrap();
        // The use precedes the definition: the parser accepts it, the verifier does not.
        assert!(crate::verify::verify_module(&m).is_err());
    }

    /// Truncating or deleting any one character of a valid module gives an error or another
    /// module, never a panic (in the parser, the verifier or the printer).
    #[test]
    fn mutations_never_panic() {
        let text = "func @main(%x: tensor<2x{n}x?xf32>, %\"q\": tensor<2x!q.uniform<i8:f32:0, {0.5:1, 0.25:-2}>>) -> (\"y\": tensor<2x{n}x?xf32>) {
  %0 = builtin.constant {value = dense<[1.5, -inf, 1e-7, 2.0]> : tensor<4xf32>} : tensor<4xf32> loc(\"w\")
  %1 = builtin.constant {value = dense<0x0000803F> : tensor<1xf32>, z = [1, 2], f = [0.5], s = [\"a\\n\"], t = i4} : tensor<1xf32> loc(fused[\"a\", \"b\"])
  %2, %3 = builtin.subgraph %x, %0 {target = \"t\"} ({
  ^bb(%a: tensor<2x{n}x?xf32>, %4: tensor<4xf32>):
    builtin.yield %a, %4 loc(unknown)
  }) : tensor<2x{n}x?xf32>, tensor<4xf32> loc(unknown)
  func.return %2 loc(unknown)
}
";
        let check = |src: &str| {
            if let Ok(m) = parse_module(src) {
                let _ = crate::verify::verify_module(&m);
                let printed = print_module(&m);
                let _ = parse_module(&printed);
            }
        };
        let m = parse_module(text).unwrap();
        assert!(crate::verify::verify_module(&m).is_err(), "undeclared attributes `z`, `f`, ...");
        // The same without the undeclared attributes verifies, so mutations reach every check.
        let valid = text.replace(", z = [1, 2], f = [0.5], s = [\"a\\n\"], t = i4", "");
        crate::verify::verify_module(&parse_module(&valid).unwrap()).unwrap();
        for text in [text, valid.as_str()] {
            let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            for &i in &boundaries {
                check(&text[..i]);
                let next = text[i..].chars().next().map_or(0, char::len_utf8);
                check(&format!("{}{}", &text[..i], &text[i + next..]));
                check(&format!("{}%{}", &text[..i], &text[i..]));
            }
        }
    }
}
