//! The four SoCs of the demo and how each one's mailbox is wired.
//!
//! Every SoC gets the same shape: the master (the application core, where
//! Linux would run) and the remote (the MCU core) each hold a doorbell
//! towards the peer (`Notify`) and a receiver for their own inbox
//! (`NotifyRx`), built from the backend's simulated peripheral with the
//! same driver calls firmware makes on silicon. These functions are the
//! part of the demo to copy when wiring a real board: only the register
//! handle changes (`Mmio32::new(base, len)` instead of the simulation).
#![deny(unsafe_code)]

use ipc_traits::mailbox::{Event, Listen, Mailbox};

/// One core's doorbells: `ring` kicks the peer, `take` learns which queues
/// the peer kicked.
pub struct Doorbells<N, T> {
    /// The doorbell towards the peer.
    pub ring: N,
    /// This core's pending notifications.
    pub take: T,
}

/// Both cores' doorbells of one SoC.
pub struct Wiring<MN, MT, RN, RT> {
    /// The application core's.
    pub master: Doorbells<MN, MT>,
    /// The MCU core's.
    pub remote: Doorbells<RN, RT>,
}

/// One core of a pair, as the demo simulates it.
#[derive(Debug, Clone, Copy)]
pub struct Core {
    /// The core's name.
    pub name: &'static str,
    /// Its data-cache line in bytes.
    pub line: usize,
    /// Hardware-coherent with the other core: no cache to maintain. When
    /// false, the core sees shared memory through a write-back cache that
    /// evicts lines at random, not coherent with the peer.
    pub coherent: bool,
}

const fn cached(name: &'static str, line: usize) -> Core {
    Core {
        name,
        line,
        coherent: false,
    }
}

/// What the demo prints and configures per SoC.
#[derive(Debug, Clone, Copy)]
pub struct Soc {
    /// The `--soc` name.
    pub name: &'static str,
    /// The application core (the rpmsg master, Linux's role).
    pub master: Core,
    /// The MCU core (the rpmsg remote).
    pub remote: Core,
    /// The bus address of the shared window, as a board would place it.
    pub shm_base: u64,
}

/// NXP i.MX8M Mini: Cortex-A53 and Cortex-M4 over the Messaging Unit.
///
/// Lines: A53 64 B (cache-and-wake.md §3), M4 LMEM 16 B (§2). Window at
/// the board's `vdev0vring0` (imx8-mu.md §5).
pub const IMX8: Soc = Soc {
    name: "imx8",
    master: cached("A53", 64),
    remote: cached("M4", 16),
    shm_base: 0xB800_0000,
};

/// TI AM62x: Cortex-A53 and Cortex-M4F over the K3 mailbox.
///
/// Lines: A53 64 B (cache-and-wake.md §3). The sheets give no data cache
/// for the M4F; the demo gives it a 32-byte write-back cache anyway, which
/// can only make the exchange harder (UNCERTAIN). Window at the M4F's DMA
/// pool (am62x-mailbox.md §4.3).
pub const AM62X: Soc = Soc {
    name: "am62x",
    master: cached("A53", 64),
    remote: cached("M4F", 32),
    shm_base: 0x9CB0_0000,
};

/// Allwinner V853: Cortex-A7 and XuanTie E907 over the msgbox.
///
/// Lines: A7 64 B (cache-and-wake.md §3), E907 32 B (§4, UNVERIFIED for
/// V853). Window at the board's `vdev0buffer` (v853-msgbox.md §4).
pub const V853: Soc = Soc {
    name: "v853",
    master: cached("A7", 64),
    remote: cached("E907", 32),
    shm_base: 0x4700_0000,
};

/// Cavium OCTEON CN7130: two cnMIPS64 cores in AMP over CIU mailbox
/// doorbells, in coherent memory (cache-and-wake.md §5: 128-byte lines, no
/// maintenance needed). The sheets give no board convention for the
/// window; the base is the demo's choice.
pub const OCTEON: Soc = Soc {
    name: "octeon",
    master: Core {
        name: "cnMIPS",
        line: 128,
        coherent: true,
    },
    remote: Core {
        name: "cnMIPS",
        line: 128,
        coherent: true,
    },
    shm_base: 0x0800_0000,
};

/// Every SoC, in the order the demo runs them.
pub const ALL: [Soc; 4] = [IMX8, AM62X, V853, OCTEON];

/// i.MX8M MU types: both sides use channel 1 with rpmsg-lite's encoding.
pub type MuRing = mu_imx8::RpmsgNotify<mu_imx8::sim::SimRegs>;
/// See [`MuRing`].
pub type MuTake = mu_imx8::RpmsgNotifyRx<mu_imx8::sim::SimRegs>;

/// The MU: side A is the Cortex-A53, side B the Cortex-M4 (imx8-mu.md
/// §1). rpmsg kicks travel on channel 1 as `vq_id << 16`, both ways (§6:
/// `TR1`/`RR1`, receive interrupt `RIE1`).
pub fn imx8() -> Result<Wiring<MuRing, MuTake, MuRing, MuTake>, String> {
    use mu_imx8::sim::{Side, Sim};
    use mu_imx8::Mu;

    let sim = Sim::new();
    let a53 = Mu::new(sim.side(Side::A)).split();
    let m4 = Mu::new(sim.side(Side::B)).split();
    let (mut a53_rx, mut m4_rx) = (a53.rx1, m4.rx1);
    a53_rx
        .listen(Event::DataAvailable)
        .map_err(|e| e.to_string())?;
    m4_rx
        .listen(Event::DataAvailable)
        .map_err(|e| e.to_string())?;
    Ok(Wiring {
        master: Doorbells {
            ring: a53.tx1.into_rpmsg_notify(),
            take: a53_rx.into_rpmsg_notify_rx(),
        },
        remote: Doorbells {
            ring: m4.tx1.into_rpmsg_notify(),
            take: m4_rx.into_rpmsg_notify_rx(),
        },
    })
}

