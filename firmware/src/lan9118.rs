//! A smoltcp [`Device`] for the SMSC LAN9118 Ethernet controller of QEMU's MPS2 boards.
//!
//! The controller is polled, with no interrupts and no DMA: frames go through FIFOs
//! that are read and written one 32-bit word at a time (little-endian bytes in each
//! word, as QEMU's model and the datasheet's 32-bit mode have it).
//!
//! * Receive: `RX_FIFO_INF` counts the waiting frames. Each frame is one word of
//!   `RX_STATUS` (its length, CRC included, and an error bit), then that many bytes,
//!   rounded up to whole words, from `RX_DATA`.
//! * Transmit: two command words (`TX_CMD_A`: this buffer's length, first and last
//!   segment; `TX_CMD_B`: the frame's length and a tag), then the bytes, rounded up
//!   to whole words, into `TX_DATA`. The controller adds the CRC. Each frame sent
//!   leaves a word in the TX status FIFO, which the driver drains.
//!
//! The controller raises its interrupt line when a frame arrives, for a poll loop that
//! sleeps in between ([`Lan9118::rx_waiting`], [`acknowledge_interrupt`]); the driver
//! itself never waits for it.
//!
//! Register offsets and bits are the datasheet's names; only those the driver uses.

use core::sync::atomic::{AtomicBool, Ordering};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

/// Where the MPS2 boards (AN385, AN386, AN500...) map the controller.
pub const MPS2_BASE: usize = 0x4020_0000;
/// The controller's interrupt line on the AN385 and AN386 boards' NVIC.
pub const MPS2_IRQ: u16 = 13;

/// Largest Ethernet frame without its CRC (1500 bytes of payload and a 14-byte header).
pub const MAX_FRAME: usize = 1514;
/// Room for a received frame and its 4-byte CRC, in whole words.
const RX_BUF: usize = (MAX_FRAME + 4 + 3) & !3;

/// Register offsets from the base address.
mod reg {
    pub const RX_DATA: usize = 0x00;
    pub const TX_DATA: usize = 0x20;
    pub const RX_STATUS: usize = 0x40;
    pub const TX_STATUS: usize = 0x48;
    pub const ID_REV: usize = 0x50;
    pub const IRQ_CFG: usize = 0x54;
    pub const INT_STS: usize = 0x58;
    pub const INT_EN: usize = 0x5c;
    pub const BYTE_TEST: usize = 0x64;
    pub const FIFO_INT: usize = 0x68;
    pub const RX_CFG: usize = 0x6c;
    pub const TX_CFG: usize = 0x70;
    pub const HW_CFG: usize = 0x74;
    pub const RX_FIFO_INF: usize = 0x7c;
    pub const TX_FIFO_INF: usize = 0x80;
    pub const PMT_CTRL: usize = 0x84;
    pub const FREE_RUN: usize = 0x9c;
    pub const MAC_CSR_CMD: usize = 0xa4;
    pub const MAC_CSR_DATA: usize = 0xa8;
}

