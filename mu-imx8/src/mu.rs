//! The peripheral singleton, its parts, and the flag bits.
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::Mailbox;
use ipc_traits::regs::{modify_shared, Regs32};
use tock_registers::LocalRegisterCopy;

use crate::registers::{
    CR_GIE_MASK, CR_GIR_MASK, CR_OFFSET, CR_RIE_MASK, CR_TIE_MASK, FLAGS_MASK, SR, SR_OFFSET,
};
use crate::{Gp, Irq, RxChannel, TxChannel};

/// One side (A or B) of an i.MX8 Messaging Unit, v1 layout
/// (shared/docs/hw/imx8-mu.md §2).
///
/// The driver is the same for either side: pass the register view of the
/// side this core uses (on i.MX8M the Cortex-A53 uses side A, the Cortex-M
/// side B; sheet §1).
///
/// # Examples
///
/// ```
/// use mu_imx8::sim::{Side, Sim};
/// use mu_imx8::Mu;
///
/// let sim = Sim::new();
/// let mut a = Mu::new(sim.side(Side::A)).split();
/// let mut b = Mu::new(sim.side(Side::B)).split();
/// a.tx2.try_send(0x1234).unwrap();
/// assert_eq!(b.rx2.try_recv(), Ok(0x1234));
/// let _mu_a = Mu::join(a);
/// ```
pub struct Mu<R> {
    regs: R,
}

impl<R> fmt::Debug for Mu<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mu")
    }
}

/// Every handle of one MU side: plain public fields, so they can be
/// destructured and moved to different contexts.
#[derive(Debug)]
pub struct MuParts<R> {
    /// Transmit channel 0 (`TR0`).
    pub tx0: TxChannel<R, 0>,
    /// Transmit channel 1 (`TR1`, the rpmsg channel).
    pub tx1: TxChannel<R, 1>,
    /// Transmit channel 2 (`TR2`).
    pub tx2: TxChannel<R, 2>,
    /// Transmit channel 3 (`TR3`).
    pub tx3: TxChannel<R, 3>,
    /// Receive channel 0 (`RR0`).
    pub rx0: RxChannel<R, 0>,
    /// Receive channel 1 (`RR1`, the rpmsg channel).
    pub rx1: RxChannel<R, 1>,
    /// Receive channel 2 (`RR2`).
    pub rx2: RxChannel<R, 2>,
    /// Receive channel 3 (`RR3`).
    pub rx3: RxChannel<R, 3>,
    /// General-purpose interrupt 0.
    pub gp0: Gp<R, 0>,
    /// General-purpose interrupt 1.
    pub gp1: Gp<R, 1>,
    /// General-purpose interrupt 2.
    pub gp2: Gp<R, 2>,
    /// General-purpose interrupt 3.
    pub gp3: Gp<R, 3>,
    /// The three flag bits (`CR.F` out, `SR.F` in).
    pub flags: Flags<R>,
    /// The interrupt entry of this side.
    pub irq: Irq<R>,
}

impl<R: Regs32> Mu<R> {
    /// Takes ownership of one side's registers.
    ///
    /// Touches no register. On silicon `regs` comes from
    /// [`Mu::new_unchecked`](Mu::new_unchecked) (or an
    /// [`Mmio32`](ipc_traits::regs::Mmio32) you built), in tests from
    /// `mu_imx8::sim` (feature `sim`).
    pub const fn new(regs: R) -> Self {
        Self { regs }
    }

    /// Hands out one owned handle per channel, GP interrupt, the flags and
    /// the interrupt entry. Consumes the peripheral, so splitting twice does
    /// not compile.
    pub fn split(self) -> MuParts<R> {
        let r = self.regs;
        MuParts {
            tx0: TxChannel::new(r),
            tx1: TxChannel::new(r),
            tx2: TxChannel::new(r),
            tx3: TxChannel::new(r),
            rx0: RxChannel::new(r),
            rx1: RxChannel::new(r),
            rx2: RxChannel::new(r),
            rx3: RxChannel::new(r),
            gp0: Gp::new(r),
            gp1: Gp::new(r),
            gp2: Gp::new(r),
            gp3: Gp::new(r),
            flags: Flags::new(r),
            irq: Irq::new(r),
        }
    }

    /// Rebuilds the peripheral from every handle. Touches no register:
    /// words in flight, enables and pending requests stay as they are.
    pub fn join(parts: MuParts<R>) -> Self {
        let MuParts {
            tx0,
            tx1,
            tx2,
            tx3,
            rx0,
            rx1,
            rx2,
            rx3,
            gp0,
            gp1,
            gp2,
            gp3,
            flags,
            irq,
        } = parts;
        let _ = (tx0.release(), tx1.release(), tx2.release(), tx3.release());
        let _ = (rx0.release(), rx1.release(), rx2.release(), rx3.release());
        let _ = (
            gp0.release(),
            gp1.release(),
            gp2.release(),
            gp3.release(),
            flags.release(),
        );
        Self {
            regs: irq.release(),
        }
    }

    /// Disables every channel and GP interrupt of this side (`CR.TIEn`,
    /// `CR.RIEn`, `CR.GIEn` := 0), leaving flags and pending requests alone.
    ///
    /// Useful at start-up on side B: Linux resets `CR` only on side A, so
    /// side B may find enables left by earlier firmware (sheet §2.4, §4).
    pub fn disable_interrupts(&mut self) {
        modify_shared(self.regs, CR_OFFSET, |cr| {
            cr & !(CR_GIR_MASK | CR_GIE_MASK | CR_RIE_MASK | CR_TIE_MASK)
        });
    }

    /// Gives the register view back.
    pub fn release(self) -> R {
        self.regs
    }
}

impl<R: Regs32> Mailbox for Mu<R> {
    type Parts = MuParts<R>;

    fn split(self) -> MuParts<R> {
        Mu::split(self)
    }

    fn join(parts: MuParts<R>) -> Self {
        Mu::join(parts)
    }
}

/// The three general-purpose flag bits: this side's `CR.F[2:0]` appear in
/// the peer's `SR.F[2:0]` (sheet §2.1, §2.2). No interrupt.
pub struct Flags<R> {
    regs: R,
}

impl<R> fmt::Debug for Flags<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flags")
    }
}

impl<R: Regs32> Flags<R> {
    pub(crate) const fn new(regs: R) -> Self {
        Self { regs }
    }

    pub(crate) fn release(self) -> R {
        self.regs
    }

    /// Presents `flags` (low three bits) to the peer.
    pub fn set(&mut self, flags: u8) {
        let f = u32::from(flags) & FLAGS_MASK;
        modify_shared(self.regs, CR_OFFSET, |cr| {
            (cr & !(CR_GIR_MASK | FLAGS_MASK)) | f
        });
    }

    /// The flags this side presents (`CR.F`).
    pub fn ours(&mut self) -> u8 {
        // Masked to three bits.
        (self.regs.read(CR_OFFSET) & FLAGS_MASK) as u8
    }

    /// The flags the peer presents (`SR.F`).
    pub fn peer(&mut self) -> u8 {
        (self.sr().read(SR::F) & FLAGS_MASK) as u8
    }

    /// Whether a flag change of this side is still propagating (`SR.FUP`).
    pub fn is_update_pending(&mut self) -> bool {
        self.sr().is_set(SR::FUP)
    }

    fn sr(&self) -> LocalRegisterCopy<u32, SR::Register> {
        LocalRegisterCopy::new(self.regs.read(SR_OFFSET))
    }
}
