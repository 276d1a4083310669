//! Request counters: one relaxed atomic per route, and the in-flight gauge.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a request turned out to be, as counted in `per_endpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Root,
    Cluster1,
    Cluster2,
    Stats,
    Metrics,
    Healthz,
    Sleep,
    Work,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
}

impl Route {
    const ALL: [Route; 11] = [
        Route::Root,
        Route::Cluster1,
        Route::Cluster2,
        Route::Stats,
        Route::Metrics,
        Route::Healthz,
        Route::Sleep,
        Route::Work,
        Route::NotFound,
        Route::MethodNotAllowed,
        Route::PayloadTooLarge,
    ];

    /// Whether the route serves monitoring (`/stats`, `/metrics`, `/healthz`), counted apart
    /// from the load so that an idle, watched instance reads 0 requests.
    pub(crate) fn is_monitoring(self) -> bool {
        matches!(self, Route::Stats | Route::Metrics | Route::Healthz)
    }

    /// The route a request for `path` goes to, when it is a monitoring one.
    pub(crate) fn monitoring_of(path: &str) -> Option<Route> {
        [Route::Stats, Route::Metrics, Route::Healthz]
            .into_iter()
            .find(|r| r.label() == path)
    }

    /// The name under which the route is counted: its path, or the error for failed requests.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Route::Root => "/",
            Route::Cluster1 => "/cluster1",
            Route::Cluster2 => "/cluster2",
            Route::Stats => "/stats",
            Route::Metrics => "/metrics",
            Route::Healthz => "/healthz",
            Route::Sleep => "/sleep",
            Route::Work => "/work",
            Route::NotFound => "not_found",
            Route::MethodNotAllowed => "method_not_allowed",
            Route::PayloadTooLarge => "payload_too_large",
        }
    }
}

/// Live request counters, shared by every connection.
#[derive(Default)]
pub(crate) struct RequestCounters {
    per_route: [AtomicU64; Route::ALL.len()],
    in_flight: AtomicU64,
}

/// A request being answered: in the in-flight gauge until dropped.
pub(crate) struct InFlight<'a>(&'a RequestCounters);

impl RequestCounters {
    /// Marks the start of a request; it leaves the gauge when the guard is dropped.
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self)
    }

    /// Counts one request as answered on `route`. Each request is counted once, by whatever
    /// produced its answer (a handler, the 413 check or a fallback).
    pub(crate) fn count(&self, route: Route) {
        self.per_route[route as usize].fetch_add(1, Relaxed);
    }

    /// Requests answered per route label, every route listed (zeros included).
    pub(crate) fn per_route(&self) -> BTreeMap<String, u64> {
        Route::ALL
            .iter()
            .map(|&r| {
                (
                    r.label().to_string(),
                    self.per_route[r as usize].load(Relaxed),
                )
            })
            .collect()
    }

    /// Requests answered on load routes (every route but the monitoring ones) and on
    /// monitoring routes.
    pub(crate) fn totals(&self) -> (u64, u64) {
        Route::ALL.iter().fold((0, 0), |(load, monitoring), &r| {
            let n = self.per_route[r as usize].load(Relaxed);
            if r.is_monitoring() {
                (load, monitoring + n)
            } else {
                (load + n, monitoring)
            }
        })
    }

    /// Requests being answered right now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }
}

impl Drop for InFlight<'_> {
    // Also runs when a connection drops mid-request: the gauge never leaks.
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_route_and_leave_the_in_flight_gauge_when_dropped() {
        let c = RequestCounters::default();
        let a = c.start();
        let b = c.start();
        assert_eq!(c.in_flight(), 2);
        c.count(Route::Cluster1);
        drop(a);
        drop(b);
        assert_eq!(c.in_flight(), 0);
        let per = c.per_route();
        assert_eq!(per["/cluster1"], 1);
        assert_eq!(per.values().sum::<u64>(), 1);
        assert_eq!(per.len(), Route::ALL.len());
    }

    #[test]
    fn monitoring_is_counted_apart_from_the_load() {
        let c = RequestCounters::default();
        c.count(Route::Work);
        c.count(Route::NotFound);
        c.count(Route::Stats);
        c.count(Route::Healthz);
        c.count(Route::Metrics);
        assert_eq!(c.totals(), (2, 3));
        assert_eq!(Route::monitoring_of("/stats"), Some(Route::Stats));
        assert_eq!(Route::monitoring_of("/work"), None);
    }

    #[test]
    fn every_route_has_its_own_slot_and_label() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let labels: std::collections::BTreeSet<_> = Route::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Route::ALL.len());
    }
}