/// What `BYTE_TEST` reads on a LAN9118 in 32-bit mode, whatever the bus's byte order.
const BYTE_TEST_VALUE: u32 = 0x8765_4321;
/// `HW_CFG`: soft reset, self-clearing.
const HW_CFG_SRST: u32 = 1 << 0;
/// `PMT_CTRL`: the device is ready to be accessed.
const PMT_CTRL_READY: u32 = 1 << 0;
/// `IRQ_CFG`: the interrupt pin enabled, active high, push-pull.
const IRQ_CFG_IRQ_EN: u32 = 1 << 8;
const IRQ_CFG_IRQ_POL: u32 = 1 << 4;
const IRQ_CFG_IRQ_TYPE: u32 = 1 << 0;
/// `INT_STS` / `INT_EN`: the RX status FIFO passed its level (a frame arrived).
/// Sticky until written back as 1.
const INT_RSFL: u32 = 1 << 3;
/// `FIFO_INT`: the TX levels at their reset value, the RX status level at 0 frames, so
/// that [`INT_RSFL`] rises with the first waiting frame.
const FIFO_INT_VALUE: u32 = 0x4800_0000;
/// `TX_CFG`: transmitter on.
const TX_CFG_TX_ON: u32 = 1 << 1;
/// `MAC_CSR_CMD`: start the access / it is still busy.
const MAC_CSR_BUSY: u32 = 1 << 31;
/// `MAC_CSR_CMD`: the access is a read.
const MAC_CSR_READ: u32 = 1 << 30;
/// MAC registers, reached through `MAC_CSR_CMD` / `MAC_CSR_DATA`.
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
/// `MAC_CR`: receiver and transmitter enabled, full duplex. Not promiscuous: frames
/// for this address and broadcasts (ARP) only.
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_FDPX: u32 = 1 << 20;
/// `RX_FIFO_INF`: frames waiting in the RX status FIFO (bits 23:16).
const RX_STATUS_USED_SHIFT: u32 = 16;
/// `TX_FIFO_INF`: entries in the TX status FIFO (bits 23:16) and free bytes in the TX
/// data FIFO (bits 15:0).
const TX_STATUS_USED_SHIFT: u32 = 16;
const TX_DATA_FREE_MASK: u32 = 0xffff;
/// `RX_STATUS`: frame length with its CRC (bits 29:16) and the error summary bit.
const RX_STATUS_LEN_SHIFT: u32 = 16;
const RX_STATUS_LEN_MASK: u32 = 0x3fff;
const RX_STATUS_ERROR: u32 = 1 << 15;
/// `TX_STATUS`: the error summary bit.
const TX_STATUS_ERROR: u32 = 1 << 15;
/// `TX_CMD_A`: first and last segment of a frame; the buffer length is bits 10:0.
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
/// `TX_CMD_B`: the frame tag is bits 31:16, the frame length bits 10:0.
const TX_CMD_B_TAG_SHIFT: u32 = 16;

/// How many register reads to wait for a reset or a MAC access before giving up.
const SPIN_LIMIT: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `BYTE_TEST` did not read as a LAN9118's: no controller at this address.
    NotFound(u32),
    /// A soft reset or a MAC register access did not complete.
    Timeout,
    /// The driver was already handed out (there is one controller).
    Taken,
}

/// Frames and errors counted by the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to smoltcp.
    pub rx_frames: u32,
    /// Frames dropped on receive: error status, or longer than [`MAX_FRAME`].
    pub rx_dropped: u32,
    /// Frames written to the transmit FIFO.
    pub tx_frames: u32,
    /// Transmit status words with the error bit set.
    pub tx_errors: u32,
}

/// The controller's registers.
#[derive(Debug)]
struct Regs {
    base: usize,
}

#[allow(unsafe_code)]
impl Regs {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `base` is always MPS2_BASE, the controller's address on these boards,
        // and `offset` one of `reg`'s: inside its 256-byte register window, 4-byte
        // aligned, valid for 32-bit access. It is device memory, not Rust memory: no
        // reference to it exists, and every access is volatile. Only the one driver
        // (Lan9118::take) and `acknowledge_interrupt` (a write-1-to-clear of INT_STS)
        // touch it.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }
}

