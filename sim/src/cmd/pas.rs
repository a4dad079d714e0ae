//! A queue's physical address list (`pas`, the trailing `pas[]` of
//! create_cq_in / create_eq_in and of the query outputs): one 8-byte
//! address per 4 KiB page of the queue's buffer, each page-aligned.

use crate::bits::{be64, put_be64};
use crate::function::Function;
use crate::sanitizer::{Purpose, Revoked};
use crate::syndrome::{self as syn, CmdError};

/// The page size of the list (`log_page_size` 0: 4 KiB).
pub const PAGE: u64 = 4096;

/// The list of a `bytes`-byte buffer at byte `at` of the input: CMD_LENGTHS
/// if the input holds fewer addresses than the buffer has pages,
/// PAS_MISALIGNED for an address off a page boundary.
pub fn read(inp: &[u8], at: usize, bytes: u64) -> Result<Vec<u64>, CmdError> {
    let npas = bytes.div_ceil(PAGE) as usize;
    if inp.len() < at + 8 * npas {
        return Err(syn::CMD_LENGTHS);
    }
    let pas: Vec<u64> = (0..npas).map(|i| be64(inp, at + 8 * i)).collect();
    if pas.iter().any(|a| a % PAGE != 0) {
        return Err(syn::PAS_MISALIGNED);
    }
    Ok(pas)
}

/// Writes the list at byte `at` of a query's output.
pub fn put(out: &mut [u8], at: usize, pas: &[u64]) {
    for (i, a) in pas.iter().enumerate() {
        put_be64(out, at + 8 * i, *a);
    }
}

/// The device may write the pages of a `bytes`-byte buffer as `purpose`.
pub fn grant(dev: &mut Function, pas: &[u64], bytes: u64, purpose: Purpose) {
    for a in pas {
        dev.bus.san.grant(*a, PAGE.min(bytes), purpose);
    }
}

/// The pages are the driver's again (`why`).
pub fn revoke(dev: &mut Function, pas: &[u64], why: Revoked) {
    for a in pas {
        dev.bus.san.revoke(*a, why);
    }
}

/// The bus address of byte `byte` of the buffer; None past its pages.
pub fn addr(pas: &[u64], byte: u64) -> Option<u64> {
    let page = pas.get((byte / PAGE) as usize)?;
    Some(page + byte % PAGE)
}
