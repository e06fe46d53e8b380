//! What a device is, and so what it may do to submissions.
//!
//! | role | records | edits, deletes | reviews | enrolls |
//! |---|---|---|---|---|
//! | [`Role::Enumerator`] (a phone) | in its FMPs | only the submissions it recorded | never | no |
//! | [`Role::Supervisor`] (a supervisor's hub) | in its FMPs | any of its FMPs | yes | yes |
//! | [`Role::Hq`] | any | any | yes | yes |
//!
//! An enumerator may not edit or delete a colleague's submission, even of
//! its own FMP: a correction of someone else's record goes through the
//! supervisor. The FMPs themselves are the scope (`fmps`) beside the role.

use serde::{Deserialize, Serialize};

/// The rights of a device over submissions (ordered: each has the rights of the one before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An enumerator's phone: records, and edits or deletes only what it recorded.
    Enumerator,
    /// A supervisor's hub: reviews, edits and deletes within its FMPs, enrolls devices.
    Supervisor,
    /// HQ: everything, no FMP restriction.
    Hq,
}

impl Role {
    /// The name stored and shown (`enumerator`, `supervisor`, `hq`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Enumerator => "enumerator",
            Role::Supervisor => "supervisor",
            Role::Hq => "hq",
        }
    }

    /// Parses [`Role::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "enumerator" => Some(Role::Enumerator),
            "supervisor" => Some(Role::Supervisor),
            "hq" => Some(Role::Hq),
            _ => None,
        }
    }

    /// The role of an enrollment as it was recorded before roles existed:
    /// a device allowed to enroll others is a supervisor's hub, any other
    /// an enumerator's phone.
    pub fn from_may_enroll(may_enroll: bool) -> Role {
        if may_enroll {
            Role::Supervisor
        } else {
            Role::Enumerator
        }
    }

    /// May review submissions.
    pub fn may_review(self) -> bool {
        self != Role::Enumerator
    }

    /// May edit or delete submissions another device recorded.
    pub fn may_change_others(self) -> bool {
        self != Role::Enumerator
    }

    /// May enroll other devices.
    pub fn may_enroll(self) -> bool {
        self != Role::Enumerator
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
