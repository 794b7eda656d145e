//! Milliseconds from SysTick.
//!
//! SysTick interrupts once a millisecond and its handler counts. `thumbv6m` has no
//! atomic read-modify-write, but the handler is the counter's only writer, so a load
//! then a store is enough. [`Clock::now`] widens the 32-bit count to 64 bits (it must
//! be called at least once every 49 days, which a poll loop does).

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// The MPS2 boards' processor clock in QEMU.
pub const CPU_HZ: u32 = 25_000_000;

static TICKS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    TICKS.store(TICKS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// Milliseconds since [`Clock::start`].
#[derive(Debug)]
pub struct Clock {
    last: u32,
    millis: u64,
}

impl Clock {
    /// Starts SysTick on the processor clock, one interrupt per millisecond. SysTick
    /// keeps running once `syst` is gone.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CPU_HZ / 1000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock {
            last: TICKS.load(Ordering::Relaxed),
            millis: 0,
        }
    }

    /// Milliseconds since start; never goes back.
    pub fn now(&mut self) -> u64 {
        let ticks = TICKS.load(Ordering::Relaxed);
        self.millis += u64::from(ticks.wrapping_sub(self.last));
        self.last = ticks;
        self.millis
    }
}
