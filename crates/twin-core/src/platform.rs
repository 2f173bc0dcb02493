//! What differs between the laptops attendees bring — macOS, Windows, Linux — kept in one place.
//! Everything else in the twins is portable Rust.
//!
//! | what | Linux | macOS, other Unix | Windows |
//! |---|---|---|---|
//! | open-files limit | raised to the hard limit at start | raised to the hard limit | none to raise |
//! | a drain stops accepting | the listening socket is shut down: new connections are refused at once | new connections get a JSON 503 | new connections get a JSON 503 |
//! | is the client still there? ([`client_gone`]) | a non-blocking peek (`MSG_DONTWAIT`) | the same | the socket made non-blocking for the peek |
//! | threads a process may have ([`thread_budget`]) | from `vm.max_map_count` and `threads-max` | not known | not known |

use std::io;
use std::net::TcpListener;

/// Raise the open-files soft limit to the hard limit: every connection is a descriptor, and the
/// usual soft limit of 1024 (256 on macOS) would cap a burst far below what the machine holds.
/// Returns the limit before and after, or `None` where there is no such limit.
#[cfg(unix)]
pub fn raise_open_files() -> Option<(u64, u64)> {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    let after = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(before);
    Some((before, after))
}

/// Windows has no open-files limit on sockets to raise.
#[cfg(not(unix))]
pub fn raise_open_files() -> Option<(u64, u64)> {
    None
}

/// About how many threads this process may have, where the system says: on Linux, each thread
/// maps its stack and its signal stack, each with a guard page, so `vm.max_map_count` (65,530 by
/// default) allows about a quarter as many threads; `kernel.threads-max` bounds them too. A
/// thread past it does not fail to start: the standard library aborts the process. `None` where
/// the limit is not known.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn thread_budget() -> Option<usize> {
    let read =
        |path: &str| -> Option<usize> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let maps = read("/proc/sys/vm/max_map_count")?;
    // Room for the maps of the heap, the libraries and the sockets' buffers.
    let by_maps = maps.saturating_sub(2048) / 4;
    Some(read("/proc/sys/kernel/threads-max").map_or(by_maps, |t| by_maps.min(t / 2)))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn thread_budget() -> Option<usize> {
    None
}

/// Whether [`stop_accepting`] makes the system refuse new connections.
pub const REFUSES_ON_DRAIN: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Stop taking connections: on Linux, shutting down a listening socket wakes every thread blocked
/// in `accept` and makes the kernel refuse new connections at once, while requests already
/// accepted carry on.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn stop_accepting(listener: &TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Read)
}

/// Elsewhere a listening socket cannot be shut down like that: connections keep being accepted
/// during a drain, and both twins answer their requests with the JSON 503.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn stop_accepting(_listener: &TcpListener) -> io::Result<()> {
    Ok(())
}

/// The banner's word on what a drain does with new connections here.
pub fn drain_note() -> &'static str {
    if REFUSES_ON_DRAIN {
        "new connections are refused"
    } else {
        "new connections get a 503 (this system cannot refuse them)"
    }
}

/// Has the client reset its connection — abandoned its request and closed without waiting for the
/// answer (`burst` and the stage do so on Ctrl-C, Esc or `POST /cancel`)? A look at the socket
/// that never waits and never takes a byte. Only a reset counts: a client that merely shut its
/// sending side (`nc -N`, RFC 9112 §9.6) still waits for its answer.
/// This is for a blocking socket (the pool's); [`client_gone_async`] for the event loop's.
pub fn client_gone(stream: &std::net::TcpStream) -> bool {
    gone(socket2::SockRef::from(stream), true)
}

/// [`client_gone`] for a tokio socket (non-blocking already).
pub fn client_gone_async(stream: &tokio::net::TcpStream) -> bool {
    gone(socket2::SockRef::from(stream), false)
}

/// Peek at a tokio socket without waiting: `Ok(0)` once the client has shut its sending side,
/// `Ok(n)` with bytes waiting, `WouldBlock` with nothing yet.
pub fn peek_async(stream: &tokio::net::TcpStream) -> io::Result<usize> {
    peek_now(socket2::SockRef::from(stream), false)
}

/// Shut the sending side of a tokio socket shared behind an `Arc` (the event loop's, whose
/// pick-up looks at it too): what `AsyncWrite::poll_shutdown` does.
pub fn shutdown_write(stream: &tokio::net::TcpStream) -> io::Result<()> {
    socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write)
}

/// Has the other end closed this connection (or reset it)? A look that never waits: for an
/// `/events` watcher, which sends nothing after its request, any end of its sending side is
/// the end of the watcher.
pub fn peer_closed(stream: &std::net::TcpStream) -> bool {
    match peek_now(socket2::SockRef::from(stream), true) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

/// `blocking`: whether the socket is in blocking mode, which Windows cannot tell.
fn gone(socket: socket2::SockRef<'_>, blocking: bool) -> bool {
    match peek_now(socket, blocking) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotConnected
        ),
    }
}

#[cfg(unix)]
fn peek_now(socket: socket2::SockRef<'_>, _blocking: bool) -> io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::uninit(); 1];
    socket.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// Windows has no per-call `MSG_DONTWAIT`: the socket is non-blocking for the peek. (Nothing else
/// reads or writes it at pick-up: its request is read, its answer not begun.)
#[cfg(not(unix))]
fn peek_now(socket: socket2::SockRef<'_>, blocking: bool) -> io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::uninit(); 1];
    socket.set_nonblocking(true)?;
    let peeked = socket.peek(&mut byte);
    if blocking {
        socket.set_nonblocking(false)?;
    }
    peeked
}
