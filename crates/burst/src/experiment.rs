//! One experiment (a burst held against the model) and the reference matrix of them.
//!
//! [`run`] asks the server what it is (`GET /`), fires the burst and checks it. [`compare`] runs
//! the reference experiment: pool and event-loop twin × `/io`, `/async-io`, `/async-io-multi`
//! × each burst size — the figures the whole lesson rests on.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{self, Burst, FireError, FireOptions, Target};
use crate::model::{self, Check, Prediction, ServerInfo, ServerKind};
use crate::stats::{self, Summary};

/// A burst with what the server said about itself and how it compares with the model.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub burst: Burst,
    pub server: Option<ServerInfo>,
    /// Why there is no model when the server did not say what it is (`GET /` unanswered).
    pub unknown: Option<String>,
    pub check: Option<Check>,
    pub summary: Summary,
}

/// Ask a server for its configuration; `None` if it is not a twin or does not answer `/`.
/// A server that is not there at all is reported by [`client::fire`], which tries every
/// connection and says what to start.
pub async fn server_info(target: &Target) -> Result<Option<ServerInfo>, FireError> {
    Ok(probe(target).await?.unwrap_or(None))
}

/// `GET /` on the server of `target`: `Ok(Err(why))` when nothing answers, `Ok(Ok(None))` when
/// the answer is not a configuration document.
async fn probe(target: &Target) -> Result<Result<Option<ServerInfo>, FireError>, FireError> {
    let root = target.with_path("/")?;
    // A twin whose workers are busy with earlier requests answers `GET /` only when one is free:
    // worth waiting for (`burst` says it waits), or the burst would have no model to be held to.
    Ok(match client::get(&root, Duration::from_secs(60)).await {
        Ok((200, body)) => Ok(serde_json::from_str(&body).ok()),
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    })
}

/// The default per-request timeout: longer than the longest wait the server allows, and than
/// twice the time the model gives the last request to finish.
pub fn default_timeout(
    server: Option<&ServerInfo>,
    prediction: Option<&Prediction>,
    n: usize,
) -> Duration {
    let longest_wait = server.map_or(60_000, |s| s.max_ms.max(s.task_ms));
    let modelled = prediction.map_or(Duration::ZERO, |p| p.done_at(n) * 2);
    (Duration::from_millis(longest_wait) + Duration::from_secs(10))
        .max(modelled + Duration::from_secs(10))
}

/// How to run experiments: the same for every burst of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per request; `None` for [`default_timeout`].
    pub timeout: Option<Duration>,
    /// The model's inputs told on the command line, for a server that does not describe itself
    /// at `GET /` (they win over what it says when given).
    pub model: Option<ServerInfo>,
    /// The response header that names the worker.
    pub worker_header: Arc<str>,
    /// Gives up on the bursts under way (Ctrl-C, the stage's Esc).
    pub cancel: Option<client::Cancel>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: None,
            model: None,
            worker_header: client::WORKER_HEADER.into(),
            cancel: None,
        }
    }
}

/// What is known before a burst is fired: the server, the model's prediction, the timeout.
#[derive(Debug, Clone)]
pub struct Plan {
    pub n: usize,
    pub server: Option<ServerInfo>,
    pub prediction: Option<Prediction>,
    pub timeout: Duration,
    /// Why the server is unknown, when its `GET /` was not answered.
    pub unknown: Option<String>,
}

impl Plan {
    /// When the model says the last request finishes.
    pub fn predicted_end(&self) -> Option<Duration> {
        self.prediction
            .as_ref()
            .map(|p| p.done_at(p.admitted(self.n)))
    }
}

/// Ask the server what it is and what the model predicts for `n` requests at `target`.
pub async fn plan(target: &Target, n: usize, settings: &Settings) -> Result<Plan, FireError> {
    let (server, unknown) = match &settings.model {
        Some(told) => (Some(told.clone()), None),
        None => match probe(target).await? {
            Ok(info) => (info, None),
            // Nothing listening is said by the burst itself; a server too busy to answer is
            // said here, or the missing model would be blamed on the server.
            Err(e) => (
                None,
                Some(format!(
                    "GET / was not answered ({e}): the server may still be busy with earlier \
                     requests"
                )),
            ),
        },
    };
    let mut plan = plan_for(target, n, settings, server)?;
    plan.unknown = unknown;
    Ok(plan)
}

/// The plan for `n` requests at `target` on a server already known to be `server`.
pub fn plan_for(
    target: &Target,
    n: usize,
    settings: &Settings,
    server: Option<ServerInfo>,
) -> Result<Plan, FireError> {
    let timeout = settings.timeout;
    let path = target
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Some(s) = &server {
        model::read_query(s, &path).map_err(|why| {
            FireError(format!(
                "bad URL {:?}: {why}; the server would answer 400",
                target.url
            ))
        })?;
    }
    let prediction = server.as_ref().and_then(|s| model::predict(s, &path));
    let timeout =
        timeout.unwrap_or_else(|| default_timeout(server.as_ref(), prediction.as_ref(), n));
    Ok(Plan {
        n,
        server,
        prediction,
        timeout,
        unknown: None,
    })
}

