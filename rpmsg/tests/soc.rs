//! Each SoC feature's notifier types implement the doorbell contracts a
//! link needs, over the MMIO register view firmware uses.

use ipc_traits::mailbox::{Notify, NotifyRx};
use ipc_traits::regs::{Mmio32, Mmio64};

fn link_notifier<T: Notify>() {}
fn link_receiver<T: NotifyRx>() {}

#[test]
fn soc_notifiers_fit_a_link() {
    link_notifier::<rpmsg::soc::imx8::Notifier<Mmio32>>();
    link_receiver::<rpmsg::soc::imx8::NotifyReceiver<Mmio32>>();
    link_notifier::<rpmsg::soc::am62x::Notifier<Mmio32, 0>>();
    link_receiver::<
        rpmsg::soc::am62x::NotifyReceiver<
            rpmsg::soc::am62x::backend::AnyQueue<Mmio32, rpmsg::soc::am62x::backend::Rx>,
        >,
    >();
    link_notifier::<rpmsg::soc::v853::Notifier<Mmio32, 0>>();
    link_receiver::<rpmsg::soc::v853::NotifyReceiver<Mmio32, 0>>();
    link_notifier::<rpmsg::soc::octeon::Notifier<Mmio64, 2>>();
    link_receiver::<rpmsg::soc::octeon::NotifyReceiver<Mmio64, 2>>();
    assert_eq!(rpmsg::soc::v853::RPMSG_CHANNEL, 0);
    assert_eq!(rpmsg::soc::am62x::convention::LINUX_TO_M4F, 1);
}
