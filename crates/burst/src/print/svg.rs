//! Two charts as plain SVG text — no fonts, no C libraries, readable in any browser:
//!
//! - [`compare_chart`]: completion time against request index, one line per server × route, one
//!   panel per burst size — the classic "WSGI vs ASGI, IO-bound" figure;
//! - [`timeline`]: one bar per request of a single burst, waiting in grey, served in the colour of
//!   the worker that served it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{Burst, Outcome};
use crate::experiment::Cell;
use crate::model::ServerKind;
use crate::print::text::tick_step;
use crate::stats;
use crate::stats::completion_order;

/// A request whose server gave no timings: in flight, neither waiting nor served as far as we know.
const UNTIMED: &str = "#8f8f8f";

/// Worker colours (colour-blind-friendly, after Okabe & Ito).
const WORKER_COLORS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line on the comparison chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    /// Line width: a wide line stays visible under a thin one drawn on the same points.
    pub width: f64,
    /// 1 opaque; a wide, light line shows a thin one on top of it.
    pub opacity: f64,
    pub dashed: bool,
    /// Completion times in completion order (request 1, 2, …); `None` for a failed request.
    pub done: Vec<Option<Duration>>,
}

/// One panel: a burst size and its series.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

struct Frame {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn axes(
    s: &mut String,
    f: &Frame,
    x_max: f64,
    y_max: f64,
    x_label: &str,
    y_label: &str,
    x_int: bool,
) {
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#fff" stroke="#333"/>"##,
        f.x, f.y, f.w, f.h
    );
    let ystep = tick_step(Duration::from_secs_f64(y_max), 8).as_secs_f64();
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let py = f.y + f.h - v / y_max * f.h;
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            f.x,
            f.x + f.w,
            f.x - 5.0,
            py + 4.0,
            trim_num(v)
        );
        v += ystep;
    }
    let xstep = if x_int {
        nice_int_step(x_max, 10)
    } else {
        tick_step(Duration::from_secs_f64(x_max), 10).as_secs_f64()
    };
    // Integer axes (request numbers) label request 1, then every step.
    let mut v = if x_int { xstep } else { 0.0 };
    if x_int {
        let px = f.x + 0.5 / x_max * f.w;
        let _ = writeln!(
            s,
            r##"<text x="{px:.1}" y="{}" text-anchor="middle" font-size="11">1</text>"##,
            f.y + f.h + 15.0
        );
    }
    while v <= x_max + 1e-9 {
        let px = if x_int {
            f.x + (v - 0.5) / x_max * f.w
        } else {
            f.x + v / x_max * f.w
        };
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#333"/><text x="{px:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"##,
            f.y + f.h,
            f.y + f.h + 4.0,
            f.y + f.h + 15.0,
            trim_num(v)
        );
        v += xstep;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"##,
        f.x + f.w / 2.0,
        f.y + f.h + 32.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>"##,
        f.x - 38.0,
        f.y + f.h / 2.0,
        esc(y_label)
    );
}