type K3Regs = mbox_am62x::sim::SimRegs<'static>;
/// AM62x types: a transmit queue, and a receive queue decoding kicks.
pub type K3Ring = mbox_am62x::AnyQueue<K3Regs, mbox_am62x::Tx>;
/// See [`K3Ring`].
pub type K3Take = mbox_am62x::KickRx<mbox_am62x::AnyQueue<K3Regs, mbox_am62x::Rx>>;

/// Cluster 0 of the K3 mailbox with Linux's queue assignment
/// (am62x-mailbox.md §3.1): the A53 is user 0 and receives on queue 0
/// (M4F → A53); the M4F is user 2 and receives on queue 1 (A53 → M4F).
/// Each message is the raw vring id (§4.1).
pub fn am62x() -> Result<Wiring<K3Ring, K3Take, K3Ring, K3Take>, String> {
    use mbox_am62x::sim::Cluster;
    use mbox_am62x::{KickRx, Mbox, User, FIFO_DEPTH};

    let cluster = Cluster::new_static();
    let a53 = Mbox::new(cluster.regs(), User::A53).split();
    let m4f = Mbox::new(cluster.regs(), User::M4F).split();
    let mut a53_rx = a53.q0.into_rx();
    let mut m4f_rx = m4f.q1.into_rx();
    a53_rx
        .listen(Event::DataAvailable)
        .map_err(|e| e.to_string())?;
    m4f_rx
        .listen(Event::DataAvailable)
        .map_err(|e| e.to_string())?;
    // Drain at most one FIFO's worth of words per interrupt.
    let drain = FIFO_DEPTH as u32;
    Ok(Wiring {
        master: Doorbells {
            ring: a53.q1.into_tx().degrade(),
            take: KickRx::new(a53_rx.degrade(), drain),
        },
        remote: Doorbells {
            ring: m4f.q0.into_tx().degrade(),
            take: KickRx::new(m4f_rx.degrade(), drain),
        },
    })
}

type AwRegs = msgbox_v853::sim::SimRegs<'static>;
/// V853 types: channel 0 carrying raw vring ids.
pub type AwRing = msgbox_v853::Notifier<AwRegs, 0>;
/// See [`AwRing`].
pub type AwTake = msgbox_v853::NotifyReceiver<AwRegs, 0>;

/// The msgbox: each processor writes channel 0 of the peer's block and
/// reads its own (v853-msgbox.md §3); rpmsg uses channel 0 and sends the
/// raw vring id (§4).
pub fn v853() -> Result<Wiring<AwRing, AwTake, AwRing, AwTake>, String> {
    use msgbox_v853::registers::{Processor, FIFO_DEPTH};
    use msgbox_v853::sim::MsgboxSim;

    let sim = MsgboxSim::new_static();
    let a7 = sim.msgbox(Processor::Arm).split();
    let e907 = sim.msgbox(Processor::Riscv).split();
    let (mut a7_rx, mut e907_rx) = (a7.rx0, e907.rx0);
    a7_rx
        .listen(Event::DataAvailable)
        .map_err(|e| e.to_string())?;
    e907_rx
        .listen(Event::DataAvailable)
        .map_err(|e| e.to_string())?;
    Ok(Wiring {
        master: Doorbells {
            ring: a7.tx0.into_notify(),
            take: a7_rx.into_notify_rx(FIFO_DEPTH),
        },
        remote: Doorbells {
            ring: e907.tx0.into_notify(),
            take: e907_rx.into_notify_rx(FIFO_DEPTH),
        },
    })
}

/// OCTEON types: one mailbox bit per vring.
pub type CiuRing = mbox_octeon::TxQueues<mbox_octeon::sim::CoreRegs, 2>;
/// See [`CiuRing`].
pub type CiuTake = mbox_octeon::RxQueues<mbox_octeon::sim::CoreRegs, 2>;

/// A CN7130 (4 cores): the master is core 0, the remote core 1. The mailbox
/// bit carries no payload, so each vring gets its own bit
/// (octeon-ciu-mbox.md §4.1); bits 4 and 5 are ones a Linux core can
/// allocate for itself (`octeon_request_ipi_handler`, free mask `0xf8`).
pub fn octeon() -> Result<Wiring<CiuRing, CiuTake, CiuRing, CiuTake>, String> {
    use mbox_octeon::sim::Ciu;
    use mbox_octeon::{CoreId, RxQueues, TxQueues};

    let ciu = Ciu::cn7130();
    let claim = |me: u8, peer: u8| -> Result<Doorbells<CiuRing, CiuTake>, String> {
        let mut parts = ciu.mbox(me).split();
        let peer = CoreId::new(peer).ok_or_else(|| format!("no core {peer}"))?;
        let ring = TxQueues::new([
            parts.outbox.bit4.into_tx(&parts.irq, peer).degrade(),
            parts.outbox.bit5.into_tx(&parts.irq, peer).degrade(),
        ]);
        let mut take = RxQueues::new([
            parts.inbox.bit4.into_rx(&mut parts.irq).degrade(),
            parts.inbox.bit5.into_rx(&mut parts.irq).degrade(),
        ])
        .map_err(|(_, e)| e.to_string())?;
        take.listen(Event::DataAvailable)
            .map_err(|e| e.to_string())?;
        Ok(Doorbells { ring, take })
    };
    Ok(Wiring {
        master: claim(0, 1)?,
        remote: claim(1, 0)?,
    })
}
