//! Compiling a model from a Cargo build script (`build.rs`), so that a Rust crate links it like
//! any other native library and calls it through a typed, `no_std` wrapper:
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), edgec::build::Error> {
//!     edgec::build::Model::new("model.onnx").name("vae").target_from_cargo().compile()?;
//!     Ok(())
//! }
//! ```
//!
//! and in the crate: `include!(concat!(env!("OUT_DIR"), "/vae.rs"));`, which declares the module
//! `vae` (see [`rust_wrapper`]). [`Model::compile`] maps Cargo's `TARGET` to an edgec target
//! ([`edgec_target_for`]), compiles with [`Session`] into `OUT_DIR/edgec/<name>/` (what
//! `edgec compile` writes), archives `model.o` and the runtime object into
//! `OUT_DIR/edgec/<name>/libedgec_<name>.a` with the target's archiver (through the `cc`
//! crate, which also prints the `cargo:rustc-link-lib`/`rustc-link-search` lines), prints
//! `cargo:rerun-if-changed` for the model and the calibration file, and writes the wrapper
//! `OUT_DIR/<name>.rs`.

use crate::session::{Calibration, CompileOptions, Quantize, Session};
use crate::target::Target;
use edgec_backends::lower::IoDesc;
use edgec_ir::ScalarType;
use edgec_passes::quant::Int8Options;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A failed build-script compile. Its `Debug` form is the one-line message, so that a build
/// script's `main` returning it prints `Error: <message>` rather than a data structure.
pub struct Error(pub crate::Error);

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "edgec: {}", self.0)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Error {
        Error(e)
    }
}

fn usage(message: String) -> Error {
    Error(crate::Error::Usage(message))
}

/// The Cargo target triples a model can be compiled for, and their edgec targets.
pub const CARGO_TARGETS: &[(&str, &str)] = &[
    ("x86_64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"),
    ("x86_64-unknown-linux-musl", "x86_64-unknown-linux-gnu"),
    ("aarch64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"),
    ("aarch64-unknown-linux-musl", "aarch64-unknown-linux-gnu"),
    ("riscv64gc-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"),
    ("riscv64gc-unknown-linux-musl", "riscv64gc-unknown-linux-gnu"),
    // The Cortex-M4F has the same triple; `Model::target("cortex-m4")` chooses it.
    ("thumbv7em-none-eabihf", "cortex-m7"),
];

/// The edgec target for a Cargo target triple. The Linux triples keep the architecture's
/// baseline CPU, as Cargo does without `-C target-cpu` (`Model::target("host")` tunes for
/// this machine); the object code does not depend on the C library.
pub fn edgec_target_for(cargo_triple: &str) -> Result<&'static str, Error> {
    CARGO_TARGETS.iter().find(|(t, _)| *t == cargo_triple).map(|(_, e)| *e).ok_or_else(|| {
        let known: Vec<&str> = CARGO_TARGETS.iter().map(|(t, _)| *t).collect();
        usage(format!(
            "Cargo target `{cargo_triple}` has no edgec target (supported: {}); choose one with Model::target",
            known.join(", ")
        ))
    })
}

/// A model to compile from a build script; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Model {
    path: PathBuf,
    name: String,
    /// The edgec target, or why it could not be chosen (reported by `compile`).
    target: Result<String, String>,
    /// The Cargo triple the archive is made for (`TARGET`, when known).
    cargo_triple: Option<String>,
    quantize: Quantize,
    dims: BTreeMap<String, u64>,
    out_dir: Option<PathBuf>,
}

/// What [`Model::compile`] made.
#[derive(Clone, Debug)]
pub struct Built {
    /// `OUT_DIR/edgec/<name>`: what `edgec compile` writes, and the archive.
    pub dir: PathBuf,
    /// The static library, `lib<library>.a` in `dir`.
    pub library: String,
    /// The Rust wrapper, `OUT_DIR/<name>.rs`.
    pub wrapper: PathBuf,
    /// report.json's value.
    pub report: serde_json::Value,
}

