//! The driver: one user's view of a mailbox cluster, split into owned queues.
//!
//! # Ownership model
//!
//! [`Mbox`] stands for *one user* of one cluster (for example the M4F, user
//! 2, of cluster 0). [`Mbox::split`] hands out one [`Queue`] per hardware
//! queue (index as const generic `N`), all [`Unconfigured`], plus the user's
//! interrupt entry [`Irq`]. A queue becomes a sender with
//! [`Queue::into_tx`] or a receiver with [`Queue::into_rx`]; each consumes
//! the handle, so a queue is owned in exactly one direction at a time.
//! [`Mbox::join`] takes every handle back (unconfigured again).
//!
//! Misuse that does not compile (proved by the `conformance` compile-fail
//! tests `ui-mbox-am62x`):
//! - sending on a receive queue or receiving on a transmit queue (the
//!   [`WordTx`] / [`WordRx`] impls exist only for [`Tx`] / [`Rx`]);
//! - splitting twice (`split` consumes the [`Mbox`]);
//! - using a queue after moving it (handles are not `Clone`);
//! - joining while a queue is still configured (the [`MboxParts`] fields are
//!   `Unconfigured`).
//!
//! # Design notes (what the types do not enforce)
//!
//! - The cluster is shared with other cores (Linux owns user 0). The types
//!   keep two handles of *this program* from owning one queue, but cannot
//!   stop another core from writing a queue this core sends on. Use the
//!   queue assignment of [`crate::convention`].
//! - The enable and status registers of a user are shared by all its queue
//!   handles and its [`Irq`]. Every change goes through the hardware's
//!   set/clear aliases (`IRQENABLE_SET_u`, `IRQENABLE_CLR_u`, write-1-to-clear
//!   `IRQSTATUS_CLR_u`), each write naming only the handle's own bit, so no
//!   handle can undo another's change and no critical section is needed.
//! - [`Mbox::split`] clears every interrupt enable and stale status of *its
//!   own user* (a firmware restarted without a cluster reset would otherwise
//!   inherit enables from its previous run; the cluster itself is never
//!   reset, sheet §5 item 1). After that, the user's enable register holds
//!   exactly what this program's handles enabled. A different agent writing
//!   this user's enable register is outside the model and not detected.
#![deny(unsafe_code)]

use core::marker::PhantomData;

use ipc_traits::mailbox::{
    Budget, ErrorType, Event, Events, InterruptSource, Listen, Mailbox, Notify, QueueCodec,
    QueueId, RawId, WordRx, WordTx,
};
use ipc_traits::regs::Regs32;
use tock_registers::LocalRegisterCopy;

use crate::kick::RpMbox;
use crate::registers::{
    fifostatus_offset, irqenable_clr_offset, irqenable_set_offset, irqstatus_clr_offset,
    message_offset, msgstatus_offset, newmsg, notfull, FIFOSTATUS, FIFO_DEPTH, MSGSTATUS,
    NEWMSG_MASK, NOTFULL_MASK, REVISION_OFFSET,
};
use crate::{Error, User};

mod sealed {
    pub trait Sealed {}
}

/// A queue direction (type state): [`Unconfigured`], [`Tx`] or [`Rx`].
///
/// Sealed: only this crate names directions.
pub trait Direction: sealed::Sealed {
    /// The interrupt event this direction listens for, as its bit within the
    /// queue's two-bit group of the interrupt registers (sheet §2.1): `0b01`
    /// = `NEWMSG` (receiver), `0b10` = `NOTFULL` (sender), `0` = none.
    #[doc(hidden)]
    const EVENT_BITS: u32;
    /// The [`Event`] that [`Self::EVENT_BITS`] stands for.
    #[doc(hidden)]
    const EVENT: Option<Event>;
}

/// Type state: the queue is owned but not used in either direction; it can
/// raise no interrupt for this user.
#[derive(Debug)]
pub struct Unconfigured {
    _private: (),
}

