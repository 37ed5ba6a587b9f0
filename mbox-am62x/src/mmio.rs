//! The one place where an address becomes a driver: [`Mbox::new_unchecked`].
#![allow(unsafe_code)]

use core::ptr::NonNull;

use ipc_traits::regs::Mmio32;

use crate::registers::CLUSTER_LEN;
use crate::{Mbox, User};

impl Mbox<Mmio32> {
    /// The mailbox cluster mapped at `base`, as seen by `user`, over
    /// [`CLUSTER_LEN`] bytes of registers (sheet `am62x-mailbox.md` §1:
    /// `reg` size 0x200). Touches no register.
    ///
    /// # Safety
    ///
    /// 1. A K3 mailbox cluster is mapped (as device memory) at `base` for at
    ///    least [`CLUSTER_LEN`] bytes, and stays mapped while the driver or
    ///    any of its handles exists. On AM62x cluster `k` is at
    ///    `0x2900_0000 + k * 0x1_0000` in the SoC map; the M4F may see it at
    ///    another address through its address translation (sheet §3.1).
    /// 2. `base` is 4-byte aligned.
    /// 3. No other driver instance in this program acts as `user` on this
    ///    cluster. (Other cores use other users; that sharing is what the
    ///    hardware is for.)
    pub unsafe fn new_unchecked(base: NonNull<u32>, user: User) -> Self {
        // SAFETY: (1) and (2) are this function's preconditions 1 and 2;
        // (3) holds because this program has no other driver for `user`
        // (precondition 3), and the registers of other users are only
        // written through their own set/clear aliases.
        let regs = unsafe { Mmio32::new(base, CLUSTER_LEN) };
        Self::new(regs, user)
    }
}
