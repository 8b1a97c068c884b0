//! Builds the runtime, links the run harness and runs it, per target.
//!
//! Compiling uses `clang-22 --target=<triple>`; linking uses the driver that brings the target's crt
//! files and libc: `cc` (host), `aarch64-linux-gnu-gcc`, `riscv64-linux-gnu-gcc`, and
//! `arm-none-eabi-gcc --specs=rdimon.specs` (newlib with semihosting) for Cortex-M. Running uses the
//! host, `qemu-aarch64-static`/`qemu-riscv64-static` (qemu-user) or `qemu-system-arm` with the
//! mps2-an500 (Cortex-M7) or mps2-an386 (Cortex-M4) board, always under a timeout.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sources;

/// How long [`run_harness`] lets a program run before it is killed.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The C compiler used for every target.
pub const CLANG: &str = "clang-22";

/// Warnings the runtime must compile cleanly with on every target.
pub const STRICT_CFLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// The targets the runtime is built, linked and run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    X86_64Linux,
    Aarch64Linux,
    Riscv64Linux,
    /// thumbv7em-none-eabihf, cortex-m7, fpv5-d16 (QEMU board mps2-an500).
    CortexM7,
    /// thumbv7em-none-eabihf, cortex-m4, fpv4-sp-d16 (QEMU board mps2-an386).
    CortexM4,
}

impl TargetKind {
    pub const ALL: [TargetKind; 5] = [
        TargetKind::X86_64Linux,
        TargetKind::Aarch64Linux,
        TargetKind::Riscv64Linux,
        TargetKind::CortexM7,
        TargetKind::CortexM4,
    ];

    /// Parses a triple or alias: `host`, `x86_64-unknown-linux-gnu`, `aarch64-unknown-linux-gnu`,
    /// `riscv64gc-unknown-linux-gnu`, `cortex-m7`, `thumbv7em-none-eabihf`, `cortex-m4`, ...
    pub fn from_name(name: &str) -> Option<TargetKind> {
        Some(match name {
            "host" | "x86_64" | "x86_64-linux" | "x86_64-linux-gnu" | "x86_64-unknown-linux-gnu" => {
                TargetKind::X86_64Linux
            }
            "aarch64" | "aarch64-linux" | "aarch64-linux-gnu" | "aarch64-unknown-linux-gnu" => {
                TargetKind::Aarch64Linux
            }
            "riscv64"
            | "riscv64-linux"
            | "riscv64-linux-gnu"
            | "riscv64gc-linux-gnu"
            | "riscv64gc-unknown-linux-gnu" => TargetKind::Riscv64Linux,
            "cortex-m7" | "thumbv7em-none-eabihf" => TargetKind::CortexM7,
            "cortex-m4" => TargetKind::CortexM4,
            _ => return None,
        })
    }