/// Type state: this user sends on the queue (writes `MESSAGE_N`, listens for
/// `NOTFULL`).
#[derive(Debug)]
pub struct Tx {
    _private: (),
}

/// Type state: this user receives from the queue (pops `MESSAGE_N`, listens
/// for `NEWMSG`).
#[derive(Debug)]
pub struct Rx {
    _private: (),
}

impl sealed::Sealed for Unconfigured {}
impl sealed::Sealed for Tx {}
impl sealed::Sealed for Rx {}

impl Direction for Unconfigured {
    const EVENT_BITS: u32 = 0;
    const EVENT: Option<Event> = None;
}

impl Direction for Tx {
    const EVENT_BITS: u32 = 0b10;
    const EVENT: Option<Event> = Some(Event::SpaceAvailable);
}

impl Direction for Rx {
    const EVENT_BITS: u32 = 0b01;
    const EVENT: Option<Event> = Some(Event::DataAvailable);
}

/// Both interrupt bits of queue `q` (`NEWMSG` and `NOTFULL`, sheet §2.1).
const fn queue_bits(q: u8) -> u32 {
    newmsg(q) | notfull(q)
}

/// Gathers bit `2m + shift` of `bits` into bit `m` of the result.
fn per_queue(bits: u32, shift: u32) -> u32 {
    (0..16u32).fold(0, |acc, m| acc | (((bits >> (2 * m + shift)) & 1) << m))
}

// ---------------------------------------------------------------------------
// Register-level operations shared by the typed and erased handles
// ---------------------------------------------------------------------------

/// `try_send`: check `FIFOFULL`, then `io_wmb` and write (sheet §3.2 step 1-2,
/// §5 item 3). Only the owner writes the queue, so "not full" cannot change to
/// "full" between the check and the write (the peer only pops).
fn send<R: Regs32>(regs: R, q: u8, word: u32) -> Result<(), Error> {
    let status =
        LocalRegisterCopy::<u32, FIFOSTATUS::Register>::new(regs.read(fifostatus_offset(q)));
    if status.is_set(FIFOSTATUS::FIFOFULL) {
        return Err(Error::Full);
    }
    // Everything written to shared memory before this call is visible to the
    // peer before the word that announces it.
    regs.io_wmb();
    regs.write(message_offset(q), word);
    Ok(())
}

/// `try_recv`: read `MSGSTATUS`, pop only if a word is there, and acknowledge
/// `NEWMSG` once the last known word is taken (sheet §2.1, §5 item 4).
fn recv<R: Regs32>(regs: R, user: User, q: u8) -> Result<u32, Error> {
    let status = LocalRegisterCopy::<u32, MSGSTATUS::Register>::new(regs.read(msgstatus_offset(q)));
    let count = status.read(MSGSTATUS::NBOFMSG);
    if count == 0 {
        // Never read MESSAGE on an empty queue: it reads 0, which is a valid
        // word (vring 0's kick), sheet §1.
        return Err(Error::Empty);
    }
    let word = regs.read(message_offset(q));
    if count == 1 {
        // That was the last word the status announced: clear this user's
        // latched NEWMSG so the line falls. If another word arrived in the
        // meantime the hardware re-asserts NEWMSG at once (level-like event,
        // sheet §2.1), so nothing is lost.
        regs.write(irqstatus_clr_offset(user.index()), newmsg(q));
    }
    regs.io_rmb();
    Ok(word)
}

fn queued<R: Regs32>(regs: R, q: u8) -> usize {
    let status = LocalRegisterCopy::<u32, MSGSTATUS::Register>::new(regs.read(msgstatus_offset(q)));
    status.read(MSGSTATUS::NBOFMSG) as usize
}

fn is_full<R: Regs32>(regs: R, q: u8) -> bool {
    LocalRegisterCopy::<u32, FIFOSTATUS::Register>::new(regs.read(fifostatus_offset(q)))
        .is_set(FIFOSTATUS::FIFOFULL)
}

