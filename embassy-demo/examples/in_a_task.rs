//! The README's "In an Embassy task" lines, compiled so that they stay true (CI builds
//! it with `cargo clippy --all-targets`); `src/main.rs` runs the same loop.
#![allow(dead_code)]

use embassy_futures::select::{select, Either};
use embassy_net::tcp::{self, TcpSocket};
use embassy_time::Timer;
use soquete_core::io_async::Driver;
use soquete_core::{io, Code, Config, Event, Instant, Session};

fn now() -> Instant {
    Instant::from_millis(embassy_time::Instant::now().as_millis())
}

/// Sends one reading over a connected socket, waits for its acknowledgement, closes.
async fn report(socket: &mut TcpSocket<'_>) -> Result<(), io::Error<tcp::Error>> {
    let (reader, writer) = socket.split();
    let mut io = Driver::<_, _, 512>::new(reader, writer);
    let mut session = Session::client(Config::DEFAULT, "sensor", [0u8; 2048], [0u8; 1024], now())
        .expect("buffers large enough for Config::DEFAULT");
    loop {
        while let Some(event) = session.poll_event(now()) {
            match event {
                // Cannot fail: the session has just opened and its buffer is empty.
                Event::Established { .. } => _ = session.send(b"temperature=21.5"),
                Event::Acked { .. } => session.close(now(), Code::Normal),
                _ => {}
            }
        }
        if session.is_finished() {
            break;
        }
        let deadline = session.poll_timeout();
        let timer = async {
            match deadline {
                Some(t) => Timer::at(embassy_time::Instant::from_millis(t.as_millis())).await,
                None => core::future::pending().await,
            }
        };
        match select(io.drive(&mut session, now), timer).await {
            Either::First(moved) => _ = moved?,
            Either::Second(()) => session.handle_timeout(now()),
        }
    }
    io.flush().await
}

fn main() {}
