//! Sleeping while there is nothing to do, until a frame arrives or SysTick ticks.
//!
//! The controller's interrupt only wakes the processor: its handler lowers the line and
//! returns, and the poll loop does the work. [`sleep`] checks for a waiting frame with
//! interrupts masked and then waits with `wfi`, which returns on a pending interrupt even
//! while masked: a frame that arrives after the check wakes it, so none waits for the
//! next millisecond's tick.

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::exception;

use crate::lan9118::{self, Lan9118, MPS2_IRQ};

#[derive(Clone, Copy, Debug)]
struct Irq(u16);

#[allow(unsafe_code)]
// SAFETY: `number` returns an interrupt line the boards' NVIC has (the controller's),
// as the trait requires.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// Lets the controller's interrupt through the NVIC.
pub fn enable() {
    #[allow(unsafe_code)]
    // SAFETY: unmasking can break a critical section based on masking this line; the
    // program has none (its only shared state is the SysTick counter, written by one
    // handler), and the handler below is ready before the line is unmasked.
    unsafe {
        NVIC::unmask(Irq(MPS2_IRQ));
    }
}

#[allow(unsafe_code)]
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == MPS2_IRQ as i16 {
        lan9118::acknowledge_interrupt();
    } else {
        panic!("unexpected interrupt");
    }
}

/// Waits for a frame or the next tick, unless a frame is already waiting.
pub fn sleep(device: &Lan9118) {
    cortex_m::interrupt::free(|_| {
        if !device.rx_waiting() {
            cortex_m::asm::wfi();
        }
    });
}