/// The interrupt bit of `event` for a `D` handle on queue `q`.
fn event_bit<D: Direction>(q: u8, event: Event) -> Result<u32, Error> {
    if D::EVENT == Some(event) {
        Ok(D::EVENT_BITS << (2 * u32::from(q % 16)))
    } else {
        Err(Error::EventNotAvailable(event))
    }
}

fn listen<R: Regs32, D: Direction>(regs: R, user: User, q: u8, event: Event) -> Result<(), Error> {
    let bit = event_bit::<D>(q, event)?;
    // Drop a stale latched event (for example NOTFULL latched before the FIFO
    // filled up): if the condition still holds the hardware re-asserts it at
    // once (sheet §2.1), so only stale state is discarded.
    regs.write(irqstatus_clr_offset(user.index()), bit);
    regs.write(irqenable_set_offset(user.index()), bit);
    Ok(())
}

fn unlisten<R: Regs32, D: Direction>(
    regs: R,
    user: User,
    q: u8,
    event: Event,
) -> Result<(), Error> {
    let bit = event_bit::<D>(q, event)?;
    regs.write(irqenable_clr_offset(user.index()), bit);
    Ok(())
}

/// Programs a direction change: this user's events for queue `q` are disabled
/// and their stale status cleared, through the set/clear aliases only.
fn configure<R: Regs32>(regs: R, user: User, q: u8) {
    regs.write(irqenable_clr_offset(user.index()), queue_bits(q));
    regs.write(irqstatus_clr_offset(user.index()), queue_bits(q));
}

// ---------------------------------------------------------------------------
// The peripheral
// ---------------------------------------------------------------------------

/// One user's view of a K3 mailbox cluster (16 queues, sheet §1).
///
/// Build it with [`Mbox::new`] from a register view ([`ipc_traits::regs::Mmio32`]
/// on silicon, `sim::SimRegs` in tests) or with
/// [`Mbox::new_unchecked`] from a base address, then [`Mbox::split`] it.
#[derive(Debug)]
pub struct Mbox<R> {
    regs: R,
    user: User,
}

impl<R: Regs32> Mbox<R> {
    /// The mailbox cluster behind `regs`, as seen by `user`. Touches no
    /// register.
    pub const fn new(regs: R, user: User) -> Self {
        Self { regs, user }
    }

    /// The user this driver acts as.
    pub const fn user(&self) -> User {
        self.user
    }

    /// `MAILBOX_REVISION` (sheet §2), decoded with
    /// [`crate::registers::REVISION`].
    pub fn revision(&self) -> LocalRegisterCopy<u32, crate::registers::REVISION::Register> {
        LocalRegisterCopy::new(self.regs.read(REVISION_OFFSET))
    }

    /// Gives the register view back.
    pub fn release(self) -> R {
        self.regs
    }

    /// Hands out one unconfigured handle per queue and the user's interrupt
    /// entry.
    ///
    /// Disables every interrupt event of this user and clears its stale
    /// status (through `IRQENABLE_CLR_u` / `IRQSTATUS_CLR_u`; other users and
    /// the queues' contents are untouched).
    pub fn split(self) -> MboxParts<R> {
        let (regs, user) = (self.regs, self.user);
        regs.write(irqenable_clr_offset(user.index()), u32::MAX);
        regs.write(irqstatus_clr_offset(user.index()), u32::MAX);
        MboxParts {
            q0: Queue::new(regs, user),
            q1: Queue::new(regs, user),
            q2: Queue::new(regs, user),
            q3: Queue::new(regs, user),
            q4: Queue::new(regs, user),
            q5: Queue::new(regs, user),
            q6: Queue::new(regs, user),
            q7: Queue::new(regs, user),
            q8: Queue::new(regs, user),
            q9: Queue::new(regs, user),
            q10: Queue::new(regs, user),
            q11: Queue::new(regs, user),
            q12: Queue::new(regs, user),
            q13: Queue::new(regs, user),
            q14: Queue::new(regs, user),
            q15: Queue::new(regs, user),
            irq: Irq {
                regs,
                user,
                owned: u32::MAX,
                counters: IrqCounters::default(),
            },
        }
    }

