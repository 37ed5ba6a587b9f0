//! Doorbell-path probes, disassembled by `.ci/run`'s `barriers` step.
//!
//! Each backend gets two `#[no_mangle]`, never-inlined functions built from
//! its real driver code over [`Mmio32`](ipc_traits::regs::Mmio32) /
//! [`Mmio64`](ipc_traits::regs::Mmio64) registers:
//!
//! - `barrier_probe_<backend>_send` stores to normal memory (standing for
//!   the last ring store), then rings the doorbell through the backend's
//!   `Notify` / `try_send`. The step requires the target's
//!   [`io_wmb`](ipc_traits::barrier::io_wmb) instruction between that store
//!   and the register store.
//! - `barrier_probe_<backend>_recv` takes a doorbell (register read), then
//!   loads from normal memory (standing for the ring entry). The step
//!   requires the [`io_rmb`](ipc_traits::barrier::io_rmb) instruction
//!   between the register load and that load.
//!
//! The window's fences ([`SharedMemory`](ipc_traits::shm::SharedMemory)'s
//! `release_fence` / `full_fence` / `acquire_fence`, which `vring` and
//! `rpmsg` call) get probes too, over a [`RawRegion`](ipc_traits::shm::RawRegion)
//! whose base is the first argument: `barrier_probe_shm_{release,full}`
//! store to the window, fence, then store through the second argument;
//! `barrier_probe_shm_acquire` loads through the second argument, fences,
//! then loads from the window. The step checks them on AArch64 (`dmb ish`,
//! `dmb ish`, `dmb ishld`: what `core`'s fences are), so routing the fences
//! through the window costs no instruction.
//!
//! The normal-memory access is a plain (not volatile) one through a raw
//! pointer, as the rings' accesses are. (A `&mut` would be `noalias`: the
//! compiler could then drop or move the store across any barrier, because
//! no `asm!` can name memory only a unique reference reaches.)
//!
//! Nothing here is meant to be called: the functions exist to be compiled
//! and read. They are safe to call only on the hardware they name.
#![no_std]
#![allow(unsafe_code)]

/// i.MX8 MU: the rpmsg kick on TR1 and a receive on RR1
/// (shared/docs/hw/imx8-mu.md §2.4, §5).
#[cfg(feature = "mu-imx8")]
pub mod mu_imx8_probe {
    use core::ptr::NonNull;

    use ipc_traits::mailbox::{Notify, QueueId};
    use mu_imx8::Mu;

    /// Stores `value` at `ring`, then kicks vring 1 on TR1.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte write, and `base` is an MU side as
    /// [`Mu::new_unchecked`] requires.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_mu_imx8_send(
        ring: *mut u32,
        base: NonNull<u32>,
        value: u32,
    ) -> bool {
        // SAFETY: the caller guarantees `ring` is writable.
        unsafe { ring.write(value) };
        // SAFETY: the caller guarantees `Mu::new_unchecked`'s contract.
        let parts = unsafe { Mu::new_unchecked(base) }.split();
        let Some(queue) = QueueId::new(1) else {
            return false;
        };
        parts.tx1.into_rpmsg_notify().notify(queue).is_ok()
    }

    /// Takes a word from RR1, then loads from `ring`.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte read, and `base` is an MU side as
    /// [`Mu::new_unchecked`] requires.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_mu_imx8_recv(
        ring: *const u32,
        base: NonNull<u32>,
    ) -> u32 {
        // SAFETY: the caller guarantees `Mu::new_unchecked`'s contract.
        let mut parts = unsafe { Mu::new_unchecked(base) }.split();
        match parts.rx1.try_recv() {
            // SAFETY: the caller guarantees `ring` is readable.
            Ok(word) => word ^ unsafe { ring.read() },
            Err(_) => 0,
        }
    }
}

/// AM62x mailbox: the M4F's kick on queue 0 and a receive on queue 1
/// (shared/docs/hw/am62x-mailbox.md §3.1).
#[cfg(feature = "mbox-am62x")]
pub mod mbox_am62x_probe {
    use core::ptr::NonNull;

    use ipc_traits::mailbox::{Notify, QueueId, WordRx};
    use mbox_am62x::convention::M4F_USER;
    use mbox_am62x::Mbox;

