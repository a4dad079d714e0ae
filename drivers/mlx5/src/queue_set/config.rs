//! A queue set's settings ([`EthConfig`]) and the sizes derived from them
//! and the part's capabilities (buffer and ring sizes, receive queue kind,
//! queue count).

use super::QueueSet;
use crate::control::Control;
use crate::rq::RqKind;
use crate::sq;

/// Data path settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EthConfig {
    /// IP MTU; receive and transmit buffers hold MTU + 18 bytes.
    pub mtu: usize,
    /// log2 of the SQ and transmit buffer count.
    pub log_sq: u8,
    /// log2 of the RQ and receive buffer count.
    pub log_rq: u8,
    /// A transmit completion is requested every this many WQEs (and at
    /// the end of every batch).
    pub cq_every: u16,
    /// Interrupt-driven (CQs armed, completion EQ consumed) or polled.
    pub interrupts: bool,
    /// log2 of the root flow table size (2^n - 2 MACs: the function's,
    /// broadcast, multicast groups, VNICs).
    pub flow_log_size: u8,
    /// log2 of each per-MAC VLAN table's size (2^n - 1 VLANs per MAC).
    pub vlan_log_size: u8,
    /// Strip VLAN tags on receive into [`cxos_drivers::RxMeta::vlan`] (when the part
    /// can); off: tagged frames arrive as they were on the wire.
    pub vlan_strip: bool,
    /// 64 KiB transmit buffers for LSO frames (0: no LSO).
    pub lso_bufs: u8,
    /// Receive queues (each with its own CQ, spread over the completion
    /// EQs); more than one spreads flows by RSS (rounded down to a power
    /// of two).
    pub rss_queues: u8,
    /// The Toeplitz key of the RSS TIRs.
    pub rss_key: [u8; 40],
    /// Cyclic or striding (multi-packet) receive queues.
    pub rq_kind: RqChoice,
    /// Receive CQs write compressed CQE sessions (mini-CQE arrays with
    /// the checksum, or the hash: `cqe_compression_hash`) where the part
    /// can (`cqe_compression`).
    pub cqe_compression: bool,
    /// With `cqe_compression`: the mini-CQEs carry each frame's RSS hash
    /// (`mini_cqe_res_format` 0) instead of its checksum (1); every
    /// frame's checksum results are then the session's title's.
    pub cqe_compression_hash: bool,
    /// Transmit bursts as enhanced multi-packet send sessions where the
    /// part can (`enhanced_multi_pkt_send_wqe`, no inline-header rule), or
    /// as legacy MPW sessions where it has `multi_pkt_send_wqe` instead
    /// (ConnectX-4 Lx), inlining frames up to this many bytes (at most
    /// [`sq::EMPW_MAX_INLINE`]); `None`: one WQE per frame. On by default
    /// on ConnectX-4 Lx too, where Linux's `skb_tx_mpwqe` (which needs the
    /// enhanced form) and DPDK's `txq_mpw_en` are off: the legacy sessions
    /// take fewer instructions per frame than a WQE per frame there
    /// (BENCHMARKS.md), and they are built from the driver's own buffers.
    pub empw: Option<u16>,
    /// Receive CQ event moderation `(cq_period µs, cq_max_count)` where
    /// the part can (`cq_moderation`; elsewhere the option is ignored, as
    /// `cqe_compression` is): an event after that many CQEs or that long
    /// after the first unsignalled one. `None`: an event per armed CQE.
    pub cq_moderation: Option<(u16, u16)>,
    /// Transmit CQ event moderation, the same way (Linux's `ethtool -C
    /// tx-usecs/tx-frames`): an event after that many transmit CQEs or
    /// that long after the first unsignalled one. Independent of
    /// `cq_every`, which decides which WQEs write a CQE at all.
    pub tx_cq_moderation: Option<(u16, u16)>,
    /// BlueFlame doorbells for small batches where the part has `bf`
    /// ([`sq::SqConfig::bf`]).
    pub blueflame: bool,
}

/// Which receive queue kind [`QueueSet::open`] creates.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum RqChoice {
    /// Striding where the part has it (`striding_rq`), cyclic elsewhere.
    #[default]
    Auto,
    Cyclic,
    /// Striding, or the open fails on a part without it.
    Striding,
}

