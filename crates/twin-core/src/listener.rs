//! The listening socket both twins share: bound with a real backlog (closing it for new
//! connections on a drain is in [`crate::platform`]).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Bind `addr` with a listen queue of `backlog` connections.
///
/// The standard library's listener queues only 128: a burst of a thousand clients then loses SYNs,
/// and each lost SYN costs its client a 1 s retransmit — a fake "wave" on stage.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarting a server right after Ctrl-C must not fail on connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// One line for a failed bind, naming the address and what to do.
pub fn bind_error(binary: &str, addr: SocketAddr, err: &io::Error) -> String {
    let hint = match err.kind() {
        io::ErrorKind::AddrInUse => {
            " (is another server running there? try another --port, or --port 0)"
        }
        io::ErrorKind::AddrNotAvailable => " (that --host is not an address of this machine)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges; try --port 8000)",
        _ => "",
    };
    format!("{binary}: error: cannot listen on {addr}: {err}{hint}")
}
