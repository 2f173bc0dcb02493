//! The pick-up: what a pool worker does with each request it takes from the queue, around the
//! route's work (`handler.rs`) — skip it if its client has gone, the access-log line, the limits,
//! the answer with `X-Worker` and `X-Request-Id`, and `picked-up` and `finished` for `/events`.

use std::time::Duration;

use tiny_http::{Header, Request, Response};
use twin_core::events::{Event, Kind};
use twin_core::request::wants_html;
use twin_core::{access_log, dispatch, head, limits, Dispatch, Reply, ServerKind, WorkReport};

use crate::handler;
use crate::{Shared, Ticket};

/// Serve `rq` on worker `worker`, from pick-up to the last byte of the response.
pub(crate) fn serve(shared: &Shared, worker: usize, rq: Request, ticket: Ticket) {
    let config = &shared.config;
    if client_gone(&rq) {
        // It gave up while it waited (Ctrl-C, the stage's Esc): a worker serving it would be
        // tied up for nobody. Dropping it answers nothing: its socket is gone.
        access_log::skipped(config, worker, rq.method().as_str(), &ticket.target);
        if ticket.logged {
            let events = &shared.events;
            events.finished(
                &ticket.id,
                &ticket.target,
                Some(worker),
                499,
                Duration::ZERO,
            );
        }
        return;
    }
    let _in_flight = shared.in_flight.enter();
    let method = rq.method().as_str().to_owned();
    let Ticket {
        target,
        id,
        bad_id,
        logged,
        _place,
    } = ticket;
    let pickup = access_log::pick_up(config, worker, &method, &target);
    if logged {
        let at = pickup.at;
        shared
            .events
            .publish(|| Event::new(Kind::PickedUp, &id, &target, Some(worker), at));
    }
    // tiny_http refuses a head over the size limits itself (as hyper does); the target and body
    // limits are checked here, as on the event loop.
    let over = limits::check(target.len(), rq.body_length().map(|n| n as u64));
    let dispatched = match over.or(bad_id) {
        Some(reply) => Dispatch::Reply(reply),
        None => {
            let accept = rq.headers().iter().find(|h| h.field.equiv("Accept"));
            let html = wants_html(accept.map(|h| h.value.as_str()));
            dispatch(&method, &target, html, config)
        }
    };
    let reply = match dispatched {
        Dispatch::Reply(reply) => reply,
        Dispatch::Work(job) => match handler::run(&job, config) {
            Ok(cpu) => {
                let report = WorkReport {
                    request_id: &id,
                    worker,
                    started: pickup.at,
                    elapsed: pickup.elapsed(),
                    pool_wait: None,
                    cpu,
                };
                Reply::work(config, &job, &report)
            }
            Err(e) => {
                tracing::error!("worker{worker}: cannot start an event loop: {e}");
                Reply::error(
                    500,
                    "internal error",
                    "the worker could not start an event loop",
                )
            }
        },
    };
    let mut reply = reply.with_worker(worker);
    reply.headers.push(("X-Request-Id", id.to_string()));
    let status = reply.status;
    send(rq, reply);
    pickup.finish(config, &method, &target, status);
    if logged {
        let elapsed = pickup.elapsed();
        shared
            .events
            .finished(&id, &target, Some(worker), status, elapsed);
    }
}

/// Has the client of `rq` reset its connection while the request waited for a worker? tiny_http
/// reads one request of a connection at a time, so a reset is still in the socket for a peek —
/// unless the reader met it while it skipped a body nobody read, and then it said so.
fn client_gone(rq: &Request) -> bool {
    rq.client_reset()
        || rq
            .tcp_stream()
            .is_some_and(|socket| twin_core::platform::client_gone(&socket))
}

/// Write `reply` as a tiny_http response, with the headers every answer has (twin-core's
/// `head::every_answer`). A client that has gone away is not an error.
pub(crate) fn send(rq: Request, reply: Reply) {
    let headers = head::every_answer(&reply, ServerKind::Pool);
    let mut response = Response::from_string(reply.body).with_status_code(reply.status);
    for (name, value) in headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(e) = rq.respond(response) {
        tracing::debug!("client went away before the response was sent: {e}");
    }
}
