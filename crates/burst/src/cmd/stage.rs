//! `burst stage`: serve the live page that watches the twins (or up to four named servers: the real
//! stacks beside them) and fires bursts at them.

use std::path::PathBuf;
use std::process::ExitCode;

use burst::Target;
use clap::Args;

use super::{runtime, Fatal};

#[derive(Debug, Args)]
pub(crate) struct StageArgs {
    /// The port the page is served on (0: any free port; the real one is printed). The
    /// scripts take it from STAGE_PORT too.
    #[arg(long, env = "STAGE_PORT", default_value_t = 8080)]
    pub(crate) port: u16,

    /// The address the page is served on. Loopback: only this machine's browser sees it; a
    /// room's network (0.0.0.0, or this machine's address): the room watches, and only this
    /// machine fires.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: std::net::IpAddr,

    /// Play recorded bursts instead of watching twins (a burst's "replay" link saves one):
    /// a rehearsal with no twins running. Repeat for several.
    #[arg(long, value_name = "FILE")]
    pub(crate) replay: Vec<PathBuf>,

    /// The servers to watch, one panel each (up to 4, in the page's order).
    #[command(flatten)]
    pub(crate) servers: super::ServerArgs,
}

pub(crate) fn stage(args: &StageArgs) -> Result<ExitCode, Fatal> {
    let named = args.servers.named()?;
    if named.len() > burst::stage::MAX_PANELS {
        return Err(Fatal(
            format!(
                "the stage shows at most {} servers ({} given): one projector, two rows of two",
                burst::stage::MAX_PANELS,
                named.len()
            ),
            2,
        ));
    }
    if let Some((name, _)) = named.iter().find(|(n, _)| n == "all" || n == "both") {
        return Err(Fatal(
            format!("--target {name:?}: `all` and `both` fire at every panel; pick another name"),
            2,
        ));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let mut targets = Vec::new();
        for (name, url) in named {
            let target = Target::parse(&url).await.map_err(|e| Fatal(e.0, 2))?;
            targets.push((name, target));
        }
        let addr = std::net::SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                "; is a stage already running? or pick another port with --port"
            } else {
                ""
            };
            Fatal(format!("cannot listen on {addr}: {e}{hint}"), 2)
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Fatal(format!("cannot read the bound address: {e}"), 2))?;
        let recordings = args
            .replay
            .iter()
            .map(|path| burst::stage::Recording::load(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Fatal(e, 2))?;
        let port = bound.port();
        // A URL a browser can open: 0.0.0.0 is where the stage listens, not an address.
        let presenter = if bound.ip().is_unspecified() {
            format!("http://127.0.0.1:{port}")
        } else {
            format!("http://{bound}")
        };
        if recordings.is_empty() {
            let watched: Vec<String> = targets
                .iter()
                .map(|(name, t)| format!("{name} at {}", t.url))
                .collect();
            eprintln!("burst stage: watching {}", watched.join(", "));
        } else {
            eprintln!(
                "burst stage: REPLAY of {} recorded burst(s), no twins watched: {}",
                recordings.len(),
                recordings
                    .iter()
                    .map(|r| format!("{} × {} at {}", r.n, r.route, r.at.join(" and ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        eprintln!(
            "burst stage: keys 1–5 route · ↑/↓ N (or λ) · P pools · A event loops · B all · Esc stop\n\
             burst stage: T bursts ⇄ steady traffic · C chart · S save the panels · R reset · \
             Ctrl-C here stops the stage"
        );
        eprintln!("burst stage: the presenter opens {presenter} (only this machine fires)");
        if bound.ip().is_unspecified() {
            eprintln!("burst stage: serving every address of this machine, port {port}");
            eprintln!(
                "burst stage: the room watches at http://<this machine's address>:{port}\n\
                 burst stage:   (its address: `hostname -I` on Linux, `ipconfig getifaddr en0` \
                 on macOS, `ipconfig` on Windows)"
            );
        } else if !bound.ip().is_loopback() {
            eprintln!("burst stage: the room watches at http://{bound}");
        }
        // The same last line as the twins' banners: scripts wait for it.
        eprintln!("listening on {presenter}");
        // Nothing to drain: a burst in flight is the stage's own, and the twins skip what it
        // gave up.
        let quit = ctrlc::set_handler(|| {
            eprintln!("burst stage: stopped");
            std::process::exit(0);
        });
        if let Err(e) = quit {
            return Err(Fatal(format!("cannot catch Ctrl-C: {e}"), 2));
        }
        let mut config = burst::stage::StageConfig::named(targets);
        config.recordings = recordings;
        config.narrate = true;
        burst::stage::serve(listener, config, std::future::pending())
            .await
            .map_err(|e| Fatal(format!("the stage stopped: {e}"), 1))?;
        Ok(ExitCode::SUCCESS)
    })
}
