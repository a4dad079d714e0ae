//! `ethtool` on mlx5 interfaces (feature `net`; the words are
//! [`cxos_kernel::ethtool`]'s): the queue set's run-time switches
//! (`mlx5::QueueSet::set_cq_moderation`, `set_tx_cq_moderation`, `set_cq_every`,
//! `set_cqe_compression`, `set_empw`, `set_blueflame`) and what is in force
//! (`mlx5::QueueSet::tuning`); the same settings from `net.<i>=` items
//! when the port opens ([`eth_config`]).

use alloc::format;
use alloc::string::String;

use cxos_kernel::ethtool::{Ethtool, Shown, Tune, coalesce_text, priv_flags_text};
use mlx5::queue_set::Tuning;
use mlx5::{Control, EthConfig, QueueSet};

use super::Mlx5Vnic;

/// Run `cmd` on its interface: the text to print (empty after a change,
/// as stock ethtool prints nothing), `Err` why not; `None` when no mlx5
/// interface has that name.
pub fn run(cmd: Ethtool<'_>) -> Option<Result<String, String>> {
    let name = cmd.interface();
    crate::netstack::with_net::<Mlx5Vnic, _>(name, |net| {
        let qs = net.device_mut().queue_set_mut();
        match cmd {
            Ethtool::ShowCoalesce(_) => Ok(coalesce_text(name, &shown(qs.tuning()))),
            Ethtool::ShowPrivFlags(_) => Ok(priv_flags_text(name, &shown(qs.tuning()))),
            Ethtool::Coalesce(_, t) | Ethtool::SetPrivFlags(_, t) => {
                apply(qs, &t).map(|()| String::new())
            }
        }
    })
}

/// `net.<i>=` items given at run time (`ifconfig net0 ...,rx-usecs=8`):
/// applied to the open interface now; `None` when it is not open.
pub fn apply_to(name: &str, t: &Tune) -> Option<Result<(), String>> {
    crate::netstack::with_net::<Mlx5Vnic, _>(name, |net| apply(net.device_mut().queue_set_mut(), t))
}

/// Change what `t` gives; the first refusal stops (settings before it
/// stay changed).
pub fn apply<C: Control>(qs: &mut QueueSet<C>, t: &Tune) -> Result<(), String> {
    if t.rx_usecs.is_some() || t.rx_frames.is_some() {
        let (p, n) = qs.tuning().cq_moderation.unwrap_or((0, 0));
        let m = (t.rx_usecs.unwrap_or(p), t.rx_frames.unwrap_or(n));
        qs.set_cq_moderation(Some(m))
            .map_err(|e| format!("rx-usecs/rx-frames: {e}"))?;
    }
    if t.tx_usecs.is_some() || t.tx_frames.is_some() {
        let (p, n) = qs.tuning().tx_cq_moderation.unwrap_or((0, 0));
        let m = (t.tx_usecs.unwrap_or(p), t.tx_frames.unwrap_or(n));
        qs.set_tx_cq_moderation(Some(m))
            .map_err(|e| format!("tx-usecs/tx-frames: {e}"))?;
    }
    if let Some(n) = t.tx_cqe_every {
        qs.set_cq_every(n);
    }
    if let Some(on) = t.rx_cqe_compress {
        qs.set_cqe_compression(on)
            .map_err(|e| format!("rx_cqe_compress: {e}"))?;
    }
    if let Some(on) = t.skb_tx_mpwqe {
        qs.set_empw(on).map_err(|e| format!("skb_tx_mpwqe: {e}"))?;
    }
    if let Some(on) = t.tx_blueflame {
        qs.set_blueflame(on)
            .map_err(|e| format!("tx_blueflame: {e}"))?;
    }
    Ok(())
}

/// The settings of a port's queue sets before they open (a technique
/// the part lacks is ignored there, as the driver's options are).
pub fn eth_config(cfg: &mut EthConfig, t: &Tune) {
    if t.rx_usecs.is_some() || t.rx_frames.is_some() {
        let (p, n) = cfg.cq_moderation.unwrap_or((0, 0));
        let m = (t.rx_usecs.unwrap_or(p), t.rx_frames.unwrap_or(n));
        cfg.cq_moderation = (m != (0, 0)).then_some(m);
    }
    if t.tx_usecs.is_some() || t.tx_frames.is_some() {
        let (p, n) = cfg.tx_cq_moderation.unwrap_or((0, 0));
        let m = (t.tx_usecs.unwrap_or(p), t.tx_frames.unwrap_or(n));
        cfg.tx_cq_moderation = (m != (0, 0)).then_some(m);
    }
    if let Some(n) = t.tx_cqe_every {
        cfg.cq_every = n;
    }
    if let Some(on) = t.rx_cqe_compress {
        cfg.cqe_compression = on;
    }
    if let Some(on) = t.skb_tx_mpwqe {
        cfg.empw = match (on, cfg.empw) {
            (false, _) => None,
            (true, Some(i)) => Some(i),
            (true, None) => Some(0),
        };
    }
    if let Some(on) = t.tx_blueflame {
        cfg.blueflame = on;
    }
}

fn shown(t: Tuning) -> Shown {
    let (rx_usecs, rx_frames) = t.cq_moderation.unwrap_or((0, 0));
    let (tx_usecs, tx_frames) = t.tx_cq_moderation.unwrap_or((0, 0));
    Shown {
        rx_usecs,
        rx_frames,
        tx_usecs,
        tx_frames,
        tx_cqe_every: t.cq_every,
        flags: [t.cqe_compression, t.empw, t.blueflame],
    }
}
