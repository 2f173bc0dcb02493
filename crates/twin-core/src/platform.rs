//! What differs between the laptops attendees bring — macOS, Windows, Linux — kept in one place.
//! Everything else in the twins is portable Rust.
//!
//! | what | Linux | macOS, other Unix | Windows |
//! |---|---|---|---|
//! | open-files limit | raised to the hard limit at start | raised to the hard limit | none to raise |
//! | a drain stops accepting | the listening socket is shut down: new connections are refused at once | new connections get a JSON 503 | new connections get a JSON 503 |

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
