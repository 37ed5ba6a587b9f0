//! General-purpose interrupts: `CR.GIRn` rings the peer, `SR.GIPn` is the
//! peer's ring here (shared/docs/hw/imx8-mu.md §2.1, §2.2, §2.5), and the
//! peer-wake channel built on them.
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::{ErrorType, Event, Listen};
use ipc_traits::power::{Asleep, Peer, WakePeer};
use ipc_traits::regs::{modify_shared, Regs32};
use tock_registers::LocalRegisterCopy;

use crate::registers::{self, CR_GIR_MASK, CR_OFFSET, SR, SR_OFFSET};
use crate::Error;

/// The peer core's power mode as `SR.PM` reports it (i.MX8MM encoding:
/// 0 Run, 1 Wait, 3 Stop; 2 reserved; sheet §2.1, cache-and-wake.md §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerMode {
    /// The peer core runs.
    Run,
    /// The peer core is in WAIT: clock-gated, woken by any of its enabled
    /// interrupts.
    Wait,
    /// The peer core is in STOP: woken only by interrupts its GPC routes as
    /// wake sources.
    Stop,
}

impl PowerMode {
    /// Decodes the two `SR.PM` bits; `None` for the reserved value 2.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::Run),
            1 => Some(Self::Wait),
            3 => Some(Self::Stop),
            _ => None,
        }
    }

    /// The `SR.PM` encoding.
    #[must_use]
    pub const fn bits(self) -> u8 {
        match self {
            Self::Run => 0,
            Self::Wait => 1,
            Self::Stop => 3,
        }
    }
}

/// The owned handle of general-purpose interrupt `N` (0..=3), both ways:
/// this side's request bit `CR.GIRn` (rings the peer's `SR.GIPn`) and this
/// side's pending bit `SR.GIPn` (rung by the peer's `CR.GIRn`).
///
/// It is also the peer-wake channel: [`WakePeer`] requests with `GIRn` and
/// reads the peer's power mode from `SR.PM`, so
/// [`Peer<Asleep, Gp>`](ipc_traits::power::Peer) becomes `Peer<Awake, Gp>`
/// only once the peer reports Run.
///
/// # Examples
///
/// ```
/// use ipc_traits::power::Peer;
/// use mu_imx8::sim::{Side, Sim};
/// use mu_imx8::{Mu, PowerMode, Spins};
///
/// let sim = Sim::new();
/// sim.set_power_mode(Side::B, PowerMode::Stop);
/// let a = Mu::new(sim.side(Side::A)).split();
/// let mut b = Mu::new(sim.side(Side::B)).split();
///
/// // The peer is in STOP: the request reaches it, but it does not report Run.
/// let (peer, _timeout) = Peer::new(a.gp0).wake(Spins::new(10)).unwrap_err();
/// assert!(b.gp0.is_pending());
///
/// // The peer's firmware takes the interrupt and runs again.
/// assert!(b.gp0.take());
/// sim.set_power_mode(Side::B, PowerMode::Run);
/// let awake = peer.wake(Spins::new(10)).unwrap();
/// let _gp0 = awake.release().into_inner();
/// ```
pub struct Gp<R, const N: u8> {
    regs: R,
    reserved_power_modes: u32,
}

impl<R, const N: u8> fmt::Debug for Gp<R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gp")
            .field("index", &N)
            .field("reserved_power_modes", &self.reserved_power_modes)
            .finish_non_exhaustive()
    }
}

impl<R: Regs32, const N: u8> Gp<R, N> {
    /// Post-monomorphisation check: only GP interrupts 0..=3 exist.
    const VALID: () = assert!(N < registers::CHANNELS, "the MU has GP interrupts 0..=3");

    /// The GP interrupt index.
    pub const INDEX: u8 = N;

    pub(crate) const fn new(regs: R) -> Self {
        let () = Self::VALID;
        Self {
            regs,
            reserved_power_modes: 0,
        }
    }

    pub(crate) fn release(self) -> R {
        self.regs
    }

    fn sr(&self) -> LocalRegisterCopy<u32, SR::Register> {
        LocalRegisterCopy::new(self.regs.read(SR_OFFSET))
    }

    /// Rings the peer: sets `CR.GIRn`, which sets the peer's `SR.GIPn`.
    ///
    /// Issues [`io_wmb`](ipc_traits::barrier::io_wmb) first, so earlier shared-memory writes are
    /// visible before the peer's interrupt.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] while the previous request is still pending
    /// (`CR.GIRn = 1`: the peer has not cleared its `GIPn`), as the SDK's
    /// `MU_TriggerInterrupts` refuses with "busy" (sheet §2.2).
    pub fn try_request(&mut self) -> Result<(), Error> {
        if self.is_request_pending() {
            return Err(Error::WouldBlock);
        }
        let bit = registers::bits(registers::gir(N));
        self.regs.io_wmb();
        // Every other GIR bit is written as 0: writing a pending request back
        // could re-trigger it (sheet §2.2 "Read-modify-write caution").
        modify_shared(self.regs, CR_OFFSET, |cr| (cr & !CR_GIR_MASK) | bit);
        Ok(())
    }