    /// Stores `value` at `ring`, then kicks vring 0 on queue 0.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte write, and `base` is a mailbox cluster
    /// as [`Mbox::new_unchecked`] requires.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_mbox_am62x_send(
        ring: *mut u32,
        base: NonNull<u32>,
        value: u32,
    ) -> bool {
        // SAFETY: the caller guarantees `ring` is writable.
        unsafe { ring.write(value) };
        // SAFETY: the caller guarantees `Mbox::new_unchecked`'s contract.
        let parts = unsafe { Mbox::new_unchecked(base, M4F_USER) }.split();
        let Some(queue) = QueueId::new(0) else {
            return false;
        };
        parts.q0.into_tx().notify(queue).is_ok()
    }

    /// Takes a word from queue 1, then loads from `ring`.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte read, and `base` is a mailbox cluster
    /// as [`Mbox::new_unchecked`] requires.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_mbox_am62x_recv(
        ring: *const u32,
        base: NonNull<u32>,
    ) -> u32 {
        // SAFETY: the caller guarantees `Mbox::new_unchecked`'s contract.
        let parts = unsafe { Mbox::new_unchecked(base, M4F_USER) }.split();
        match parts.q1.into_rx().try_recv() {
            // SAFETY: the caller guarantees `ring` is readable.
            Ok(word) => word ^ unsafe { ring.read() },
            Err(_) => 0,
        }
    }
}

/// V853 msgbox: a kick and a receive on channel 0, the rpmsg channel
/// (shared/docs/hw/v853-msgbox.md §3, §4).
#[cfg(feature = "msgbox-v853")]
pub mod msgbox_v853_probe {
    use core::ptr::NonNull;

    use ipc_traits::mailbox::{Notify, QueueId, WordRx};
    use msgbox_v853::Msgbox;

    /// Stores `value` at `ring`, then kicks vring 1 on channel 0.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte write, and `local` / `remote` are the
    /// msgbox blocks as [`Msgbox::new_unchecked`] requires.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_msgbox_v853_send(
        ring: *mut u32,
        local: NonNull<u32>,
        remote: NonNull<u32>,
        value: u32,
    ) -> bool {
        // SAFETY: the caller guarantees `ring` is writable.
        unsafe { ring.write(value) };
        // SAFETY: the caller guarantees `Msgbox::new_unchecked`'s contract.
        let parts = unsafe { Msgbox::new_unchecked(local, remote) }.split();
        let Some(queue) = QueueId::new(1) else {
            return false;
        };
        parts.tx0.into_notify().notify(queue).is_ok()
    }

    /// Takes a word from channel 0, then loads from `ring`.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte read, and `local` / `remote` are the
    /// msgbox blocks as [`Msgbox::new_unchecked`] requires.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_msgbox_v853_recv(
        ring: *const u32,
        local: NonNull<u32>,
        remote: NonNull<u32>,
    ) -> u32 {
        // SAFETY: the caller guarantees `Msgbox::new_unchecked`'s contract.
        let mut parts = unsafe { Msgbox::new_unchecked(local, remote) }.split();
        match parts.rx0.try_recv() {
            // SAFETY: the caller guarantees `ring` is readable.
            Ok(word) => word ^ unsafe { ring.read() },
            Err(_) => 0,
        }
    }
}

/// OCTEON CIU mailbox: ringing bit 4 on core 1 and taking bit 4 on core 0
/// (shared/docs/hw/octeon-ciu-mbox.md §2, §5).
#[cfg(feature = "mbox-octeon")]
pub mod mbox_octeon_probe {
    use core::ptr::NonNull;

    use ipc_traits::mailbox::Mailbox;
    use mbox_octeon::{CoreId, Mbox};

