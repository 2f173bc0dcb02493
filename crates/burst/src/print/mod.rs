//! What `burst` shows: the same results three ways — for a person at a terminal ([`text`]: the
//! per-request table, the waterfall, the summary, the comparison table), for scripts
//! ([`json_csv`]), and as pictures ([`svg`]: the timeline and the comparison chart). Each takes
//! results and returns text; none fires or judges anything.

pub mod json_csv;
pub mod steady;
pub mod svg;
pub mod text;
