//! The release agent and balancer are fully static executables: no ELF interpreter (dynamic
//! loader).

use std::path::Path;

use crate::harness::{static_agent, static_balancer};

const BUILD: &str = "RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist \
                     --target x86_64-unknown-linux-gnu -p agent -p balancer";
/// Program header type of the interpreter request.
const PT_INTERP: u32 = 3;

/// Types of the program headers of an ELF64 little-endian file.
fn program_header_types(elf: &[u8]) -> Result<Vec<u32>, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        let b = elf.get(at..at + 2).ok_or("truncated")?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        let b = elf.get(at..at + 4).ok_or("truncated")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| -> Result<u64, String> {
        let b = elf.get(at..at + 8).ok_or("truncated")?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "truncated")?))
    };
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not ELF64 little-endian".into());
    }
    let phoff = usize::try_from(u64_at(0x20)?).map_err(|e| e.to_string())?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    (0..phnum).map(|i| u32_at(phoff + i * phentsize)).collect()
}

/// Asserts that `path` is an ELF without an interpreter of at most `max_bytes`.
fn assert_static(path: &Path, max_bytes: usize) {
    let elf = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Build the static binaries first: {BUILD} (scripts/test.sh does)",
            path.display()
        )
    });
    let types = program_header_types(&elf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!types.is_empty(), "no program headers");
    assert!(
        !types.contains(&PT_INTERP),
        "{} asks for a dynamic loader (PT_INTERP): build it with {BUILD}",
        path.display()
    );
    assert!(
        elf.len() <= max_bytes,
        "{} is {} bytes",
        path.display(),
        elf.len()
    );
}

#[test]
fn the_release_agent_has_no_elf_interpreter_and_fits_3_mib() {
    assert_static(&static_agent(), 3 << 20);
}

#[test]
fn the_release_balancer_has_no_elf_interpreter_and_fits_6_mib() {
    // 6 MiB with TLS (rustls, ring) and HTTP/2 (h2); it was 4 before them.
    assert_static(&static_balancer(), 6 << 20);
}

#[test]
fn a_dynamic_executable_is_told_apart() {
    // This very test binary is dynamically linked: the parser must see its interpreter.
    let me = std::fs::read(std::env::current_exe().expect("own path")).expect("read self");
    assert!(program_header_types(&me)
        .expect("parse self")
        .contains(&PT_INTERP));
}
