//! The link under the interface: a device, then smoltcp's capture and fault-injection
//! middleware on top (as in smoltcp's `examples/utils.rs`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, FaultInjector, PcapMode, PcapWriter};
use smoltcp::time::{Duration, Instant};

/// The device as the interface sees it: faults on top, capture below them (so the
/// capture shows what was really sent).
pub type Stack<D> = FaultInjector<PcapWriter<D, Box<dyn Write>>>;

/// What can go wrong on the link, and where to record it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Chance of dropping each packet, in percent (on transmit and again on receive).
    pub drop_chance: u8,
    /// Chance of flipping one bit of each packet, in percent.
    pub corrupt_chance: u8,
    /// Drop packets larger than this many bytes; 0 for no limit.
    pub size_limit: usize,
    /// Packets sent per shaping interval before the rest are dropped; 0 for no limit.
    pub tx_rate_limit: u64,
    /// Packets received per shaping interval before the rest are dropped; 0 for none.
    pub rx_rate_limit: u64,
    /// The rate limits' interval, in milliseconds.
    pub shaping_interval_ms: u64,
    /// Seed of the fault injector's random numbers (the same seed, the same faults).
    pub seed: u32,
    /// Write every packet to this pcap file.
    pub pcap: Option<PathBuf>,
}

impl Faults {
    /// True when nothing is injected and nothing captured (the seed alone changes
    /// nothing).
    pub fn is_none(&self) -> bool {
        let Faults {
            drop_chance,
            corrupt_chance,
            size_limit,
            tx_rate_limit,
            rx_rate_limit,
            shaping_interval_ms: _,
            seed: _,
            pcap,
        } = self;
        *drop_chance == 0
            && *corrupt_chance == 0
            && *size_limit == 0
            && *tx_rate_limit == 0
            && *rx_rate_limit == 0
            && pcap.is_none()
    }

    /// Wraps `device` in capture and fault injection. `loopback` captures transmitted
    /// packets only (on a loopback every packet would otherwise appear twice). The
    /// fault injector holds a packet in a 1,536-byte buffer and lowers the MTU to that:
    /// a link without faults or capture is better used as it is ([`Faults::is_none`]).
    ///
    /// # Errors
    /// The pcap file cannot be created.
    pub fn wrap<D: Device>(&self, device: D, loopback: bool) -> io::Result<Stack<D>> {
        let sink: Box<dyn Write> = match &self.pcap {
            Some(path) => Box::new(BufWriter::new(File::create(path)?)),
            None => Box::new(io::sink()),
        };
        let mode = if loopback { PcapMode::TxOnly } else { PcapMode::Both };
        let mut device = FaultInjector::new(PcapWriter::new(device, sink, mode), self.seed);
        device.set_drop_chance(self.drop_chance);
        device.set_corrupt_chance(self.corrupt_chance);
        device.set_max_packet_size(self.size_limit);
        device.set_max_tx_rate(self.tx_rate_limit);
        device.set_max_rx_rate(self.rx_rate_limit);
        device.set_bucket_interval(Duration::from_millis(self.shaping_interval_ms));
        Ok(device)
    }
}

/// A device with a real link's capabilities: a 1500-byte MTU and checksums computed and
/// verified.
///
/// smoltcp's `Loopback` ignores checksums (nothing corrupts its packets), so a bit that
/// the fault injector flips would reach TCP as data. Verifying checksums makes a
/// corrupted packet a lost one, which TCP retransmits — as on a real link.
///
/// [`Checked::raw`] leaves the device as it is, for comparing with smoltcp's own
/// loopback benchmark on the same link.
#[derive(Debug)]
pub struct Checked<D> {
    inner: D,
    raw: bool,
}

impl<D> Checked<D> {
    /// The MTU this link reports, as on Ethernet.
    pub const MTU: usize = 1500;

    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Checked { inner, raw: false }
    }

    /// `inner` with its own capabilities (smoltcp's `Loopback`: a 65,535-byte MTU and
    /// no checksums). Only for links that corrupt nothing.
    pub fn raw(inner: D) -> Self {
        Checked { inner, raw: true }
    }
}

impl<D: Device> Device for Checked<D> {
    type RxToken<'a>
        = D::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.inner.receive(timestamp)
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(timestamp)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = self.inner.capabilities();
        if self.raw {
            return caps;
        }
        caps.checksum = ChecksumCapabilities::default();
        caps.max_transmission_unit = match caps.medium {
            phy::Medium::Ethernet => Self::MTU + 14,
            _ => Self::MTU,
        };
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{Loopback, Medium};

    #[test]
    fn the_fault_injector_lowers_a_raw_links_mtu_so_runs_without_faults_skip_it() {
        let raw = Checked::raw(Loopback::new(Medium::Ethernet));
        assert_eq!(raw.capabilities().max_transmission_unit, 65535);
        let wrapped = Faults::default().wrap(raw, true).unwrap();
        assert_eq!(wrapped.capabilities().max_transmission_unit, 1536);

        assert!(Faults {
            seed: 7,
            ..Faults::default()
        }
        .is_none());
        assert!(!Faults {
            drop_chance: 1,
            ..Faults::default()
        }
        .is_none());
        assert!(!Faults {
            pcap: Some("x.pcap".into()),
            ..Faults::default()
        }
        .is_none());
    }
}
