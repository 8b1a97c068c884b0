//! Loads a compiled model (a shared object made with
//! [`crate::toolchain::link_shared_host`]) and runs it on the host.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::Path;
use std::time::Instant;

/// `#[repr(C)]` mirror of `edgec_tensor_desc`.
#[repr(C)]
#[derive(Debug)]
pub struct RawTensorDesc {
    pub name: *const c_char,
    pub dtype: i32,
    pub rank: i32,
    pub dims: *const i32,
    pub bytes: u32,
}

/// `edgec_entry_fn`.
pub type RawEntryFn = unsafe extern "C" fn(
    inputs: *const *const c_void,
    outputs: *const *mut c_void,
    arena: *mut u8,
    ctx: *mut RawCtx,
);

/// `edgec_kernel_hook`.
pub type RawKernelHook = unsafe extern "C" fn(user: *mut c_void, kernel_index: u32, is_exit: c_int);

/// `#[repr(C)]` mirror of `edgec_model`.
#[repr(C)]
#[derive(Debug)]
pub struct RawModel {
    pub name: *const c_char,
    pub num_inputs: u32,
    pub num_outputs: u32,
    pub inputs: *const RawTensorDesc,
    pub outputs: *const RawTensorDesc,
    pub arena_bytes: u32,
    pub arena_align: u32,
    pub num_kernels: u32,
    pub kernel_names: *const *const c_char,
    pub entry: Option<RawEntryFn>,
}

/// `#[repr(C)]` mirror of `edgec_ctx`.
#[repr(C)]
#[derive(Debug)]
pub struct RawCtx {
    pub model: *const RawModel,
    pub arena: *mut u8,
    pub hook: Option<RawKernelHook>,
    pub hook_user: *mut c_void,
    pub initialized: u32,
}

/// One graph input or output of a loaded model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDesc {
    pub name: String,
    /// ONNX TensorProto.DataType code.
    pub dtype: i32,
    pub dims: Vec<i32>,
    /// Packed size in bytes.
    pub bytes: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot load {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("symbol {symbol} not found in {path}: {reason}")]
    Symbol { symbol: String, path: String, reason: String },
    #[error("invalid model descriptor {symbol}: {reason}")]
    Descriptor { symbol: String, reason: String },
    #[error("expected {expected} {what}, got {got}")]
    Count { what: &'static str, expected: usize, got: usize },
    #[error("{what} {index} ('{name}') must be {expected} bytes, got {got}")]
    Size { what: &'static str, index: usize, name: String, expected: usize, got: usize },
}

/// A 64-byte (or more) aligned byte buffer carved from a `Vec<u8>`.
#[derive(Debug)]
struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, align: usize) -> AlignedBuf {
        let storage = vec![0u8; len + align];
        let offset = storage.as_ptr().align_offset(align).min(align);
        AlignedBuf { storage, offset, len }
    }
    fn slice(&mut self, start: usize, len: usize) -> &mut [u8] {
        &mut self.storage[self.offset + start..self.offset + start + len]
    }
    fn ptr(&mut self, start: usize) -> *mut u8 {
        debug_assert!(start <= self.len);
        // SAFETY: start <= len and storage holds offset + len bytes.
        unsafe { self.storage.as_mut_ptr().add(self.offset + start) }
    }
}

/// A compiled model loaded from a shared object, with the arena and io staging buffers it owns.
#[derive(Debug)]
pub struct HostModel {
    name: String,
    inputs: Vec<TensorDesc>,
    outputs: Vec<TensorDesc>,
    kernel_names: Vec<String>,
    entry: RawEntryFn,
    arena: AlignedBuf,
    arena_bytes: usize,
    io: AlignedBuf,
    io_offsets: Vec<usize>,
    ctx: Box<RawCtx>,
    // Last: the library must outlive every pointer above.
    _lib: libloading::Library,
}

const IO_ALIGN: usize = 64;

unsafe fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