/// Fire the burst of `plan` and check it against the model; `ended` counts requests as they end.
pub async fn fire_plan(
    target: &Target,
    plan: Plan,
    settings: &Settings,
    ended: Option<Arc<AtomicUsize>>,
) -> Result<Experiment, FireError> {
    let opts = FireOptions {
        n: plan.n,
        timeout: plan.timeout,
        ended,
        worker_header: settings.worker_header.clone(),
        run: None,
        cancel: settings.cancel.as_ref().map(client::Cancel::watch),
    };
    let burst = client::fire(target, opts).await?;
    Ok(Experiment::of(burst, plan))
}

/// Fire several plans released at the same instant (the stage's "both"), each burst's requests
/// with `X-Request-Id: {run}-{i}` for its own `run`, and check each against its model.
pub async fn fire_each(
    plans: Vec<(Target, Plan, String)>,
    settings: &Settings,
) -> Vec<Result<Experiment, FireError>> {
    let bursts = plans
        .iter()
        .map(|(target, plan, run)| {
            let opts = FireOptions {
                n: plan.n,
                timeout: plan.timeout,
                ended: None,
                worker_header: settings.worker_header.clone(),
                run: Some(run.as_str().into()),
                cancel: settings.cancel.as_ref().map(client::Cancel::watch),
            };
            (target.clone(), opts)
        })
        .collect();
    let fired = client::fire_together(bursts).await;
    plans
        .into_iter()
        .zip(fired)
        .map(|((_, plan, _), burst)| Ok(Experiment::of(burst?, plan)))
        .collect()
}

/// Fire `n` at `target`, with `timeout` or the default, and check the result against the model.
pub async fn run(target: &Target, n: usize, settings: &Settings) -> Result<Experiment, FireError> {
    let plan = plan(target, n, settings).await?;
    fire_plan(target, plan, settings, None).await
}

impl Experiment {
    /// A fired burst held against its plan's model.
    fn of(burst: Burst, plan: Plan) -> Experiment {
        let check = plan.prediction.as_ref().map(|p| model::check(&burst, p));
        let summary = stats::summarize(&burst);
        Experiment {
            burst,
            server: plan.server,
            unknown: plan.unknown,
            check,
            summary,
        }
    }

    /// How the burst went, as `burst`'s exit status says it.
    pub fn status(&self) -> Status {
        // 503s the model predicts (a limit's) are answers, not failures; their count is checked.
        let shed = self
            .check
            .as_ref()
            .and_then(|c| c.shed)
            .map_or(0, |s| s.actual);
        if self.summary.ok + shed < self.burst.n {
            Status::Failed
        } else if self.check.as_ref().is_some_and(|c| !c.as_predicted) {
            Status::NotAsPredicted
        } else {
            Status::Ok
        }
    }
}

/// The outcome of one or more experiments, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Some requests failed or timed out (exit status 1).
    Failed,
    /// Every request was answered, but not as the model predicts (exit status 3).
    NotAsPredicted,
    /// Every request was answered, as predicted or with no model to check (exit status 0).
    Ok,
}

impl Status {
    /// `burst`'s exit status for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::NotAsPredicted => 3,
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The target's name: `pool`, `event-loop`, or what `--target NAME=URL` said.
    pub server: String,
    /// What the server said it is, if it said.
    pub kind: Option<ServerKind>,
    pub route: String,
    pub n: usize,
    pub experiment: Experiment,
}

/// Where [`compare`] is: a cell about to be fired (with its plan), or one just done.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Firing(&'a Plan),
    Done(&'a Experiment),
}

/// Run every server × route × size, reporting progress through
/// `progress(done, total, label, step)`; `ended` counts the requests of the cell being fired.
pub async fn compare(
    servers: &[(&str, &Target)],
    routes: &[String],
    sizes: &[usize],
    settings: &Settings,
    ended: Option<Arc<AtomicUsize>>,
    mut progress: impl FnMut(usize, usize, &str, Step<'_>),
) -> Result<Vec<Cell>, FireError> {
    // Every server must be there before the first burst, not when its turn comes; what each
    // says about itself is asked once, here, not before every cell.
    let mut known = Vec::with_capacity(servers.len());
    for (name, base) in servers {
        let info = probe(base).await?.map_err(|e| {
            FireError(format!(
                "{name} at {}: {e}; start it first (nothing was fired)",
                base.url
            ))
        })?;
        known.push(settings.model.clone().or(info));
    }
    let total = servers.len() * routes.len() * sizes.len();
    let mut cells = Vec::with_capacity(total);
    for &n in sizes {
        for ((name, base), server) in servers.iter().zip(&known) {
            for route in routes {
                let label = format!("{name} {route} × {n}");
                let target = base.with_path(route)?;
                let plan = plan_for(&target, n, settings, server.clone())?;
                progress(cells.len(), total, &label, Step::Firing(&plan));
                if let Some(ended) = &ended {
                    ended.store(0, std::sync::atomic::Ordering::Relaxed);
                }
                let experiment = fire_plan(&target, plan, settings, ended.clone()).await?;
                if settings
                    .cancel
                    .as_ref()
                    .is_some_and(client::Cancel::is_cancelled)
                {
                    // Cut short by Ctrl-C: not a cell of the experiment.
                    return Ok(cells);
                }
                progress(cells.len() + 1, total, &label, Step::Done(&experiment));
                cells.push(Cell {
                    server: (*name).to_owned(),
                    kind: experiment.server.as_ref().map(|s| s.kind),
                    route: route.clone(),
                    n,
                    experiment,
                });
            }
        }
    }
    Ok(cells)
}