impl Model {
    /// A model file (`.onnx`, or IR text `.eir`), relative to the build script's crate. The name
    /// defaults to `model`, the target to `host`.
    pub fn new(path: impl AsRef<Path>) -> Model {
        Model {
            path: path.as_ref().to_path_buf(),
            name: "model".into(),
            target: Ok("host".into()),
            cargo_triple: None,
            quantize: Quantize::None,
            dims: BTreeMap::new(),
            out_dir: None,
        }
    }

    /// The name of the wrapper module and file (`<name>.rs`), the C symbol prefix and the
    /// library (`edgec_<name>`); a C identifier.
    pub fn name(mut self, name: &str) -> Model {
        self.name = name.to_string();
        self
    }

    /// An edgec target by name (`host`, `cortex-m4`, a triple; `edgec targets` lists them).
    pub fn target(mut self, target: &str) -> Model {
        self.target = Ok(target.to_string());
        self
    }

    /// The edgec target for the crate being built: Cargo's `TARGET` through [`edgec_target_for`].
    pub fn target_from_cargo(self) -> Model {
        match std::env::var("TARGET") {
            Ok(triple) => self.target_for_cargo_triple(&triple),
            Err(_) => Model {
                target: Err("TARGET is not set: target_from_cargo works in a Cargo build script".into()),
                ..self
            },
        }
    }

    /// The edgec target for a given Cargo target triple (what [`Model::target_from_cargo`]
    /// does with `TARGET`).
    pub fn target_for_cargo_triple(mut self, triple: &str) -> Model {
        self.target = edgec_target_for(triple).map(str::to_string).map_err(|e| e.to_string());
        self.cargo_triple = Some(triple.to_string());
        self
    }

    /// Quantization, as [`Session`] takes it.
    pub fn quantize(mut self, quantize: Quantize) -> Model {
        self.quantize = quantize;
        self
    }

    /// Post-training int8 quantization calibrated on `samples` (an `.npz` with arrays named
    /// after the graph inputs), with the default observer and SQNR threshold.
    pub fn quantize_int8(self, samples: impl AsRef<Path>) -> Model {
        let calibration = Calibration::File(samples.as_ref().to_path_buf());
        self.quantize(Quantize::Int8 { calibration, options: Int8Options::default() })
    }

    /// Binds a symbolic dim (`--dim NAME=VALUE`).
    pub fn dim(mut self, name: &str, value: u64) -> Model {
        self.dims.insert(name.to_string(), value);
        self
    }

