//! What stops a server: SIGINT/SIGTERM for the program, a [`Trigger`] for a server run
//! inside another program (tests, an embedding application).
//!
//! The first request starts a graceful shutdown (PROTOCOL.md §9: stop accepting, close
//! every session in order); a second one stops the server at once. SIGHUP is no stop
//! request: it asks for the output file to be opened again (log rotation).

use std::io::{self, Read, Write};

use mio::unix::pipe;
use mio::{Interest, Registry, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

/// Where the server's stop requests come from; see [`Shutdown::on_signals`] and
/// [`Shutdown::trigger`].
#[derive(Debug)]
pub struct Shutdown {
    source: Source,
}

enum Source {
    Signals(Signals),
    /// Each byte is a request; end of stream (every [`Trigger`] dropped) is one too.
    Pipe {
        rx: pipe::Receiver,
        closed: bool,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Signals(_) => f.write_str("Signals(SIGINT, SIGTERM, SIGHUP)"),
            Source::Pipe { closed, .. } => f.debug_struct("Pipe").field("closed", closed).finish(),
        }
    }
}

/// One stop request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Request {
    /// This signal arrived.
    Signal(i32),
    /// [`Trigger::stop`] was called, or every trigger was dropped.
    Trigger,
    /// SIGHUP: open the output file again.
    Reopen,
}

/// `SIGINT`, `SIGTERM`… for the stop signals, as a user knows them.
pub(super) fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// Stops a server started with [`Shutdown::trigger`]'s other half.
#[derive(Debug)]
pub struct Trigger {
    tx: pipe::Sender,
}

impl Shutdown {
    /// SIGINT and SIGTERM stop the server (as `soquete server` does); SIGHUP opens
    /// its output file again.
    ///
    /// # Errors
    /// The signal handlers cannot be installed.
    pub fn on_signals() -> io::Result<Shutdown> {
        Ok(Shutdown {
            source: Source::Signals(Signals::new([SIGINT, SIGTERM, SIGHUP])?),
        })
    }

    /// A server stopped by calling [`Trigger::stop`] (or by dropping the trigger).
    ///
    /// # Errors
    /// The pipe that carries the requests cannot be created.
    pub fn trigger() -> io::Result<(Shutdown, Trigger)> {
        let (tx, rx) = pipe::new()?;
        Ok((
            Shutdown {
                source: Source::Pipe { rx, closed: false },
            },
            Trigger { tx },
        ))
    }

    pub(super) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match &mut self.source {
            Source::Signals(signals) => registry.register(signals, token, Interest::READABLE),
            Source::Pipe { rx, .. } => registry.register(rx, token, Interest::READABLE),
        }
    }

    /// The requests that arrived since the last call (readiness is edge-triggered:
    /// everything pending is taken).
    pub(super) fn requests(&mut self) -> Vec<Request> {
        match &mut self.source {
            Source::Signals(signals) => signals
                .pending()
                .map(|s| {
                    if s == SIGHUP {
                        Request::Reopen
                    } else {
                        Request::Signal(s)
                    }
                })
                .collect(),
            Source::Pipe { rx, closed } => {
                let mut requests = Vec::new();
                let mut buf = [0; 16];
                while !*closed {
                    match rx.read(&mut buf) {
                        Ok(0) => {
                            *closed = true;
                            requests.push(Request::Trigger);
                        }
                        Ok(n) => requests.extend(std::iter::repeat_n(Request::Trigger, n)),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                requests
            }
        }
    }
}

impl Trigger {
    /// Asks the server to stop: the first call starts a graceful shutdown, the second
    /// stops it at once. Returns at once.
    ///
    /// # Errors
    /// The server is gone (it stopped already).
    pub fn stop(&self) -> io::Result<()> {
        match (&self.tx).write(&[1]) {
            Ok(_) => Ok(()),
            // So many requests are pending that the server will see one anyway.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}