unsafe fn descs(p: *const RawTensorDesc, n: u32) -> Option<Vec<TensorDesc>> {
    if n == 0 {
        return Some(Vec::new());
    }
    if p.is_null() {
        return None;
    }
    let raw = std::slice::from_raw_parts(p, n as usize);
    Some(
        raw.iter()
            .map(|d| TensorDesc {
                name: c_str(d.name),
                dtype: d.dtype,
                dims: if d.rank > 0 && !d.dims.is_null() {
                    std::slice::from_raw_parts(d.dims, d.rank as usize).to_vec()
                } else {
                    Vec::new()
                },
                bytes: d.bytes,
            })
            .collect(),
    )
}

impl HostModel {
    /// Loads `path` and reads the `const edgec_model` named `symbol` (e.g. `edgec_model_model`).
    ///
    /// # Safety
    /// Loading runs the shared object's initializers, and the descriptor and entry function are
    /// trusted to follow the edgec ABI: load only objects built by edgec (or equivalent).
    pub unsafe fn load(path: &Path, symbol: &str) -> Result<HostModel, HostError> {
        let shown = path.display().to_string();
        let lib = libloading::Library::new(path)
            .map_err(|e| HostError::Load { path: shown.clone(), reason: e.to_string() })?;
        let model: *const RawModel = {
            let sym = lib.get::<*const RawModel>(symbol.as_bytes()).map_err(|e| HostError::Symbol {
                symbol: symbol.into(),
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            // For a data symbol, the symbol's value is the descriptor's address.
            *sym
        };
        let bad = |reason: &str| HostError::Descriptor { symbol: symbol.into(), reason: reason.into() };
        if model.is_null() {
            return Err(bad("null address"));
        }
        let m = &*model;
        let entry = m.entry.ok_or_else(|| bad("null entry function"))?;
        let inputs = descs(m.inputs, m.num_inputs).ok_or_else(|| bad("null inputs array"))?;
        let outputs = descs(m.outputs, m.num_outputs).ok_or_else(|| bad("null outputs array"))?;
        let kernel_names = if m.num_kernels > 0 && !m.kernel_names.is_null() {
            std::slice::from_raw_parts(m.kernel_names, m.num_kernels as usize)
                .iter()
                .map(|p| c_str(*p))
                .collect()
        } else {
            Vec::new()
        };
        let align = (m.arena_align as usize).max(IO_ALIGN);
        if !align.is_power_of_two() {
            return Err(bad("arena alignment is not a power of two"));
        }
        let arena_bytes = m.arena_bytes as usize;
        let mut arena = AlignedBuf::new(arena_bytes.max(1), align);
        let mut io_offsets = Vec::new();
        let mut io_len = 0usize;
        for d in inputs.iter().chain(&outputs) {
            io_offsets.push(io_len);
            io_len += (d.bytes as usize).div_ceil(IO_ALIGN) * IO_ALIGN;
        }
        let io = AlignedBuf::new(io_len.max(1), IO_ALIGN);
        let ctx = Box::new(RawCtx {
            model,
            arena: arena.ptr(0),
            hook: None,
            hook_user: std::ptr::null_mut(),
            initialized: 1,
        });
        Ok(HostModel {
            name: c_str(m.name),
            inputs,
            outputs,
            kernel_names,
            entry,
            arena,
            arena_bytes,
            io,
            io_offsets,
            ctx,
            _lib: lib,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn inputs(&self) -> &[TensorDesc] {
        &self.inputs
    }
    pub fn outputs(&self) -> &[TensorDesc] {
        &self.outputs
    }
    pub fn kernel_names(&self) -> &[String] {
        &self.kernel_names
    }
    /// The arena size the model asks for (the owned arena is at least this large).
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// Runs the model once. Each input and output slice must have exactly its descriptor's byte
    /// size; data is staged through 64-byte aligned buffers, so the slices need no alignment.
    pub fn run(&mut self, inputs: &[&[u8]], outputs: &mut [&mut [u8]]) -> Result<(), HostError> {
        self.run_hooked(inputs, outputs, None)
    }

    /// [`HostModel::run`] that adds each kernel call's nanoseconds to `per_call[i]` (as the
    /// model reports calls to the per-kernel hook, which it does only when compiled with hooks)
    /// and returns the nanoseconds of the whole entry call (staging excluded). The clock is the
    /// monotonic clock Rust's `Instant` reads, once on entering and once on leaving a kernel.
    pub fn run_profiled(
        &mut self,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        per_call: &mut [f64],
    ) -> Result<f64, HostError> {
        let mut state = ProfileState { entered: Instant::now(), per_call, whole_ns: 0.0 };
        self.run_hooked(inputs, outputs, Some(&mut state))?;
        Ok(state.whole_ns)
    }

    fn run_hooked(
        &mut self,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        profile: Option<&mut ProfileState<'_>>,
    ) -> Result<(), HostError> {
        if inputs.len() != self.inputs.len() {
            return Err(HostError::Count { what: "inputs", expected: self.inputs.len(), got: inputs.len() });
        }
        if outputs.len() != self.outputs.len() {
            return Err(HostError::Count {
                what: "outputs",
                expected: self.outputs.len(),
                got: outputs.len(),
            });
        }
        let check = |what, index: usize, d: &TensorDesc, got: usize| {
            if got == d.bytes as usize {
                Ok(())
            } else {
                Err(HostError::Size { what, index, name: d.name.clone(), expected: d.bytes as usize, got })
            }
        };
        for (i, (d, data)) in self.inputs.iter().zip(inputs).enumerate() {
            check("input", i, d, data.len())?;
        }
        for (i, (d, data)) in self.outputs.iter().zip(outputs.iter()).enumerate() {
            check("output", i, d, data.len())?;
        }
        let n_in = self.inputs.len();
        for (i, data) in inputs.iter().enumerate() {
            let off = self.io_offsets[i];
            self.io.slice(off, data.len()).copy_from_slice(data);
        }
        let in_ptrs: Vec<*const c_void> =
            (0..n_in).map(|i| self.io.ptr(self.io_offsets[i]) as *const c_void).collect();
        let out_ptrs: Vec<*mut c_void> =
            (0..self.outputs.len()).map(|i| self.io.ptr(self.io_offsets[n_in + i]) as *mut c_void).collect();
        self.ctx.arena = self.arena.ptr(0);
        let start = Instant::now();
        let state = match profile {
            Some(state) => {
                self.ctx.hook = Some(profile_hook);
                self.ctx.hook_user = &mut *state as *mut ProfileState<'_> as *mut c_void;
                Some(state)
            }
            None => None,
        };
        // SAFETY: the descriptor promised this entry reads the inputs and writes the outputs of the
        // sizes checked above and uses at most arena_bytes of the arena, all of which we own. The
        // hook's user pointer is `state`, alive for the whole call and cleared right after it.
        unsafe {
            (self.entry)(in_ptrs.as_ptr(), out_ptrs.as_ptr(), self.ctx.arena, &mut *self.ctx);
        }
        let whole = start.elapsed();
        self.ctx.hook = None;
        self.ctx.hook_user = std::ptr::null_mut();
        if let Some(state) = state {
            state.whole_ns = whole.as_nanos() as f64;
        }
        for (i, data) in outputs.iter_mut().enumerate() {
            let off = self.io_offsets[n_in + i];
            let len = data.len();
            data.copy_from_slice(self.io.slice(off, len));
        }
        Ok(())
    }
}

/// What [`profile_hook`] accumulates during one [`HostModel::run_profiled`].
struct ProfileState<'a> {
    entered: Instant,
    per_call: &'a mut [f64],
    whole_ns: f64,
}

/// The `edgec_kernel_hook` of profiled host runs: the time between a kernel's enter and exit
/// calls goes to its call index (indices beyond the slice are ignored, never written).
unsafe extern "C" fn profile_hook(user: *mut c_void, kernel_index: u32, is_exit: c_int) {
    // SAFETY: `run_hooked` sets `user` to a live `ProfileState` for the duration of the entry call
    // and the model calls the hook only from inside it, on the calling thread.
    let state = unsafe { &mut *(user as *mut ProfileState<'_>) };
    if is_exit == 0 {
        state.entered = Instant::now();
    } else if let Some(slot) = state.per_call.get_mut(kernel_index as usize) {
        *slot += state.entered.elapsed().as_nanos() as f64;
    }
}
