//! `--net`: each SoC's two cores run smoltcp over `rpmsg::net` on the SoC's
//! wiring (`conformance::net` has the exchange and the table).

use std::process::ExitCode;

use conformance::net::{exchange, print_header, print_row, Bells, NetReport, DEMO};
use conformance::sim::CacheConfig;

use super::soc::{self, Core, Soc, Wiring, AM62X, IMX8, OCTEON, V853};

fn cache(core: Core, seed: u64) -> CacheConfig {
    if core.coherent {
        CacheConfig::COHERENT
    } else {
        CacheConfig::write_back(seed)
    }
}

/// Runs `soc`'s exchange with its cores' line sizes.
fn run(soc: &Soc) -> Result<NetReport, String> {
    macro_rules! on {
        ($spec:ident, $wiring:expr) => {{
            let Wiring { master, remote } = $wiring?;
            exchange::<{ $spec.master.line }, { $spec.remote.line }, _, _, _, _>(
                soc.shm_base,
                cache(soc.master, 1),
                cache(soc.remote, 2),
                Bells {
                    ring: master.ring,
                    take: master.take,
                },
                Bells {
                    ring: remote.ring,
                    take: remote.take,
                },
                &DEMO,
            )
        }};
    }
    match soc.name {
        "imx8" => on!(IMX8, soc::imx8()),
        "am62x" => on!(AM62X, soc::am62x()),
        "v853" => on!(V853, soc::v853()),
        "octeon" => on!(OCTEON, soc::octeon()),
        other => Err(format!("no wiring for {other}")),
    }
}

/// The `--net` table; success only if every SoC passed.
pub fn main() -> ExitCode {
    print_header();
    let mut ok = true;
    for soc in &soc::ALL {
        let (m, r) = (soc.master, soc.remote);
        let cores = format!("{} {} B / {} {} B", m.name, m.line, r.name, r.line);
        ok &= print_row(soc.name, &cores, &run(soc));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