    /// Where to write instead of Cargo's `OUT_DIR`; then no `cargo:` lines are printed (for
    /// tools and tests outside a build script).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Model {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Compiles the model, archives it with the runtime, prints Cargo's link and rerun
    /// directives and writes the Rust wrapper; see the [module docs](self).
    pub fn compile(self) -> Result<Built, Error> {
        // The name is a C prefix and the wrapper's module name.
        if !is_c_identifier(&self.name) || RUST_KEYWORDS.contains(&self.name.as_str()) {
            return Err(usage(format!(
                "model name {:?}: expected a C identifier that is not a Rust keyword",
                self.name
            )));
        }
        // Printed first, so that a model that fails to compile is retried once it is fixed.
        if self.out_dir.is_none() {
            println!("cargo:rerun-if-changed={}", self.path.display());
            if let Quantize::Int8 { calibration: Calibration::File(p), .. } = &self.quantize {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
        let target = Target::parse(self.target.as_deref().map_err(|e| usage(e.clone()))?)
            .map_err(crate::Error::from)?;
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or_else(|| {
                usage(
                    "OUT_DIR is not set: call compile from a Cargo build script or set Model::out_dir".into(),
                )
            })?,
        };
        if !self.path.is_file() {
            return Err(usage(format!("{}: no such model file", self.path.display())));
        }
        let options = CompileOptions {
            target: target.clone(),
            dims: self.dims.clone(),
            quantize: self.quantize.clone(),
            ..CompileOptions::default()
        };
        let session = Session::import(&self.path, &options)?;
        let compiled = session.compile(&target, &self.name, false)?;
        if compiled.file("model.o").is_none() {
            return Err(usage(format!("target `{target}` does not compile to an object file to link")));
        }
        let dir = out_dir.join("edgec").join(&self.name);
        let report = session.write_artifacts(&compiled, &dir)?;
        let library = format!("edgec_{}", self.name);
        self.archive(&target, &dir, &library)?;
        let arena = |key: &str| report.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let layout = Layout { arena_bytes: arena("arena_bytes"), arena_align: arena("arena_alignment") };
        let wrapper = out_dir.join(format!("{}.rs", self.name));
        let source = self.path.display().to_string();
        let text = rust_wrapper(
            &self.name,
            &source,
            &target.to_string(),
            &compiled.inputs,
            &compiled.outputs,
            layout,
        );
        crate::io::write_atomically(&wrapper, text.as_bytes()).map_err(crate::Error::from)?;
        Ok(Built { dir, library, wrapper, report })
    }

    /// `lib<library>.a` from the model and runtime objects, with the target's archiver; `cc`
    /// prints the link directives when Cargo runs the build script.
    fn archive(&self, target: &Target, dir: &Path, library: &str) -> Result<(), Error> {
        let triple = self
            .cargo_triple
            .clone()
            .or_else(|| std::env::var("TARGET").ok())
            .or_else(|| target.triple.as_ref().map(|t| t.to_string()))
            .unwrap_or_default();
        let host = std::env::var("HOST").unwrap_or_else(|_| triple.clone());
        cc::Build::new()
            .object(dir.join("model.o"))
            .object(dir.join("edgec_runtime.o"))
            .out_dir(dir)
            .target(&triple)
            .host(&host)
            .opt_level(0)
            .cargo_metadata(self.out_dir.is_none())
            .try_compile(library)
            .map_err(|e| crate::Error::Internal(format!("archiving {library}: {e}")))?;
        Ok(())
    }
}

fn is_c_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The arena the generated code needs (report.json's `arena_bytes`, `arena_alignment`).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub arena_bytes: u64,
    pub arena_align: u64,
}

/// The Rust element type of a tensor, and its zero. Half floats travel as their bits; 4-bit
/// types as packed bytes ([`rust_array`]); booleans as bytes (any value is a valid `u8`).
fn rust_scalar(ty: ScalarType) -> (&'static str, &'static str) {
    match ty {
        ScalarType::F32 => ("f32", "0.0"),
        ScalarType::F64 => ("f64", "0.0"),
        ScalarType::F16 | ScalarType::BF16 | ScalarType::U16 => ("u16", "0"),
        ScalarType::I64 => ("i64", "0"),
        ScalarType::I32 => ("i32", "0"),
        ScalarType::I16 => ("i16", "0"),
        ScalarType::I8 => ("i8", "0"),
        ScalarType::U64 => ("u64", "0"),
        ScalarType::U32 => ("u32", "0"),
        ScalarType::U8 | ScalarType::Bool | ScalarType::I4 | ScalarType::U4 => ("u8", "0"),
    }
}

/// A tensor's Rust type and zero value: nested arrays in row-major order (the C layout), e.g.
/// `[[f32; 16]; 4]` for f32 [4, 16]; 4-bit types as a flat byte array of the packed size.
fn rust_array(d: &IoDesc) -> (String, String) {
    let (scalar, zero) = rust_scalar(d.ty);
    if matches!(d.ty, ScalarType::I4 | ScalarType::U4) {
        return (format!("[u8; {}]", d.bytes()), format!("[0; {}]", d.bytes()));
    }
    d.dims.iter().rev().fold((scalar.to_string(), zero.to_string()), |(ty, zero), n| {
        (format!("[{ty}; {n}]"), format!("[{zero}; {n}]"))
    })
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "unsafe", "use", "where",
    "while", "yield",
];

/// Field names for tensors: the ONNX names in snake case, other characters as `_`, a leading
/// digit or a keyword marked, duplicates numbered.
fn field_names(list: &[IoDesc], kind: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let mut s: String = d
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        if s.is_empty() || s.chars().all(|c| c == '_') {
            s = format!("{kind}_{i}");
        }
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            s = format!("{kind}_{s}");
        }
        if RUST_KEYWORDS.contains(&s.as_str()) {
            s.push('_');
        }
        let base = s.clone();
        let mut n = 1;
        while out.contains(&s) {
            s = format!("{base}_{n}");
            n += 1;
        }
        out.push(s);
    }
    out
}

