//! The `elb-agent` executable that deploy and the local provider run: where it is found, and the
//! checks that keep a wrong file off the hosts (architecture, static linking).
//!
//! Lookup order for each architecture: the explicit flag (`--agent`, `--agent-arm64`), then the
//! `ELB_AGENT` environment variable (x86_64 only), then the static build next to the running
//! `elb`: `<target>/x86_64-unknown-linux-gnu/dist/elb-agent` when `elb` runs from
//! `<target>/{debug,release}/`, then `elb-agent` in the same directory as `elb` (installed side
//! by side, or built by the same `cargo build`). The README's build steps produce these, so `elb`
//! finds the agent without flags; a dynamically linked one serves the local provider, and deploy
//! refuses it with the static build command.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The command that builds the static agent and balancer (one build, shared), quoted in errors.
pub const BUILD_COMMAND: &str =
    "RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist \
                                 --target x86_64-unknown-linux-gnu -p agent -p balancer";

/// A CPU architecture elb can deploy to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 / amd64.
    X86_64,
    /// aarch64 / arm64 (Graviton).
    Arm64,
}

impl Arch {
    /// Parses `uname -m` output or an EC2 architecture name (`x86_64`, `arm64`, `aarch64`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "x86_64" | "amd64" | "x86_64_mac" => Some(Self::X86_64),
            "arm64" | "aarch64" | "arm64_mac" => Some(Self::Arm64),
            _ => None,
        }
    }

    /// The architecture an instance type runs elb-agent as, from the architectures EC2 lists for
    /// it: x86_64 where it has it, else arm64; `None` when it has neither.
    pub fn of_instance_type(supported: &[String]) -> Option<Self> {
        let supported: Vec<Self> = supported.iter().filter_map(|a| Self::parse(a)).collect();
        [Self::X86_64, Self::Arm64]
            .into_iter()
            .find(|arch| supported.contains(arch))
    }

    /// EC2's name of the architecture (AMI names, `DescribeImages`).
    pub fn ec2_name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    /// The name `uname -m` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "aarch64",
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            Self::X86_64 => 62,
            Self::Arm64 => 183,
        }
    }
}

/// Why no usable agent binary is at hand.
#[derive(Debug, thiserror::Error)]
pub enum AgentBinaryError {
    /// Nothing found where elb looks.
    #[error(
        "no static elb-agent found (looked in: {looked}). Build it with `{BUILD_COMMAND}`, or \
         pass --agent <path>"
    )]
    NotFound {
        /// The places tried, comma-separated.
        looked: String,
    },
    /// No `elb-balancer` found where elb looks.
    #[error(
        "no elb-balancer found (looked in: {looked}). Build it with `{BUILD_COMMAND}` (static, \
         for hosts; `cargo build -p balancer` is enough locally), or pass --balancer <path> or \
         set ELB_BALANCER=<path>"
    )]
    NoBalancer {
        /// The places tried, comma-separated.
        looked: String,
    },
    /// An arm64 host or instance type, and no `--agent-arm64`.
    #[error(
        "{what} is arm64, and elb builds elb-agent for x86_64 only: pass --agent-arm64 <path> \
         with an aarch64 static build, or use an x86_64 host or instance type (e.g. t3.micro)"
    )]
    NoArm64 {
        /// The host or instance type.
        what: String,
    },
    /// The file cannot be read.
    #[error("cannot read the agent binary {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a static executable for the architecture.
    #[error("{path} cannot run on {arch} hosts: {problem}. Build it with `{BUILD_COMMAND}`")]
    Unfit {
        /// The file.
        path: PathBuf,
        /// The architecture it was meant for.
        arch: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// Agent paths given on the command line, one per architecture.
#[derive(Debug, Clone, Default)]
pub struct AgentPaths {
    /// `--agent`: the x86_64 build.
    pub x86_64: Option<PathBuf>,
    /// `--agent-arm64`: the aarch64 build.
    pub arm64: Option<PathBuf>,
}

impl AgentPaths {
    /// The agent for `arch`, read and checked. `what` names the host or instance type in the
    /// arm64 error.
    pub fn load(&self, arch: Arch, what: &str) -> Result<AgentBinary, AgentBinaryError> {
        let path = match arch {
            Arch::X86_64 => locate(self.x86_64.as_deref())?,
            Arch::Arm64 => self
                .arm64
                .clone()
                .ok_or_else(|| AgentBinaryError::NoArm64 {
                    what: what.to_owned(),
                })?,
        };
        AgentBinary::load(&path, arch)
    }
}

/// Finds the x86_64 agent: the explicit path if given, else the places in the module doc.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, AgentBinaryError> {
    locate_program(explicit, "ELB_AGENT", "elb-agent")
        .map_err(|looked| AgentBinaryError::NotFound { looked })
}

/// Finds `elb-balancer` the same way: the explicit path, `$ELB_BALANCER`, the static release
/// build of this workspace, or beside `elb`.
pub fn locate_balancer(explicit: Option<&Path>) -> Result<PathBuf, AgentBinaryError> {
    locate_program(explicit, "ELB_BALANCER", "elb-balancer")
        .map_err(|looked| AgentBinaryError::NoBalancer { looked })
}

