//! Linux's side of the A53 ↔ M4F mailbox, register by register.
//!
//! Models `drivers/mailbox/omap-mailbox.c` plus the mailbox framework's
//! submit/tx-done cycle and the K3 remoteproc receive callback, as the sheet
//! describes them (`am62x-mailbox.md` §3.1, §3.2, §4.1).
#![deny(unsafe_code)]

use std::collections::VecDeque;

use ipc_traits::regs::Regs32;

use super::SimRegs;
use crate::convention::{LINUX_TO_M4F, LINUX_USER, M4F_TO_LINUX};
use crate::kick::RpMbox;
use crate::registers::{
    fifostatus_offset, irqenable_clr_offset, irqenable_set_offset, irqstatus_clr_offset,
    message_offset, msgstatus_offset, newmsg, notfull, QUEUES,
};

/// What Linux's receive path did with one word (sheet §4.1 "Receive").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinuxRx {
    /// `rproc_vq_interrupt(rproc, id)`: a kick for vring `id`.
    Vring(u32),
    /// `RP_MBOX_CRASH` or `RP_MBOX_ECHO_REPLY`: logged.
    Logged(RpMbox),
    /// Another value in `[RP_MBOX_READY, RP_MBOX_END_MSG)`: ignored.
    Ignored(u32),
    /// Larger than the highest notify id: dropped.
    Dropped(u32),
}

/// `RP_MBOX_END_MSG` in current kernels (sheet §4.1 table).
const RP_MBOX_END_MSG: u32 = 0xFFFF_FF14;

/// Bound on words drained per interrupt (the model must not spin forever on
/// a queue another agent keeps filling).
const DRAIN_BOUND: usize = 64;

/// Linux (user 0 of cluster 0) talking to the M4F: receives on queue 0, sends
/// on queue 1 (sheet §3.1).
#[derive(Debug)]
pub struct LinuxPeer<'c> {
    regs: SimRegs<'c>,
    /// The mailbox framework's software queue of words to send.
    pending: VecDeque<u32>,
    /// The word sent and waiting for its tx-done (`chan->active_req`).
    active: Option<u32>,
    max_notifyid: u32,
    received: Vec<LinuxRx>,
    tx_done: u32,
    busy: u32,
}

impl<'c> LinuxPeer<'c> {
    /// Linux's view of the cluster behind `regs`, with vrings `0..=1` (a
    /// standard resource table, sheet §4.1).
    pub fn new(regs: SimRegs<'c>) -> Self {
        Self {
            regs,
            pending: VecDeque::new(),
            active: None,
            max_notifyid: 1,
            received: Vec::new(),
            tx_done: 0,
            busy: 0,
        }
    }

    fn u(&self) -> u8 {
        LINUX_USER.index()
    }

    /// Channel startup: enable `NEWMSG(0)` for user 0 (sheet §3.2 receive
    /// step 1), then send `RP_MBOX_ECHO_REQUEST` as Linux does when it
    /// requests the channel (sheet §4.1).
    pub fn startup(&mut self) {
        self.regs
            .write(irqenable_set_offset(self.u()), newmsg(M4F_TO_LINUX));
        self.send_word(RpMbox::EchoRequest.word());
    }

    /// Kicks vring `id` (the raw id is the word, sheet §4.1).
    pub fn kick(&mut self, id: u32) {
        self.send_word(id);
    }

    /// Sends a control message (for example a suspend request).
    pub fn send_control(&mut self, message: RpMbox) {
        self.send_word(message.word());
    }

    /// Queues `word` in the framework and tries to submit it.
    pub fn send_word(&mut self, word: u32) {
        self.pending.push_back(word);
        self.submit();
    }

