//! The semihosting calls the firmware makes besides printing and exiting
//! (`cortex_m_semihosting::{hprintln, debug::exit}`).

use cortex_m_semihosting::nr;

/// The command line QEMU passes to the program: the `-kernel` path, then `-append`'s
/// text (or `-semihosting-config arg=...`'s values), separated by spaces. Written into
/// `buf`; `None` when the debugger has no command line or it is not UTF-8.
pub fn cmdline(buf: &mut [u8]) -> Option<&str> {
    // SYS_GET_CMDLINE's parameter block: the buffer's address and length; the host
    // writes the string and puts its length (without the NUL) in the second word.
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    #[allow(unsafe_code)]
    // SAFETY: the block and the buffer it points to live across the call, and the host
    // writes at most `buf.len()` bytes into the buffer and one word into the block
    // (the semihosting specification's contract for SYS_GET_CMDLINE). The call is a
    // `bkpt` that the compiler treats as reading and writing memory.
    let failed = unsafe { cortex_m_semihosting::syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    if failed != 0 {
        return None;
    }
    let len = block[1].min(buf.len());
    let text = core::str::from_utf8(buf.get(..len)?).ok()?;
    Some(text.trim_end_matches('\0'))
}