    /// Rebuilds the driver from every handle (each queue unconfigured again,
    /// see [`Queue::into_unconfigured`]). Words still queued stay queued.
    pub fn join(parts: MboxParts<R>) -> Self {
        let MboxParts { irq, .. } = parts;
        Self {
            regs: irq.regs,
            user: irq.user,
        }
    }
}

impl<R: Regs32> Mailbox for Mbox<R> {
    type Parts = MboxParts<R>;

    fn split(self) -> MboxParts<R> {
        Mbox::split(self)
    }

    fn join(parts: MboxParts<R>) -> Self {
        Mbox::join(parts)
    }
}

/// Every handle of one user's view of the cluster: queues `q0..q15` (all
/// [`Unconfigured`] after [`Mbox::split`]) and the interrupt entry `irq`.
///
/// A plain struct, so users destructure it and keep what they need.
#[derive(Debug)]
#[allow(missing_docs)] // q0..q15 are documented as a group above.
pub struct MboxParts<R> {
    pub q0: Queue<R, 0, Unconfigured>,
    pub q1: Queue<R, 1, Unconfigured>,
    pub q2: Queue<R, 2, Unconfigured>,
    pub q3: Queue<R, 3, Unconfigured>,
    pub q4: Queue<R, 4, Unconfigured>,
    pub q5: Queue<R, 5, Unconfigured>,
    pub q6: Queue<R, 6, Unconfigured>,
    pub q7: Queue<R, 7, Unconfigured>,
    pub q8: Queue<R, 8, Unconfigured>,
    pub q9: Queue<R, 9, Unconfigured>,
    pub q10: Queue<R, 10, Unconfigured>,
    pub q11: Queue<R, 11, Unconfigured>,
    pub q12: Queue<R, 12, Unconfigured>,
    pub q13: Queue<R, 13, Unconfigured>,
    pub q14: Queue<R, 14, Unconfigured>,
    pub q15: Queue<R, 15, Unconfigured>,
    /// This user's interrupt entry.
    pub irq: Irq<R>,
}

// ---------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------

/// Queue `N` of the cluster, owned by one user in direction `D`.
///
/// - [`Tx`]: [`WordTx`] (`try_send`), [`Notify`] (kick = raw vring id),
///   [`Listen`] for [`Event::SpaceAvailable`].
/// - [`Rx`]: [`WordRx`] (`try_recv`), [`Listen`] for
///   [`Event::DataAvailable`]; wrap it in [`crate::KickRx`] for doorbells.
/// - [`Unconfigured`]: only transitions.
#[derive(Debug)]
pub struct Queue<R, const N: u8, D> {
    regs: R,
    user: User,
    _dir: PhantomData<D>,
}

impl<R: Regs32, const N: u8, D: Direction> Queue<R, N, D> {
    /// The queue index (0..=15).
    pub const INDEX: u8 = N;
    /// Words the queue holds (sheet §1), see [`FIFO_DEPTH`].
    pub const DEPTH: usize = FIFO_DEPTH;

    const fn new(regs: R, user: User) -> Self {
        Self {
            regs,
            user,
            _dir: PhantomData,
        }
    }

    /// The user that owns this handle.
    pub const fn user(&self) -> User {
        self.user
    }

    /// Words in the queue now (`MSGSTATUS_N`, sheet §2): for a sender, how
    /// many the peer has not read yet; for a receiver, how many are waiting.
    pub fn queued(&self) -> usize {
        queued(self.regs, N)
    }

    /// Whether the queue is full (`FIFOSTATUS_N.FIFOFULL`, sheet §2).
    pub fn is_full(&self) -> bool {
        is_full(self.regs, N)
    }