    /// A short stable name (used for file names).
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::X86_64Linux => "x86_64-linux",
            TargetKind::Aarch64Linux => "aarch64-linux",
            TargetKind::Riscv64Linux => "riscv64-linux",
            TargetKind::CortexM7 => "cortex-m7",
            TargetKind::CortexM4 => "cortex-m4",
        }
    }

    /// The clang `--target=` triple.
    pub fn clang_triple(self) -> &'static str {
        match self {
            TargetKind::X86_64Linux => "x86_64-linux-gnu",
            TargetKind::Aarch64Linux => "aarch64-linux-gnu",
            TargetKind::Riscv64Linux => "riscv64-linux-gnu",
            TargetKind::CortexM7 | TargetKind::CortexM4 => "thumbv7em-none-eabihf",
        }
    }

    /// CPU/ABI flags shared by clang and the target's gcc (besides `--target`).
    pub fn arch_flags(self) -> &'static [&'static str] {
        match self {
            TargetKind::X86_64Linux | TargetKind::Aarch64Linux => &[],
            TargetKind::Riscv64Linux => &["-march=rv64gc", "-mabi=lp64d"],
            TargetKind::CortexM7 => &["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
            TargetKind::CortexM4 => &["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
        }
    }

    /// No OS and no libc of its own (newlib is linked for the harness only).
    pub fn is_bare_metal(self) -> bool {
        matches!(self, TargetKind::CortexM7 | TargetKind::CortexM4)
    }

    /// The driver that links executables for this target.
    pub fn linker(self) -> &'static str {
        match self {
            TargetKind::X86_64Linux => "cc",
            TargetKind::Aarch64Linux => "aarch64-linux-gnu-gcc",
            TargetKind::Riscv64Linux => "riscv64-linux-gnu-gcc",
            TargetKind::CortexM7 | TargetKind::CortexM4 => "arm-none-eabi-gcc",
        }
    }

    /// The QEMU board for bare-metal targets.
    pub fn qemu_machine(self) -> Option<&'static str> {
        match self {
            TargetKind::CortexM7 => Some("mps2-an500"),
            TargetKind::CortexM4 => Some("mps2-an386"),
            _ => None,
        }
    }

    /// The linker script for bare-metal targets.
    pub fn linker_script(self) -> Option<String> {
        match self {
            TargetKind::CortexM7 => Some(sources::MPS2_AN500_LD.to_string()),
            TargetKind::CortexM4 => Some(sources::mps2_an386_ld()),
            _ => None,
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong, in one line naming the failing tool.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("{tool} not found (install the Debian package {package})")]
    ToolMissing { tool: String, package: &'static str },
    #[error("{tool} failed ({status}): {stderr_tail}")]
    ToolFailed { tool: String, status: String, stderr_tail: String },
    #[error("{tool} timed out after {seconds} s and was killed")]
    Timeout { tool: String, seconds: u64 },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("bad argument: {0}")]
    BadArgument(String),
    #[error("cannot read ELF object {path}: {reason}")]
    Elf { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, ToolchainError>;

/// The captured result of running a program.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit code; `None` if the program was ended by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ToolchainError {
    let context = context.into();
    move |source| ToolchainError::Io { context, source }
}

/// The Debian package that provides a tool.
pub fn package_for(tool: &str) -> &'static str {
    match tool {
        "clang-22" => "clang-22",
        "cc" | "gcc" => "gcc",
        "aarch64-linux-gnu-gcc" => "gcc-aarch64-linux-gnu (and libc6-dev-arm64-cross)",
        "riscv64-linux-gnu-gcc" => "gcc-riscv64-linux-gnu (and libc6-dev-riscv64-cross)",
        "arm-none-eabi-gcc" => "gcc-arm-none-eabi (and libnewlib-arm-none-eabi)",
        "qemu-aarch64-static" | "qemu-riscv64-static" => "qemu-user-static",
        "qemu-system-arm" => "qemu-system-arm",
        "valgrind" => "valgrind",
        _ => "providing it",
    }
}

/// Whether a tool can be found on PATH.
pub fn tool_available(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

fn tail(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let mut joined = lines[start..].join(" | ");
    if joined.len() > 600 {
        let mut cut = joined.len() - 600;
        while !joined.is_char_boundary(cut) {
            cut += 1;
        }
        joined = format!("...{}", &joined[cut..]);
    }
    joined
}

/// Runs a build tool to completion; an error carries its stderr tail.
fn run_tool(cmd: &mut Command) -> Result<()> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| spawn_error(&tool, e))?;
    if out.status.success() {
        return Ok(());
    }
    let mut msg = out.stderr.clone();
    if msg.iter().all(u8::is_ascii_whitespace) {
        msg = out.stdout;
    }
    Err(ToolchainError::ToolFailed { tool, status: out.status.to_string(), stderr_tail: tail(&msg) })
}

fn spawn_error(tool: &str, e: std::io::Error) -> ToolchainError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ToolchainError::ToolMissing { tool: tool.to_string(), package: package_for(tool) }
    } else {
        ToolchainError::Io { context: format!("cannot start {tool}"), source: e }
    }
}

