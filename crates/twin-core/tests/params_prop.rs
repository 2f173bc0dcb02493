//! Property tests for the query-parameter parser: whatever a client sends, it never panics,
//! and every rejection names a parameter the client actually sent.

use proptest::prelude::*;
use twin_core::request::parse_params;
use twin_core::{Config, Route, ServerKind};

fn config() -> Config {
    Config::for_tests(ServerKind::Pool, 4, 1000)
}

fn route() -> impl Strategy<Value = Route> {
    prop::sample::select(Route::ALL.to_vec())
}

/// Queries built from the characters that matter: names, digits, signs, `%`, `&`, `=`, `+`.
fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z%=&+0-9.-]{0,40}",
        "(ms|tasks|x)=[0-9]{0,25}(&(ms|tasks|x)=[0-9-]{0,5}){0,3}",
        any::<String>(),
    ]
}

proptest! {
    // No file of failures is kept: a failing case is printed, and the next run draws afresh.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_every_rejection_names_a_sent_parameter(route in route(), q in query()) {
        match parse_params(route, &q, &config()) {
            Ok(job) => {
                prop_assert!(job.wait.as_millis() <= 60_000);
                prop_assert!((1..=1000).contains(&job.tasks));
            }
            Err(e) => {
                let sent: Vec<String> = form_urlencoded_names(&q);
                prop_assert!(!e.error.is_empty() && !e.allowed.is_empty());
                prop_assert!(sent.contains(&e.parameter), "{:?} not among {:?}", e.parameter, sent);
            }
        }
    }

    #[test]
    fn any_request_target_gets_an_answer_or_a_job(
        method in "(GET|POST|HEAD|[A-Z]{0,8})",
        target in prop_oneof!["/[a-z/?=&%:.-]{0,30}", "https?://[a-z:0-9]{0,10}[/?]?[a-z/?=&%:.-]{0,20}", any::<String>()],
    ) {
        match twin_core::dispatch(&method, &target, false, &config()) {
            twin_core::Dispatch::Reply(r) => prop_assert!([200, 400, 404, 405].contains(&r.status)),
            twin_core::Dispatch::Work(job) => prop_assert!(job.route.is_work()),
        }
    }

    #[test]
    fn every_ms_in_range_is_accepted_as_is(ms in 0u64..=60_000) {
        let job = parse_params(Route::Io, &format!("ms={ms}"), &config()).unwrap();
        prop_assert_eq!(job.wait.as_millis(), u128::from(ms));
    }

    #[test]
    fn every_ms_out_of_range_is_rejected_never_clamped(ms in 60_001u64..) {
        let e = parse_params(Route::Io, &format!("ms={ms}"), &config()).unwrap_err();
        prop_assert_eq!(e.parameter.as_str(), "ms");
        prop_assert_eq!(e.received, ms.to_string());
    }
}

/// The parameter names a query carries, decoded as the server decodes them.
fn form_urlencoded_names(q: &str) -> Vec<String> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(name, _)| name.into_owned())
        .collect()
}