    /// Stores `value` at `ring`, then rings bit 4 of core 1 from core 0.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte write, and `base` is the CIU as
    /// [`Mbox::new_unchecked`] requires for core 0.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_mbox_octeon_send(
        ring: *mut u32,
        base: NonNull<u64>,
        value: u32,
    ) -> bool {
        // SAFETY: the caller guarantees `ring` is writable.
        unsafe { ring.write(value) };
        let (Some(me), Some(peer)) = (CoreId::new(0), CoreId::new(1)) else {
            return false;
        };
        // SAFETY: the caller guarantees `Mbox::new_unchecked`'s contract.
        let parts = unsafe { Mbox::new_unchecked(base, me) }.split();
        parts.outbox.bit4.into_tx(&parts.irq, peer).ring();
        true
    }

    /// Takes bit 4 of core 0's mailbox, then loads from `ring`.
    ///
    /// # Safety
    ///
    /// `ring` is valid for a 4-byte read, and `base` is the CIU as
    /// [`Mbox::new_unchecked`] requires for core 0.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_mbox_octeon_recv(
        ring: *const u32,
        base: NonNull<u64>,
    ) -> u32 {
        let Some(me) = CoreId::new(0) else {
            return 0;
        };
        // SAFETY: the caller guarantees `Mbox::new_unchecked`'s contract.
        let mut parts = unsafe { Mbox::new_unchecked(base, me) }.split();
        if parts.inbox.bit4.into_rx(&mut parts.irq).take_pending() {
            // SAFETY: the caller guarantees `ring` is readable.
            unsafe { ring.read() }
        } else {
            0
        }
    }
}

/// The window's fences over real memory (always built; checked on
/// AArch64).
pub mod shm_probe {
    use core::ptr::NonNull;

    use ipc_traits::cache::Coherent;
    use ipc_traits::shm::{RawRegion, SharedMemory};

    /// A 64-byte coherent window at `base`, or `None` if misaligned.
    ///
    /// # Safety
    ///
    /// `base` is valid for 64 bytes of reads and writes, 4-aligned, and
    /// nothing else accesses it meanwhile.
    unsafe fn window(base: NonNull<u8>) -> Option<RawRegion<Coherent>> {
        // SAFETY: the caller's contract is `RawRegion::new`'s.
        unsafe { RawRegion::new(base, 64, 0, Coherent) }.ok()
    }

    /// Stores `value` at offset 0 of the window at `ring`, a release fence
    /// through the window, then stores 1 at `flag`.
    ///
    /// # Safety
    ///
    /// As `window` for `ring`; `flag` is valid for a 4-byte write.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_shm_release(
        ring: NonNull<u8>,
        flag: *mut u32,
        value: u32,
    ) -> bool {
        // SAFETY: the caller guarantees `window`'s contract.
        let Some(w) = (unsafe { window(ring) }) else {
            return false;
        };
        if w.write(0, &value.to_ne_bytes()).is_err() {
            return false;
        }
        w.release_fence();
        // SAFETY: the caller guarantees `flag` is writable.
        unsafe { flag.write_volatile(1) };
        true
    }

    /// As [`barrier_probe_shm_release`] with a full fence.
    ///
    /// # Safety
    ///
    /// As [`barrier_probe_shm_release`].
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_shm_full(
        ring: NonNull<u8>,
        flag: *mut u32,
        value: u32,
    ) -> bool {
        // SAFETY: the caller guarantees `window`'s contract.
        let Some(w) = (unsafe { window(ring) }) else {
            return false;
        };
        if w.write(0, &value.to_ne_bytes()).is_err() {
            return false;
        }
        w.full_fence();
        // SAFETY: the caller guarantees `flag` is writable.
        unsafe { flag.write_volatile(1) };
        true
    }

    /// Loads `flag`, an acquire fence through the window at `ring`, then
    /// loads offset 0 of the window.
    ///
    /// # Safety
    ///
    /// As `window` for `ring`; `flag` is valid for a 4-byte read.
    #[no_mangle]
    #[inline(never)]
    pub unsafe extern "C" fn barrier_probe_shm_acquire(ring: NonNull<u8>, flag: *const u32) -> u32 {
        // SAFETY: the caller guarantees `window`'s contract.
        let Some(w) = (unsafe { window(ring) }) else {
            return 0;
        };
        // SAFETY: the caller guarantees `flag` is readable.
        let seen = unsafe { flag.read_volatile() };
        w.acquire_fence();
        let mut word = [0u8; 4];
        if w.read(0, &mut word).is_err() {
            return 0;
        }
        seen ^ u32::from_ne_bytes(word)
    }
}