/// The Rust wrapper for a compiled model: a module `<name>` with `Inputs`/`Outputs` structs
/// (one array field per tensor), `Arena` (aligned, `ARENA_BYTES` long), `Model` over the C ABI
/// of `runtime/c/edgec_runtime.h`, and `take()`, the model on a static arena. Only `core` is
/// used: it builds for `no_std` crates and never allocates.
pub fn rust_wrapper(
    name: &str,
    source: &str,
    target: &str,
    inputs: &[IoDesc],
    outputs: &[IoDesc],
    layout: Layout,
) -> String {
    // The arena's Rust alignment must be a literal; the runtime checks it at init as well.
    let align = layout.arena_align.max(1).next_power_of_two();
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "// Generated by edgec::build from `{source}` for target `{target}`. Do not edit.");
    let _ = writeln!(w, "/// The model `{source}` compiled by edgec for `{target}` (C symbols `{name}_*`).");
    let _ = writeln!(w, "#[allow(dead_code, clippy::all)]");
    let _ = writeln!(w, "pub mod {name} {{");
    let _ = writeln!(w, "    use core::ffi::{{c_int, c_void}};\n");
    let _ = writeln!(w, "    /// Bytes of the one arena the model needs.");
    let _ = writeln!(w, "    pub const ARENA_BYTES: usize = {};", layout.arena_bytes);
    let _ = writeln!(w, "    /// Alignment the arena needs.");
    let _ = writeln!(w, "    pub const ARENA_ALIGN: usize = {};\n", layout.arena_align.max(1));
    for (kind, list, title) in [("input", inputs, "Inputs"), ("output", outputs, "Outputs")] {
        let names = field_names(list, kind);
        let _ = writeln!(w, "    /// The model's {kind}s, in the graph's order.");
        let _ = writeln!(w, "    #[derive(Clone, Copy, Debug, PartialEq)]");
        let _ = writeln!(w, "    pub struct {title} {{");
        for (d, field) in list.iter().zip(&names) {
            let (ty, _) = rust_array(d);
            let _ = writeln!(w, "        /// `{}`: {} {:?}", d.name.replace('`', "'"), d.ty.name(), d.dims);
            let _ = writeln!(w, "        pub {field}: {ty},");
        }
        let _ = writeln!(w, "    }}\n");
        let _ = writeln!(w, "    impl {title} {{");
        let _ = writeln!(w, "        /// Every element zero.");
        let _ = writeln!(w, "        pub const fn zeroed() -> {title} {{");
        let _ = writeln!(w, "            {title} {{");
        for (d, field) in list.iter().zip(&names) {
            let _ = writeln!(w, "                {field}: {},", rust_array(d).1);
        }
        let _ = writeln!(w, "            }}\n        }}\n");
        let mutable = if kind == "input" { "const" } else { "mut" };
        let _ = writeln!(
            w,
            "        fn pointers(&{}self) -> [*{mutable} c_void; {}] {{",
            if kind == "input" { "" } else { "mut " },
            list.len()
        );
        let suffix = if kind == "input" { "" } else { "_mut" };
        let pointers: Vec<String> =
            names.iter().map(|field| format!("core::ptr::addr_of{suffix}!(self.{field}).cast()")).collect();
        let _ = writeln!(w, "            [{}]\n        }}\n    }}\n", pointers.join(", "));
    }
    let _ = write!(
        w,
        r#"    /// The arena: `ARENA_BYTES` bytes, aligned as the model needs.
    #[repr(C, align({align}))]
    pub struct Arena([u8; ARENA_BYTES]);

    impl Arena {{
        pub const fn new() -> Arena {{
            Arena([0; ARENA_BYTES])
        }}
    }}

    /// Why the runtime refused (`edgec_status`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Error {{
        Null,
        ArenaSize,
        ArenaAlign,
        NotInitialized,
        Other(i32),
    }}

    impl core::fmt::Display for Error {{
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{
            match self {{
                Error::Null => f.write_str("null inputs or outputs"),
                Error::ArenaSize => f.write_str("arena too small"),
                Error::ArenaAlign => f.write_str("arena misaligned"),
                Error::NotInitialized => f.write_str("model not initialized"),
                Error::Other(code) => write!(f, "edgec status {{code}}"),
            }}
        }}
    }}

    fn status(code: c_int) -> Result<(), Error> {{
        match code {{
            0 => Ok(()),
            1 => Err(Error::Null),
            2 => Err(Error::ArenaSize),
            3 => Err(Error::ArenaAlign),
            4 => Err(Error::NotInitialized),
            other => Err(Error::Other(other)),
        }}
    }}

    /// `edgec_model`, used only by address.
    #[repr(C)]
    struct Descriptor {{
        _opaque: [u8; 0],
    }}

    /// `edgec_ctx`, field for field.
    #[repr(C)]
    struct Ctx {{
        model: *const Descriptor,
        arena: *mut u8,
        hook: Option<unsafe extern "C" fn(*mut c_void, u32, c_int)>,
        hook_user: *mut c_void,
        initialized: u32,
    }}

    unsafe extern "C" {{
        #[link_name = "{name}_model"]
        static MODEL: Descriptor;
        fn edgec_init(ctx: *mut Ctx, model: *const Descriptor, arena: *mut c_void, arena_bytes: usize) -> c_int;
        fn edgec_run(ctx: *mut Ctx, inputs: *const *const c_void, outputs: *const *mut c_void) -> c_int;
    }}

    /// The compiled model, bound to an arena it borrows.
    pub struct Model<'a> {{
        ctx: Ctx,
        _arena: core::marker::PhantomData<&'a mut Arena>,
    }}

    impl<'a> Model<'a> {{
        pub fn new(arena: &'a mut Arena) -> Result<Model<'a>, Error> {{
            let mut ctx = Ctx {{
                model: core::ptr::null(),
                arena: core::ptr::null_mut(),
                hook: None,
                hook_user: core::ptr::null_mut(),
                initialized: 0,
            }};
            // SAFETY: the descriptor is the model's own, and the arena is ARENA_BYTES long,
            // exclusively borrowed for 'a and aligned by its type.
            status(unsafe {{
                edgec_init(&mut ctx, core::ptr::addr_of!(MODEL), arena.0.as_mut_ptr().cast(), ARENA_BYTES)
            }})?;
            Ok(Model {{ ctx, _arena: core::marker::PhantomData }})
        }}

        /// Runs the model, writing every output.
        pub fn run_into(&mut self, inputs: &Inputs, outputs: &mut Outputs) -> Result<(), Error> {{
            let ins = inputs.pointers();
            let outs = outputs.pointers();
            // SAFETY: each pointer addresses an array of exactly the size and element type the
            // compiled code reads or writes; the context was initialized by `new`.
            status(unsafe {{ edgec_run(&mut self.ctx, ins.as_ptr(), outs.as_ptr()) }})
        }}

        /// Runs the model and returns its outputs (built on the stack).
        pub fn run(&mut self, inputs: &Inputs) -> Result<Outputs, Error> {{
            let mut outputs = Outputs::zeroed();
            self.run_into(inputs, &mut outputs)?;
            Ok(outputs)
        }}
    }}

    struct StaticArena(core::cell::UnsafeCell<Arena>);
    // SAFETY: `take` hands out the one reference at most once.
    unsafe impl Sync for StaticArena {{}}
    static ARENA: StaticArena = StaticArena(core::cell::UnsafeCell::new(Arena::new()));
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    /// The model on a static arena of `ARENA_BYTES` (no heap): the first call gets it, later
    /// calls `None`.
    pub fn take() -> Option<Model<'static>> {{
        if TAKEN.swap(true, core::sync::atomic::Ordering::AcqRel) {{
            return None;
        }}
        // SAFETY: TAKEN makes this the only reference to ARENA, ever.
        Model::new(unsafe {{ &mut *ARENA.0.get() }}).ok()
    }}
}}
"#
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(name: &str, ty: ScalarType, dims: &[usize]) -> IoDesc {
        IoDesc { name: name.into(), ty, dims: dims.to_vec() }
    }

    #[test]
    fn cargo_triples_map_to_edgec_targets() {
        assert_eq!(edgec_target_for("thumbv7em-none-eabihf").unwrap(), "cortex-m7");
        assert_eq!(edgec_target_for("aarch64-unknown-linux-gnu").unwrap(), "aarch64-unknown-linux-gnu");
        for (cargo, edgec) in CARGO_TARGETS {
            assert!(Target::parse(edgec).is_ok(), "{cargo} -> {edgec} does not parse");
        }
        let e = edgec_target_for("wasm32-unknown-unknown").unwrap_err();
        assert!(e.0.is_user_error());
        let text = format!("{e:?}");
        assert!(
            text.starts_with("edgec: Cargo target `wasm32-unknown-unknown` has no edgec target"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn bad_input_is_a_one_line_user_error() {
        let dir = std::env::temp_dir().join(format!("edgec-build-{}", std::process::id()));
        let model = Model::new("/nonexistent/m.onnx").out_dir(&dir);
        let e = model.clone().target_for_cargo_triple("sparc-sun-solaris").compile().unwrap_err();
        assert!(format!("{e}").contains("sparc-sun-solaris"), "{e}");
        let e = model.clone().target("host").compile().unwrap_err();
        assert_eq!(e.to_string(), "/nonexistent/m.onnx: no such model file");
        assert!(e.0.is_user_error());
        for name in ["9lives", "type", "a-b"] {
            let e = model.clone().name(name).compile().unwrap_err();
            assert!(e.to_string().contains("expected a C identifier"), "{e}");
        }
        let e = model.target("no-such-target").compile().unwrap_err();
        assert!(e.0.is_user_error(), "{e}");
    }

    #[test]
    fn wrapper_has_typed_fields_and_an_aligned_arena() {
        let inputs = [
            desc("z", ScalarType::F32, &[4, 16]),
            desc("7", ScalarType::I64, &[]),
            desc("type", ScalarType::U4, &[3]),
        ];
        let outputs = [desc("x.out", ScalarType::F16, &[2, 3, 1]), desc("X-out", ScalarType::Bool, &[5])];
        let text = rust_wrapper(
            "vae",
            "m.onnx",
            "host",
            &inputs,
            &outputs,
            Layout { arena_bytes: 100, arena_align: 16 },
        );
        for want in [
            "pub mod vae {",
            "pub z: [[f32; 16]; 4],",
            "pub input_7: i64,",
            "pub type_: [u8; 2],",
            "pub x_out: [[[u16; 1]; 3]; 2],",
            "pub x_out_1: [u8; 5],",
            "z: [[0.0; 16]; 4],",
            "pub const ARENA_BYTES: usize = 100;",
            "#[repr(C, align(16))]",
            "#[link_name = \"vae_model\"]",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains("std::"), "the wrapper must build without std");
    }
}
