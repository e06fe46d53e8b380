//! fmp-report: the monthly FMP report and data exports.