/// Compiles one C file for `kind` with clang-22 and the strict warning flags.
/// `include_dirs` and `defines` (`NAME=VALUE` or `NAME`) are passed as `-I` and `-D`.
pub fn compile_c(
    kind: TargetKind,
    src: &Path,
    out_o: &Path,
    include_dirs: &[&Path],
    defines: &[String],
    extra_flags: &[&str],
) -> Result<()> {
    let mut cmd = Command::new(CLANG);
    cmd.arg(format!("--target={}", kind.clang_triple())).args(kind.arch_flags()).args(STRICT_CFLAGS).args([
        "-Os",
        "-ffunction-sections",
        "-fdata-sections",
    ]);
    if kind.is_bare_metal() {
        // newlib's headers, for the harness; the runtime itself needs only stddef.h/stdint.h.
        cmd.args(["-isystem", "/usr/lib/arm-none-eabi/include"]);
    } else {
        cmd.arg("-fPIC");
    }
    for dir in include_dirs {
        cmd.arg("-I").arg(dir);
    }
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.args(extra_flags).arg("-c").arg(src).arg("-o").arg(out_o);
    run_tool(&mut cmd)
}

/// Writes the embedded C sources to `out_dir/c` and returns that folder.
pub fn write_sources(out_dir: &Path) -> Result<PathBuf> {
    let dir = out_dir.join("c");
    sources::write_all(&dir).map_err(io_err(format!("cannot write runtime sources to {}", dir.display())))?;
    Ok(dir)
}

/// Builds the runtime for `kind` into `out_dir` and returns the object file
/// (`edgec_runtime-<kind>.o`). On bare-metal targets the object also holds the weak
/// `memcpy`/`memmove`/`memset` of `edgec_mem.c`, so that no libc is needed.
pub fn build_runtime(kind: TargetKind, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(io_err(format!("cannot create {}", out_dir.display())))?;
    let c = write_sources(out_dir)?;
    let src = if kind.is_bare_metal() {
        // One translation unit, one object: the runtime and the weak mem functions.
        let unity = c.join("edgec_runtime_baremetal.c");
        std::fs::write(&unity, "#include \"edgec_runtime.c\"\n#include \"edgec_mem.c\"\n")
            .map_err(io_err(format!("cannot write {}", unity.display())))?;
        unity
    } else {
        c.join("edgec_runtime.c")
    };
    let obj = out_dir.join(format!("edgec_runtime-{}.o", kind.name()));
    let extra: &[&str] = if kind.is_bare_metal() { &["-ffreestanding"] } else { &[] };
    compile_c(kind, &src, &obj, &[&c], &[], extra)?;
    Ok(obj)
}

/// Builds the runtime for `kind` into `out_dir` and returns its code size: the sum of the
/// `.text*` and `.rodata*` sections of the runtime object.
pub fn runtime_code_bytes(kind: TargetKind, out_dir: &Path) -> Result<u64> {
    let obj = build_runtime(kind, out_dir)?;
    code_bytes_of_object(&obj)
}