    /// Gives the queue up: disables this user's events for it and clears
    /// their stale status. Queued words stay queued.
    pub fn into_unconfigured(self) -> Queue<R, N, Unconfigured> {
        configure(self.regs, self.user, N);
        Queue::new(self.regs, self.user)
    }

    /// Erases the queue index into a runtime value, for code that keeps
    /// queues in arrays or needs one type for several queues.
    pub fn degrade(self) -> AnyQueue<R, D> {
        AnyQueue {
            regs: self.regs,
            user: self.user,
            index: N,
            _dir: PhantomData,
        }
    }
}

impl<R: Regs32, const N: u8> Queue<R, N, Unconfigured> {
    /// Configures the queue for direction `D2` (one generic transition):
    /// disables this user's events for the queue and clears their stale
    /// status, through `IRQENABLE_CLR_u` / `IRQSTATUS_CLR_u` (sheet §2).
    pub fn into_direction<D2: Direction>(self) -> Queue<R, N, D2> {
        configure(self.regs, self.user, N);
        Queue::new(self.regs, self.user)
    }

    /// This user will send on the queue.
    pub fn into_tx(self) -> Queue<R, N, Tx> {
        self.into_direction()
    }

    /// This user will receive from the queue.
    pub fn into_rx(self) -> Queue<R, N, Rx> {
        self.into_direction()
    }
}

impl<R: Regs32, const N: u8> Queue<R, N, Tx> {
    /// Sends an rpmsg control message (sheet §4.1 table), for example
    /// [`RpMbox::EchoReply`] or [`RpMbox::SuspendAck`].
    ///
    /// # Errors
    ///
    /// [`Error::Full`] as for [`WordTx::try_send`].
    pub fn try_send_control(&mut self, message: RpMbox) -> Result<(), Error> {
        send(self.regs, N, message.word())
    }

    /// Sends `word`, retrying while the queue is full, within `budget`.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if the queue stayed full for the whole budget.
    pub fn blocking_send(&mut self, word: u32, budget: impl Budget) -> Result<(), Error> {
        ipc_traits::mailbox::blocking_send(self, word, budget)
    }
}

impl<R: Regs32, const N: u8> Queue<R, N, Rx> {
    /// Receives a word, retrying while the queue is empty, within `budget`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if nothing arrived within the budget.
    pub fn blocking_recv(&mut self, budget: impl Budget) -> Result<u32, Error> {
        ipc_traits::mailbox::blocking_recv(self, budget)
    }
}

/// A queue whose index is a runtime value (see [`Queue::degrade`]).
#[derive(Debug)]
pub struct AnyQueue<R, D> {
    regs: R,
    user: User,
    index: u8,
    _dir: PhantomData<D>,
}

impl<R: Regs32, D: Direction> AnyQueue<R, D> {
    /// Words the queue holds (sheet §1).
    pub const DEPTH: usize = FIFO_DEPTH;

    /// The queue index (0..=15).
    pub const fn index(&self) -> u8 {
        self.index
    }

    /// The user that owns this handle.
    pub const fn user(&self) -> User {
        self.user
    }

    /// Words in the queue now (`MSGSTATUS`, sheet §2).
    pub fn queued(&self) -> usize {
        queued(self.regs, self.index)
    }

    /// Whether the queue is full (`FIFOSTATUS.FIFOFULL`, sheet §2).
    pub fn is_full(&self) -> bool {
        is_full(self.regs, self.index)
    }

    /// Restores the typed handle, or gives `self` back if `N` is not this
    /// queue's index.
    ///
    /// # Errors
    ///
    /// `Err(self)` when `N != self.index()`.
    pub fn try_into_queue<const N: u8>(self) -> Result<Queue<R, N, D>, Self> {
        if self.index == N {
            Ok(Queue::new(self.regs, self.user))
        } else {
            Err(self)
        }
    }
}

