//! The one `unsafe` edge: a base address becomes a register view.
#![allow(unsafe_code)]

use core::ptr::NonNull;

use ipc_traits::regs::Mmio32;

use crate::registers::BLOCK_LEN;
use crate::Mu;

impl Mu<Mmio32> {
    /// The MU side whose registers start at `base`.
    ///
    /// On i.MX8MM side A is at 0x30AA_0000 (Cortex-A53 view) and side B at
    /// 0x30AB_0000 (Cortex-M view) (shared/docs/hw/imx8-mu.md §1). The view
    /// covers the registers only ([`BLOCK_LEN`] bytes).
    ///
    /// # Safety
    ///
    /// 1. An MU v1 register block (one side) is mapped at `base` for at
    ///    least [`BLOCK_LEN`] bytes, as device memory, and stays mapped while
    ///    the driver or any handle split from it exists.
    /// 2. `base` is 4-byte aligned.
    /// 3. Nothing else drives this side of the MU while the driver exists
    ///    (one `Mu` per side).
    #[must_use]
    pub const unsafe fn new_unchecked(base: NonNull<u32>) -> Self {
        // SAFETY: the caller's points 1–3 are exactly `Mmio32::new`'s contract
        // for a window of BLOCK_LEN bytes.
        Self::new(unsafe { Mmio32::new(base, BLOCK_LEN) })
    }
}
