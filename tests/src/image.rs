//! The test image: Debian's static busybox imported into the local engine, no registry.
//!
//! [`ensure_test_image`] is idempotent: it returns at once when the engine already has
//! [`TEST_IMAGE`] built from the current [`IMAGE_RECIPE`], and otherwise builds a root
//! file system (`/bin/busybox` plus a symlink per applet: `sh`, `echo`, `seq`, `sleep`,
//! `usleep`, `printf`, `cat`, `yes`, `head`, `tr`, ...) and pipes its tarball into
//! `docker import`. `tests/image/install-deps.sh` installs `busybox-static`.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::host::{docker, docker_with_input, run_bounded, DOCKER_CLI_TIMEOUT};

/// The tag every test container runs.
pub const TEST_IMAGE: &str = "log-capturer-test/busybox:latest";

/// Bump when the image's content changes: an image with another recipe is rebuilt.
pub const IMAGE_RECIPE: &str = "1";

const RECIPE_LABEL: &str = "log-capturer-test.recipe";

/// Where Debian's `busybox-static` puts the binary.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// The test image's tag, building it first if needed. Cached for the process.
pub fn ensure_test_image() -> Result<String> {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    BUILT.get_or_init(|| build_if_missing().map_err(|error| format!("{error:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build_if_missing() -> Result<String> {
    let format = format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}");
    if let Ok(recipe) = docker(&["image", "inspect", "--format", &format, TEST_IMAGE]) {
        if recipe == IMAGE_RECIPE {
            return Ok(TEST_IMAGE.to_owned());
        }
    }
    let tarball = root_fs_tarball(Path::new(BUSYBOX_PATH))?;
    let label = format!("LABEL {RECIPE_LABEL}={IMAGE_RECIPE}");
    docker_with_input(
        &["import", "--change", &label, "--change", r#"CMD ["/bin/sh"]"#, "-", TEST_IMAGE],
        Some(tarball),
    )
    .context("docker import of the test image")?;
    Ok(TEST_IMAGE.to_owned())
}

/// A tarball of `/bin/busybox`, its applet symlinks and the usual empty directories.
fn root_fs_tarball(busybox: &Path) -> Result<Vec<u8>> {
    if !busybox.exists() {
        bail!("{} not found: install busybox-static (tests/image/install-deps.sh)", busybox.display());
    }
    let binary = std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    if !is_static_elf(&binary) {
        bail!(
            "{} is dynamically linked: install busybox-static, not busybox (tests/image/install-deps.sh)",
            busybox.display()
        );
    }
    let applets = run_bounded(&busybox.to_string_lossy(), &["--list"], None, DOCKER_CLI_TIMEOUT)?;

    let root = std::env::temp_dir().join(format!("log-capturer-test-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let result = (|| -> Result<Vec<u8>> {
        for dir in ["bin", "tmp", "etc", "dev", "proc", "sys", "root"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        std::fs::copy(busybox, root.join("bin/busybox"))?;
        for applet in applets.lines().map(str::trim) {
            if applet.is_empty() || applet == "busybox" || applet.contains('/') {
                continue;
            }
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
        std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
        let tarball = std::process::Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&root)
            .args(["-cf", "-", "."])
            .output()
            .context("running tar")?;
        if !tarball.status.success() {
            bail!("tar failed: {}", String::from_utf8_lossy(&tarball.stderr));
        }
        Ok(tarball.stdout)
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// Whether an ELF executable has no program interpreter (is statically linked).
fn is_static_elf(binary: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let is_elf64_le = binary.len() > 64 && &binary[..4] == b"\x7fELF" && binary[4] == 2 && binary[5] == 1;
    if !is_elf64_le {
        return false;
    }
    let read_u16 = |at: usize| u16::from_le_bytes([binary[at], binary[at + 1]]) as usize;
    let program_headers = u64::from_le_bytes(binary[0x20..0x28].try_into().unwrap()) as usize;
    let entry_size = read_u16(0x36);
    let entries = read_u16(0x38);
    (0..entries).all(|index| {
        let at = program_headers + index * entry_size;
        match binary.get(at..at + 4) {
            Some(kind) => u32::from_le_bytes(kind.try_into().unwrap()) != PT_INTERP,
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn static_busybox_is_static_and_this_binary_is_not() {
        let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!super::is_static_elf(&this));
        if let Ok(busybox) = std::fs::read(super::BUSYBOX_PATH) {
            eprintln!("{} static: {}", super::BUSYBOX_PATH, super::is_static_elf(&busybox));
        }
    }
}