impl<R: Regs32> AnyQueue<R, Tx> {
    /// Sends an rpmsg control message (sheet §4.1 table).
    ///
    /// # Errors
    ///
    /// [`Error::Full`] as for [`WordTx::try_send`].
    pub fn try_send_control(&mut self, message: RpMbox) -> Result<(), Error> {
        send(self.regs, self.index, message.word())
    }
}

impl<R: Regs32, const N: u8, D: Direction> ErrorType for Queue<R, N, D> {
    type Error = Error;
}

impl<R: Regs32, D: Direction> ErrorType for AnyQueue<R, D> {
    type Error = Error;
}

/// `DataAvailable` for [`Rx`], `SpaceAvailable` for [`Tx`], nothing for
/// [`Unconfigured`] (`Error::EventNotAvailable` otherwise).
impl<R: Regs32, const N: u8, D: Direction> Listen for Queue<R, N, D> {
    #[inline]
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        listen::<R, D>(self.regs, self.user, N, event)
    }
    #[inline]
    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        unlisten::<R, D>(self.regs, self.user, N, event)
    }
}

/// As for [`Queue`].
impl<R: Regs32, D: Direction> Listen for AnyQueue<R, D> {
    #[inline]
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        listen::<R, D>(self.regs, self.user, self.index, event)
    }
    #[inline]
    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        unlisten::<R, D>(self.regs, self.user, self.index, event)
    }
}

impl<R: Regs32, const N: u8> WordTx for Queue<R, N, Tx> {
    #[inline]
    fn try_send(&mut self, word: u32) -> Result<(), Error> {
        send(self.regs, N, word)
    }
}

impl<R: Regs32> WordTx for AnyQueue<R, Tx> {
    #[inline]
    fn try_send(&mut self, word: u32) -> Result<(), Error> {
        send(self.regs, self.index, word)
    }
}

impl<R: Regs32, const N: u8> WordRx for Queue<R, N, Rx> {
    #[inline]
    fn try_recv(&mut self) -> Result<u32, Error> {
        recv(self.regs, self.user, N)
    }
}

impl<R: Regs32> WordRx for AnyQueue<R, Rx> {
    #[inline]
    fn try_recv(&mut self) -> Result<u32, Error> {
        recv(self.regs, self.user, self.index)
    }
}

/// The kick is the raw vring id (Linux K3 remoteproc and MCU+ client 0, sheet
/// §4.1, §4.2).
impl<R: Regs32, const N: u8> Notify for Queue<R, N, Tx> {
    #[inline]
    fn notify(&mut self, queue: QueueId) -> Result<(), Error> {
        send(self.regs, N, RawId::encode(queue))
    }
}

/// The kick is the raw vring id (sheet §4.1, §4.2).
impl<R: Regs32> Notify for AnyQueue<R, Tx> {
    #[inline]
    fn notify(&mut self, queue: QueueId) -> Result<(), Error> {
        send(self.regs, self.index, RawId::encode(queue))
    }
}

// ---------------------------------------------------------------------------
// Interrupts
// ---------------------------------------------------------------------------

/// What one user's interrupt entry has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IrqCounters {
    /// Calls of [`InterruptSource::on_interrupt`].
    pub calls: u32,
    /// Calls that found nothing pending (spurious or already serviced).
    pub spurious: u32,
    /// Events reported by the hardware for a queue and event outside the
    /// set given to [`Irq::set_owned`] (acknowledged, disabled, not
    /// reported).
    pub unowned: u32,
}

/// One user's interrupt entry: reads `IRQSTATUS_CLR_u` once and acknowledges
/// exactly what it read.
#[derive(Debug)]
pub struct Irq<R> {
    regs: R,
    user: User,
    /// Events this program owns, in interrupt-register layout.
    owned: u32,
    counters: IrqCounters,
}

impl<R: Regs32> Irq<R> {
    /// The user whose interrupt output this is.
    pub const fn user(&self) -> User {
        self.user
    }