/// The explicit path, else the first file of `$env` and the places near `elb` for `name`; the
/// error lists the places tried.
fn locate_program(explicit: Option<&Path>, env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(path));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        candidates.extend(candidates_near(&dir, name));
    }
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| {
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
}

/// Where the static build of `name` sits relative to the directory holding `elb`.
fn candidates_near(exe_dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let in_target = exe_dir
        .file_name()
        .is_some_and(|name| name == "debug" || name == "release");
    if let (true, Some(target)) = (in_target, exe_dir.parent()) {
        out.push(target.join("x86_64-unknown-linux-gnu/dist").join(name));
    }
    // Installed side by side, or built by the same `cargo build` as elb (dynamically linked
    // then: fine for the local provider, refused with the static build command for hosts).
    out.push(exe_dir.join(name));
    out
}

/// An agent executable read into memory and checked.
#[derive(Debug, Clone)]
pub struct AgentBinary {
    /// Where it was read from.
    pub path: PathBuf,
    /// The architecture it runs on.
    pub arch: Arch,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl AgentBinary {
    /// Reads `path` and checks it is a static ELF executable for `arch`.
    pub fn load(path: &Path, arch: Arch) -> Result<Self, AgentBinaryError> {
        let bytes = std::fs::read(path).map_err(|source| AgentBinaryError::Read {
            path: path.to_owned(),
            source,
        })?;
        check_elf(&bytes, arch).map_err(|problem| AgentBinaryError::Unfit {
            path: path.to_owned(),
            arch: arch.as_str(),
            problem,
        })?;
        Ok(Self {
            path: path.to_owned(),
            arch,
            bytes,
        })
    }

    /// SHA-256 of the bytes, lowercase hex (as `sha256sum` prints it).
    pub fn sha256_hex(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the ELF header: 64-bit little-endian, an executable for `arch`, and no dynamic loader
/// (`PT_INTERP`), since hosts may have another libc or none.
fn check_elf(bytes: &[u8], arch: Arch) -> Result<(), String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err("it is not a 64-bit little-endian ELF executable".into());
    }
    let machine = u16_at(18).ok_or("its ELF header is truncated")?;
    if machine != arch.elf_machine() {
        return Err(format!(
            "it is built for ELF machine {machine}, not {}",
            arch.as_str()
        ));
    }
    let header = || -> Option<(usize, usize, usize)> {
        let phoff = usize::try_from(u64_at(32)?).ok()?;
        Some((phoff, usize::from(u16_at(54)?), usize::from(u16_at(56)?)))
    };
    let (phoff, phentsize, phnum) = header().ok_or("its ELF header is truncated")?;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or("its program headers are truncated")?;
        if p_type == PT_INTERP {
            return Err("it is dynamically linked (it asks for a loader, PT_INTERP)".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `p_type`.
    fn elf(machine: u16, p_type: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&p_type.to_le_bytes());
        b
    }

    #[test]
    fn a_static_executable_for_the_right_machine_passes() {
        assert!(check_elf(&elf(62, 1), Arch::X86_64).is_ok());
        assert!(check_elf(&elf(183, 1), Arch::Arm64).is_ok());
    }

    #[test]
    fn dynamic_foreign_and_non_elf_files_are_refused_with_the_reason() {
        assert!(check_elf(&elf(62, 3), Arch::X86_64)
            .unwrap_err()
            .contains("dynamically linked"));
        assert!(check_elf(&elf(183, 1), Arch::X86_64)
            .unwrap_err()
            .contains("machine 183"));
        assert!(check_elf(b"#!/bin/sh\n", Arch::X86_64)
            .unwrap_err()
            .contains("not a 64-bit"));
        assert!(check_elf(&elf(62, 1)[..40], Arch::X86_64)
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn the_static_build_is_found_from_the_target_dir_or_beside_elb() {
        assert_eq!(
            candidates_near(Path::new("/w/target/release"), "elb-agent"),
            [
                PathBuf::from("/w/target/x86_64-unknown-linux-gnu/dist/elb-agent"),
                PathBuf::from("/w/target/release/elb-agent")
            ]
        );
        assert_eq!(
            candidates_near(Path::new("/usr/local/bin"), "elb-agent"),
            [PathBuf::from("/usr/local/bin/elb-agent")]
        );
    }

    #[test]
    fn arm64_needs_its_own_build() {
        let err = AgentPaths::default()
            .load(Arch::Arm64, "instance type t4g.micro")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("t4g.micro") && msg.contains("--agent-arm64"),
            "{msg}"
        );
    }

    #[test]
    fn architectures_parse_from_uname_and_ec2_names() {
        assert_eq!(Arch::parse("x86_64\n"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("arm64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("i386"), None);
    }

    #[test]
    fn an_instance_type_runs_x86_64_where_it_can_else_arm64() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Arch::of_instance_type(&names(&["i386", "x86_64"])),
            Some(Arch::X86_64)
        );
        assert_eq!(
            Arch::of_instance_type(&names(&["arm64"])),
            Some(Arch::Arm64)
        );
        assert_eq!(Arch::of_instance_type(&names(&["i386"])), None);
        assert_eq!(Arch::Arm64.ec2_name(), "arm64");
    }

    #[test]
    fn sha256_matches_sha256sum() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