impl Regs {
    fn wait_clear(&self, offset: usize, bit: u32) -> Result<(), Error> {
        for _ in 0..SPIN_LIMIT {
            if self.read(offset) & bit == 0 {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    fn wait_set(&self, offset: usize, bit: u32) -> Result<(), Error> {
        for _ in 0..SPIN_LIMIT {
            if self.read(offset) & bit != 0 {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    fn mac_read(&self, index: u32) -> Result<u32, Error> {
        self.wait_clear(reg::MAC_CSR_CMD, MAC_CSR_BUSY)?;
        self.write(reg::MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | index);
        self.wait_clear(reg::MAC_CSR_CMD, MAC_CSR_BUSY)?;
        Ok(self.read(reg::MAC_CSR_DATA))
    }

    fn mac_write(&self, index: u32, value: u32) -> Result<(), Error> {
        self.wait_clear(reg::MAC_CSR_CMD, MAC_CSR_BUSY)?;
        self.write(reg::MAC_CSR_DATA, value);
        self.write(reg::MAC_CSR_CMD, MAC_CSR_BUSY | index);
        self.wait_clear(reg::MAC_CSR_CMD, MAC_CSR_BUSY)
    }
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The driver's frame buffers, one each way: a `static` of the firmware's.
#[derive(Debug)]
pub struct Buffers {
    rx: [u8; RX_BUF],
    tx: [u8; MAX_FRAME],
}

impl Buffers {
    /// Zeroed (a `static`'s initializer: it lands in `.bss`).
    pub const fn new() -> Self {
        Buffers {
            rx: [0; RX_BUF],
            tx: [0; MAX_FRAME],
        }
    }
}

/// The LAN9118 driver: owns the controller and its frame buffers.
#[derive(Debug)]
pub struct Lan9118 {
    regs: Regs,
    mac: EthernetAddress,
    rx: &'static mut [u8; RX_BUF],
    rx_frames: u32,
    rx_dropped: u32,
    tx: Tx,
}

/// The transmit side, borrowed by a [`TxToken`].
#[derive(Debug)]
struct Tx {
    buf: &'static mut [u8; MAX_FRAME],
    tag: u16,
    frames: u32,
    errors: u32,
}

impl Lan9118 {
    /// The MPS2 boards' controller, reset and enabled: receiving frames for its own
    /// address (the one QEMU gives it, `-nic ...,mac=`) and broadcasts, into `buffers`.
    ///
    /// # Errors
    /// [`Error::Taken`] on a second call; [`Error::NotFound`] when no LAN9118 answers
    /// at [`MPS2_BASE`]; [`Error::Timeout`] when it does not come out of reset.
    pub fn take(buffers: &'static mut Buffers) -> Result<Self, Error> {
        // Single core, and only `main` calls this: a load and a store cannot race.
        if TAKEN.load(Ordering::Relaxed) {
            return Err(Error::Taken);
        }
        TAKEN.store(true, Ordering::Relaxed);
        let regs = Regs { base: MPS2_BASE };
        let test = regs.read(reg::BYTE_TEST);
        if test != BYTE_TEST_VALUE {
            return Err(Error::NotFound(test));
        }
        regs.write(reg::HW_CFG, HW_CFG_SRST);
        regs.wait_clear(reg::HW_CFG, HW_CFG_SRST)?;
        regs.wait_set(reg::PMT_CTRL, PMT_CTRL_READY)?;

        // The address the EEPROM (QEMU: the -nic option) loaded at reset.
        let low = regs.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = regs.mac_read(MAC_ADDRH)?.to_le_bytes();
        let mut mac = EthernetAddress([low[0], low[1], low[2], low[3], high[0], high[1]]);
        if !mac.is_unicast() {
            // No EEPROM: a locally administered address, written back so the filter
            // matches it.
            mac = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x91, 0x18]);
            let b = mac.0;
            regs.mac_write(MAC_ADDRL, u32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
            regs.mac_write(MAC_ADDRH, u32::from_le_bytes([b[4], b[5], 0, 0]))?;
        }

        regs.write(reg::FIFO_INT, FIFO_INT_VALUE);
        regs.write(reg::INT_STS, u32::MAX);
        regs.write(reg::INT_EN, INT_RSFL);
        regs.write(reg::IRQ_CFG, IRQ_CFG_IRQ_EN | IRQ_CFG_IRQ_POL | IRQ_CFG_IRQ_TYPE);
        // No offset before a received frame, 4-byte end alignment.
        regs.write(reg::RX_CFG, 0);
        regs.write(reg::TX_CFG, TX_CFG_TX_ON);
        regs.mac_write(MAC_CR, MAC_CR_RXEN | MAC_CR_TXEN | MAC_CR_FDPX)?;

        Ok(Lan9118 {
            regs,
            mac,
            rx: &mut buffers.rx,
            rx_frames: 0,
            rx_dropped: 0,
            tx: Tx {
                buf: &mut buffers.tx,
                tag: 0,
                frames: 0,
                errors: 0,
            },
        })
    }

    /// The controller's Ethernet address.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The chip's ID and revision register (`0x0118_0001` for QEMU's model).
    pub fn id_rev(&self) -> u32 {
        self.regs.read(reg::ID_REV)
    }

    /// A free-running 25 MHz counter of the controller: a little entropy at boot (the
    /// time QEMU took to get here), for smoltcp's seed and the local port.
    pub fn free_run(&self) -> u32 {
        self.regs.read(reg::FREE_RUN)
    }

    /// True when a received frame waits in the controller.
    pub fn rx_waiting(&self) -> bool {
        (self.regs.read(reg::RX_FIFO_INF) >> RX_STATUS_USED_SHIFT) & 0xff != 0
    }

    /// Frames and errors so far.
    pub fn counters(&self) -> Counters {
        Counters {
            rx_frames: self.rx_frames,
            rx_dropped: self.rx_dropped,
            tx_frames: self.tx.frames,
            tx_errors: self.tx.errors,
        }
    }

    /// Reads the next waiting frame into `rx`; returns its length without the CRC, or
    /// `None` when no good frame is waiting (a bad one is read out and dropped).
    fn read_frame(&mut self) -> Option<usize> {
        loop {
            let waiting = (self.regs.read(reg::RX_FIFO_INF) >> RX_STATUS_USED_SHIFT) & 0xff;
            if waiting == 0 {
                return None;
            }
            let status = self.regs.read(reg::RX_STATUS);
            let len = ((status >> RX_STATUS_LEN_SHIFT) & RX_STATUS_LEN_MASK) as usize;
            // The data FIFO holds the frame in whole words: read them all, whatever
            // happens to the frame, so the next one starts at a word boundary.
            let words = len.div_ceil(4);
            let mut chunks = self.rx.chunks_exact_mut(4);
            for _ in 0..words {
                let word = self.regs.read(reg::RX_DATA).to_le_bytes();
                if let Some(chunk) = chunks.next() {
                    chunk.copy_from_slice(&word);
                }
            }
            if status & RX_STATUS_ERROR != 0 || len < 4 || len - 4 > MAX_FRAME {
                self.rx_dropped += 1;
                continue;
            }
            self.rx_frames += 1;
            return Some(len - 4);
        }
    }
}

/// Lowers the controller's interrupt line after a frame arrived: call it from the
/// handler of [`MPS2_IRQ`]. Safe at any time: it only clears the interrupt status bit
/// (a write of 1 clears it), which the driver's FIFO handling never reads.
pub fn acknowledge_interrupt() {
    Regs { base: MPS2_BASE }.write(reg::INT_STS, INT_RSFL);
}

impl Tx {
    /// Room for one more frame: free bytes in the data FIFO for a maximum frame and
    /// its two command words. Drains the TX status FIFO on the way.
    fn ready(&mut self, regs: &Regs) -> bool {
        let info = regs.read(reg::TX_FIFO_INF);
        for _ in 0..(info >> TX_STATUS_USED_SHIFT) & 0xff {
            if regs.read(reg::TX_STATUS) & TX_STATUS_ERROR != 0 {
                self.errors += 1;
            }
        }
        (info & TX_DATA_FREE_MASK) as usize >= MAX_FRAME + 8
    }

    /// Writes `buf[..len]` to the transmit FIFO as one frame.
    fn send(&mut self, regs: &Regs, len: usize) {
        let Some(frame) = self.buf.get(..len) else {
            return;
        };
        self.tag = self.tag.wrapping_add(1);
        // `len` <= MAX_FRAME < 2^11: it fits the 11-bit length fields.
        let len = len as u32;
        regs.write(reg::TX_DATA, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
        regs.write(reg::TX_DATA, (u32::from(self.tag) << TX_CMD_B_TAG_SHIFT) | len);
        let mut chunks = frame.chunks_exact(4);
        for chunk in &mut chunks {
            regs.write(
                reg::TX_DATA,
                u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            );
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 4];
            word[..rest.len()].copy_from_slice(rest);
            regs.write(reg::TX_DATA, u32::from_le_bytes(word));
        }
        self.frames += 1;
    }
}

/// A received frame, already out of the controller.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Room for one frame to transmit.
#[derive(Debug)]
pub struct TxToken<'a> {
    regs: &'a Regs,
    tx: &'a mut Tx,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp asks for at most the MTU it was given (capabilities()).
        let len = len.min(MAX_FRAME);
        let result = f(&mut self.tx.buf[..len]);
        self.tx.send(self.regs, len);
        result
    }
}

impl Device for Lan9118 {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // Receive only with room to answer (smoltcp may reply at once, an ACK or ARP).
        if !self.tx.ready(&self.regs) {
            return None;
        }
        let len = self.read_frame()?;
        let frame = self.rx.get(..len)?;
        Some((
            RxToken { frame },
            TxToken {
                regs: &self.regs,
                tx: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        if !self.tx.ready(&self.regs) {
            return None;
        }
        Some(TxToken {
            regs: &self.regs,
            tx: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}