/// Sum of the sizes of the allocated `.text*` and `.rodata*` sections of an ELF relocatable object
/// (32- or 64-bit, little-endian).
pub fn code_bytes_of_object(path: &Path) -> Result<u64> {
    let data = std::fs::read(path).map_err(io_err(format!("cannot read {}", path.display())))?;
    let bad = |reason: &str| ToolchainError::Elf { path: path.to_path_buf(), reason: reason.to_string() };
    if data.len() < 52 || &data[..4] != b"\x7fELF" {
        return Err(bad("not an ELF file"));
    }
    if data[5] != 1 {
        return Err(bad("not little-endian"));
    }
    let is64 = match data[4] {
        1 => false,
        2 => true,
        _ => return Err(bad("unknown ELF class")),
    };
    let rd = |off: usize, n: usize| -> Result<u64> {
        let bytes = data.get(off..off + n).ok_or_else(|| bad("truncated"))?;
        Ok(bytes.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    let (shoff, shentsize, shnum, shstrndx) = if is64 {
        (rd(0x28, 8)?, rd(0x3a, 2)?, rd(0x3c, 2)?, rd(0x3e, 2)?)
    } else {
        (rd(0x20, 4)?, rd(0x2e, 2)?, rd(0x30, 2)?, rd(0x32, 2)?)
    };
    // (name offset, type, flags, offset, size) of section i.
    let section = |i: u64| -> Result<(u64, u64, u64, u64, u64)> {
        let base = (shoff + i * shentsize) as usize;
        if is64 {
            Ok((rd(base, 4)?, rd(base + 4, 4)?, rd(base + 8, 8)?, rd(base + 0x18, 8)?, rd(base + 0x20, 8)?))
        } else {
            Ok((rd(base, 4)?, rd(base + 4, 4)?, rd(base + 8, 4)?, rd(base + 0x10, 4)?, rd(base + 0x14, 4)?))
        }
    };
    let (_, _, _, strtab_off, strtab_size) = section(shstrndx)?;
    let strtab = data
        .get(strtab_off as usize..(strtab_off + strtab_size) as usize)
        .ok_or_else(|| bad("truncated section names"))?;
    const SHT_PROGBITS: u64 = 1;
    const SHF_ALLOC: u64 = 2;
    let mut total = 0;
    for i in 0..shnum {
        let (name_off, ty, flags, _, size) = section(i)?;
        let name = strtab.get(name_off as usize..).unwrap_or(&[]);
        let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
        let is_code = name.starts_with(b".text") || name.starts_with(b".rodata");
        if is_code && ty == SHT_PROGBITS && flags & SHF_ALLOC != 0 {
            total += size;
        }
    }
    Ok(total)
}

fn is_c_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Links the generic harness around `model_o` (which defines `const edgec_model <model_symbol>`)
/// into the executable `out_exe`, with a static arena of `arena_bytes` and static io buffers of
/// `io_bytes` (the sum of all input and output sizes, each rounded up to 64). Intermediate files go
/// to `<out_exe>.build/`.
pub fn link_harness(
    kind: TargetKind,
    model_o: &Path,
    model_symbol: &str,
    arena_bytes: u64,
    io_bytes: u64,
    out_exe: &Path,
) -> Result<()> {
    link_harness_with(kind, model_o, model_symbol, arena_bytes, io_bytes, out_exe, &HarnessOptions::default())
}

/// How [`link_harness_with`] builds the harness.
#[derive(Clone, Debug, Default)]
pub struct HarnessOptions {
    /// Build the per-kernel profiler into the harness (`-DEDGEC_HARNESS_PROFILE`): its bench runs
    /// then time every kernel call through the runtime's hook (the model must call it).
    pub profile: bool,
}

/// [`link_harness`] with [`HarnessOptions`].
pub fn link_harness_with(
    kind: TargetKind,
    model_o: &Path,
    model_symbol: &str,
    arena_bytes: u64,
    io_bytes: u64,
    out_exe: &Path,
    options: &HarnessOptions,
) -> Result<()> {
    if !is_c_identifier(model_symbol) {
        return Err(ToolchainError::BadArgument(format!(
            "model symbol {model_symbol:?} is not a C identifier"
        )));
    }
    let mut build = out_exe.as_os_str().to_owned();
    build.push(".build");
    let build = PathBuf::from(build);
    let runtime_o = build_runtime(kind, &build)?;
    let c = build.join("c");
    let harness_o = build.join("harness.o");
    let mut defines = vec![
        format!("EDGEC_HARNESS_MODEL={model_symbol}"),
        format!("EDGEC_HARNESS_ARENA_BYTES={arena_bytes}u"),
        format!("EDGEC_HARNESS_IO_BYTES={io_bytes}u"),
    ];
    if options.profile {
        defines.push("EDGEC_HARNESS_PROFILE=1".into());
    }
    compile_c(kind, &c.join("harness.c"), &harness_o, &[&c], &defines, &[])?;

    let mut cmd = Command::new(kind.linker());
    cmd.args(kind.arch_flags());
    let mut objects = vec![harness_o, model_o.to_path_buf(), runtime_o];
    if kind.is_bare_metal() {
        let startup_o = build.join("startup.o");
        compile_c(kind, &c.join("cortex_m/startup.c"), &startup_o, &[&c], &[], &[])?;
        objects.insert(0, startup_o);
        let ld = build.join(format!("{}.ld", kind.name()));
        std::fs::write(&ld, kind.linker_script().unwrap_or_default())
            .map_err(io_err(format!("cannot write {}", ld.display())))?;
        cmd.arg("--specs=rdimon.specs").arg("-T").arg(&ld).args([
            "-Wl,--gc-sections",
            // clang objects use 32-bit enums, newlib was built with short enums; no enum crosses
            // the edgec ABI except the edgec_status return value, which fits either way.
            "-Wl,--no-enum-size-warning",
            "-Wl,-z,noexecstack",
        ]);
    }
    if !kind.is_bare_metal() {
        // Accept model objects built with or without PIC (Debian's gcc links PIE by default).
        cmd.arg("-no-pie");
    }
    cmd.args(&objects).arg("-lm").arg("-o").arg(out_exe);
    run_tool(&mut cmd)
}

/// Links `model_o` and the host runtime object into a shared object for [`crate::host::HostModel`].
/// `model_o` must be position-independent (x86-64 Linux).
pub fn link_shared_host(model_o: &Path, runtime_o: &Path, out_so: &Path) -> Result<()> {
    let mut cmd = Command::new(TargetKind::X86_64Linux.linker());
    cmd.arg("-shared").arg("-Wl,-z,noexecstack").arg(model_o).arg(runtime_o).arg("-lm").arg("-o").arg(out_so);
    run_tool(&mut cmd)
}

/// Runs a harness built by [`link_harness`] with `workdir` as its current directory (where it reads
/// `in_<i>.bin` and writes `out_<i>.bin`), under [`DEFAULT_RUN_TIMEOUT`].
pub fn run_harness(kind: TargetKind, exe: &Path, workdir: &Path) -> Result<RunOutput> {
    run_harness_with_timeout(kind, exe, workdir, DEFAULT_RUN_TIMEOUT)
}

/// The command line that runs `exe` for `kind` (emulated where needed).
pub fn run_command(kind: TargetKind, exe: &Path) -> (String, Vec<OsString>) {
    run_command_with(kind, exe, false)
}

/// [`run_command`]; `count_instructions` makes QEMU's system emulation deterministic
/// (`-icount shift=0`: virtual time advances 1 ns per instruction, so the board's timers count
/// instructions). It changes nothing for targets that run natively or under qemu-user.
pub fn run_command_with(kind: TargetKind, exe: &Path, count_instructions: bool) -> (String, Vec<OsString>) {
    let exe = exe.as_os_str().to_owned();
    match kind {
        TargetKind::X86_64Linux => (exe.to_string_lossy().into_owned(), vec![]),
        TargetKind::Aarch64Linux => {
            ("qemu-aarch64-static".into(), vec!["-L".into(), "/usr/aarch64-linux-gnu".into(), exe])
        }
        TargetKind::Riscv64Linux => {
            ("qemu-riscv64-static".into(), vec!["-L".into(), "/usr/riscv64-linux-gnu".into(), exe])
        }
        TargetKind::CortexM7 | TargetKind::CortexM4 => {
            let mut args: Vec<OsString> = vec!["-M".into(), kind.qemu_machine().unwrap_or_default().into()];
            if count_instructions {
                args.extend(["-icount".into(), "shift=0".into()]);
            }
            for a in ["-nographic", "-monitor", "none", "-serial", "none", "-semihosting", "-kernel"] {
                args.push(a.into());
            }
            args.push(exe);
            ("qemu-system-arm".into(), args)
        }
    }
}

/// [`run_harness`] with an explicit timeout; a program still running then is killed.
pub fn run_harness_with_timeout(
    kind: TargetKind,
    exe: &Path,
    workdir: &Path,
    timeout: Duration,
) -> Result<RunOutput> {
    run_harness_counting(kind, exe, workdir, timeout, false)
}

/// [`run_harness_with_timeout`], counting instructions under system emulation (see
/// [`run_command_with`]).
pub fn run_harness_counting(
    kind: TargetKind,
    exe: &Path,
    workdir: &Path,
    timeout: Duration,
    count_instructions: bool,
) -> Result<RunOutput> {
    let exe = std::path::absolute(exe).map_err(io_err(format!("bad path {}", exe.display())))?;
    let (program, args) = run_command_with(kind, &exe, count_instructions);
    let mut cmd = Command::new(&program);
    cmd.args(&args).current_dir(workdir);
    run_with_timeout(&mut cmd, timeout)
}

/// Runs `cmd` with no stdin, capturing stdout and stderr, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<RunOutput> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(&tool, e))?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err_t = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        match child.try_wait().map_err(io_err(format!("waiting for {tool}")))? {
            Some(status) => break status,
            None if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ToolchainError::Timeout { tool, seconds: timeout.as_secs() });
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok(RunOutput {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