fn nice_int_step(max: f64, ticks: usize) -> f64 {
    let raw = (max / ticks as f64).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn header(s: &mut String, width: f64, height: f64, title: &str) {
    let _ = writeln!(
        s,
        // Scales to the window (a projector's, a laptop's); the viewBox keeps the proportions.
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"##
    );
    let _ = writeln!(
        s,
        r##"<rect width="{width}" height="{height}" fill="#fafafa"/><text x="{:.1}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"##,
        width / 2.0,
        esc(title)
    );
}

/// The comparison chart: one panel per burst size, completion time against request index.
pub fn compare_chart(title: &str, subtitle: &str, panels: &[Panel]) -> String {
    // One panel fills the canvas; several share it. Right of each panel, room for the labels
    // that name every line where it ends.
    let panel_w = if panels.len() <= 1 { 700.0 } else { 460.0 };
    let panel_h = 320.0;
    // Room for the longest end label ("uvicorn + FastAPI /async-io-multi 0.50 s") at 11 px.
    let longest = panels
        .iter()
        .flat_map(|p| p.series.iter())
        .map(|se| se.label.chars().count() + 7)
        .max()
        .unwrap_or(20);
    let label_room = (longest as f64 * 6.6 + 24.0).max(200.0);
    let width = (70.0 + panels.len().max(1) as f64 * (panel_w + label_room)).max(900.0);
    let legend_cols = 3;
    let series = panels.iter().map(|p| p.series.len()).max().unwrap_or(0);
    let legend_h = 24.0 * series.div_ceil(legend_cols) as f64;
    let height = 60.0 + panel_h + 70.0 + legend_h + 20.0;
    let mut s = String::new();
    header(&mut s, width, height, title);
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="46" text-anchor="middle" font-size="12" fill="#444">{}</text>"##,
        width / 2.0,
        esc(subtitle)
    );
    for (pi, panel) in panels.iter().enumerate() {
        let f = Frame {
            x: 70.0 + pi as f64 * (panel_w + label_room),
            y: 70.0,
            w: panel_w,
            h: panel_h,
        };
        let n = panel
            .series
            .iter()
            .map(|se| se.done.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let y_max = panel
            .series
            .iter()
            .flat_map(|se| se.done.iter().flatten())
            .max()
            .copied()
            .unwrap_or(Duration::from_secs(1))
            .as_secs_f64()
            * 1.08;
        let y_max = y_max.max(0.01);
        let x_max = n as f64;
        axes(
            &mut s,
            &f,
            x_max,
            y_max,
            "request (in order of completion)",
            "completed at (s since release)",
            true,
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"##,
            f.x + f.w / 2.0,
            f.y - 8.0,
            esc(&panel.title)
        );
        let mut ends: Vec<(f64, f64, &Series, Duration)> = Vec::new();
        for (si, se) in panel.series.iter().enumerate() {
            let pts: Vec<String> = se
                .done
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let d = (*d)?;
                    let px = f.x + (i as f64 + 0.5) / x_max * f.w;
                    let py = f.y + f.h - d.as_secs_f64() / y_max * f.h;
                    Some(format!("{px:.1},{py:.1}"))
                })
                .collect();
            let dash = if se.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-opacity="{}"{dash}><title>{}</title></polyline>"##,
                pts.join(" "),
                se.color,
                se.width,
                se.opacity,
                esc(&se.label)
            );
            // Markers: filled for solid (pool) lines, hollow for dashed (event-loop) ones, so two
            // series on the same points can still be told apart.
            if n <= 40 {
                let fill = if se.dashed { "#fff" } else { se.color };
                let r = 2.6 + (si % 3) as f64 * 0.9;
                for p in &pts {
                    if let Some((x, y)) = p.split_once(',') {
                        let _ = writeln!(
                            s,
                            r##"<circle cx="{x}" cy="{y}" r="{r:.1}" fill="{fill}" stroke="{}" stroke-width="1.4"/>"##,
                            se.color
                        );
                    }
                }
            }
            if let Some((i, last)) = se
                .done
                .iter()
                .enumerate()
                .rev()
                .find_map(|(i, d)| d.map(|d| (i, d)))
            {
                let px = f.x + (i as f64 + 0.5) / x_max * f.w;
                let py = f.y + f.h - last.as_secs_f64() / y_max * f.h;
                ends.push((px, py, se, last));
            }
            let failed = se.done.iter().filter(|d| d.is_none()).count();
            if failed > 0 {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#c00">{} failed: {failed}</text>"##,
                    f.x + 6.0,
                    f.y + 14.0,
                    esc(&se.label)
                );
            }
        }
        end_labels(&mut s, &f, &mut ends);
    }
    // Legend: from the first panel's series (all panels share them).
    if let Some(panel) = panels.first() {
        let top = 70.0 + panel_h + 48.0;
        for (i, se) in panel.series.iter().enumerate() {
            let x = 70.0 + (i % legend_cols) as f64 * 250.0;
            let y = top + (i / legend_cols) as f64 * 22.0;
            let dash = if se.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r##"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2.5"{dash}/><text x="{}" y="{}" font-size="12">{}</text>"##,
                x + 30.0,
                se.color,
                x + 36.0,
                y + 4.0,
                esc(&se.label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Name every line where it ends, right of the panel: labels sorted by height and pushed apart
/// so that lines ending on the same point (pool /io and /async-io) are both named.
fn end_labels(s: &mut String, f: &Frame, ends: &mut [(f64, f64, &Series, Duration)]) {
    ends.sort_by(|a, b| a.1.total_cmp(&b.1));
    let gap = 15.0;
    let mut y_prev = f64::NEG_INFINITY;
    let x = f.x + f.w + 8.0;
    for (px, py, se, last) in ends.iter() {
        let y = py.max(y_prev + gap);
        y_prev = y;
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{py:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="0.8" stroke-opacity="0.6"/><text x="{:.1}" y="{:.1}" font-size="11" fill="{}">{} {:.2} s</text>"##,
            y - 4.0,
            se.color,
            x + 3.0,
            y,
            se.color,
            esc(&se.label),
            last.as_secs_f64()
        );
    }
}

/// One burst as a timeline: a row per request in completion order, waiting then served.
pub fn timeline(burst: &Burst, title: &str) -> String {
    let order = completion_order(burst);
    let rows = order.len().max(1) as f64;
    let row_h = (360.0 / rows).clamp(2.0, 18.0);
    let f = Frame {
        x: 70.0,
        y: 60.0,
        w: 760.0,
        h: row_h * rows,
    };
    let mut workers: Vec<String> = burst
        .results
        .iter()
        .filter_map(|r| r.worker.clone())
        .collect();
    workers.sort_by_key(|w| (w.len(), w.clone()));
    workers.dedup();
    let legend_rows = (workers.len() + 2).div_ceil(6) as f64;
    let width = 860.0;
    let height = f.y + f.h + 60.0 + legend_rows * 22.0 + 10.0;
    let span = burst.span().as_secs_f64().max(0.001) * 1.05;
    let mut s = String::new();
    header(&mut s, width, height, title);
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#fff" stroke="#333"/>"##,
        f.x, f.y, f.w, f.h
    );
    let step = tick_step(Duration::from_secs_f64(span), 10).as_secs_f64();
    let mut v = 0.0;
    while v <= span {
        let px = f.x + v / span * f.w;
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"##,
            f.y,
            f.y + f.h,
            f.y + f.h + 15.0,
            trim_num(v)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">seconds since release</text><text transform="translate(30,{:.1}) rotate(-90)" text-anchor="middle" font-size="12">requests, in order of completion</text>"##,
        f.x + f.w / 2.0,
        f.y + f.h + 32.0,
        f.y + f.h / 2.0
    );
    let px = |d: Duration| f.x + d.as_secs_f64() / span * f.w;
    for (row, &i) in order.iter().enumerate() {
        let r = &burst.results[i];
        let y = f.y + row as f64 * row_h;
        let h = (row_h * 0.8).max(1.0);
        let end = r.done.unwrap_or(Duration::from_secs_f64(span / 1.05));
        let untimed = r.is_ok() && r.service_started().is_none();
        let served_from = if untimed {
            r.sent
        } else {
            r.service_started().unwrap_or(end).max(r.sent)
        };
        let tip = format!(
            "#{} {}: sent {:.3}s, done {}, {}",
            r.index,
            r.worker.as_deref().unwrap_or("-"),
            r.sent.as_secs_f64(),
            r.done
                .map_or_else(|| "-".to_owned(), |d| format!("{:.3}s", d.as_secs_f64())),
            match &r.outcome {
                Outcome::Http(status) => status.to_string(),
                Outcome::Timeout => "timeout".to_owned(),
                other => format!("error: {}", other.error().unwrap_or_default()),
            }
        );
        let _ = writeln!(
            s,
            r##"<g><title>{}</title><rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="#ccc"/>"##,
            esc(&tip),
            px(r.sent),
            (px(served_from) - px(r.sent)).max(0.0)
        );
        let color = match (&r.outcome, &r.worker) {
            _ if !r.is_ok() => "#c00",
            _ if untimed => UNTIMED,
            (Outcome::Http(_), Some(w)) => {
                let k = workers.iter().position(|x| x == w).unwrap_or(0);
                WORKER_COLORS[k % WORKER_COLORS.len()]
            }
            (Outcome::Http(_), None) => "#666",
            _ => "#c00",
        };
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/></g>"##,
            px(served_from),
            (px(end) - px(served_from)).max(1.0)
        );
    }
    // Legend: waiting, failed, then each worker.
    let mut items: Vec<(String, &str)> = vec![("waiting".to_owned(), "#ccc")];
    if burst.results.iter().any(|r| !r.is_ok()) {
        items.push(("failed / timed out".to_owned(), "#c00"));
    }
    if burst
        .results
        .iter()
        .any(|r| r.is_ok() && r.service_started().is_none())
    {
        items.push(("in flight (no server timings)".to_owned(), UNTIMED));
    }
    for (k, w) in workers.iter().enumerate() {
        items.push((
            format!("served by {w}"),
            WORKER_COLORS[k % WORKER_COLORS.len()],
        ));
    }
    let top = f.y + f.h + 50.0;
    for (i, (label, color)) in items.iter().enumerate() {
        let x = f.x + (i % 6) as f64 * 128.0;
        let y = top + (i / 6) as f64 * 22.0;
        let _ = writeln!(
            s,
            r##"<rect x="{x}" y="{}" width="14" height="10" fill="{color}"/><text x="{}" y="{}" font-size="11">{}</text>"##,
            y - 9.0,
            x + 18.0,
            y,
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn route_color(route: &str) -> &'static str {
    match route {
        "/io" => "#D55E00",
        "/async-io" => "#0072B2",
        "/async-io-multi" => "#009E73",
        "/async-io-blocking" => "#CC79A7",
        "/cpu" => "#E69F00",
        _ => "#000000",
    }
}

/// The comparison chart: a panel per size; pool lines solid, event-loop lines dashed. Where a kind
/// has several servers (real Flask beside the twin, say), the first is drawn wide and light and
/// the others thin on top: where the lines lie on each other, the servers behaved alike.
pub fn compare_svg(cells: &[Cell], subtitle: &str) -> String {
    completion_svg(
        cells,
        "IO-bound bursts: a pool of blocking workers vs event loops",
        subtitle,
    )
}

/// [`compare_svg`] with a title of its own (the stage's bursts may be the pitfall routes).
pub fn completion_svg(cells: &[Cell], title: &str, subtitle: &str) -> String {
    let mut sizes: Vec<usize> = cells.iter().map(|c| c.n).collect();
    sizes.dedup();
    let mut servers: Vec<(&str, Option<ServerKind>)> = Vec::new();
    for c in cells {
        if !servers.iter().any(|(s, _)| *s == c.server) {
            servers.push((&c.server, c.kind));
        }
    }
    let shared_kind = |c: &Cell| servers.iter().filter(|(_, k)| *k == c.kind).count() > 1;
    let first_of_kind = |c: &Cell| {
        servers
            .iter()
            .find(|(_, k)| *k == c.kind)
            .is_some_and(|(s, _)| *s == c.server)
    };
    let panels: Vec<Panel> = sizes
        .iter()
        .map(|&n| Panel {
            title: format!("{n} requests at once"),
            series: cells
                .iter()
                .filter(|c| c.n == n)
                .map(|c| {
                    let b = &c.experiment.burst;
                    let done = stats::completion_order(b)
                        .into_iter()
                        .map(|i| b.results[i].done.filter(|_| b.results[i].is_ok()))
                        .collect();
                    let (width, opacity) = if shared_kind(c) {
                        if first_of_kind(c) {
                            (9.0, 0.35)
                        } else {
                            (2.2, 1.0)
                        }
                    } else if path_of(&c.route) == "/io" {
                        // Drawn wide so that it shows where /async-io lies on top of it.
                        (6.0, 1.0)
                    } else {
                        (2.2, 1.0)
                    };
                    Series {
                        label: format!("{} {}", c.server, c.route),
                        color: route_color(path_of(&c.route)),
                        width,
                        opacity,
                        dashed: c.kind != Some(ServerKind::Pool),
                        done,
                    }
                })
                .collect(),
        })
        .collect();
    compare_chart(title, subtitle, &panels)
}

/// `/io` of `/io?ms=20`.
fn path_of(route: &str) -> &str {
    route.split('?').next().unwrap_or(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_chart_has_a_line_per_series_and_a_legend() {
        let series = vec![
            Series {
                label: "pool /io".into(),
                color: "#D55E00",
                width: 5.0,
                opacity: 1.0,
                dashed: false,
                done: (1..=16)
                    .map(|n| Some(Duration::from_secs(((n + 3) / 4) as u64)))
                    .collect(),
            },
            Series {
                label: "event-loop /io".into(),
                color: "#0072B2",
                width: 2.2,
                opacity: 1.0,
                dashed: true,
                done: vec![Some(Duration::from_secs(1)); 16],
            },
        ];
        let svg = compare_chart(
            "t",
            "s",
            &[Panel {
                title: "16 requests".into(),
                series,
            }],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">pool /io</text>") && svg.contains(">event-loop /io</text>"));
        assert!(svg.contains("completed at (s since release)"));
        // One panel fills the canvas, and every line is named where it ends.
        assert!(svg.contains(r#"viewBox="0 0 970 "#), "{svg}");
        assert!(svg.contains(">pool /io 4.00 s</text>"), "{svg}");
        assert!(svg.contains(">event-loop /io 1.00 s</text>"), "{svg}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
