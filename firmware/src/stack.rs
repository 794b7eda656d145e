//! The stack's high-water mark. cortex-m-rt's `paint-stack` fills the RAM between the
//! end of `.bss` (`_stack_end`) and the top of RAM (`_stack_start`) with
//! [`STACK_PAINT_VALUE`] before `main`; the stack grows down from the top, so the
//! lowest word that no longer holds the paint is as deep as it went.

use cortex_m_rt::STACK_PAINT_VALUE;

extern "C" {
    static _stack_end: u32;
    static _stack_start: u32;
}

/// Bytes of stack used so far, at most.
pub fn high_water() -> usize {
    let bottom = core::ptr::addr_of!(_stack_end);
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut word = bottom;
    while (word as usize) < top {
        #[allow(unsafe_code)]
        // SAFETY: `word` is 4-byte aligned (the linker script aligns `_stack_end`) and
        // below `_stack_start`, the top of RAM: inside the RAM the program owns. The
        // words between are the stack's free part or its used part, both plain memory
        // that nothing else writes while `main` reads them; a volatile read keeps the
        // compiler from assuming they still hold what it last saw.
        let value = unsafe { core::ptr::read_volatile(word) };
        if value != STACK_PAINT_VALUE {
            break;
        }
        word = word.wrapping_add(1);
    }
    top - word as usize
}