    /// Whether this side's request is still pending (`CR.GIRn = 1`).
    /// Hardware clears it once the peer clears its `GIPn` (sheet §2.2).
    pub fn is_request_pending(&mut self) -> bool {
        self.regs.read(CR_OFFSET) & registers::bits(registers::gir(N)) != 0
    }

    /// Whether the peer rang this side (`SR.GIPn = 1`).
    pub fn is_pending(&mut self) -> bool {
        self.sr().is_set(registers::gip(N))
    }

    /// Takes the peer's ring: if `SR.GIPn = 1`, clears exactly that bit
    /// (write-1-to-clear, sheet §2.3 and §8 item 3) and returns `true`.
    ///
    /// When [`listen`](Listen::listen)ing, the interrupt entry
    /// ([`Irq::on_interrupt`](crate::Irq)) acknowledges `GIPn` instead and
    /// reports it; `take` is for polling.
    pub fn take(&mut self) -> bool {
        if !self.is_pending() {
            return false;
        }
        self.regs
            .write(SR_OFFSET, registers::bits(registers::gip(N)));
        self.regs.io_rmb();
        true
    }

    /// Whether the interrupt on `SR.GIPn` is enabled (`CR.GIEn`).
    pub fn is_listening(&mut self) -> bool {
        self.regs.read(CR_OFFSET) & registers::bits(registers::gie(N)) != 0
    }

    /// The peer core's power mode (`SR.PM`).
    ///
    /// # Errors
    ///
    /// [`Error::ReservedPowerMode`] for the reserved encoding 2, counted in
    /// [`reserved_power_modes`](Self::reserved_power_modes).
    pub fn peer_power_mode(&mut self) -> Result<PowerMode, Error> {
        // The field is two bits wide, so the value fits a u8.
        let raw = (self.sr().read(SR::PM) & 0b11) as u8;
        PowerMode::from_bits(raw).ok_or_else(|| {
            self.reserved_power_modes = self.reserved_power_modes.saturating_add(1);
            Error::ReservedPowerMode(raw)
        })
    }

    /// How often `SR.PM` read the reserved encoding.
    pub const fn reserved_power_modes(&self) -> u32 {
        self.reserved_power_modes
    }

    /// Wraps this GP interrupt as the wake channel of a peer that may be
    /// asleep.
    pub const fn into_peer(self) -> Peer<Asleep, Self> {
        Peer::new(self)
    }
}

impl<R: Regs32, const N: u8> ErrorType for Gp<R, N> {
    type Error = Error;
}

impl<R: Regs32, const N: u8> Listen for Gp<R, N> {
    /// Enables `CR.GIEn` ([`Event::DataAvailable`] = the peer rang).
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        self.set_enable(event, true)
    }

    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        self.set_enable(event, false)
    }
}

impl<R: Regs32, const N: u8> Gp<R, N> {
    fn set_enable(&mut self, event: Event, on: bool) -> Result<(), Error> {
        if event != Event::DataAvailable {
            return Err(Error::UnsupportedEvent(event));
        }
        let bit = registers::bits(registers::gie(N));
        modify_shared(self.regs, CR_OFFSET, |cr| {
            let cr = cr & !CR_GIR_MASK;
            if on {
                cr | bit
            } else {
                cr & !bit
            }
        });
        Ok(())
    }
}

impl<R: Regs32, const N: u8> WakePeer for Gp<R, N> {
    /// Sets `CR.GIRn`: the peer's `SR.GIPn` rises and, if the peer enabled
    /// `GIEn`, its MU interrupt fires (sheet §2.5).
    ///
    /// Whether that interrupt wakes a peer in STOP depends on its GPC
    /// routing (sheet §2.5, UNVERIFIED there); [`peer_awake`](Self::peer_awake)
    /// is what tells.
    fn request_wake(&mut self) -> Result<(), Error> {
        self.try_request()
    }

    /// `true` only when `SR.PM` reads Run.
    ///
    /// WAIT counts as not awake: the peer is clock-gated until an interrupt
    /// runs, so it cannot yet be relied on. (UNCERTAIN(imx8-mu.md §2.1):
    /// the sheet gives the encoding but not whether a core in WAIT may be
    /// treated as available; this driver takes the conservative reading.)
    fn peer_awake(&mut self) -> Result<bool, Error> {
        Ok(self.peer_power_mode()? == PowerMode::Run)
    }
}