    /// `msg_submit`: if no word waits for tx-done, hand the next to
    /// `omap_mbox_chan_send_data` (sheet §3.2 sending).
    fn submit(&mut self) {
        if self.active.is_some() {
            return;
        }
        let Some(&word) = self.pending.front() else {
            return;
        };
        let u = self.u();
        let q = LINUX_TO_M4F;
        // Step 1: full → enable NOTFULL and report busy; the word stays
        // queued and is resubmitted on the next tx-done.
        let full = self.regs.read(fifostatus_offset(q)) != 0;
        if !full {
            // Step 2: write the word.
            self.regs.write(message_offset(q), word);
            self.pending.pop_front();
            self.active = Some(word);
        } else {
            self.busy += 1;
        }
        // In both cases Linux then sets NOTFULL(q) in IRQENABLE_SET_u, as a
        // read-modify-write of that register (sheet §3.2 steps 1-2).
        let enables = self.regs.read(irqenable_set_offset(u));
        self.regs
            .write(irqenable_set_offset(u), enables | notfull(q));
    }

    /// The interrupt handler (sheet §3.2 receive step 2-3, sending step 3).
    /// Returns whether it found anything to do.
    pub fn on_interrupt(&mut self) -> bool {
        let u = self.u();
        let enables = self.regs.read(irqenable_set_offset(u));
        let status = self.regs.read(irqstatus_clr_offset(u));
        let mut handled = false;
        // TX: NOTFULL means tx-done.
        let tx_bit = notfull(LINUX_TO_M4F);
        if enables & status & tx_bit != 0 {
            self.regs.write(irqenable_clr_offset(u), tx_bit);
            self.regs.write(irqstatus_clr_offset(u), tx_bit);
            let _ = self.regs.read(irqstatus_clr_offset(u));
            if self.active.take().is_some() {
                self.tx_done += 1;
            }
            self.submit();
            handled = true;
        }
        // RX: drain while MSGSTATUS != 0, then clear NEWMSG and read back.
        let rx_bit = newmsg(M4F_TO_LINUX);
        if enables & status & rx_bit != 0 {
            for _ in 0..DRAIN_BOUND {
                if self.regs.read(msgstatus_offset(M4F_TO_LINUX)) == 0 {
                    break;
                }
                let word = self.regs.read(message_offset(M4F_TO_LINUX));
                self.receive(word);
            }
            self.regs.write(irqstatus_clr_offset(u), rx_bit);
            let _ = self.regs.read(irqstatus_clr_offset(u));
            handled = true;
        }
        handled
    }

    /// Runs the interrupt handler while user 0's line is high (bounded).
    /// Returns how many times it ran.
    pub fn service(&mut self) -> u32 {
        let mut runs = 0;
        while runs < 16 && self.regs.cluster().line(LINUX_USER) {
            self.on_interrupt();
            runs += 1;
        }
        runs
    }

    /// The K3 remoteproc receive callback (sheet §4.1).
    fn receive(&mut self, word: u32) {
        let what = match RpMbox::from_word(word) {
            Some(m @ (RpMbox::Crash | RpMbox::EchoReply)) => LinuxRx::Logged(m),
            _ if (RpMbox::Ready.word()..RP_MBOX_END_MSG).contains(&word) => LinuxRx::Ignored(word),
            _ if word > self.max_notifyid => LinuxRx::Dropped(word),
            _ => LinuxRx::Vring(word),
        };
        self.received.push(what);
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> &[LinuxRx] {
        &self.received
    }

    /// Takes everything received so far.
    pub fn take_received(&mut self) -> Vec<LinuxRx> {
        std::mem::take(&mut self.received)
    }

    /// Tx-done completions (one per word sent).
    pub fn tx_done(&self) -> u32 {
        self.tx_done
    }

    /// Times a send found the queue full and reported busy.
    pub fn busy(&self) -> u32 {
        self.busy
    }

    /// Words the framework still holds (not yet written to the queue).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether a sent word still waits for its tx-done.
    pub fn awaiting_tx_done(&self) -> bool {
        self.active.is_some()
    }

    /// Whether kernels before the Nov-2025 patch would allow system suspend:
    /// every queue of the cluster empty (sheet §3.2 "Suspend").
    pub fn system_suspend_allowed(&self) -> bool {
        (0..QUEUES).all(|q| self.regs.read(msgstatus_offset(q)) == 0)
    }
}