impl Default for EthConfig {
    fn default() -> Self {
        Self {
            mtu: crate::adapter::DEFAULT_IP_MTU,
            log_sq: 9,
            log_rq: 9,
            cq_every: 32,
            interrupts: true,
            flow_log_size: 6,
            vlan_log_size: 4,
            vlan_strip: false,
            lso_bufs: 4,
            rss_queues: 1,
            rss_key: crate::rss::DEFAULT_KEY,
            rq_kind: RqChoice::Auto,
            cqe_compression: false,
            cqe_compression_hash: false,
            empw: Some(0),
            cq_moderation: None,
            tx_cq_moderation: None,
            blueflame: false,
        }
    }
}

/// Ethernet header plus one VLAN tag.
pub const L2_OVERHEAD: usize = 18;
/// One LSO transmit buffer: the largest LSO frame, 64-byte aligned.
pub const LSO_BUF_SIZE: usize = sq::MAX_LSO_FRAME.div_ceil(64) * 64;
/// Header room kept out of the LSO payload limit (any Ethernet + IP + TCP
/// headers fit).
pub const LSO_HEADROOM: usize = 256;

/// Receive queue sizes ([`QueueSet::rx_geometry`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct RxGeometry {
    pub(super) kind: RqKind,
    pub(super) log_wqes: u8,
    pub(super) buf_size: usize,
    pub(super) cq_log: u8,
}

impl<C: Control> QueueSet<C> {
    /// The receive queues' kind and sizes. Cyclic: 2^log_rq buffers of
    /// MTU + 18 bytes, a CQE per buffer. Striding: WQEs of 512 strides of
    /// 64 bytes (or the part's smallest stride), a power of two of them
    /// (at least 4) holding at least 2^log_rq frames of the MTU, as the
    /// cyclic ring does, a CQE per stride. Fewer (the cyclic ring's
    /// memory, rounded down: 8 WQEs, 168 frames for log_rq 8) dropped
    /// frames of one 256 KiB TCP window sent at once.
    pub(super) fn rx_geometry(&self) -> RxGeometry {
        let cfg = self.cfg;
        let c = self.res.caps;
        let frame = cfg.mtu + L2_OVERHEAD;
        let striding = match cfg.rq_kind {
            RqChoice::Cyclic => false,
            RqChoice::Auto | RqChoice::Striding => c.striding_rq,
        };
        let log_stride = c.log_min_stride.max(crate::wq::LOG_STRIDE_SZ_BASE);
        let log_strides = crate::wq::LOG_NUM_STRIDES_BASE;
        let wqe = 1usize << (log_strides + log_stride);
        if !striding || frame > wqe || (c.log_max_stride != 0 && log_stride > c.log_max_stride) {
            return RxGeometry {
                kind: RqKind::Cyclic,
                log_wqes: cfg.log_rq,
                buf_size: frame,
                cq_log: cfg.log_rq,
            };
        }
        // A frame never straddles WQEs (the device ends one with a filler).
        let per_wqe = (1usize << log_strides) / frame.div_ceil(1 << log_stride);
        let log_wqes = (1usize << cfg.log_rq)
            .div_ceil(per_wqe)
            .next_power_of_two()
            .max(4)
            .ilog2() as u8;
        RxGeometry {
            kind: RqKind::Striding {
                log_strides,
                log_stride,
            },
            log_wqes,
            buf_size: wqe,
            cq_log: (log_wqes + log_strides).min(22),
        }
    }

    /// What the SQ's [`sq::SqConfig::empw`] gets: the option where the
    /// part has the capability.
    pub(super) fn sq_empw(&self) -> Option<u16> {
        let caps = &self.res.caps;
        self.cfg.empw.filter(|_| caps.empw || caps.mpw)
    }

    /// What the SQ's [`sq::SqConfig::legacy_mpw`] gets: the part has
    /// legacy MPW and not the enhanced form.
    pub(super) fn sq_legacy_mpw(&self) -> bool {
        self.res.caps.mpw && !self.res.caps.empw
    }

    /// What the SQ's [`sq::SqConfig::bf`] gets: the part's BlueFlame
    /// buffer size with the option, where a WQE's first block fits it.
    pub(super) fn sq_bf(&self) -> u16 {
        let size = self.res.caps.bf_size;
        if self.cfg.blueflame && usize::from(size) >= crate::wqe::WQEBB {
            size
        } else {
            0
        }
    }

    /// Receive queues the configuration asks for: a power of two, at
    /// least one, no more than the RQT may hold.
    pub(super) fn rx_queue_target(&self) -> usize {
        let n = (self.cfg.rss_queues.max(1) as usize).min(64);
        1 << n.ilog2()
    }
}