    /// What this entry has seen so far.
    pub const fn counters(&self) -> IrqCounters {
        self.counters
    }

    /// Declares which queue events this program owns (by default: all).
    ///
    /// A pending event outside `owned` (a `NEWMSG` or `NOTFULL` that some
    /// other agent enabled for this user, for example a queue nobody here
    /// configured) is acknowledged, **disabled** through `IRQENABLE_CLR_u`
    /// (it belongs to no handle, so nothing is taken from anyone), counted in
    /// [`IrqCounters::unowned`], and not reported.
    pub fn set_owned(&mut self, owned: Events) {
        self.owned = (0..16u8).fold(0, |acc, m| {
            acc | if owned.data_available & (1 << m) != 0 {
                newmsg(m)
            } else {
                0
            } | if owned.space_available & (1 << m) != 0 {
                notfull(m)
            } else {
                0
            }
        });
    }
}

impl<R: Regs32> InterruptSource for Irq<R> {
    /// Reads this user's masked status (`IRQSTATUS_CLR_u` = raw AND enable,
    /// sheet §2), write-1-clears exactly those bits, reads the register back
    /// so the posted write has landed (sheet §2.1, §5 item 4), and reports
    /// `NEWMSGm` as `data_available` bit m and `NOTFULLm` as
    /// `space_available` bit m.
    ///
    /// Both events are level-like: the hardware re-asserts them at once while
    /// the queue still holds a word (`NEWMSG`) or still has room (`NOTFULL`),
    /// so acknowledging never loses an event (sheet §2.1). Events outside
    /// [`Irq::set_owned`] are disabled and counted instead of reported.
    /// Finding nothing pending is counted in [`IrqCounters::spurious`]. A
    /// handler that has nothing more to send should `unlisten`
    /// `SpaceAvailable`, as Linux does (sheet §3.2).
    fn on_interrupt(&mut self) -> Events {
        let u = self.user.index();
        self.counters.calls = self.counters.calls.wrapping_add(1);
        let status = self.regs.read(irqstatus_clr_offset(u));
        if status == 0 {
            self.counters.spurious = self.counters.spurious.wrapping_add(1);
            return Events::NONE;
        }
        self.regs.write(irqstatus_clr_offset(u), status);
        let foreign = status & !self.owned;
        if foreign != 0 {
            self.regs.write(irqenable_clr_offset(u), foreign);
            self.counters.unowned = self.counters.unowned.wrapping_add(foreign.count_ones());
        }
        let _ = self.regs.read(irqstatus_clr_offset(u));
        self.regs.io_rmb();
        let status = status & self.owned;
        Events {
            data_available: per_queue(status & NEWMSG_MASK, 0),
            space_available: per_queue(status & NOTFULL_MASK, 1),
            other: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_queue_gathers_even_and_odd_bits() {
        assert_eq!(
            per_queue(newmsg(0) | newmsg(5) | newmsg(15), 0),
            0b1000_0000_0010_0001
        );
        assert_eq!(
            per_queue(notfull(1) | notfull(15), 1),
            0b1000_0000_0000_0010
        );
        assert_eq!(per_queue(NOTFULL_MASK, 0), 0);
        assert_eq!(per_queue(NEWMSG_MASK, 1), 0);
    }

    #[test]
    fn event_bits_follow_direction() {
        assert_eq!(event_bit::<Rx>(3, Event::DataAvailable), Ok(newmsg(3)));
        assert_eq!(event_bit::<Tx>(3, Event::SpaceAvailable), Ok(notfull(3)));
        assert_eq!(
            event_bit::<Tx>(3, Event::DataAvailable),
            Err(Error::EventNotAvailable(Event::DataAvailable))
        );
        assert!(event_bit::<Unconfigured>(0, Event::DataAvailable).is_err());
        assert!(event_bit::<Unconfigured>(0, Event::SpaceAvailable).is_err());
    }
}
