//! Flag values and the `EVENT_IDX` decision (rpmsg-wire.md §1.3, §1.4).
#![deny(unsafe_code)]

/// `VRING_DESC_F_NEXT`: the descriptor continues in `next`.
pub const DESC_F_NEXT: u16 = 1;
/// `VRING_DESC_F_WRITE`: the buffer is device-writable.
pub const DESC_F_WRITE: u16 = 2;
/// `VRING_DESC_F_INDIRECT`: the buffer holds a descriptor table.
pub const DESC_F_INDIRECT: u16 = 4;
/// `VRING_AVAIL_F_NO_INTERRUPT`: the driver asks not to be interrupted.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// `VRING_USED_F_NO_NOTIFY`: the device asks not to be kicked.
pub const USED_F_NO_NOTIFY: u16 = 1;
/// Feature bit `VIRTIO_RING_F_EVENT_IDX`.
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;
/// Feature bit `VIRTIO_RING_F_INDIRECT_DESC` (never offered by this crate).
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
/// `VQ_RING_DESC_CHAIN_END`: what rpmsg-lite writes into the `next` field of
/// its last descriptor (vectors README, "After master init").
pub const DESC_CHAIN_END: u16 = 0x8000;

/// `vring_need_event(event_idx, new_idx, old_idx)`: whether moving an index
/// from `old` to `new` crosses the peer's `event` (all wrapping `u16`).
///
/// ```
/// use vring::notify::need_event;
/// // The peer wants to hear about entry 5: publishing 3..=6 crosses it.
/// assert!(need_event(5, 7, 3));
/// assert!(!need_event(9, 7, 3));
/// // Wrapping arithmetic.
/// assert!(need_event(0xffff, 1, 0xfffe));
/// ```
#[inline]
pub const fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// Which notification scheme a ring uses, fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suppression {
    /// `VRING_AVAIL_F_NO_INTERRUPT` / `VRING_USED_F_NO_NOTIFY` flags (what
    /// rpmsg-lite and a remoteproc peer without bit 29 use).
    #[default]
    Flags,
    /// `VIRTIO_RING_F_EVENT_IDX`: `used_event` / `avail_event`, so a batch
    /// costs one doorbell when the peer allows it.
    EventIdx,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_event_matches_the_formula_for_every_small_case() {
        for old in 0u16..8 {
            for n in 0u16..8 {
                let new = old.wrapping_add(n);
                for ev in 0u16..20 {
                    // The peer's event lies in [old, new) iff notify.
                    let crossed = (old..new).contains(&ev);
                    assert_eq!(need_event(ev, new, old), crossed, "{ev} {new} {old}");
                }
            }
        }
        assert!(need_event(u16::MAX, 0, u16::MAX));
        assert!(!need_event(0, 0, u16::MAX));
    }
}
