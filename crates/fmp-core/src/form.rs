//! Versioned questionnaire definitions.
