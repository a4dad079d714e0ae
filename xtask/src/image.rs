//! The GRUB ISO: one image that boots the kernel ELF via multiboot2 under
//! BIOS (grub-pc-bin) and UEFI (grub-efi-amd64-bin), made by grub-mkrescue.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::provision;
use crate::{Result, XtaskError};

/// The template in qemu/grub.cfg; `@CMDLINE@` becomes the kernel command line.
const GRUB_CFG_TEMPLATE: &str = include_str!("../../qemu/grub.cfg");
const CMDLINE_PLACEHOLDER: &str = "@CMDLINE@";

/// Quotes one word for GRUB's shell-like lexer: inside single quotes
/// nothing is special but the quote itself, written as `'\''`.
fn grub_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// grub.cfg for `cmdline`: its whitespace-separated words, each quoted.
pub fn grub_cfg(cmdline: &str) -> String {
    let words: Vec<String> = cmdline.split_whitespace().map(grub_quote).collect();
    let placeholder = format!(" {CMDLINE_PLACEHOLDER}");
    let replacement = words.iter().fold(String::new(), |line, w| line + " " + w);
    GRUB_CFG_TEMPLATE.replace(&placeholder, &replacement)
}

/// Builds `iso` from `kernel` with `cmdline` in its grub.cfg.
pub fn make_iso(kernel: &Path, cmdline: &str, iso: &Path) -> Result<PathBuf> {
    provision::ensure(provision::IMAGE_TOOLS)?;
    let staging = iso.with_extension("d");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let grub_dir = staging.join("boot").join("grub");
    std::fs::create_dir_all(&grub_dir)?;
    std::fs::copy(kernel, staging.join("boot").join("cxos"))
        .map_err(|e| XtaskError::msg(format!("cannot copy {}: {e}", kernel.display())))?;
    std::fs::write(grub_dir.join("grub.cfg"), grub_cfg(cmdline))?;
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(iso)
        .arg(&staging)
        .output()
        .map_err(|e| XtaskError::msg(format!("cannot run grub-mkrescue: {e}")))?;
    if !out.status.success() {
        return Err(XtaskError::msg(format!(
            "grub-mkrescue failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(iso.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_words_are_quoted_into_the_menu_entry() {
        let cfg = grub_cfg("test=selftest  log=info,mlx5::cmd=trace");
        assert!(
            cfg.contains("    multiboot2 /boot/cxos 'test=selftest' 'log=info,mlx5::cmd=trace'\n")
        );
        assert!(!cfg.contains(CMDLINE_PLACEHOLDER));
    }

    #[test]
    fn quotes_and_dollars_cannot_escape_the_word() {
        assert_eq!(grub_quote("a'b"), r"'a'\''b'");
        assert_eq!(grub_quote("x=$root;boot"), "'x=$root;boot'");
    }

    #[test]
    fn empty_cmdline_leaves_just_the_kernel() {
        assert!(grub_cfg("").contains("    multiboot2 /boot/cxos\n"));
    }
}
