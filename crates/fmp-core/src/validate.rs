//! Validation of submissions: every failing field reported at once.
